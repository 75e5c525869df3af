"""Values one step away from the cells of one table, among the cells a sentence names.

A reader accepts "coal fell 85% between 2015 and 2030" when the table has coal in
2015 and 2030: a percent change between two cells of one column. Taken over every
pair of cells, such steps would give thousands of values and match almost any
number, so a step is only taken over cells the sentence itself names: a column by a
word of its name ("coal" for `coal_twh`) and rows by their labels ("2015", "Germany"),
or the table's first and last rows ("over the period"). That also bounds the work: at
most `MAX_NAMED_ROWS` rows and `MAX_GROUPS` groups per sentence, whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from .tables import CellRef, Sentence, TableIndex, ValueColumn

#: A sentence naming more rows than this names none in particular: only first-to-last steps.
MAX_NAMED_ROWS = 24
#: Row groups (a label value, a span of years) summed or averaged per sentence.
MAX_GROUPS = 12
#: Rows whose own two columns are compared (wind against coal in 2024).
MAX_ROWS_ACROSS = 4


@dataclass(frozen=True, eq=False)
class Derived:
    """One step's values over some cells; `explain(i)` gives the cells and words for value i.

    `reading` says what a figure must be to match: an `amount` in `column`'s unit
    (differences, sums, means), a `percent` (percent changes, ratios as shares), a
    `times` ("3.1x"), or a `count` of rows.
    """

    step: str
    reading: str
    column: ValueColumn | None
    values: np.ndarray
    explain: Callable[[int], tuple[tuple[CellRef, ...], str]]


def derived_values(table: TableIndex, sentence: Sentence) -> list[Derived]:
    """Every one-step value over the cells of `table` that `sentence` names."""
    columns = table.named_columns(sentence)
    if not columns or table.n_rows == 0:
        return []
    rows = table.named_rows(sentence)
    if len(rows) > MAX_NAMED_ROWS:
        rows = np.array([], dtype=int)
    groups = [("all rows", np.arange(table.n_rows))] + table.mentioned_groups(sentence)[: MAX_GROUPS - 1]
    found: list[Derived] = []
    pairs = _row_pairs(table, rows, groups)
    for column in columns:
        found += _within_column(table, column, pairs)
        found += _over_groups(table, column, groups)
    for row in rows[:MAX_ROWS_ACROSS]:
        found += _within_row(table, int(row), columns)
    found += _group_counts(groups[1:])
    return found


def _row_pairs(table: TableIndex, rows: np.ndarray, groups: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Ordered (from, to) row pairs: among the named rows, and first to last of the table and each group."""
    pairs = {(int(a), int(b)) for a, b in permutations(rows.tolist(), 2)}
    for _, members in groups:
        if len(members) > 1:
            pairs |= {(int(members[0]), int(members[-1])), (int(members[-1]), int(members[0]))}
    return np.array(sorted(pairs), dtype=int).reshape(-1, 2)


def _within_column(table: TableIndex, column: ValueColumn, pairs: np.ndarray) -> list[Derived]:
    if not len(pairs):
        return []
    start, end = column.values[pairs[:, 0]], column.values[pairs[:, 1]]

    def explain(index: int) -> tuple[tuple[CellRef, ...], str]:
        first, second = (table.cell(int(row), column) for row in pairs[index])
        return (first, second), f"from {first} to {second}"

    return _two_cell_steps(start, end, column, explain)


def _within_row(table: TableIndex, row: int, columns: list[ValueColumn]) -> list[Derived]:
    pairs = [(a, b) for a, b in permutations(columns, 2) if a.unit == b.unit]
    if not pairs:
        return []
    start = np.array([a.values[row] for a, _ in pairs])
    end = np.array([b.values[row] for _, b in pairs])

    def explain(index: int) -> tuple[tuple[CellRef, ...], str]:
        first, second = (table.cell(row, column) for column in pairs[index])
        return (first, second), f"{second} against {first}"

    return _two_cell_steps(start, end, pairs[0][0], explain)


def _two_cell_steps(start: np.ndarray, end: np.ndarray, column: ValueColumn,
                    explain: Callable[[int], tuple[tuple[CellRef, ...], str]]) -> list[Derived]:
    """Difference, percent change and ratio from `start` to `end`, element by element."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(start != 0, end / start, np.nan)
    return [
        Derived("difference", "amount", column, end - start, explain),
        Derived("percent change", "percent", column, (ratio - 1.0) * 100.0, explain),
        Derived("ratio", "percent", column, ratio * 100.0, explain),
        Derived("ratio", "times", column, ratio, explain),
    ]


def _over_groups(table: TableIndex, column: ValueColumn, groups: list[tuple[str, np.ndarray]]) -> list[Derived]:
    present = [values[np.isfinite(values)] for values in (column.values[members] for _, members in groups)]
    sums = np.array([float(values.sum()) if len(values) else np.nan for values in present])
    counts = np.array([len(values) for values in present])
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def explain(index: int) -> tuple[tuple[CellRef, ...], str]:
        return (), f"{column.name} over {groups[index][0]} ({int(counts[index])} rows of {table.name})"

    return [Derived("sum", "amount", column, sums, explain), Derived("mean", "amount", column, means, explain)]


def _group_counts(groups: list[tuple[str, np.ndarray]]) -> list[Derived]:
    if not groups:
        return []

    def explain(index: int) -> tuple[tuple[CellRef, ...], str]:
        return (), f"rows with {groups[index][0]}"

    return [Derived("count", "count", None, np.array([float(len(members)) for _, members in groups]), explain)]
