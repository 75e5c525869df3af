"""The data tables inside a rendered prompt, and which of their rows changed between two runs.

Pure. A task's data reaches the model as Markdown pipe tables inside its prompt
(`{{ data.NAME }}`), so the prompt a run recorded is also a record of the data it used: a
changed cell in a CSV shows as a changed table row. Rows are matched by their name: the first
cell (the year, the country), or the first cells joined until they name each row once
(`Germany, 2024`), so a reader is told `row "Germany, 2024": coal 101 → 105` rather than
that a prompt differs somewhere. A table only one prompt has is said once, with its size,
never row by row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["PromptParts", "RowChange", "Table", "merge_tables", "row_changes", "split_prompt"]

_TABLE_LINE = re.compile(r"^\s*\|.*\|\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-{2,}:?$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
#: What stands in a prompt's prose where a table was: the prose is compared without the data.
TABLE_MARK = "[table {number}]"


@dataclass(frozen=True)
class Table:
    """A Markdown table: its header cells and its rows of cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class PromptParts:
    """A prompt as its prose (each table replaced by `[table N]`) and its tables in order."""

    prose: str
    tables: tuple[Table, ...]


RowKind = Literal["changed", "added", "removed", "columns", "table_added", "table_removed"]

#: Cells a line names: a row added whole shows its first few, a row with many changed cells its first few.
_MOST_CELLS = 4
#: Columns joined at most to name a row (`Germany, 2024`), as `workbook/items.py` names for_each rows.
_NAME_WIDTH = 3


@dataclass(frozen=True)
class RowChange:
    """One row of a data table that differs: `cells` holds (column, before, after) of each changed cell.
    A table only one side has is one change (`table_added`, `table_removed`), with its row count."""

    table: int  # 1-based, in the prompt's order
    columns: tuple[str, ...]
    row: str  # the row's name: its first cell, or its first cells joined until unique
    kind: RowKind
    cells: tuple[tuple[str, str, str], ...] = ()
    item: str = ""  # which prompt of a task that sends several (`item 3` of a for_each task), else ""
    count: int = 0  # rows of a table added or removed whole

    def describe(self) -> str:
        """`row "B" of table 1: sales 52 → 61`, as changes.md and `diff` print it."""
        table = f"table {self.table}" + (f" of {self.item}" if self.item else "")
        where = f'row "{self.row}" of {table}'
        if self.kind in ("table_added", "table_removed"):
            size = f"{len(self.columns)} column{_s(len(self.columns))}, {self.count} row{_s(self.count)}"
            return f"{table} {self.kind.removeprefix('table_')} ({size})"
        if self.kind == "columns":
            return f"{table} columns: " + "; ".join(f"{c} {what}" for c, what, _ in self.cells)
        if self.kind == "added":
            return f"{where} added: " + _listed([f"{c} {after}" for c, _, after in self.cells], ", ")
        if self.kind == "removed":
            return f"{where} removed: " + _listed([f"{c} {before}" for c, before, _ in self.cells], ", ")
        return f"{where}: " + _listed([f"{c} {before or '(blank)'} → {after or '(blank)'}"
                                       for c, before, after in self.cells], "; ")


def _listed(parts: Sequence[str], sep: str) -> str:
    """The first `_MOST_CELLS` parts, then `…` when there are more: a line, not a record."""
    return sep.join(parts[:_MOST_CELLS]) + (f"{sep}…" if len(parts) > _MOST_CELLS else "")


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def split_prompt(text: str) -> PromptParts:
    """The prose and the tables of a prompt (a table: a header row, a `---` row, then rows)."""
    prose: list[str] = []
    tables: list[Table] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        end = index
        while end < len(lines) and _TABLE_LINE.match(lines[end]):
            end += 1
        block = lines[index:end]
        if len(block) >= 2 and all(_SEPARATOR_CELL.match(c.replace(" ", "")) for c in _cells(block[1])):
            rows = [_cells(line) for line in block]
            tables.append(Table(columns=rows[0], rows=tuple(rows[2:])))
            prose.append(TABLE_MARK.format(number=len(tables)))
            index = end
            continue
        if end > index:  # pipes, but not a table: prose
            prose.extend(block)
            index = end
            continue
        prose.append(lines[index])
        index += 1
    return PromptParts(prose="\n".join(prose), tables=tuple(tables))


def _cells(line: str) -> tuple[str, ...]:
    inner = line.strip()
    inner = inner.removeprefix("|")
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return tuple(cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner))


def merge_tables(tables: Sequence[Table]) -> tuple[Table, ...]:
    """Tables with the same columns as one, their rows in order; tables in the order each header
    first appears. A for_each task sends one country's rows per prompt where it once sent one
    table of every country: merged, both are the same rows and only a changed row differs."""
    merged: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for table in tables:
        merged.setdefault(table.columns, []).extend(table.rows)
    return tuple(Table(columns, tuple(rows)) for columns, rows in merged.items())


def row_changes(old: Sequence[Table], new: Sequence[Table], *, item: str = "") -> tuple[RowChange, ...]:
    """Every changed, added or removed row of the tables two prompts carry, table by table
    (the first with the first). A table only one side has is one change, with its size; a
    table whose columns differ says which came and went, then compares the columns both have."""
    found: list[RowChange] = []
    for number in range(1, max(len(old), len(new)) + 1):
        if number > len(old) or number > len(new):
            table, kind = (new[number - 1], "table_added") if number > len(old) else (old[number - 1], "table_removed")
            found.append(RowChange(number, table.columns, "", kind, item=item, count=len(table.rows)))
            continue
        before, after = old[number - 1], new[number - 1]
        if before.columns != after.columns:
            found.append(RowChange(number, after.columns, "", "columns", _columns_moved(before, after), item=item))
            shared = [c for c in after.columns if c in before.columns]
            before, after = _project(before, shared), _project(after, shared)
        found.extend(_rows(number, before, after, item))
    return tuple(found)


def _columns_moved(before: Table, after: Table) -> tuple[tuple[str, str, str], ...]:
    """(column, "added" / "removed", "") of each column only one side has, or the order, when only that moved."""
    moved = [(c, "removed", "") for c in before.columns if c not in after.columns]
    moved += [(c, "added", "") for c in after.columns if c not in before.columns]
    return tuple(moved) or (("order", ", ".join(before.columns) + " → " + ", ".join(after.columns), ""),)


def _project(table: Table, columns: Sequence[str]) -> Table:
    """`table` with only `columns`, in that order."""
    at = [table.columns.index(c) for c in columns]
    return Table(tuple(columns), tuple(tuple(row[i] if i < len(row) else "" for i in at) for row in table.rows))


def _rows(number: int, before: Table, after: Table, item: str) -> list[RowChange]:
    old_names, new_names, width = _row_names(before.rows, after.rows)
    old_rows, new_rows = dict(zip(old_names, before.rows)), dict(zip(new_names, after.rows))
    columns = after.columns
    changes: list[RowChange] = []
    for name, row in new_rows.items():
        was = old_rows.get(name)
        if was is None:
            changes.append(RowChange(number, columns, name, "added",
                                     _cells_of(columns, (), row, every=True, skip=width), item=item))
        elif was != row:
            changes.append(RowChange(number, columns, name, "changed", _cells_of(columns, was, row), item=item))
    for name, row in old_rows.items():
        if name not in new_rows:
            changes.append(RowChange(number, before.columns, name, "removed",
                                     _cells_of(before.columns, row, (), every=True, skip=width), item=item))
    return changes


def _row_names(old: Sequence[tuple[str, ...]], new: Sequence[tuple[str, ...]]
               ) -> tuple[list[str], list[str], int]:
    """Each row's name on both sides, and how many cells make it: its first cell when that names
    every row of each side once, else the first cells joined until they do (`Germany, 2024`), one
    width for both sides so a row keeps its name. `workbook/items.py` (`_row_labels`) names for_each
    rows by this rule over a loaded frame; here the rows are a prompt's text cells.

    A wider name can take in a value that changed (`B, 52` and `B, 61`: a row removed and one
    added), so each width is tried, with the first cell numbered in order (`B`, `B (2)`) as the
    last resort, and the naming that leaves the fewest lines to read wins; a tie goes to the
    narrowest unique name."""
    widest = max((len(row) for row in (*old, *new)), default=1)
    candidates: list[tuple[list[str], list[str], int]] = []
    for width in range(1, min(_NAME_WIDTH, widest) + 1):
        names = [_name(row, width) for row in old], [_name(row, width) for row in new]
        if all(len(set(side)) == len(side) and all(side) for side in names):
            candidates.append((*names, width))
    candidates.append((_numbered([_name(row, 1) for row in old]), _numbered([_name(row, 1) for row in new]), 1))
    return min(candidates, key=lambda c: _lines(dict(zip(c[0], old)), dict(zip(c[1], new))))


def _lines(old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]) -> int:
    """How many rows a naming reports: changed, added and removed."""
    return sum(old.get(name) != row for name, row in new.items()) + sum(name not in new for name in old)


def _name(row: Sequence[str], width: int) -> str:
    return ", ".join(row[:width])


def _numbered(names: Sequence[str]) -> list[str]:
    """`B`, `B (2)`, `B (3)`: the n-th row of a name is matched with the other side's n-th."""
    seen: dict[str, int] = {}
    numbered = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        numbered.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return numbered


def _cells_of(columns: Sequence[str], old: Sequence[str], new: Sequence[str], *, every: bool = False,
              skip: int = 1) -> tuple[tuple[str, str, str], ...]:
    """(column, before, after) of each cell that differs (every cell but those naming the row, for a whole row)."""
    width = max(len(columns), len(old), len(new))
    cells = []
    for index in range(skip if every else 0, width):
        name = columns[index] if index < len(columns) else f"column {index + 1}"
        before = old[index] if index < len(old) else ""
        after = new[index] if index < len(new) else ""
        if every or before != after:
            cells.append((name, before, after))
    return tuple(cells)
