"""The data tables inside a rendered prompt, and which of their rows changed between two runs.

Pure. A task's data reaches the model as Markdown pipe tables inside its prompt
(`{{ data.NAME }}`), so the prompt a run recorded is also a record of the data it used: a
changed cell in a CSV shows as a changed table row. Rows are matched by their first cell
(the year, the country), so a reader is told `row "Germany": share 41.2 → 45.0` rather
than that a prompt differs somewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["PromptParts", "RowChange", "Table", "row_changes", "split_prompt"]

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


RowKind = Literal["changed", "added", "removed", "columns"]


@dataclass(frozen=True)
class RowChange:
    """One row of a data table that differs: `cells` holds (column, before, after) of each changed cell."""

    table: int  # 1-based, in the prompt's order
    columns: tuple[str, ...]
    row: str  # the row's first cell: its label
    kind: RowKind
    cells: tuple[tuple[str, str, str], ...] = ()

    def describe(self) -> str:
        """`row "B" of table 1: sales 52 → 61`, as changes.md and `diff` print it."""
        where = f'row "{self.row}" of table {self.table}'
        if self.kind == "columns":
            before, after = self.cells[0][1], self.cells[0][2]
            return f"table {self.table} columns: {before} → {after}"
        if self.kind == "added":
            return f"{where} added: " + ", ".join(f"{c} {after}" for c, _, after in self.cells)
        if self.kind == "removed":
            return f"{where} removed: " + ", ".join(f"{c} {before}" for c, before, _ in self.cells)
        return f"{where}: " + "; ".join(f"{c} {before or '(blank)'} → {after or '(blank)'}"
                                        for c, before, after in self.cells)


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


def row_changes(old: Sequence[Table], new: Sequence[Table]) -> tuple[RowChange, ...]:
    """Every changed, added or removed row of the tables two prompts carry, table by table
    (the first with the first); a table whose columns differ is said once, with both headers."""
    found: list[RowChange] = []
    for number in range(1, max(len(old), len(new)) + 1):
        before = old[number - 1] if number <= len(old) else Table((), ())
        after = new[number - 1] if number <= len(new) else Table((), ())
        if before.columns != after.columns:
            found.append(RowChange(number, after.columns or before.columns, "", "columns", (
                ("columns", ", ".join(before.columns) or "(no table)", ", ".join(after.columns) or "(no table)"),
            )))
            if not before.columns or not after.columns:
                continue
        found.extend(_rows(number, before, after))
    return tuple(found)


def _rows(number: int, before: Table, after: Table) -> list[RowChange]:
    old_rows, new_rows = _keyed(before.rows), _keyed(after.rows)
    columns = after.columns
    changes: list[RowChange] = []
    for key, row in new_rows.items():
        label = key[0] if key[1] == 0 else f"{key[0]} ({key[1] + 1})"
        was = old_rows.get(key)
        if was is None:
            changes.append(RowChange(number, columns, label, "added", _cells_of(columns, (), row, every=True)))
        elif was != row:
            changes.append(RowChange(number, columns, label, "changed", _cells_of(columns, was, row)))
    for key, row in old_rows.items():
        if key not in new_rows:
            label = key[0] if key[1] == 0 else f"{key[0]} ({key[1] + 1})"
            changes.append(RowChange(number, before.columns, label, "removed",
                                     _cells_of(before.columns, row, (), every=True)))
    return changes


def _keyed(rows: Sequence[tuple[str, ...]]) -> dict[tuple[str, int], tuple[str, ...]]:
    """Rows by (first cell, how many rows before had it): a label used twice still matches in order."""
    seen: dict[str, int] = {}
    keyed: dict[tuple[str, int], tuple[str, ...]] = {}
    for row in rows:
        label = row[0] if row else ""
        keyed[(label, seen.get(label, 0))] = row
        seen[label] = seen.get(label, 0) + 1
    return keyed


def _cells_of(columns: Sequence[str], old: Sequence[str], new: Sequence[str], *, every: bool = False
              ) -> tuple[tuple[str, str, str], ...]:
    """(column, before, after) of each cell that differs (every cell but the label, for a whole row)."""
    width = max(len(columns), len(old), len(new))
    cells = []
    for index in range(1 if every else 0, width):
        name = columns[index] if index < len(columns) else f"column {index + 1}"
        before = old[index] if index < len(old) else ""
        after = new[index] if index < len(new) else ""
        if every or before != after:
            cells.append((name, before, after))
    return tuple(cells)
