"""Read a prompt sheet (.xlsx) and find every problem in it at once.

An analyst fixes a workbook in one sitting only if the validator lists every
problem, each located (`tasks!C7 (prompt): ...`) and saying what to do. So
nothing here stops at the first problem: each step adds to a shared list and
carries on with what it could read, and only a problem-free workbook becomes
a `PromptSheet`.

The steps, in data order: open the file; read each sheet's header and rows;
turn rows into `Objective`, `Task`, `DataSource`, settings and step prompts
(checking each cell's type); then the checks across sheets (references,
dependencies, data files, templates). Rows that are disabled (or whose
objective is) get the cell checks but not the deep ones: an analyst parks
half-written rows that way. Settings values are checked here too (by
`config.settings_problems`), so a bad value comes in the same list.

What a sheet looks like to an analyst, not to a parser, decides how it reads:

- The header is the first of the first five rows that holds every required
  column, so a title above it ("Q3 report prompts" in row 1) is fine. With no
  such row, the row naming most of the sheet's columns is taken as the header
  and the missing columns are reported in it.
- A cell merged down a column (O1 merged across three task rows) gives its
  value to every row it covers, in any column: that is what the sheet shows.
  A row whose only values come from such a merge is blank. A cell merged
  across columns would leave the columns after its first one empty while
  looking filled, so that is a problem naming the range, unless the columns it
  covers are only notes (unknown columns). Merges in or above the header row
  (a title across the top) are ignored.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries

from ..config import (
    REASONING_EFFORTS,
    RunConfig,
    settings_problems,
    spelling_hint,
    validate_steps,
)
from ..errors import PromptSheetError, SheetProblem
from ..models import ENTITY_SEPARATOR, DataSource, Objective, PromptSheet, Task
from .data import ole2_advice, source_problems
from .dependencies import dependency_problems, expand_dependencies
from .items import parse_for_each
from .templates import _did_you_mean, analyse_template, syntax_problem

__all__ = [
    "MERGE_CHOICES",
    "MODE_CHOICES",
    "CHART_CHOICES",
    "STEP_PROMPT_NAMES",
    "SheetReading",
    "describe_sheet",
    "load_prompt_sheet",
    "read_prompt_sheet",
    "validate_sheet",
]

MODE_CHOICES: tuple[str, ...] = ("tasks", "outline")
MERGE_CHOICES: tuple[str, ...] = ("collect_all", "first_success", "best", "sections", "combine")
# how a task with several models keeps their answers; and how a for_each task joins its items' texts
VARIANT_MERGES: tuple[str, ...] = ("collect_all", "first_success", "best")
ITEM_MERGES: tuple[str, ...] = ("sections", "combine")
CHART_CHOICES: tuple[str, ...] = ("line", "bar")
STEP_PROMPT_NAMES: tuple[str, ...] = ("refine", "check", "outline", "section", "judge", "combine", "fix")

_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0"})
_DATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LIST_SEPARATORS = re.compile(r"[,;\n]")
# how far down a header row is looked for (a title and a blank row above it are common)
_HEADER_SEARCH_ROWS = 5
# a merged range in a worksheet's XML (read-only worksheets do not parse them); any namespace prefix
_MERGE_CELL = re.compile(rb"""<(?:\w+:)?mergeCell\b[^>]*?\bref=["']([A-Za-z]+[0-9]+:[A-Za-z]+[0-9]+)["']""")
# settings a workbook may never hold (config.py says why when loading)
_FORBIDDEN_SETTINGS = {"api_key": "never put a key in a workbook: set the environment variable named by api_key_env"}


@dataclass(frozen=True)
class _Spec:
    """A sheet's name and its columns (headers are matched after `_normalise`)."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    needed: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


_SPECS: tuple[_Spec, ...] = (
    _Spec("objectives", ("objective_id", "title"), ("description", "lead", "enabled", "system_prompt", "mode", "fail_fast")),
    _Spec(
        "tasks",
        ("objective_id", "task_id", "prompt"),
        ("title", "data", "depends_on", "steps", "model", "temperature", "max_tokens", "enabled", "merge", "include_table",
         "reasoning_effort", "for_each"),
    ),
    _Spec("data", ("name", "path"), ("sheet", "columns", "filter", "chart", "x", "y", "title", "unit", "shade"),
          needed=False),
    _Spec("settings", ("key", "value"), needed=False),
    _Spec("prompts", ("name", "template"), needed=False),
)
_SHEET_RANK = {spec.name: rank for rank, spec in enumerate(_SPECS)}


# -- the result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetReading:
    """Everything reading a workbook learns.

    `sheet` is None whenever `problems` is not empty. `settings_locations` maps
    each settings key to its value cell (`settings!B4`), so `config.load_config`
    can name the cell of a bad value; it is filled even when there are problems,
    and so is `settings` (the values that passed their own checks), so that a
    validator can check a config file alongside a workbook that has problems.
    """

    path: Path
    sheet: PromptSheet | None
    problems: tuple[SheetProblem, ...]
    settings_locations: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def require(self) -> PromptSheet:
        """The sheet, or a `PromptSheetError` listing every problem."""
        if self.sheet is None or self.problems:
            raise PromptSheetError(self.path, list(self.problems))
        return self.sheet


def read_prompt_sheet(path: Path | str) -> SheetReading:
    """Read and validate a workbook; never raises for a bad workbook, only reports."""
    return _Reader(Path(path)).read()


def validate_sheet(path: Path | str) -> tuple[PromptSheet | None, list[SheetProblem]]:
    """Every problem in the workbook at once; the sheet is None when there are any."""
    reading = read_prompt_sheet(path)
    return reading.sheet, list(reading.problems)


def load_prompt_sheet(path: Path | str) -> PromptSheet:
    """The validated sheet, or `PromptSheetError(path, problems)`."""
    return read_prompt_sheet(path).require()


def describe_sheet(sheet: PromptSheet) -> str:
    """`2 objectives (1 disabled), 5 tasks to run (2 disabled), 1 data source`.

    Counts what a run would do; parked rows are counted apart, so a summary never
    promises work that is switched off.
    """
    sources = len(sheet.data_sources)
    family = len(sheet.family)
    return ", ".join([
        _enabled_count(sheet.objectives, "objective"),
        _enabled_count(sheet.tasks, "task", " to run"),
        f"{sources} data source{'' if sources == 1 else 's'}",
        *([f"a family of {family} report{'' if family == 1 else 's'}"] if family else []),
    ])


def _enabled_count(items: Sequence[Objective] | Sequence[Task], noun: str, suffix: str = "") -> str:
    running = sum(1 for item in items if item.enabled)
    parked = len(items) - running
    text = f"{running} {noun}{'' if running == 1 else 's'}{suffix}"
    return f"{text} ({parked} disabled)" if parked else text


# -- cells and rows -------------------------------------------------------------------------


def _normalise(name: Any) -> str:
    """`" Task ID "` and `task-id` both read as `task_id`: analysts type headers by hand."""
    if name is None:
        return ""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


#: What a cell holding a failed formula shows (its saved value); never a prompt or an id.
EXCEL_ERRORS = frozenset({
    "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!", "#CALC!",
})


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _as_text(value: Any) -> str:
    """A cell as text; a whole number reads `1`, never `1.0` (Excel stores 1 as a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()  # Excel has no date type: a date is a midnight datetime
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value).strip()


def _show(value: Any) -> str:
    """A cell for a message: text quoted (so blanks and spaces show), numbers as typed."""
    return repr(value) if isinstance(value, str) else _as_text(value)


def _split(value: Any) -> tuple[str, ...]:
    """A comma-separated cell as its parts (semicolons and new lines also separate)."""
    if value is None:
        return ()
    return tuple(part.strip() for part in _LIST_SEPARATORS.split(_as_text(value)) if part.strip())


def _columns_and_labels(value: Any) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The `columns` cell: `year, renewable_share_pct: Renewable share (%)` selects both columns and
    labels the second for readers (captions, chart legends, table headers)."""
    columns: list[str] = []
    labels: list[tuple[str, str]] = []
    for part in _split(value):
        name, colon, label = part.partition(":")
        name = name.strip().strip("`").strip()
        columns.append(name)
        if colon and label.strip():
            labels.append((name, label.strip()))
    return tuple(columns), tuple(labels)


def _find_header(lead: Sequence[Sequence[Any]], spec: _Spec) -> int | None:
    """Which of the first rows holds the column names (an index into `lead`); None if all are blank.

    The first row naming every required column; failing that, the row naming
    most of the sheet's columns (so missing ones are reported where the header
    is); failing that, the first non-blank row.
    """
    best, best_count, first = None, 0, None
    for index, values in enumerate(lead):
        names = {_normalise(value) for value in values}
        if set(spec.required) <= names:
            return index
        count = len(names & set(spec.columns))
        if count > best_count:
            best, best_count = index, count
        if first is None and any(_clean(value) is not None for value in values):
            first = index
    return best if best is not None else first


def _merged_ranges(worksheet: Any) -> list[str]:
    """The sheet's merged ranges (`A2:A4`).

    A read-only worksheet (how the workbook is opened, to stay fast at 10,000
    rows) does not parse them, so its XML part is scanned for `<mergeCell>`:
    cell text is escaped in XML, so nothing a user typed can look like one.
    """
    merged = getattr(worksheet, "merged_cells", None)
    if merged is not None:
        return [str(cell_range) for cell_range in merged.ranges]
    source = getattr(worksheet, "_get_source", None)  # openpyxl's read-only worksheet: its XML part
    if source is None:
        return []
    with source() as handle:
        return [match.decode("ascii") for match in _MERGE_CELL.findall(handle.read())]


@dataclass(frozen=True)
class _Row:
    """One non-blank row: its known columns' cleaned values and where each sits."""

    sheet: str  # the sheet's title as in the workbook, for messages
    number: int  # spreadsheet row number (1 is the header)
    values: Mapping[str, Any]
    letters: Mapping[str, str]

    def get(self, column: str) -> Any:
        return self.values.get(column)

    def text(self, column: str) -> str:
        return _as_text(self.values.get(column))

    def cell(self, column: str) -> str | None:
        letter = self.letters.get(column)
        return f"{letter}{self.number}" if letter else None


@dataclass(frozen=True)
class _Table:
    spec: _Spec
    title: str
    rows: tuple[_Row, ...]
    columns: Mapping[str, str]  # known column -> letter
    header_row: int = 1  # spreadsheet row number of the column names

    @property
    def first_row(self) -> int:
        return self.header_row + 1


class _Problems:
    """The growing list of problems, with helpers that locate a message at a row's cell."""

    def __init__(self) -> None:
        self._items: list[SheetProblem] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, sheet: str, message: str, *, row: int | None = None, column: str | None = None, cell: str | None = None) -> None:
        self._items.append(SheetProblem(sheet=sheet, message=message, row=row, column=column, cell=cell))

    def at(self, row: _Row, column: str, message: str) -> None:
        self.add(row.sheet, message, row=row.number, column=column, cell=row.cell(column))

    def sorted(self) -> tuple[SheetProblem, ...]:
        """Sheet order, then row, then column: the order an analyst reads the workbook in."""

        def key(problem: SheetProblem) -> tuple[int, int, int]:
            rank = _SHEET_RANK.get(_normalise(problem.sheet), -1)
            letters = re.match(r"[A-Z]+", problem.cell or "")
            return rank, problem.row or 0, column_index_from_string(letters.group()) if letters else 0

        return tuple(sorted(self._items, key=key))


# -- reading the workbook ----------------------------------------------------------------


def _not_a_workbook(path: Path, error: Exception) -> str:
    """Say what the file looks like instead, so the fix is obvious."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2048)
    except OSError:
        head = b""
    suffix = path.suffix.lower()
    advice = ole2_advice(path)  # an old .xls, or an .xlsx encrypted with a password
    if advice is not None:
        return advice
    if suffix == ".xls":
        return "this is an old Excel .xls file — open it in Excel and save it as .xlsx"
    if suffix == ".csv" or (head and b"\x00" not in head and b"," in head and not head.startswith(b"PK")):
        return "this is CSV text, not an .xlsx workbook — the prompt sheet needs the sheets objectives and tasks (report-pipeline init DIR writes a starter)"
    if not head:
        return "the file is empty — it is not an .xlsx workbook"
    return f"not an .xlsx workbook ({type(error).__name__}: {error}) — save it from Excel as .xlsx"


class _Reader:
    """One validation of one workbook: the problems list is its state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems = _Problems()
        self.file_label = path.name or str(path)
        self._suspects: dict[str, dict[int, dict[str, int]]] = {}  # sheet -> row -> column positions
        self._header_rows: dict[str, int] = {}  # sheet -> row number of its header
        self._tables: dict[str, _Table] = {}
        # objectives named by an enabled task row, even a row too broken to become a Task,
        # so one bad row does not also report its chapter as empty
        self._claimed: set[str] = set()

    # -- step 1: the file and its sheets ------------------------------------------------

    def read(self) -> SheetReading:
        tables = self._read_workbook()
        if tables is None:
            return SheetReading(self.path, None, self.problems.sorted())
        self._tables = tables
        objectives = self._objectives(tables.get("objectives"))
        tasks = self._tasks(tables.get("tasks"), objectives)
        sources = self._data_sources(tables.get("data"))
        settings, locations, usable = self._settings(tables.get("settings"))
        prompts = self._step_prompts(tables.get("prompts"))
        if "objectives" in tables and "tasks" in tables:
            self._check_across(objectives, tasks, sources, settings)
        problems = self.problems.sorted()
        sheet = None
        if not problems:
            sheet = PromptSheet(
                path=self.path,
                objectives=tuple(objectives),
                tasks=tuple(tasks),
                data_sources=sources,
                settings=settings,
                prompts=prompts,
            )
        return SheetReading(self.path, sheet, problems, locations, usable)

    def _read_workbook(self) -> dict[str, _Table] | None:
        if not self.path.exists():
            self.problems.add(self.file_label, f"file not found: {self.path} — check the path")
            return None
        if self.path.is_dir():
            self.problems.add(self.file_label, f"{self.path} is a folder — give the path of the .xlsx workbook")
            return None
        try:
            workbook = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as error:  # zip, XML, format: all mean "this is not a workbook we can read"
            self.problems.add(self.file_label, _not_a_workbook(self.path, error))
            return None
        try:
            tables = self._read_sheets(workbook)
        except Exception as error:  # read-only mode parses lazily, so a broken file can fail here
            self.problems.add(self.file_label, _not_a_workbook(self.path, error))
            return None
        finally:
            workbook.close()  # read-only workbooks keep the file open until closed
        if self._suspects:
            self._unsaved_formulas()
        return tables

    def _unsaved_formulas(self) -> None:
        """Cells that read empty because they hold a formula with no saved result.

        A workbook written by a script (openpyxl, pandas) keeps its formulas but no
        values until Excel opens and saves it; read for values, such a row looks blank
        and would silently vanish. Only rows that read blank or lack a required value
        are looked at, in a second, formulas-only pass over the file.
        """
        workbook = load_workbook(self.path, read_only=True, data_only=False)
        try:
            by_title = {worksheet.title: worksheet for worksheet in workbook.worksheets}
            for title, rows in self._suspects.items():
                worksheet = by_title.get(title)
                if worksheet is None:
                    continue
                first = self._header_rows.get(title, 1) + 1
                for number, values in enumerate(worksheet.iter_rows(min_row=first, values_only=True), start=first):
                    positions = rows.get(number)
                    if positions is None:
                        continue
                    for name, index in positions.items():
                        formula = values[index] if index < len(values) else None
                        if isinstance(formula, str) and formula.startswith("="):
                            self.problems.add(
                                title,
                                f"{name}: the formula {formula[:60]} has no saved value (the file was written "
                                "by a program) — open and save the workbook in Excel, or type the value",
                                row=number, column=name, cell=f"{get_column_letter(index + 1)}{number}",
                            )
        finally:
            workbook.close()

    def _read_sheets(self, workbook: Any) -> dict[str, _Table]:
        by_name: dict[str, Any] = {}
        for worksheet in workbook.worksheets:
            name = _normalise(worksheet.title)
            if name in by_name:
                self.problems.add(worksheet.title, f"two sheets are named {name!r} — rename or delete one")
                continue
            by_name[name] = worksheet
        tables: dict[str, _Table] = {}
        for spec in _SPECS:
            worksheet = by_name.get(spec.name)
            if worksheet is None:
                if spec.needed:
                    have = ", ".join(workbook.sheetnames) or "none"
                    self.problems.add(
                        spec.name,
                        f"missing sheet {spec.name!r} — add a sheet named {spec.name} with the columns "
                        f"{', '.join(spec.required)} (the workbook has: {have})",
                    )
                continue
            table = self._read_table(worksheet, spec)
            if table is not None:
                tables[spec.name] = table
        return tables

    def _read_table(self, worksheet: Any, spec: _Spec) -> _Table | None:
        title = worksheet.title
        if hasattr(worksheet, "reset_dimensions"):
            # some writers store a wrong used-range; without this, read-only mode trusts it
            worksheet.reset_dimensions()
        rows = worksheet.iter_rows(values_only=True)
        lead = list(itertools.islice(rows, _HEADER_SEARCH_ROWS))
        found = _find_header(lead, spec)
        if found is None:
            self.problems.add(
                title, f"the sheet is empty — put the column names ({', '.join(spec.required)}, ...) in row 1", row=1
            )
            return None
        header_row = found + 1
        positions = self._header(title, spec, lead[found], header_row)
        if positions is None:
            return None
        self._header_rows[title] = header_row
        letters = {name: get_column_letter(index + 1) for name, index in positions.items()}
        fills, anchors = self._merges(title, _merged_ranges(worksheet), positions, header_row)
        anchor_values: dict[tuple[int, str], Any] = {}
        table_rows = []
        for number, values in enumerate(itertools.chain(lead[found + 1:], rows), start=header_row + 1):
            cells = {name: _clean(values[index]) if index < len(values) else None for name, index in positions.items()}
            for name, value in cells.items():
                if isinstance(value, str) and value in EXCEL_ERRORS:
                    self.problems.add(
                        title, f"{name}: the cell shows the Excel error {value} — fix the formula or type the value",
                        row=number, column=name, cell=f"{letters[name]}{number}",
                    )
                if (number, name) in anchors:
                    anchor_values[number, name] = value
            blank = all(value is None for value in cells.values())
            for name, anchor_row in fills.get(number, {}).items():
                if cells[name] is None:
                    cells[name] = anchor_values.get((anchor_row, name))
            if any(value is None for name, value in cells.items() if name in spec.required):
                # blank, or a formula nobody computed: looked at once every sheet is read (_unsaved_formulas)
                self._suspects.setdefault(title, {})[number] = positions
            if blank:
                continue  # fully blank rows are spacing, not data, even where a merged cell runs past them
            table_rows.append(_Row(title, number, cells, letters))
        return _Table(spec, title, tuple(table_rows), letters, header_row)

    def _merges(
        self, title: str, ranges: Sequence[str], positions: Mapping[str, int], header_row: int
    ) -> tuple[dict[int, dict[str, int]], set[tuple[int, str]]]:
        """Where merged cells below the header put their value (see the module docstring).

        Returns row -> {column: the row holding the value} for every cell a merge
        covers below its first row, and the (row, column) cells holding those values.
        A merge across known columns is reported here, once, at its first cell.
        """
        by_index = {index: name for name, index in positions.items()}
        fills: dict[int, dict[str, int]] = {}
        anchors: set[tuple[int, str]] = set()
        for ref in ranges:
            try:
                min_col, min_row, max_col, max_row = range_boundaries(ref)
            except ValueError:
                continue  # not a range we can read: leave the cells as they read
            if min_row <= header_row:
                continue  # a title across the top, or a merged header cell
            anchor = by_index.get(min_col - 1)
            hidden = [by_index[i] for i in range(min_col, max_col) if i in by_index]
            if hidden:
                verb = "reads" if len(hidden) == 1 else "read"
                self.problems.add(
                    title,
                    f"cells {ref} are merged, so {', '.join(hidden)} {verb} empty — unmerge them and give each column its own value",
                    row=min_row, column=anchor or hidden[0], cell=f"{get_column_letter(min_col)}{min_row}",
                )
            if anchor is None or max_row == min_row:
                continue
            anchors.add((min_row, anchor))
            for number in range(min_row + 1, max_row + 1):
                fills.setdefault(number, {})[anchor] = min_row
        return fills, anchors

    def _header(self, title: str, spec: _Spec, header: Sequence[Any], row: int) -> dict[str, int] | None:
        """Known column -> position; None (after reporting) when a required one is missing."""
        positions: dict[str, int] = {}
        unknown: list[tuple[str, int]] = []
        for index, value in enumerate(header):
            name = _normalise(value)
            if not name:
                continue
            if name in positions:
                first = get_column_letter(positions[name] + 1)
                self.problems.add(
                    title,
                    f"column {name} appears twice ({first} and {get_column_letter(index + 1)}) — keep one",
                    row=row,
                    column=name,
                    cell=f"{get_column_letter(index + 1)}{row}",
                )
            elif name in spec.columns:
                positions[name] = index
            else:
                unknown.append((name, index))
        for name, index in unknown:
            # extra columns are the analyst's notes; a near-miss of ours is a typo worth a word
            close = difflib.get_close_matches(name, [c for c in spec.columns if c not in positions], n=1, cutoff=0.8)
            if close:
                self.problems.add(
                    title,
                    f"unknown column {name!r} — did you mean {close[0]}? Rename it (otherwise it is ignored)",
                    row=row,
                    column=name,
                    cell=f"{get_column_letter(index + 1)}{row}",
                )
        missing = [name for name in spec.required if name not in positions]
        for name in missing:
            self.problems.add(
                title,
                f"missing required column — add a header cell named {name} in row {row}",
                row=row,
                column=name,
            )
        return None if missing else positions

    # -- step 2: cells --------------------------------------------------------------------

    def _flag(self, row: _Row, column: str, default: bool) -> bool:
        value = row.get(column)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        word = _as_text(value).lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        self.problems.at(row, column, f"{_show(value)} is not TRUE or FALSE — write TRUE, FALSE, yes, no, 1 or 0")
        return default

    def _choice(self, row: _Row, column: str, choices: Sequence[str], default: str | None) -> str | None:
        value = row.get(column)
        if value is None:
            return default
        word = _normalise(value)
        if word in choices:
            return word
        self.problems.at(row, column, f"{_show(value)} is not a {column} — use one of {', '.join(choices)}")
        return default

    def _for_each(self, row: _Row) -> str | None:
        text = row.text("for_each")
        if not text:
            return None
        try:
            return str(parse_for_each(text))
        except ValueError as error:
            self.problems.at(row, "for_each", str(error))
            return None

    def _merge(self, row: _Row, for_each: str | None) -> str:
        """`merge` means how several models' answers are kept, or (for_each) how items' texts are joined."""
        default = "sections" if for_each else "collect_all"
        merge = self._choice(row, "merge", MERGE_CHOICES, default) or default
        if for_each and merge not in ITEM_MERGES:
            self.problems.at(row, "merge", f"{merge} is for tasks with several models — a for_each task joins its "
                                           f"items with {' or '.join(ITEM_MERGES)}")
            return default
        if not for_each and merge in ITEM_MERGES:
            self.problems.at(row, "merge", f"{merge} joins the items of a for_each task — name a table in for_each, "
                                           f"or use {', '.join(VARIANT_MERGES)} for several models")
            return default
        if for_each and len(self._models(row) or ()) > 1:
            self.problems.at(row, "model", "a for_each task takes one model — give one, or split the task")
        return merge

    def _number(self, row: _Row, column: str, low: float, high: float) -> float | None:
        value = row.get(column)
        if value is None:
            return None
        number = None
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None or not (low <= number <= high):
            self.problems.at(row, column, f"{_show(value)} is not a number from {low:g} to {high:g} — e.g. 0.2, or leave it blank")
            return None
        return number

    def _whole(self, row: _Row, column: str, minimum: int) -> int | None:
        value = row.get(column)
        if value is None:
            return None
        number = None
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None or not number.is_integer() or number < minimum:
            self.problems.at(row, column, f"{_show(value)} is not a whole number of at least {minimum} — e.g. 800, or leave it blank")
            return None
        return int(number)

    def _identifier(self, row: _Row, column: str, *, required: bool, no_dots: bool) -> str:
        """An id cell as text, or "" after reporting why it cannot be used.

        depends_on splits on commas, and a task key `OBJ.TASK` splits at its first
        dot, so no id may hold a comma and an objective_id may not hold a dot
        (a task_id may: `1.2` is a common section number).
        """
        text = row.text(column)
        if not text:
            if required:
                self.problems.at(row, column, f"empty {column} — give this row an id, or delete the row")
            return ""
        if "," in text or (no_dots and "." in text):
            shown = "a comma or a dot" if no_dots else "a comma"
            self.problems.at(row, column, f"{text!r} contains {shown}, which depends_on uses as separators — choose another id")
            return ""
        if no_dots and ENTITY_SEPARATOR in text:  # a family run's ids are `<entity>~<objective>`
            self.problems.at(row, column, f"{text!r} contains {ENTITY_SEPARATOR!r}, which a family run (--each) uses "
                                          "to join an entity's id to an objective's — choose another id")
            return ""
        return text

    # -- step 3: each sheet -----------------------------------------------------------------

    def _objectives(self, table: _Table | None) -> list[Objective]:
        if table is None:
            return []
        if not table.rows:
            self.problems.add(table.title, "no objectives — add at least one row under the header", row=table.first_row)
        objectives: list[Objective] = []
        first_row: dict[str, int] = {}
        for row in table.rows:
            enabled = self._flag(row, "enabled", True)
            mode = self._choice(row, "mode", MODE_CHOICES, "tasks") or "tasks"
            objective_id = self._identifier(row, "objective_id", required=enabled, no_dots=True)
            title = row.text("title")
            if enabled and not title:
                self.problems.at(row, "title", "empty title — give the chapter a title, or set enabled to FALSE")
            if not objective_id:
                continue
            if objective_id in first_row:
                self.problems.at(
                    row, "objective_id", f"duplicate objective_id {objective_id!r} (first at row {first_row[objective_id]}) — ids must be unique"
                )
                continue
            first_row[objective_id] = row.number
            objectives.append(
                Objective(
                    objective_id=objective_id,
                    title=title,
                    description=row.text("description"),
                    lead=row.text("lead"),
                    fail_fast=self._flag(row, "fail_fast", False),
                    enabled=enabled,
                    system_prompt=row.text("system_prompt"),
                    mode=mode,
                    index=len(objectives),
                    row=row.number,
                )
            )
        return objectives

    def _steps(self, row: _Row) -> tuple[str, ...] | None:
        parts = tuple(part.lower() for part in _split(row.get("steps")))
        if not parts:
            return None
        try:
            return validate_steps(parts)
        except ValueError as error:
            self.problems.at(row, "steps", f"{error} (e.g. generate, refine, check)")
            return None

    def _models(self, row: _Row) -> tuple[str, ...] | None:
        models = _split(row.get("model"))
        if len(set(models)) != len(models):
            self.problems.at(row, "model", "a model is listed twice — list each once")
        return tuple(dict.fromkeys(models)) or None

    def _tasks(self, table: _Table | None, objectives: Sequence[Objective]) -> list[Task]:
        if table is None:
            return []
        if not table.rows:
            self.problems.add(table.title, "no tasks — add at least one row under the header", row=table.first_row)
        objective_enabled = {o.objective_id: o.enabled for o in objectives}
        tasks: list[Task] = []
        first_row: dict[tuple[str, str], int] = {}
        for row in table.rows:
            own = self._flag(row, "enabled", True)
            objective_id = self._identifier(row, "objective_id", required=own, no_dots=True)
            task_id = self._identifier(row, "task_id", required=own, no_dots=False)
            enabled = own and objective_enabled.get(objective_id, True)  # a disabled chapter disables its tasks
            if enabled:
                self._claimed.add(objective_id or row.text("objective_id"))
            prompt = row.text("prompt")
            if enabled and not prompt:
                self.problems.at(row, "prompt", "empty prompt — write one or set enabled to FALSE")
            for_each = self._for_each(row)
            task = Task(
                objective_id=objective_id,
                task_id=task_id,
                prompt=prompt,
                title=row.text("title"),
                data=_split(row.get("data")),
                depends_on=_split(row.get("depends_on")),
                steps=self._steps(row),
                model=self._models(row),
                temperature=self._number(row, "temperature", 0.0, 2.0),
                max_tokens=self._whole(row, "max_tokens", 1),
                reasoning_effort=self._choice(row, "reasoning_effort", REASONING_EFFORTS, None),
                enabled=enabled,
                merge=self._merge(row, for_each),
                for_each=for_each,
                include_table=self._flag(row, "include_table", False),
                index=len(tasks),
                row=row.number,
            )
            if not objective_id or not task_id:
                continue
            key = (objective_id, task_id)
            if key in first_row:
                self.problems.at(
                    row, "task_id", f"duplicate task {task.key} (first at row {first_row[key]}) — task ids must be unique within an objective"
                )
                continue
            first_row[key] = row.number
            if objective_id not in objective_enabled and own:
                known = ", ".join(objective_enabled) or "none"
                self.problems.at(
                    row, "objective_id", f"unknown objective {objective_id!r} — add it to the objectives sheet (known: {known})"
                )
            tasks.append(task)
        return tasks

    def _data_sources(self, table: _Table | None) -> dict[str, DataSource]:
        if table is None:
            return {}
        sources: dict[str, DataSource] = {}
        rows: dict[str, _Row] = {}
        for row in table.rows:
            name = row.text("name")
            if not name:
                self.problems.at(row, "name", "empty name — name the table so prompts can use it as data.NAME")
                continue
            if not _DATA_NAME.match(name):
                self.problems.at(row, "name", f"{name!r} cannot be used as data.NAME — use letters, digits and _ only (e.g. sales_2024)")
                continue
            if name in sources:
                self.problems.at(row, "name", f"duplicate data source {name!r} (first at row {rows[name].number}) — names must be unique")
                continue
            path_text = row.text("path")
            if not path_text:
                self.problems.at(row, "path", "empty path — give the CSV or XLSX file, relative to the workbook's folder")
                continue
            chart = self._choice(row, "chart", CHART_CHOICES, None)
            x, y = row.text("x") or None, _split(row.get("y"))
            if chart and (not x or not y):
                self.problems.at(row, "chart", f"chart {chart} needs x and y — name the x column and one or more y columns")
            path = Path(path_text).expanduser()
            columns, labels = _columns_and_labels(row.get("columns"))
            sources[name] = DataSource(
                name=name,
                path=path if path.is_absolute() else self.path.parent / path,
                sheet=row.text("sheet") or None,
                columns=columns,
                labels=labels,
                title=row.text("title") or None,
                unit=row.text("unit") or None,
                shade=self._shade(row),
                filter=row.text("filter") or None,
                chart=chart,
                x=x,
                y=y,
                row=row.number,
            )
            rows[name] = row
        for name, source in sources.items():
            for column, message in source_problems(source):
                self.problems.at(rows[name], column, message)
        return sources

    def _shade(self, row: _Row) -> tuple[str, str] | None:
        """`basis = projection`: the chart shades the rows whose `basis` is `projection`."""
        text = row.text("shade")
        if not text:
            return None
        column, equals, value = text.replace("==", "=").partition("=")
        column, value = column.strip().strip("`"), value.strip().strip("\"'")
        if not equals or not column or not value:
            self.problems.at(row, "shade", f"{text!r}: write COLUMN = VALUE, e.g. basis = projection")
            return None
        return column, value

    def _settings(self, table: _Table | None) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        """Raw settings, their value cells, and those of them whose value is usable.

        Blank values are skipped (a cleared value means "use the default"). Each
        value is checked against its key's type here, with the rest of the
        workbook, so a user fixing a sheet does not meet a second batch of problems.
        """
        settings: dict[str, Any] = {}
        locations: dict[str, str] = {}
        if table is None:
            return settings, locations, {}
        known = tuple(RunConfig.model_fields)
        rows: dict[str, _Row] = {}
        for row in table.rows:
            key = _normalise(row.get("key"))
            if not key:
                self.problems.at(row, "key", "empty key — name the setting (e.g. model), or clear the row")
                continue
            if key in locations:
                self.problems.at(row, "key", f"{key} is set twice (first at {locations[key]}) — keep one row")
                continue
            if key in _FORBIDDEN_SETTINGS:
                self.problems.at(row, "key", f"{key}: {_FORBIDDEN_SETTINGS[key]}")
                continue
            if key not in known:
                self.problems.at(row, "key", f"unknown setting {key!r}{spelling_hint(key)}")
                continue
            value = row.get("value")
            if isinstance(value, (dt.date, dt.time)):
                value = _as_text(value)  # Excel turns a typed date into one; a setting holds it as text
            locations[key] = f"{row.sheet}!{row.cell('value')}"
            rows[key] = row
            if value is not None:
                settings[key] = value
        bad = settings_problems(settings)
        for key, message in bad.items():
            fix = f"{message} — fix the value, or clear it to use the default"
            if key in rows:
                self.problems.at(rows[key], "value", fix)
            else:  # a check across keys: no one cell to blame
                self.problems.add(table.title, fix)
        return settings, locations, {key: value for key, value in settings.items() if key not in bad}

    def _step_prompts(self, table: _Table | None) -> dict[str, str]:
        prompts: dict[str, str] = {}
        if table is None:
            return prompts
        for row in table.rows:
            name = _normalise(row.get("name"))
            if name not in STEP_PROMPT_NAMES:
                shown = repr(row.text("name")) if name else "empty name"
                self.problems.at(row, "name", f"{shown} is not a step prompt — use one of {', '.join(STEP_PROMPT_NAMES)}")
                continue
            if name in prompts:
                self.problems.at(row, "name", f"prompt {name} is given twice — keep one row")
                continue
            template = row.text("template")
            if not template:
                self.problems.at(row, "template", f"empty template for {name} — write one, or delete the row to use the built-in prompt")
                continue
            problem = syntax_problem(template)
            if problem:
                self.problems.at(row, "template", problem)
                continue
            prompts[name] = template
        return prompts

    # -- step 4: across sheets --------------------------------------------------------------

    def _check_across(
        self,
        objectives: Sequence[Objective],
        tasks: Sequence[Task],
        sources: Mapping[str, DataSource],
        settings: Mapping[str, Any],
    ) -> None:
        by_key = {task.key: task for task in tasks}
        enabled = [task for task in tasks if task.enabled]
        if tasks and not enabled:
            table = self._tables["tasks"]
            self.problems.add(table.title, "every task is disabled (or in a disabled objective) — enable at least one", row=table.first_row)
        self._check_empty_objectives(objectives, tasks)
        for task, message in dependency_problems(tasks, objectives):
            if task.enabled:
                self._at_task(task, "depends_on", message)
        self._check_disabled_dependencies(enabled, by_key, objectives, tasks)
        for task in enabled:
            for name in task.data:
                if name not in sources:
                    known = ", ".join(sources) or "none: add a data sheet"
                    self._at_task(task, "data", f"unknown data source {name!r} — add it to the data sheet (known: {known})")
            if task.for_each and parse_for_each(task.for_each).table not in sources:
                known = ", ".join(sources) or "none: add a data sheet"
                table = parse_for_each(task.for_each).table
                self._at_task(task, "for_each", f"unknown data table {table!r}{_did_you_mean(table, sources)} — "
                                                f"add it to the data sheet (known: {known})")
        self._check_templates(objectives, enabled, sources, settings)

    def _at_row(self, sheet: str, row: int, column: str, message: str) -> None:
        """Locate a message by sheet name and row number (for checks that hold models, not rows)."""
        table = self._tables.get(sheet)
        letter = table.columns.get(column) if table else None
        title = table.title if table else sheet
        self.problems.add(title, message, row=row, column=column, cell=f"{letter}{row}" if letter else None)

    def _at_task(self, task: Task, column: str, message: str) -> None:
        self._at_row("tasks", task.row, column, message)

    def _check_empty_objectives(self, objectives: Sequence[Objective], tasks: Sequence[Task]) -> None:
        with_tasks = {task.objective_id for task in tasks if task.enabled} | self._claimed
        for objective in objectives:
            if objective.enabled and objective.objective_id not in with_tasks:  # outline too: a task is its brief
                self._at_row(
                    "objectives",
                    objective.row,
                    "objective_id",
                    f"objective {objective.objective_id} has no enabled tasks — add rows to the tasks sheet "
                    "(an outline chapter needs one: its brief), or set enabled to FALSE",
                )

    def _check_disabled_dependencies(
        self,
        enabled: Sequence[Task],
        by_key: Mapping[str, Task],
        objectives: Sequence[Objective],
        tasks: Sequence[Task],
    ) -> None:
        """An enabled task cannot wait for work that will never run."""
        chapters = {objective.objective_id: objective for objective in objectives}
        running = {task.objective_id for task in tasks if task.enabled}
        for task in enabled:
            for entry in task.depends_on:
                target = by_key.get(entry)
                if target is not None and not target.enabled and entry != task.key:
                    chapter = chapters.get(target.objective_id)
                    why = f"is in disabled objective {target.objective_id}" if chapter and not chapter.enabled else "is disabled"
                    self._at_task(task, "depends_on", f"depends on {entry}, which {why} — enable it or remove it from depends_on")
                elif target is None and entry in chapters and entry != task.objective_id:
                    chapter = chapters[entry]
                    if not chapter.enabled:
                        self._at_task(task, "depends_on", f"depends on objective {entry}, which is disabled — enable it or remove it from depends_on")
                    elif entry not in running:
                        self._at_task(task, "depends_on", f"depends on objective {entry}, which has no enabled tasks — enable one or remove it from depends_on")

    def _check_templates(
        self,
        objectives: Sequence[Objective],
        enabled: Sequence[Task],
        sources: Mapping[str, DataSource],
        settings: Mapping[str, Any],
    ) -> None:
        """Check each enabled prompt; a template shared by many rows is parsed once (`analyse_template` keeps it)."""
        expanded = expand_dependencies(enabled)  # only tasks that run can be waited for
        chapter_ids = {objective.objective_id for objective in objectives}
        data_names, settings_keys = tuple(sources), tuple(settings)
        for task in enabled:
            if not task.prompt:
                continue
            # results["OBJ.TASK"] for each expanded dependency, results["OBJ"] for each chapter listed
            keys = set(expanded.get(task.key, ())) | {entry for entry in task.depends_on if entry in chapter_ids}
            for message in analyse_template(task.prompt).problems(
                data_names=data_names, dependency_keys=keys, settings_keys=settings_keys,
                for_each=task.for_each is not None,
            ):
                self._at_task(task, "prompt", message)
