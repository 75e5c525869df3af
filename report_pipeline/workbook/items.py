"""For-each tasks: the items one prompt is sent for, from a data table.

A task's `for_each` names a table (`prices`: one item per row) or a table and a column
(`generation.country`: one item per distinct value, holding that value's rows). The
table is the data sheet's, after its `filter` and `columns`; items keep its order (a
group sits where its value first appears). Pure functions over a loaded frame: the
reader checks names, `item_problems` checks a loaded table, the runner expands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd

    from ..models import Task
else:
    pd = lazy_module("pandas")  # the reader parses for_each without loading pandas

__all__ = ["DEFAULT_MAX_ITEMS", "ForEach", "Item", "count_items", "expand_items", "item_number", "item_problems",
           "parse_for_each", "task_table_names"]

#: More items than this is refused before anything is sent: a typo must not send 10,000 calls.
DEFAULT_MAX_ITEMS = 200

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ForEach:
    """What a `for_each` cell says: a table, and the column whose values group its rows (or None)."""

    table: str
    column: str | None = None

    def __str__(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table


@dataclass(frozen=True)
class Item:
    """One call's share of a for-each task: its heading, its fields and its rows."""

    number: int  # 1-based, in table order
    label: str  # the heading its text goes under: the group's value, or the row's naming cells
    fields: Mapping[str, Any]  # a row's cells, or {column: value} for a group
    rows: pd.DataFrame  # the row itself, or the group's rows

    @property
    def suffix(self) -> str:
        """How the item's calls are labelled in logs and the ledger: `#3` (read back by `item_number`)."""
        return f"#{self.number}"


_SUFFIX = re.compile(r"#(\d+)\Z")


def item_number(step: str) -> int | None:
    """The item a call's step names (`generate#3` or `#3`: 3), None for any other call: `Item.suffix` read back."""
    found = _SUFFIX.search(step)
    return int(found.group(1)) if found else None


def parse_for_each(text: str) -> ForEach:
    """`TABLE` or `TABLE.column`; a ValueError says what is wrong."""
    table, dot, column = text.strip().partition(".")
    table, column = table.strip(), column.strip()
    if not table or not _NAME.match(table):
        raise ValueError(f"for_each {text!r}: write a data table's name (e.g. prices) or TABLE.column (e.g. prices.country)")
    if dot and not column:
        raise ValueError(f"for_each {text!r}: name the column after the dot (e.g. {table}.country), or drop the dot")
    return ForEach(table, column or None)


def task_table_names(task: Task) -> list[str]:
    """The tables a task reads: its `data`, then its for_each table (once)."""
    names = list(task.data)
    if task.for_each:
        table = parse_for_each(task.for_each).table
        if table not in names:
            names.append(table)
    return names


def item_problems(spec: ForEach, frame: pd.DataFrame, *, max_items: int = DEFAULT_MAX_ITEMS) -> list[str]:
    """What makes a loaded table unusable for `spec`: an unknown column, no rows, too many items."""
    if spec.column is not None and spec.column not in frame.columns:
        shown = ", ".join(map(str, frame.columns))
        return [f"for_each {spec}: table {spec.table} has no column {spec.column!r} (it has: {shown})"]
    if frame.empty:
        return [f"for_each {spec}: table {spec.table} has no rows after its filter — nothing to send; "
                "loosen the filter or set enabled to FALSE"]
    count = len(_groups(frame, spec.column)) if spec.column else len(frame)
    if count > max_items:
        return [f"for_each {spec}: {count} items, more than max_items ({max_items}) — filter the table, "
                f"or raise max_items if you mean to send {count} calls"]
    return []


def count_items(spec: ForEach, frame: pd.DataFrame) -> int:
    return len(_groups(frame, spec.column)) if spec.column else len(frame)


def expand_items(spec: ForEach, frame: pd.DataFrame) -> list[Item]:
    """The items in table order: one per row, or one per distinct value of `spec.column`."""
    frame = frame.reset_index(drop=True)
    if spec.column is None:
        labels = _row_labels(frame)
        return [
            Item(number=n, label=labels[i], fields=_plain_row(frame.iloc[i]), rows=frame.iloc[[i]])
            for n, i in enumerate(range(len(frame)), start=1)
        ]
    items = []
    for n, (value, rows) in enumerate(_groups(frame, spec.column), start=1):
        items.append(Item(number=n, label=_text(value), fields={spec.column: _plain(value)}, rows=rows))
    return items


def _groups(frame: pd.DataFrame, column: str | None) -> list[tuple[Any, pd.DataFrame]]:
    """(value, rows) for each distinct value of `column`, in the order values first appear; empty cells
    form no group (a row without a country is no country's)."""
    assert column is not None
    series = frame[column]
    seen: dict[Any, list[int]] = {}
    for position, value in enumerate(series.tolist()):
        if _missing(value):
            continue
        seen.setdefault(_text(value), []).append(position)
    return [(frame[column].iloc[positions[0]], frame.iloc[positions]) for positions in seen.values()]


def _row_labels(frame: pd.DataFrame) -> list[str]:
    """Each row's heading: its first column's value when that names rows uniquely, else the first
    columns joined until they do (`Germany, 2030`), else `Row N`."""
    columns = list(frame.columns)
    for width in range(1, min(3, len(columns)) + 1):
        labels = [", ".join(_text(v) for v in frame.iloc[i, :width].tolist()) for i in range(len(frame))]
        if len(set(labels)) == len(labels) and all(labels):
            return labels
    return [f"Row {i + 1}" for i in range(len(frame))]


def _plain_row(row: pd.Series) -> dict[str, Any]:
    return {str(name): _plain(value) for name, value in row.items()}


def _plain(value: Any) -> Any:
    """A cell as a plain Python value a template prints well (2030, not 2030.0 or numpy.int64(2030))."""
    if _missing(value):
        return ""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    return value


def _text(value: Any) -> str:
    return str(_plain(value)).strip()


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
