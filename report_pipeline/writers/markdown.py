"""report.md: the whole report as one Markdown file, chapters in sheet order.

A task's attachments follow its text: each data table under a numbered caption,
each chart as an image link relative to the run folder (report.md sits in it,
the PNGs in `charts/`), so the file renders with its pictures wherever the run
folder is copied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from report_pipeline.models import Chapter, ReportView, TaskResult
from report_pipeline.writers._text import (
    FIGURE_LABEL,
    FIGURES_CHECK_TITLE,
    TABLE_LABEL,
    CaptionNumbers,
    caption_text,
    chapter_heading,
    chapter_intro,
    display_datetime,
    figures_check_note,
    flagged_figures,
    one_line,
    problem_note,
    problems,
    see_figure,
    task_heading,
    written_by_line,
)
from report_pipeline.writers.atomic import atomic_write_text
from report_pipeline.writers.figure_marks import markdown_marks, marked_text

from ..text import nest_headings

if TYPE_CHECKING:
    from .attachments import TaskAttachments

__all__ = ["APPENDIX_TITLE", "render_markdown", "write_markdown"]

APPENDIX_TITLE = "Appendix: failed or skipped tasks"

# Task texts sit under "### task"; their own headings must nest below it.
_TEXT_HEADING_LEVEL = 4


def render_markdown(report: ReportView, *, attachments: Mapping[str, TaskAttachments] | None = None) -> str:
    """The report as Markdown: title block, contents, one `##` per chapter, appendix.

    `attachments` (task key -> tables, charts, notes) are placed after each task's text.
    """
    blocks = [_front_matter(report), _contents(report)]
    numbers = CaptionNumbers()
    for chapter in report.chapters:
        blocks.extend(_chapter(chapter, attachments or {}, numbers))
    if problems(report):
        blocks.append(_appendix(report))
    if figures_check_note(report) is not None:
        blocks.append(_figures_appendix(report))
    return "\n\n".join(blocks) + "\n"


def write_markdown(
    path: str | os.PathLike[str],
    report: ReportView,
    *,
    attachments: Mapping[str, TaskAttachments] | None = None,
) -> Path:
    """Render `report` and write it to `path` atomically (UTF-8); return the path.

    Chart links are relative: write report.md into the run folder the charts' `relative` paths start from.
    """
    return atomic_write_text(path, render_markdown(report, attachments=attachments))


def _front_matter(report: ReportView) -> str:
    return "\n".join(
        [
            f"# {one_line(report.project_name) or 'Report'}",
            "",
            f"- Generated: {display_datetime(report.generated_at)}",
            f"- Run: `{report.run_id}`",
            f"- {written_by_line(report)}",
        ]
    )


def _contents(report: ReportView) -> str:
    lines = ["## Contents", ""]
    lines += [chapter_heading(chapter) for chapter in report.chapters]
    if problems(report):
        lines.append(f"- {APPENDIX_TITLE}")
    if figures_check_note(report) is not None:
        lines.append(f"- Appendix: {FIGURES_CHECK_TITLE.lower()}")
    if not report.chapters:
        lines.append("_No chapters in this run._")
    return "\n".join(lines)


def _chapter(chapter: Chapter, attachments: Mapping[str, TaskAttachments], numbers: CaptionNumbers) -> list[str]:
    blocks = [f"## {chapter_heading(chapter)}"]
    intro = chapter_intro(chapter)
    if intro:
        blocks.append(f"_{_inline(one_line(intro))}_")
    for result in chapter.results:
        blocks.append(f"### {task_heading(result)}")
        blocks.append(_task_body(result))
        found = attachments.get(result.key)
        if found:
            blocks.extend(_attachment_blocks(found, numbers))
    return blocks


def _attachment_blocks(found: TaskAttachments, numbers: CaptionNumbers) -> list[str]:
    """Tables under a bold caption, charts as image links with an italic caption line, then notes."""
    blocks = []
    for table in found.tables:
        caption = caption_text(TABLE_LABEL, numbers.next_table(), table.caption)
        blocks.append(f"**{_inline(caption)}**")
        blocks.append(table.markdown.strip())
    for image in found.images:
        caption = _inline(caption_text(FIGURE_LABEL, numbers.next_figure(image), image.caption))
        blocks.append(f"![{caption}]({_link_target(image.relative)})\n\n_{caption}_")
    for earlier in found.see_also:
        number = numbers.figure_of(earlier)
        if number is not None:
            blocks.append(f"_{_inline(see_figure(number, earlier.caption))}_")
    for note in found.notes:
        blocks.append(f"_{_inline(one_line(note))}_")
    return blocks


# Markdown's own characters; `_` only where it could open or close emphasis, so
# `eu_generation` stays readable in the raw file (intraword `_` is plain text).
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]<>]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _inline(text: str) -> str:
    """Text safe inside emphasis or an image's alt text: Markdown's own characters escaped."""
    return _INLINE_SPECIAL.sub(r"\\\1", text)


def _link_target(relative: str) -> str:
    """A link target; `<...>` when it holds spaces or parentheses, which end a bare target."""
    return f"<{relative}>" if re.search(r"[\s()<>]", relative) else relative


def _task_body(result: TaskResult) -> str:
    if result.status != "done":
        label, reason = problem_note(result)
        quoted = [f"> {line}" if line else ">" for line in reason.splitlines()]
        quoted[0] = f"> **{label}:** {quoted[0][2:]}"
        return "\n".join(quoted)
    text = markdown_marks(marked_text(result)).strip()  # `41.2 [unverified]` for an untraced figure
    if not text:
        return "_(The model returned no text.)_"
    return _nest_headings(text)


def _nest_headings(text: str) -> str:
    """Shift the text's own `#` headings so the highest becomes `####`.

    An LLM often starts with `# Summary`; left alone that would outrank the
    chapter headings and break the report's outline.
    """
    return nest_headings(text, _TEXT_HEADING_LEVEL)


def _appendix(report: ReportView) -> str:
    lines = [f"## {APPENDIX_TITLE}", "", "| Objective | Task | Status | Reason |", "| --- | --- | --- | --- |"]
    for chapter, result in problems(report):
        _, reason = problem_note(result)
        cells = [chapter_heading(chapter), f"{task_heading(result)} ({result.key})", result.status, reason]
        lines.append("| " + " | ".join(_table_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _figures_appendix(report: ReportView) -> str:
    lines = [f"## Appendix: {FIGURES_CHECK_TITLE.lower()}", "", _inline(figures_check_note(report) or "")]
    flagged = flagged_figures(report)
    if flagged:
        lines += ["", "| Section | Figure | Sentence |", "| --- | --- | --- |"]
        for result, mark in flagged:
            cells = [f"{task_heading(result)} ({result.key})", mark.text, mark.sentence]
            lines.append("| " + " | ".join(_table_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _table_cell(text: str) -> str:
    return one_line(text).replace("|", "\\|")
