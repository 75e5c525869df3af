"""The prompts of a task's step chain: generate -> refine -> check.

`generate` sends the task's own rendered prompt. `refine` and `check` have defaults
here that a workbook's `prompts` sheet can override (same sandboxed templates, with
`draft` and `prompt` added to the context).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SYSTEM_PROMPT = (
    "You are an experienced analyst writing one section of a professional report. "
    "Write clear, well-structured prose for a director-level reader. Use only the figures "
    "given in the prompt's data; do not invent numbers."
)

DEFAULT_STEP_PROMPTS: dict[str, str] = {
    "refine": (
        "Refine and proofread the draft below. Fix errors of grammar, clarity and flow, "
        "tighten the wording, keep every figure and claim that the instructions and data support, "
        "and keep the structure. Return only the improved text, with no preamble.\n\n"
        "Instructions the draft answers:\n{{ prompt }}\n\n<draft>\n{{ draft }}\n</draft>"
    ),
    "check": (
        "Sense-check the draft below against the instructions and the data they contain. "
        "Look for figures that do not match the data, claims the data does not support, and "
        "parts of the instructions left unanswered.\n"
        "Reply in exactly this format:\n"
        "VERDICT: PASS or VERDICT: REVISE\n"
        "NOTES: one to three sentences on what is right or what to fix\n\n"
        "Instructions and data:\n{{ prompt }}\n\n<draft>\n{{ draft }}\n</draft>"
    ),
}

_VERDICT = re.compile(r"VERDICT\s*:\s*\**\s*([A-Za-z_]+)", re.I)
_NOTES = re.compile(r"NOTES\s*:\s*(.*)", re.I | re.S)


@dataclass(frozen=True)
class CheckOutcome:
    verdict: str  # "pass", "revise", or "unclear" when the model ignored the format
    notes: str


def parse_check(text: str) -> CheckOutcome:
    """Read the verdict and notes of a check answer, tolerating a model that strays from the format."""
    match = _VERDICT.search(text)
    verdict = "unclear"
    if match:
        word = match.group(1).lower()
        verdict = {"pass": "pass", "ok": "pass", "revise": "revise", "fail": "revise"}.get(word, "unclear")
    notes_match = _NOTES.search(text)
    notes = notes_match.group(1).strip() if notes_match else text.strip()
    if not match and not notes_match:
        notes = text.strip()
    return CheckOutcome(verdict=verdict, notes=notes[:2000])
