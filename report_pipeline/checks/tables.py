"""A data table as the tracer reads it: value columns, the labels that name a row, and a sentence's mentions.

Built once per table and check, so looking up a figure is a binary search per
column, not a scan of every cell. Label columns (text, and years) name rows; every
other numeric column holds values a figure may be traced to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a table's frame brings pandas; a run without tables never imports it
    import pandas as pd

from .claims import YEAR_MAX, YEAR_MIN
from .units import Unit, column_unit, name_tokens, percentish

#: Words of a column name that do not name what it measures.
_NOT_NAMING = frozenset(
    "the and of per in for from to by at on with total value values amount number pct percent share_of "
    "w kw mw gw tw wh kwh mwh gwh twh t kt mt gt eur usd gbp chf bn mn mln k m thousand million billion "
    "co2 co2e tco2 tco2e".split()
)
_YEAR_WORDS = ("year", "yr", "jahr", "annee", "année", "anno", "ano", "año")
_WORD = re.compile(r"[0-9a-zà-ÿ]+")


@dataclass(frozen=True, eq=False)
class SourceTable:
    """A table the task was given, as the prompt showed it (after its filter and columns).

    `unit` is for a table whose values share one unit the column names do not say
    (`TWh`, `EUR/MWh`, `%`); without it each column's name is read (`capacity_gw`).
    """

    name: str
    frame: pd.DataFrame
    unit: str | None = None

    def index(self) -> TableIndex:
        """The table's index, built on first use and kept: a run checks many tasks against one table."""
        found = self.__dict__.get("_index")
        if found is None:  # two threads may both build it: the same index, the last one kept
            found = TableIndex(self)
            object.__setattr__(self, "_index", found)
        return found


@dataclass(frozen=True)
class CellRef:
    """Where a value came from: `prices[Germany 2030, price] = 41.2`; `row` may name a group of rows."""

    table: str
    row: str
    column: str
    value: float

    def __str__(self) -> str:
        where = f"{self.row}, {self.column}" if self.row else self.column
        return f"{self.table}[{where}] = {format_value(self.value)}"


def format_value(value: float) -> str:
    """A value as a trace shows it: whole numbers without `.0`, others to 6 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


@dataclass(frozen=True, eq=False)
class ValueColumn:
    """A numeric column a figure can come from, with its values sorted for lookup."""

    position: int
    name: str
    values: np.ndarray
    unit: Unit
    percentish: bool
    tokens: tuple[str, ...]
    sorted_abs: np.ndarray = field(repr=False)
    order: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class LabelColumn:
    """A column that names rows: text, or years."""

    name: str
    labels: tuple[str, ...]
    year_like: bool
    constant: bool


@dataclass(frozen=True)
class Sentence:
    """A sentence as mentions are looked up in it: lower-case text, its words, the years it names."""

    text: str
    lower: str
    words: frozenset[str]
    years: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> Sentence:
        lower = text.lower()
        words = _WORD.findall(lower)
        years = tuple(sorted({int(word) for word in words if len(word) == 4 and word.isdigit()
                              and YEAR_MIN <= int(word) <= YEAR_MAX}))
        return cls(text, lower, frozenset(words), years)

    def names(self, token: str) -> bool:
        """A column-name word is in the sentence: `coal` in "coal-fired", `renewable` in "renewables"."""
        if token.isdigit() or len(token) < 4:
            return token in self.words
        return any(word.startswith(token) for word in self.words)

    def mentions(self, label: str) -> bool:
        """A row label is in the sentence as a word or a phrase: `Germany`, `2030`, `United Kingdom`."""
        if label in self.words:
            return True
        if not label or label.isalnum():
            return False
        return re.search(rf"(?<![\w]){re.escape(label)}(?![\w])", self.lower) is not None


class TableIndex:
    """Everything the tracer asks of one table, computed once per check."""

    def __init__(self, table: SourceTable) -> None:
        import pandas as pd  # loaded already: the frame is one

        frame = table.frame
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()  # a pivot's row labels are labels too
        self.name = table.name
        self.n_rows = len(frame)
        self.n_columns = len(frame.columns)
        self.value_columns: list[ValueColumn] = []
        self.label_columns: list[LabelColumn] = []
        for position, (column, series) in enumerate(frame.items()):
            self._add_column(position, str(column), series, table.unit)
        self.value_groups = _by_unit(self.value_columns)
        self.key_columns = self._key_columns()
        self.row_labels = self._row_labels()
        self._vocabulary = [  # (column, label in lower case, its rows)
            (column, label, np.array(rows))
            for column in self.label_columns if not column.constant
            for label, rows in _rows_by_label(column.labels).items() if label
        ]

    def _add_column(self, position: int, name: str, series: pd.Series, table_unit: str | None) -> None:
        numbers = _numeric(series)
        if numbers is None or _year_like(name, numbers, position):
            labels = tuple(_label(value) for value in series.tolist())
            self.label_columns.append(LabelColumn(name, labels, numbers is not None,
                                                  constant=len(set(labels)) <= 1))
            return
        unit = column_unit(name, table_unit)
        finite = np.flatnonzero(np.isfinite(numbers))
        magnitudes = np.abs(numbers[finite])
        order = np.argsort(magnitudes, kind="stable")
        tokens = tuple(t for t in name_tokens(name) if t not in _NOT_NAMING and (len(t) >= 3 or t.isdigit()))
        if not tokens:  # a column named by its unit alone (`twh`, `mt`): the unit is its name
            tokens = tuple(t for t in name_tokens(name) if len(t) >= 2)
        self.value_columns.append(ValueColumn(
            position, name, numbers, unit, percentish(name, unit), tokens, magnitudes[order], finite[order],
        ))

    def _key_columns(self) -> list[LabelColumn]:
        """The fewest label columns, in table order, whose values tell every row apart."""
        varying = [column for column in self.label_columns if not column.constant]
        for size in (1, 2):
            for columns in combinations(varying, size):
                if len(set(zip(*(column.labels for column in columns), strict=True))) == self.n_rows:
                    return list(columns)
        return varying

    def _row_labels(self) -> list[str]:
        if not self.key_columns:
            return [f"row {number}" for number in range(1, self.n_rows + 1)]
        return [" ".join(column.labels[row] for column in self.key_columns) for row in range(self.n_rows)]

    def named_columns(self, sentence: Sentence) -> list[ValueColumn]:
        """The value columns a sentence names by a word of their name."""
        return [column for column in self.value_columns if any(sentence.names(t) for t in column.tokens)]

    def named_rows(self, sentence: Sentence) -> np.ndarray:
        """Rows whose key labels the sentence mentions most ("Germany ... 2030" names Germany 2030)."""
        if not self.key_columns:
            return np.arange(self.n_rows) if self.n_rows == 1 else np.array([], dtype=int)
        score = np.zeros(self.n_rows, dtype=int)
        for column, label, rows in self._vocabulary:
            if column in self.key_columns and sentence.mentions(label):
                score[rows] += 1
        best = score.max(initial=0)
        return np.flatnonzero(score == best) if best else np.array([], dtype=int)

    def mentioned_groups(self, sentence: Sentence) -> list[tuple[str, np.ndarray]]:
        """Row groups a sentence names: every row with one label value ("country = Germany"),
        and the rows between two years it names ("year 2015-2020")."""
        groups = [(f"{column.name} = {column.labels[rows[0]]}", rows) for column, label, rows in self._vocabulary
                  if len(rows) > 1 and sentence.mentions(label)]
        for column in self.label_columns:
            if not column.year_like or column.constant or len(sentence.years) < 2:
                continue
            years = np.array([float(label) if label else np.nan for label in column.labels])
            for low, high in combinations(sentence.years, 2):
                rows = np.flatnonzero((years >= low) & (years <= high))
                if len(rows) > 1:
                    groups.append((f"{column.name} {low}-{high}", rows))
        return groups

    def naming(self, sentence: Sentence, row: int, column: ValueColumn) -> int:
        """How much of a cell the sentence names: its column, and each of its row's key labels."""
        named = int(any(sentence.names(token) for token in column.tokens))
        return named + sum(sentence.mentions(key.labels[row].lower()) for key in self.key_columns)

    def cell(self, row: int, column: ValueColumn) -> CellRef:
        return CellRef(self.name, self.row_labels[row], column.name, float(column.values[row]))


@dataclass(frozen=True, eq=False)
class ValueGroup:
    """Value columns sharing a unit, their cells in one sorted array: one search per figure, not one per column."""

    unit: Unit
    percentish: bool
    columns: tuple[ValueColumn, ...]
    sorted_abs: np.ndarray = field(repr=False)
    cells: np.ndarray = field(repr=False)  # (column index in `columns`, row) per sorted value


def _by_unit(columns: list[ValueColumn]) -> list[ValueGroup]:
    kinds: dict[tuple[Unit, bool], list[ValueColumn]] = {}
    for column in columns:
        kinds.setdefault((column.unit, column.percentish), []).append(column)
    groups = []
    for (unit, share), members in kinds.items():
        sizes = np.concatenate([column.sorted_abs for column in members])
        cells = np.concatenate([np.column_stack((np.full(len(c.order), i), c.order)) for i, c in enumerate(members)])
        order = np.argsort(sizes, kind="stable")
        groups.append(ValueGroup(unit, share, tuple(members), sizes[order], cells[order].reshape(-1, 2)))
    return groups


def _rows_by_label(labels: tuple[str, ...]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        rows.setdefault(label.lower(), []).append(row)
    return rows


def _numeric(series: pd.Series) -> np.ndarray | None:
    """The column as floats (NaN for blanks), or None when it holds text or booleans."""
    kind = series.dtype.kind
    if kind in "iuf":
        return series.to_numpy(dtype=float, na_value=np.nan)
    if kind != "O":
        return None
    numbers = []
    for value in series.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            numbers.append(np.nan)
        elif isinstance(value, bool):
            return None
        else:
            try:
                numbers.append(float(str(value).replace(",", "")))
            except ValueError:
                return None
    return np.array(numbers, dtype=float) if np.isfinite(numbers).any() else None


def _year_like(name: str, numbers: np.ndarray, position: int) -> bool:
    """Whole numbers 1800-2100 in a column named like a year, or in the first column: a label."""
    present = numbers[np.isfinite(numbers)]
    if not len(present) or not np.all(present == np.round(present)):
        return False
    if not np.all((present >= YEAR_MIN) & (present <= YEAR_MAX)):
        return False
    return position == 0 or any(word in name.lower() for word in _YEAR_WORDS)


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    import pandas as pd  # loaded already: the value is a frame's cell

    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date().isoformat()  # as the prompt's table shows it
    return str(value).strip()
