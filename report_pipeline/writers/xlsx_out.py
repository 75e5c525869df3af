"""report.xlsx: a Summary sheet, then one sheet per objective with the result rows.

Each objective sheet has the same columns as results.csv, so analysts can
filter and pivot without reading the CSVs.

Two halves: `workbook_tables()` turns a report into plain tables (cleaned cell
values, fitted widths: cheap, pure, JSON-able), and `save_workbook_tables()`
writes them with openpyxl, most of the cost. A run hands the tables to its
drawing process, which saves the workbook on the other core while the run
writes report.docx; `write_xlsx()` does both here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report_pipeline.models import Chapter, ReportView, TaskResult
from report_pipeline.writers._text import display_datetime, one_line, xml_safe
from report_pipeline.writers.atomic import atomic_path
from report_pipeline.writers.rows import (
    COST_DECIMALS,
    DURATION_DECIMALS,
    ResultColumns,
)
from report_pipeline.writers.safety import neutralise_cell

__all__ = [
    "SUMMARY_COLUMNS",
    "SUMMARY_SHEET",
    "SheetTable",
    "WorkbookTables",
    "save_workbook_tables",
    "sheet_names",
    "workbook_tables",
    "write_xlsx",
]

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

# Named styles: a cell takes one by name, where assigning a Font or Alignment object makes openpyxl
# hash it against every style so far, cell by cell (a third of the workbook's time at 100 tasks)
_HEADER_STYLE = "report header"
_WRAP_STYLE = "report text"


@dataclass(frozen=True)
class SheetTable:
    """One sheet as plain values: a header row, rows of cleaned cells, column widths, and
    label/value lines two rows under the table (the Summary's run details)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    widths: tuple[float, ...]
    info: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class WorkbookTables:
    """Everything report.xlsx holds, in values JSON carries unchanged (str, int, float, None)."""

    title: str
    subject: str
    sheets: tuple[SheetTable, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "subject": self.subject,
            "sheets": [
                {"name": t.name, "columns": list(t.columns), "rows": [list(r) for r in t.rows],
                 "widths": list(t.widths), "info": [list(i) for i in t.info]}
                for t in self.sheets
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkbookTables:
        return cls(
            title=data["title"],
            subject=data["subject"],
            sheets=tuple(
                SheetTable(t["name"], tuple(t["columns"]), tuple(tuple(r) for r in t["rows"]),
                           tuple(t["widths"]), tuple((label, value) for label, value in t["info"]))
                for t in data["sheets"]
            ),
        )


def write_xlsx(path: str | os.PathLike[str], report: ReportView) -> Path:
    """Build the workbook and save it to `path` atomically; return the path."""
    return save_workbook_tables(path, workbook_tables(report))


def workbook_tables(report: ReportView) -> WorkbookTables:
    """The report's sheets as plain tables: Summary first, then one per chapter."""
    chosen = ResultColumns.of(report.all_results())
    columns = chosen.names
    summary_rows = [_summary_row(c.objective.objective_id, c.objective.title, c.results) for c in report.chapters]
    summary_rows.append(_summary_row("Total", "", report.all_results()))
    info = (
        ("project", report.project_name),
        ("run_id", report.run_id),
        ("generated", display_datetime(report.generated_at)),
        ("provider", report.provider),
        ("model", report.model),
    )
    sheets = [_table(SUMMARY_SHEET, SUMMARY_COLUMNS, summary_rows, wide=set(),
                     info=tuple((label, _cell_value(value)) for label, value in info))]
    for chapter, name in zip(report.chapters, sheet_names(report.chapters)):
        rows = [chosen.row(r) for r in chapter.results]
        sheets.append(_table(name, columns, [[row[c] for c in columns] for row in rows], wide={"text"}))
    return WorkbookTables(xml_safe(report.project_name), f"run {report.run_id}", tuple(sheets))


def save_workbook_tables(path: str | os.PathLike[str], tables: WorkbookTables) -> Path:
    """Write the tables as report.xlsx at `path`, atomically: header bold, frozen and
    filterable, cells wrapped to the top, the widths given."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, NamedStyle
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.properties.title = tables.title
    workbook.properties.subject = tables.subject
    workbook.add_named_style(NamedStyle(name=_HEADER_STYLE, font=Font(bold=True)))
    workbook.add_named_style(NamedStyle(name=_WRAP_STYLE, alignment=Alignment(wrap_text=True, vertical="top")))
    for index, table in enumerate(tables.sheets):
        if index == 0:
            sheet = workbook.active
            sheet.title = table.name
        else:
            sheet = workbook.create_sheet(table.name)
        sheet.append(list(table.columns))
        for cell in sheet[1]:
            cell.style = _HEADER_STYLE
        for values in table.rows:
            sheet.append(list(values))
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                cell.style = _WRAP_STYLE
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
        for number, width in enumerate(table.widths, start=1):
            sheet.column_dimensions[get_column_letter(number)].width = width
        if table.info:
            first = len(table.rows) + 3  # a blank row under the table
            for offset, (label, value) in enumerate(table.info):
                sheet.cell(row=first + offset, column=1, value=label).style = _HEADER_STYLE
                sheet.cell(row=first + offset, column=2, value=value)
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


def _table(
    name: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, wide: set[str],
    info: tuple[tuple[str, Any], ...] = (),
) -> SheetTable:
    """A sheet's cleaned cells, and its columns' widths: the text columns wide, the others fitted."""
    cleaned = tuple(tuple(_cell_value(v) for v in values) for values in rows)
    widths = tuple(
        float(TEXT_COLUMN_WIDTH) if column in wide else _fitted_width([column, *(row[index] for row in rows)])
        for index, column in enumerate(columns)
    )
    return SheetTable(name, tuple(columns), cleaned, widths, info)


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
