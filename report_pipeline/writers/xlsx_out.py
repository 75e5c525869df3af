"""report.xlsx: a Summary sheet, then one sheet per objective with the result rows.

Each objective sheet has the same columns as results.csv, so analysts can
filter and pivot without reading the CSVs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from report_pipeline.models import Chapter, ReportView, TaskResult
from report_pipeline.writers._text import display_datetime, one_line, xml_safe
from report_pipeline.writers.atomic import atomic_path
from report_pipeline.writers.rows import (
    COST_DECIMALS,
    DURATION_DECIMALS,
    has_check_step,
    result_columns,
    result_row,
)
from report_pipeline.writers.safety import neutralise_cell

__all__ = ["SUMMARY_COLUMNS", "SUMMARY_SHEET", "sheet_names", "write_xlsx"]

SUMMARY_SHEET = "Summary"
SUMMARY_COLUMNS = (
    "objective_id", "title", "tasks", "done", "failed", "skipped",
    "prompt_tokens", "completion_tokens", "cost_usd", "duration_s",
)

MAX_SHEET_NAME = 31
# Excel refuses these in sheet names; "History" is reserved (any case).
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_RESERVED_SHEET_NAMES = frozenset({"history"})
MAX_CELL_CHARS = 32_767  # Excel's limit; longer cells are cut with a marker
_CUT_MARKER = " [...cut: see results.csv]"

TEXT_COLUMN_WIDTH = 80
MIN_COLUMN_WIDTH = 8
MAX_COLUMN_WIDTH = 50
_WIDTH_PADDING = 2

_HEADER_FONT = Font(bold=True)
_WRAP = Alignment(wrap_text=True, vertical="top")


def write_xlsx(path: str | os.PathLike[str], report: ReportView) -> Path:
    """Build the workbook and save it to `path` atomically; return the path."""
    workbook = _build(report)
    target = Path(path)
    with atomic_path(target) as tmp:
        workbook.save(tmp)
    return target


def sheet_names(chapters: Sequence[Chapter]) -> list[str]:
    """One valid, unique sheet name per chapter, from its objective id and title.

    Excel's rules: at most 31 characters, none of `[]:*?/\\`, not starting or
    ending with an apostrophe, unique ignoring case; "Summary" is taken.
    """
    taken = {SUMMARY_SHEET.lower()} | _RESERVED_SHEET_NAMES
    names = []
    for chapter in chapters:
        objective = chapter.objective
        base = _clean_sheet_name(f"{objective.objective_id} {objective.title}")
        name = _unique(base or f"Objective {chapter.number}", taken)
        taken.add(name.lower())
        names.append(name)
    return names


def _build(report: ReportView) -> Workbook:
    workbook = Workbook()
    workbook.properties.title = xml_safe(report.project_name)
    workbook.properties.subject = f"run {report.run_id}"
    summary = workbook.active
    summary.title = SUMMARY_SHEET
    _fill_summary(summary, report)
    with_check = has_check_step(report.all_results())
    columns = result_columns(with_check=with_check)
    for chapter, name in zip(report.chapters, sheet_names(report.chapters)):
        sheet = workbook.create_sheet(name)
        rows = [result_row(r, with_check=with_check) for r in chapter.results]
        _fill_table(sheet, columns, [[row[c] for c in columns] for row in rows], wide={"text"})
    return workbook


def _fill_summary(sheet: Worksheet, report: ReportView) -> None:
    rows = [_summary_row(c.objective.objective_id, c.objective.title, c.results) for c in report.chapters]
    rows.append(_summary_row("Total", "", report.all_results()))
    _fill_table(sheet, SUMMARY_COLUMNS, rows, wide=set())
    info_row = sheet.max_row + 2
    for offset, (label, value) in enumerate(
        [
            ("project", report.project_name),
            ("run_id", report.run_id),
            ("generated", display_datetime(report.generated_at)),
            ("provider", report.provider),
            ("model", report.model),
        ]
    ):
        sheet.cell(row=info_row + offset, column=1, value=label).font = _HEADER_FONT
        sheet.cell(row=info_row + offset, column=2, value=_cell_value(value))


def _summary_row(objective_id: str, title: str, results: Sequence[TaskResult]) -> list[object]:
    """One Summary line; duration is wall time from first start to last finish."""
    statuses = [r.status for r in results]
    return [
        objective_id,
        one_line(title),
        len(results),
        statuses.count("done"),
        statuses.count("failed"),
        statuses.count("skipped"),
        sum(r.prompt_tokens for r in results),
        sum(r.completion_tokens for r in results),
        round(sum(r.cost_usd for r in results), COST_DECIMALS),
        round(_wall_time(results), DURATION_DECIMALS),
    ]


def _wall_time(results: Iterable[TaskResult]) -> float:
    timed = [r for r in results if r.started_at and r.finished_at]
    if not timed:
        return 0.0
    return max(0.0, max(r.finished_at for r in timed) - min(r.started_at for r in timed))


def _fill_table(
    sheet: Worksheet, columns: Sequence[str], rows: Sequence[Sequence[object]], *, wide: set[str]
) -> None:
    """Header (bold, frozen, filterable), wrapped cells, fitted column widths."""
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = _HEADER_FONT
    for values in rows:
        sheet.append([_cell_value(v) for v in values])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = _WRAP
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"
    for index, name in enumerate(columns, start=1):
        letter = get_column_letter(index)
        if name in wide:
            width = TEXT_COLUMN_WIDTH
        else:
            width = _fitted_width([name, *(row[index - 1] for row in rows)])
        sheet.column_dimensions[letter].width = width


def _fitted_width(values: Iterable[object]) -> float:
    longest = max(
        (len(line) for v in values if v is not None for line in str(v).splitlines() or [""]),
        default=0,
    )
    return max(MIN_COLUMN_WIDTH, min(MAX_COLUMN_WIDTH, longest + _WIDTH_PADDING))


def _cell_value(value: object) -> object:
    """A string made storable (no XML control characters, within Excel's limit) and neutralised.

    Neutralising again after cleaning matters: removing a leading control
    character could otherwise expose an `=`.
    """
    if not isinstance(value, str):
        return value
    text = xml_safe(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(_CUT_MARKER)] + _CUT_MARKER
    return neutralise_cell(text)


def _clean_sheet_name(text: str) -> str:
    name = one_line(_SHEET_NAME_FORBIDDEN.sub(" ", xml_safe(text)))
    return name[:MAX_SHEET_NAME].strip(" '")


def _unique(base: str, taken: set[str]) -> str:
    if base.lower() not in taken:
        return base
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = base[: MAX_SHEET_NAME - len(suffix)].rstrip(" '") + suffix
        if candidate.lower() not in taken:
            return candidate
        number += 1
