"""Small text helpers the report writers (Markdown, Word, Excel) share."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from report_pipeline.models import Chapter, FigureMark, FiguresTally, ReportView, TaskResult

# XML 1.0 forbids these code points; lxml (python-docx) and openpyxl refuse
# them outright, and an LLM reply or a data cell can contain one.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_WHITESPACE_RUN = re.compile(r"\s+")

STATUS_LABELS = {"failed": "Failed", "skipped": "Skipped"}
NO_REASON = "no reason recorded"


def see_figure(number: int, caption: str) -> str:
    """`See Figure 3: eu_generation — coal, gas by year.`: a later use of a chart placed earlier."""
    return f"See {FIGURE_LABEL} {number}: {caption}."


def written_by_line(report: ReportView) -> str:
    """`Written by: openai gpt-5-mini (28 sections)`: every provider and model behind a section."""
    writers = report.written_by()
    if not writers:
        return f"Written by: no section was written (provider {report.provider}, model {report.model})"
    parts = []
    for provider, model, sections in writers:
        who = "offline drafts, no model was called" if provider == "offline" else f"{provider} {model}"
        parts.append(f"{who} ({sections} section{'s' if sections != 1 else ''})")
    return "Written by: " + "; ".join(parts)


def xml_safe(text: str) -> str:
    """`text` without the control characters XML (hence .docx and .xlsx) cannot hold."""
    return _XML_ILLEGAL.sub("", text)


def one_line(text: str) -> str:
    """Collapse newlines and runs of spaces: for headings and table cells."""
    return _WHITESPACE_RUN.sub(" ", text).strip()


def display_datetime(unix_time: float) -> str:
    """`2024-05-01 12:00 UTC`: the report's "generated" line."""
    return datetime.fromtimestamp(unix_time, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def chapter_heading(chapter: Chapter) -> str:
    """`3. Market size`: the numbered chapter title used in every report format."""
    return f"{chapter.number}. {one_line(chapter.objective.title) or chapter.objective.objective_id}"


def task_heading(result: TaskResult) -> str:
    """The task's title, or its id when the sheet gave none."""
    return one_line(result.title) or result.task_id


def problem_note(result: TaskResult) -> tuple[str, str]:
    """(label, reason) for a failed or skipped task: ("Failed", "HTTP 400: ...")."""
    return STATUS_LABELS.get(result.status, result.status.title()), result.error.strip() or NO_REASON


def problems(report: ReportView) -> list[tuple[Chapter, TaskResult]]:
    """Every failed or skipped task with its chapter, in report order: the appendix rows."""
    return [
        (chapter, result)
        for chapter in report.chapters
        for result in chapter.results
        if result.status != "done"
    ]


FIGURES_CHECK_TITLE = "Figures check"


def figures_check_note(report: ReportView) -> str | None:
    """The figures check's line for the report's appendix; None when it did not run."""
    tally = FiguresTally.of(report.all_results())
    if not tally.checked_tasks:
        return None
    note = (f"{tally.describe()}: each figure in the text was looked for in the data, the texts and the "
            "prompt its section was given, as a cell, a rounded cell, or one step from its cells (a "
            "difference, a percent change, a sum, a mean or a unit change).")
    if tally.flagged:
        note += " A flagged figure is marked where it appears; check it against the sources before publishing."
    return note


def flagged_figures(report: ReportView) -> list[tuple[TaskResult, FigureMark]]:
    """Every untraced figure with its task, in report order."""
    return [(result, mark) for result in report.all_results() for mark in result.untraced_figures]


FIGURE_LABEL = "Figure"
TABLE_LABEL = "Table"


def chapter_intro(chapter: Chapter) -> str:
    """The chapter's lead, shown under its heading ("" when it has none)."""
    return chapter.lead


def display_date(unix_time: float) -> str:
    """`1 May 2024`: the date on the title page (UTC, like the "generated" line)."""
    moment = datetime.fromtimestamp(unix_time, tz=timezone.utc)
    return f"{moment.day} {moment:%B %Y}"


def caption_text(label: str, number: int, caption: str) -> str:
    """`Figure 3: eu_generation — coal, gas by year`."""
    return f"{label} {number}: {one_line(caption)}"


class CaptionNumbers:
    """Figure and table numbers in reading order, one sequence each, as Word numbers captions."""

    def __init__(self) -> None:
        self.figures = 0
        self.tables = 0
        self._figure_of: dict[object, int] = {}  # a placed figure -> its number, for "See Figure N"

    def next_figure(self, figure: object = None) -> int:
        self.figures += 1
        if figure is not None:
            self._figure_of[figure] = self.figures
        return self.figures

    def figure_of(self, figure: object) -> int | None:
        """The number a figure got where it was placed; None if it was not (it could not be read)."""
        return self._figure_of.get(figure)

    def next_table(self) -> int:
        self.tables += 1
        return self.tables
