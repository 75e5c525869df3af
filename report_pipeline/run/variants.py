"""Variants: one task written by several models (`model` = `gpt-4o-mini, llama3.1`),
merged by the task's `merge` rule.

    collect_all    (default) every variant that succeeded, each under a `#### <model>`
                   heading in model-list order; refine and check run on each, with its model
    first_success  the first variant to succeed, in completion order; calls already sent
                   are let finish (they are paid for), calls not yet sent are not sent
    best           every variant, then a judge model (`judge_model`, default the run's
                   `model`) picks one by number; its choice and reason end the text

A task with variants is `failed` only when every variant failed (its error lists each
model's); a failed variant beside a successful one is listed in the task's `error`.

Pure functions of text and values; `runner.TaskRunner` makes the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .steps import AnswerError, json_object_answer, nest_headings

__all__ = [
    "Choice",
    "Variant",
    "all_failed_message",
    "collect_all_text",
    "combined_notes",
    "combined_verdict",
    "failed_variants",
    "judge_fallback_note",
    "judged_note",
    "label_model",
    "parse_choice",
]

VARIANT_HEADING_LEVEL = 4
_MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Variant:
    """One model's take on a task: its text, or why it has none.

    `partial` names the parts that failed although the variant as a whole succeeded
    (the failed sections of an outline); `verdict`/`notes` come from its own check
    step (collect_all only).
    """

    model: str
    text: str | None = None
    error: str = ""
    partial: str = ""
    verdict: str = ""
    notes: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class Choice:
    """The judge's pick: `index` is 0-based into the candidates it was shown."""

    index: int
    reason: str


def label_model(model: str) -> str:
    """The model as it appears in a call label (`OBJ.TASK.generate@gpt-4o-mini`).

    The gateway takes the text after a label's last dot as the step, so a dot in a
    model name (`llama3.1`, `gpt-4.1`) would split the label in the wrong place in the
    ledger: dots become underscores here. The call itself names the real model.
    """
    return model.replace(".", "_")


def parse_choice(text: str, count: int) -> Choice:
    """The judge's json_object answer `{"choice": N, "reason": "..."}`, N in 1..count."""
    data = json_object_answer(text)
    if "choice" not in data:
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "none"
        raise AnswerError(f'no "choice" in the JSON (keys: {keys})')
    raw = data["choice"]
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    elif isinstance(raw, str) and raw.strip().isdigit():
        number = int(raw.strip())
    if number is None:
        raise AnswerError(f'no candidate number in "choice" (got {raw!r})')
    if not 1 <= number <= count:
        raise AnswerError(f"choice {number} is not a candidate (1 to {count})")
    reason = data.get("reason")
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 1].rstrip() + "…"
    return Choice(index=number - 1, reason=reason)


def collect_all_text(variants: Sequence[Variant]) -> str:
    """Each variant under its `#### <model>` heading, in the order given; a note where one failed."""
    blocks = []
    for variant in variants:
        heading = "#" * VARIANT_HEADING_LEVEL + " " + variant.model
        if variant.ok:
            body = nest_headings(variant.text or "", VARIANT_HEADING_LEVEL + 1).strip()
        else:
            body = f"[variant {variant.model} failed: {variant.error}]"
        blocks.append(f"{heading}\n\n{body}" if body else heading)
    return "\n\n".join(blocks)


def failed_variants(variants: Sequence[Variant]) -> str:
    """The task's `error` when it still succeeded: failed variants and failed parts of good ones."""
    parts = [f"variant {v.model} failed: {v.error}" for v in variants if not v.ok]
    parts += [f"variant {v.model}: {v.partial}" for v in variants if v.ok and v.partial]
    return "; ".join(parts)


def all_failed_message(variants: Sequence[Variant]) -> str:
    listed = "; ".join(f"{v.model}: {v.error}" for v in variants)
    return f"every model failed — {listed}"


def combined_verdict(verdicts: Sequence[str]) -> str:
    """One verdict for several checks: revise if any says so, unclear if any is, else pass."""
    present = [v for v in verdicts if v]
    for verdict in ("revise", "unclear"):
        if verdict in present:
            return verdict
    return "pass" if present else ""


def combined_notes(variants: Sequence[Variant]) -> str:
    return "\n".join(f"{v.model}: {v.notes}" for v in variants if v.ok and (v.verdict or v.notes))


def judged_note(model: str, reason: str) -> str:
    """The line that ends a `best` task's text: which variant the judge kept, and why."""
    return f"_Chosen by the judge: {model} — {reason or 'no reason given'}_"


def judge_fallback_note(model: str, why: str) -> str:
    return f"_Kept {model}: {why}_"
