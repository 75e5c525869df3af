"""The prompts of a task's step chain (generate -> refine -> check) and the readers of
the answers that must follow a format.

`generate` sends the task's own rendered prompt. `refine` and `check` have defaults
here that a workbook's `prompts` sheet can override (same sandboxed templates, with
`draft` and `prompt` added to the context). So do `outline` (the section plan an
outline objective asks for first, with `prompt` and `max_sections`) and `judge` (the
pick among a task's model variants, with `prompt` and `variants`) and `combine` (one text from
a for_each task's items, with `title`, `items` and `missing`) and `fix` (with `figures_check: fix`,
the untraced figures corrected, with `draft`, `flagged`, `tables`). `section` (writing
one planned section) has a default only: the sheet does not accept it yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import AnswerError
from ..text import nest_headings  # noqa: F401 - outline and variants take it from here

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
    "outline": (
        "Before writing, plan this part of the report as a short list of sections in reading "
        "order. The instructions and data it must answer are below.\n"
        "Reply with JSON only, in exactly this shape:\n"
        '{"sections": [{"title": "a short heading", "brief": "one or two sentences on what '
        'this section covers and which figures it uses"}]}\n'
        "Give between 1 and {{ max_sections }} sections; together they must answer the "
        "whole of the instructions, and no two may overlap.\n\n"
        "Instructions and data:\n{{ prompt }}"
    ),
    "section": (
        "Write one section of a longer part of a report. The instructions and data for the "
        "whole part:\n{{ prompt }}\n\n"
        "The plan of the part, in order:\n"
        "{% for s in sections %}{{ s.number }}. {{ s.title }}\n{% endfor %}\n"
        "Write section {{ section.number }}, \"{{ section.title }}\": {{ section.brief }}\n"
        "Return only this section's body, without its heading, and leave to the other "
        "sections what the plan gives them."
    ),
    "judge": (
        "The candidates below answer the same instructions. Choose the one a director "
        "would rather read: faithful to the data, complete, and clear.\n"
        'Reply with JSON only, in exactly this shape: {"choice": N, "reason": "one sentence"} '
        "where N is the number of the candidate you choose (1 to {{ variants | length }}).\n\n"
        "Instructions and data:\n{{ prompt }}\n\n"
        "{% for v in variants %}<candidate number=\"{{ v.number }}\">\n{{ v.text }}\n</candidate>\n\n{% endfor %}"
    ),
    "combine": (
        "Each text below answers the same instructions, \"{{ title }}\", for one item. Write one text "
        "that combines them for a director-level reader: keep every figure exactly as the texts give it, "
        "add no figure of your own, compare the items where the texts allow it, and keep it shorter than "
        "the texts together. Return only the text, with no preamble.\n\n"
        "{% for i in items %}<item name=\"{{ i.name }}\">\n{{ i.text }}\n</item>\n\n{% endfor %}"
        "{% if missing %}These items could not be written; say that they are missing: "
        "{{ missing | join(', ') }}\n{% endif %}"
    ),
    # the simulator answers this shape (UNTRACED FIGURES, `- "97.3" in: ...` lines, <draft>): keep them together
    "fix": (
        "Some figures in the draft below could not be traced to the data tables, the texts or the prompt "
        "you were given. Correct each one from the data, or remove it with the claim it makes; change "
        "nothing else. Reply with the corrected draft only.\n\n"
        "{% for t in tables %}Data: {{ t.name }}\n{{ t.table }}\n\n{% endfor %}"
        "UNTRACED FIGURES:\n{% for f in flagged %}- \"{{ f.figure }}\" in: {{ f.sentence }}\n{% endfor %}\n"
        "<draft>\n{{ draft }}\n</draft>"
    ),
}

# The judge reads drafts; the objective's system prompt is about writing them.
JUDGE_SYSTEM_PROMPT = (
    "You are a demanding editor comparing drafts of the same section of a professional "
    "report. You judge accuracy against the given data first, then completeness, then clarity."
)

JSON_OBJECT: dict[str, Any] = {"type": "json_object"}

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


# -- answers that must be JSON --------------------------------------------------------

_FENCED = re.compile(r"^```[A-Za-z]*\s*\n(.*)\n\s*```$", re.S)
_PREVIEW_CHARS = 60


def json_object_answer(text: str) -> dict[str, Any]:
    """The JSON object a json_object call answered.

    Tolerates a ```json fence around it: local servers often add one even in JSON mode.
    """
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise AnswerError("an empty answer instead of JSON")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise AnswerError(
            f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno}): {_preview(body)}"
        ) from None
    if not isinstance(data, dict):
        raise AnswerError(f"JSON {type(data).__name__} instead of an object: {_preview(body)}")
    return data


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _PREVIEW_CHARS else flat[: _PREVIEW_CHARS - 1] + "…")


# -- assembling texts -----------------------------------------------------------------

