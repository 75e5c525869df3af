"""Outline, then fill: the section plan a task of an `outline` objective asks for first,
and the text its filled sections make.

Pure functions of text, tested without a model: `parse_plan` reads and checks the
model's JSON plan, `assemble_sections` puts the filled sections together in plan
order. The calls themselves (the plan with its retries, the sections in parallel)
are made by `runner.TaskRunner`.

A task whose plan is usable is `done` when at least one of its sections was
written: a failed section leaves a visible note in its place and is listed in the
task's `error`. It is `failed` when no section was written, or when no usable plan
came back after `outline_retries` more tries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .steps import AnswerError, json_object_answer, nest_headings

__all__ = ["FilledSection", "OutlinePlan", "Section", "assemble_sections", "failed_sections", "parse_plan"]

# Section headings sit at this level in the task's text (the report nests the task's
# own headings below its title, so they keep their order whatever the level).
SECTION_HEADING_LEVEL = 3
_MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class Section:
    """One planned section: its 1-based place in the plan, its heading and what it covers."""

    number: int
    title: str
    brief: str = ""


@dataclass(frozen=True)
class OutlinePlan:
    """A checked plan; `dropped` counts the sections past `outline_max_sections` that were cut."""

    sections: tuple[Section, ...]
    dropped: int = 0


@dataclass(frozen=True)
class FilledSection:
    """A section after its call: its text, or why it has none."""

    section: Section
    text: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


def parse_plan(text: str, max_sections: int) -> OutlinePlan:
    """The plan in a json_object answer `{"sections": [{"title": ..., "brief": ...}, ...]}`.

    Raises AnswerError (a ValueError) saying what is wrong, so the retry and the task's
    error can name it. Sections past `max_sections` are cut, not refused: the plan is
    still good, only longer than asked.
    """
    if max_sections < 1:
        raise ValueError("max_sections must be at least 1")
    data = json_object_answer(text)
    items = data.get("sections")
    if not isinstance(items, list):
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "none"
        raise AnswerError(f'no "sections" list in the JSON (keys: {keys})')
    if not items:
        raise AnswerError('the "sections" list is empty')
    sections = tuple(_section(number, item) for number, item in enumerate(items[:max_sections], start=1))
    return OutlinePlan(sections=sections, dropped=len(items) - len(sections))


def _section(number: int, item: object) -> Section:
    if not isinstance(item, dict):
        raise AnswerError(f'section {number} is not an object with "title" and "brief"')
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise AnswerError(f"section {number} has no title")
    brief = item.get("brief")
    if brief is None:
        brief = ""
    if not isinstance(brief, str):
        raise AnswerError(f"section {number}: brief must be text, not {type(brief).__name__}")
    heading = " ".join(title.split()).lstrip("#").strip() or title.strip()
    if len(heading) > _MAX_TITLE_CHARS:
        heading = heading[: _MAX_TITLE_CHARS - 1].rstrip() + "…"
    return Section(number=number, title=heading, brief=brief.strip())


def failure_note(section: Section, error: str) -> str:
    return f'[section {section.number} "{section.title}" failed: {error}]'


def assemble_sections(filled: Sequence[FilledSection]) -> str:
    """The task's text: each section under its `###` heading, in plan order, a note where one failed."""
    blocks = []
    for item in sorted(filled, key=lambda f: f.section.number):
        heading = "#" * SECTION_HEADING_LEVEL + " " + item.section.title
        if item.ok:
            body = nest_headings(item.text or "", SECTION_HEADING_LEVEL + 1).strip()
        else:
            body = failure_note(item.section, item.error)
        blocks.append(f"{heading}\n\n{body}" if body else heading)
    return "\n\n".join(blocks)


def failed_sections(filled: Sequence[FilledSection]) -> str:
    """The failed sections for the task's `error` column ("" when all were written)."""
    return "; ".join(failure_note(f.section, f.error).strip("[]") for f in filled if not f.ok)
