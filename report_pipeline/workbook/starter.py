"""`report-pipeline init DIR`: a small prompt sheet, its data and a config to edit.

The starter workbook is built here with openpyxl rather than shipped as a binary,
so it is reviewable in a diff and always matches the current sheet contract
(DESIGN.md). The CSV and the YAML are plain text in the `starter_files/` data folder.

`write_workbook` is also what `prompt_sheets/build_examples.py` uses, so the
example and the starter look the same to an analyst: bold frozen headers,
readable column widths, wrapped prompts. It saves byte-for-byte reproducibly
(fixed timestamps) so a rebuilt workbook only shows up in `git status` when its
content changed.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from ..errors import ConfigError

__all__ = ["SheetSpec", "STARTER_FILES", "write_starter", "write_workbook"]

# what `init` writes, relative to the target folder (in the order it is listed to the user)
STARTER_WORKBOOK = "prompt_sheet.xlsx"
STARTER_CONFIG = "config.yaml"
STARTER_DATA = "data/power_prices.csv"
STARTER_FILES: tuple[str, ...] = (STARTER_WORKBOOK, STARTER_CONFIG, STARTER_DATA)

# a fixed moment for workbook metadata and zip entries: same content, same bytes
_FIXED_TIMESTAMP = (2026, 1, 1, 0, 0, 0)
_FIXED_ISO = "2026-01-01T00:00:00Z"

# column widths (characters) by header name; anything else gets _DEFAULT_WIDTH
_COLUMN_WIDTHS: dict[str, float] = {
    "objective_id": 13, "task_id": 9, "title": 34, "description": 50, "enabled": 10,
    "system_prompt": 60, "mode": 10, "prompt": 90, "data": 30, "depends_on": 26,
    "steps": 24, "model": 14, "temperature": 13, "max_tokens": 12, "include_table": 14,
    "name": 22, "path": 34, "sheet": 12, "columns": 44, "filter": 30, "chart": 8,
    "x": 8, "y": 44, "key": 22, "value": 44,
}
_DEFAULT_WIDTH = 16
# long free text: wrapped so it reads in the cell, not in the formula bar
_WRAPPED = frozenset({"title", "description", "system_prompt", "prompt", "data", "depends_on", "columns", "y", "value"})
_BOOLEAN_COLUMNS = frozenset({"enabled", "include_table"})

_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", start_color="DCE6F1", end_color="DCE6F1")
_HEADER_BORDER = Border(bottom=Side(style="thin", color="7F7F7F"))
_TOP = Alignment(vertical="top")
_TOP_WRAPPED = Alignment(vertical="top", wrap_text=True)


@dataclass(frozen=True)
class SheetSpec:
    """One sheet of a prompt workbook: its header, its rows and how it is laid out.

    `freeze` is the first unfrozen cell (`A2` freezes the header row, `C2` the
    header and the two id columns); `row_height` in points keeps rows with long
    wrapped prompts scannable (None: the spreadsheet's default).
    """

    name: str
    columns: Sequence[str]
    rows: Sequence[Mapping[str, Any]] = ()
    freeze: str = "A2"
    row_height: float | None = None
    widths: Mapping[str, float] = field(default_factory=dict)


def write_workbook(path: Path, sheets: Sequence[SheetSpec]) -> Path:
    """Write `sheets` to an .xlsx at `path`, styled for people and reproducible to the byte."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for spec in sheets:
        _add_sheet(workbook, spec)
    workbook.properties.creator = "report-pipeline"
    workbook.properties.lastModifiedBy = "report-pipeline"
    buffer = io.BytesIO()
    workbook.save(buffer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_reproducible_zip(buffer.getvalue()))
    return path


def _add_sheet(workbook: Workbook, spec: SheetSpec) -> None:
    sheet = workbook.create_sheet(spec.name)
    columns = list(spec.columns)
    sheet.append(columns)
    for row in spec.rows:
        unknown = set(row) - set(columns)
        if unknown:  # a typo in a builder would otherwise vanish silently
            raise ValueError(f"{spec.name}: row has keys not in the header: {sorted(unknown)}")
        sheet.append([row.get(column) for column in columns])
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = spec.widths.get(column, _COLUMN_WIDTHS.get(column, _DEFAULT_WIDTH))
        header = sheet.cell(row=1, column=index)
        header.font, header.fill, header.border = _HEADER_FONT, _HEADER_FILL, _HEADER_BORDER
        header.alignment = _TOP_WRAPPED
        alignment = _TOP_WRAPPED if column in _WRAPPED else _TOP
        for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
            cell.alignment = alignment
        if column in _BOOLEAN_COLUMNS and spec.rows:
            _add_boolean_choice(sheet, f"{letter}2:{letter}{len(spec.rows) + 1}")
    if spec.row_height is not None:
        for row_number in range(2, len(spec.rows) + 2):
            sheet.row_dimensions[row_number].height = spec.row_height
    sheet.freeze_panes = spec.freeze
    if columns:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(spec.rows) + 1)}"


def _add_boolean_choice(sheet: Any, cells: str) -> None:
    """A TRUE/FALSE drop-down, so `enabled` cannot be typed as `yes` by accident."""
    choice = DataValidation(type="list", formula1='"TRUE,FALSE"', allow_blank=True)
    choice.error = "Choose TRUE or FALSE"
    choice.errorTitle = "TRUE or FALSE"
    sheet.add_data_validation(choice)
    choice.add(cells)


def _reproducible_zip(data: bytes) -> bytes:
    """Re-pack an .xlsx with fixed entry dates and a fixed `modified` stamp.

    openpyxl stamps `docProps/core.xml` and every zip entry with the current
    time on save, so two identical builds would differ in bytes.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = _fixed_core_dates(content)
            entry = zipfile.ZipInfo(item.filename, date_time=_FIXED_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            target.writestr(entry, content)
    return out.getvalue()


def _fixed_core_dates(core_xml: bytes) -> bytes:
    text = core_xml.decode("utf-8")
    for tag in ("dcterms:created", "dcterms:modified"):
        text = re.sub(rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{_FIXED_ISO}\g<2>", text)
    return text.encode("utf-8")


# -- the starter -------------------------------------------------------------------

_STARTER_SYSTEM_PROMPT = (
    "You are an energy-market analyst writing for a management audience that is not "
    "specialist. Write clear, plain British English. Use only the figures in the tables "
    "and texts you are given; if something is not in them, say so rather than guess."
)

_STARTER_OBJECTIVES: tuple[dict[str, Any], ...] = (
    {
        "objective_id": "prices",
        "title": "Power prices",
        "description": "How wholesale power prices moved in three markets, and why.",
        "enabled": True,
        "system_prompt": _STARTER_SYSTEM_PROMPT,
    },
    {
        "objective_id": "summary",
        "title": "Summary",
        "description": "Key messages for readers who stop after one page. Runs after the prices chapter.",
        "enabled": True,
        "system_prompt": _STARTER_SYSTEM_PROMPT,
    },
)

_STARTER_TASKS: tuple[dict[str, Any], ...] = (
    {
        "objective_id": "prices",
        "task_id": "t1",
        "title": "Price trends 2019-2024",
        "prompt": (
            "This is the section \"{{ task.title }}\" of the chapter \"{{ objective.title }}\" "
            "in {{ project.name }}.\n\n"
            "Annual average day-ahead baseload prices (EUR/MWh):\n{{ data.power_prices }}\n\n"
            "In 150-200 words, describe how prices moved in Germany, France and Spain from 2019 "
            "to 2024: the level before 2021, the peak year, and where prices settled. Quote "
            "figures only from the table, rounded to whole euros."
        ),
        "data": "power_prices",
        "steps": "generate",
        "enabled": True,
    },
    {
        "objective_id": "prices",
        "task_id": "t2",
        "title": "What drove the 2022 spike",
        "prompt": (
            "This is the section \"{{ task.title }}\" of the chapter \"{{ objective.title }}\" "
            "in {{ project.name }}.\n\n"
            "Prices (EUR/MWh):\n{{ data.power_prices }}\n\n"
            "In 150-200 words, explain the 2022 price spike for a non-specialist reader: the "
            "gas supply shock, gas plants setting the price, and why the three countries "
            "differed. Use the table for every number; do not add figures that are not in it."
        ),
        "data": "power_prices",
        "steps": "generate, refine",
        "enabled": True,
    },
    {
        "objective_id": "summary",
        "task_id": "t1",
        "title": "Key messages",
        "prompt": (
            "Write the \"{{ task.title }}\" of {{ project.name }}: three to five bullet points, "
            "one sentence each, for a reader who reads nothing else.\n\n"
            "Base them only on the chapter below:\n\n{{ results[\"prices\"] }}"
        ),
        "depends_on": "prices",
        "steps": "generate",
        "enabled": True,
    },
    {
        "objective_id": "summary",
        "task_id": "t2",
        "title": "Questions for next year",
        "prompt": (
            "Given these key messages from {{ project.name }}:\n\n{{ results[\"summary.t1\"] }}\n\n"
            "List three questions the team should answer in next year's report, each with one "
            "sentence on what data would answer it."
        ),
        "depends_on": "summary.t1",
        "steps": "generate",
        "enabled": True,
    },
)

_STARTER_DATA: tuple[dict[str, Any], ...] = (
    {"name": "power_prices", "path": STARTER_DATA},
)

_STARTER_SETTINGS: tuple[dict[str, Any], ...] = (
    {"key": "project_name", "value": "My first report"},
    {"key": "steps", "value": "generate"},
)

OBJECTIVE_COLUMNS: tuple[str, ...] = ("objective_id", "title", "description", "lead", "enabled", "system_prompt")
TASK_COLUMNS: tuple[str, ...] = (
    "objective_id", "task_id", "title", "prompt", "data", "depends_on", "steps",
    "model", "temperature", "max_tokens", "enabled", "include_table", "for_each", "merge",
)
DATA_COLUMNS: tuple[str, ...] = ("name", "path", "sheet", "columns", "filter", "chart", "x", "y", "title", "unit", "shade")
SETTINGS_COLUMNS: tuple[str, ...] = ("key", "value")


def starter_sheets() -> list[SheetSpec]:
    """The starter workbook's sheets (a function of constants: the same every time)."""
    return [
        SheetSpec("objectives", OBJECTIVE_COLUMNS, _STARTER_OBJECTIVES, row_height=60),
        SheetSpec("tasks", TASK_COLUMNS, _STARTER_TASKS, freeze="C2", row_height=110),
        SheetSpec("data", DATA_COLUMNS, _STARTER_DATA),
        SheetSpec("settings", SETTINGS_COLUMNS, _STARTER_SETTINGS),
    ]


def write_starter(directory: Path, *, force: bool = False) -> list[Path]:
    """Write a starter prompt sheet, its data CSV and a commented config.yaml into `directory`.

    Refuses (ConfigError, nothing written) when any of those files exists, unless
    `force`: an analyst's edited workbook must never be replaced by accident.
    Returns the paths written, workbook first.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder: choose a folder for the starter files")
    targets = [directory / name for name in STARTER_FILES]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        names = ", ".join(str(path.relative_to(directory)) for path in existing)
        raise ConfigError(
            f"{directory}: would overwrite {names}: choose an empty folder, "
            "or use --force to replace the starter files"
        )
    workbook, config, data = targets
    write_workbook(workbook, starter_sheets())
    _write_text(config, _starter_text("config.yaml"))
    _write_text(data, _starter_text("power_prices.csv"))
    return targets


def _starter_text(name: str) -> str:
    return resources.files("report_pipeline.workbook").joinpath("starter_files", name).read_text(encoding="utf-8")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n": the same bytes on every platform
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
