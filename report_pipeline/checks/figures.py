"""Tracing each figure of a generated text to what the task was given, or flagging it.

A figure is traced when it equals, within the rounding of its own precision, one of:
a cell of a data table ("41" for 41.4, not "42" for 41.2); a cell in another unit
("2.1 GW" for 2,100 MW, "35%" for a share of 0.35); a figure written in a dependency's
text or in the prompt; a count of rows or columns; or one step from cells of one table
that the sentence names (see `derived`). Everything else is flagged for a person.

Values are compared without their sign: "fell 12%" is a percent change of -12%.
A bare small integer (0-10, no unit, no decimals) is traced only exactly, by a cell, a
count or a text, never by a derived step: so few values are possible that some step
would always hit one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .derived import Derived, derived_values
from .numbers import (
    ENGLISH,
    Figure,
    NumberStyle,
    find_figures,
    sentence_at,
    written_figures,
)
from .tables import (
    CellRef,
    Sentence,
    SourceTable,
    TableIndex,
    format_value,
)
from .units import Unit, figure_unit, prefixed

#: Bare integers up to this are traced only exactly, never by a derived step.
SMALL_INTEGER = 10
_EXACT = 1e-9
_TIMES_UNITS = frozenset({"x", "×", "times", "-fold", "fold"})
_SCALE_WORDS = {1e3: "thousand", 1e6: "million", 1e9: "billion", 1e12: "trillion"}


@dataclass(frozen=True, eq=False)
class Sources:
    """What a task was given: its tables, the texts of the tasks it depends on, its prompt.

    `dependencies` pairs a task's name with its text (a mapping is accepted too).
    """

    tables: tuple[SourceTable, ...] = ()
    dependencies: tuple[tuple[str, str], ...] = ()
    prompt: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(self.tables))
        dependencies = self.dependencies
        if isinstance(dependencies, Mapping):
            dependencies = dependencies.items()
        object.__setattr__(self, "dependencies", tuple((str(k), str(v)) for k, v in dependencies))


@dataclass(frozen=True)
class Trace:
    """Why a figure is traced, for a person: which step, over which cells or text."""

    step: str  # cell, rounded cell, unit change, difference, percent change, ratio, sum, mean, count, ...
    source: str  # the table, the dependency's name, or "prompt"
    cells: tuple[CellRef, ...] = ()
    value: float | None = None  # what a derived step gives, before rounding
    via: str | None = None  # a unit change on the way: "MW->GW", "share->%"
    detail: str = ""

    def __str__(self) -> str:
        if self.step == "unit change":
            head = f"unit change {self.via}"
        elif self.step == "dependency text":
            head = f"dependency text {self.source}"
        else:
            head = self.step + (f", unit change {self.via}" if self.via else "")
        body = self.detail or "; ".join(str(cell) for cell in self.cells)
        result = f" = {format_value(round(self.value, 4))}" if self.value is not None else ""
        return f"{head}: {body}{result}"


@dataclass(frozen=True)
class TracedFigure:
    figure: Figure
    trace: Trace


@dataclass(frozen=True)
class FigureCheck:
    """A text's figures: those traced (with how) and those flagged (with their sentence).

    `work` counts the derived values computed, so a test can see that the search
    stays bounded without timing it.
    """

    figures: tuple[Figure, ...] = ()
    traced: tuple[TracedFigure, ...] = ()
    untraced: tuple[Figure, ...] = ()
    work: int = 0

    @property
    def found_count(self) -> int:
        return len(self.figures)

    @property
    def traced_count(self) -> int:
        return len(self.traced)

    @property
    def untraced_count(self) -> int:
        return len(self.untraced)

    def summary(self) -> str:
        """"12 figures, 10 traced, 2 flagged"."""
        noun = "figure" if self.found_count == 1 else "figures"
        return f"{self.found_count} {noun}, {self.traced_count} traced, {self.untraced_count} flagged"


def trace_figures(text: str, sources: Sources, style: NumberStyle = ENGLISH) -> FigureCheck:
    """Find every figure in `text` and trace each to `sources`; pure, no I/O."""
    figures = find_figures(text, style, prompt=sources.prompt)
    tracer = _Tracer(sources, style)
    traced, untraced = [], []
    for figure in figures:
        trace = tracer.trace(figure)
        if trace is None:
            untraced.append(figure)
        else:
            traced.append(TracedFigure(figure, trace))
    return FigureCheck(tuple(figures), tuple(traced), tuple(untraced), tracer.work)


@dataclass(frozen=True)
class _Reading:
    """A figure as a value in some column's unit, with the slack its precision allows."""

    value: float
    tolerance: float
    via: str | None = None


class _Bank:
    """The figures written in a text the task was given, read on first use and sorted by size."""

    def __init__(self, name: str, step: str, text: str, style: NumberStyle) -> None:
        self.name, self.step, self._text, self._style = name, step, text, style
        self._figures: list[Figure] | None = None
        self._sizes = np.array([], dtype=float)

    def find(self, figure: Figure) -> str | None:
        """The sentence of the text that writes `figure` (within its rounding), or None."""
        if self._figures is None:
            self._figures = sorted(written_figures(self._text, self._style), key=_base_size)
            self._sizes = np.array([_base_size(f) for f in self._figures], dtype=float)
        unit = figure_unit(figure.unit, figure.currency)
        size, slack = _base_size(figure), figure.tolerance * unit.scale + _EXACT * max(1.0, _base_size(figure))
        low = int(np.searchsorted(self._sizes, size - slack, "left"))
        high = int(np.searchsorted(self._sizes, size + slack, "right"))
        for other in self._figures[low:high]:
            if other.percent == figure.percent and unit.compatible(figure_unit(other.unit, other.currency)):
                return sentence_at(self._text, other.start)
        return None


def _base_size(figure: Figure) -> float:
    """|value| in base units (W, Wh, t, EUR), so "2.1 GW" and "2,100 MW" compare equal."""
    return abs(figure.value) * figure_unit(figure.unit, figure.currency).scale


class _Tracer:
    """The ladder one figure climbs: cells, counts, derived steps, then texts; the first rung that holds wins.

    The texts come last because they are long (a prompt with its tables, every
    dependency) and read only when a figure needs them.
    """

    def __init__(self, sources: Sources, style: NumberStyle) -> None:
        self.tables = [table.index() for table in sources.tables]
        self.banks = [_Bank(name, "dependency text", text, style) for name, text in sources.dependencies]
        if sources.prompt:
            self.banks.append(_Bank("prompt", "prompt", sources.prompt, style))
        self._derived: dict[str, list[tuple[TableIndex, Derived]]] = {}
        self._sentences: dict[str, Sentence] = {}
        self._readings: dict[tuple[Figure, Unit, bool, bool], list[_Reading]] = {}
        self.work = 0

    def readings(self, figure: Figure, unit: Unit, percentish: bool, *, exact: bool = False) -> list[_Reading]:
        """`_readings`, once per figure and kind of column (most columns of a table share a unit)."""
        key = (figure, unit, percentish, exact)
        if key not in self._readings:
            self._readings[key] = _readings(figure, unit, percentish, exact=exact)
        return self._readings[key]

    def trace(self, figure: Figure) -> Trace | None:
        small = figure.bare and abs(figure.value) <= SMALL_INTEGER
        return (
            self._cell(figure, exact=small)
            or self._count(figure)
            or (None if small else self._derived_step(figure))
            or self._text(figure)
        )

    def _cell(self, figure: Figure, *, exact: bool) -> Trace | None:
        """A cell in the figure's own unit, else through a unit change. Of several, the one the
        sentence names most (its column, its row's labels), then the nearest: "Germany's price
        in 2020 was 41.2" is traced to that cell, not to another 41.2 elsewhere."""
        readings = [(table, group, reading) for table in self.tables for group in table.value_groups
                    for reading in self.readings(figure, group.unit, group.percentish, exact=exact)]
        for wanted_via in (False, True):
            hits = []
            for table, group, reading in readings:
                if (reading.via is not None) == wanted_via and (hit := _nearest(group.sorted_abs, reading)) is not None:
                    member, row = (int(index) for index in group.cells[hit])
                    named = table.naming(self._sentence(figure.sentence), row, group.columns[member])
                    miss = abs(group.sorted_abs[hit] - reading.value) / max(reading.tolerance, _EXACT)
                    hits.append((-named, miss, table, group.columns[member], row, reading))
            if hits:
                *_, table, column, row, reading = min(hits, key=lambda found: found[:2])
                cell = table.cell(row, column)
                if reading.via:
                    return Trace("unit change", table.name, (cell,), via=reading.via)
                exact_hit = abs(abs(cell.value) - reading.value) <= _EXACT * max(1.0, reading.value)
                return Trace("cell" if exact_hit else "rounded cell", table.name, (cell,))
        return None

    def _text(self, figure: Figure) -> Trace | None:
        for bank in self.banks:
            if (sentence := bank.find(figure)) is not None:
                return Trace(bank.step, bank.name, detail=f"“{_clip(sentence)}”")
        return None

    def _count(self, figure: Figure) -> Trace | None:
        if not figure.bare:
            return None
        for table in self.tables:
            counts = [(table.n_rows, "rows"), (table.n_columns, "columns")] + [
                (len(set(column.labels) - {""}), f"distinct {column.name}") for column in table.label_columns
            ]
            for count, what in counts:
                if count == abs(figure.value):
                    return Trace("count", table.name, detail=f"{table.name} has {count} {what}")
        return None

    def _derived_step(self, figure: Figure) -> Trace | None:
        for table, derived in self._derived_for(figure.sentence):
            for reading in _derived_readings(figure, derived, self.readings):
                hits = np.flatnonzero(np.abs(np.abs(derived.values) - reading.value) <= reading.tolerance + _EXACT)
                if len(hits):
                    index = int(hits[0])
                    cells, detail = derived.explain(index)
                    return Trace(derived.step, table.name, cells, float(derived.values[index]), reading.via, detail)
        return None

    def _sentence(self, text: str) -> Sentence:
        if text not in self._sentences:
            self._sentences[text] = Sentence.of(text)
        return self._sentences[text]

    def _derived_for(self, sentence: str) -> list[tuple[TableIndex, Derived]]:
        """Derived values of every table over what `sentence` names; computed once per sentence."""
        if sentence not in self._derived:
            parsed = self._sentence(sentence)
            found = [(table, derived) for table in self.tables for derived in derived_values(table, parsed)]
            self.work += sum(len(derived.values) for _, derived in found)
            self._derived[sentence] = found
        return self._derived[sentence]


def _nearest(sizes: np.ndarray, reading: _Reading) -> int | None:
    """The index of the value in sorted `sizes` nearest `reading`, if within its tolerance."""
    slack = reading.tolerance + _EXACT * max(1.0, reading.value)
    low = int(np.searchsorted(sizes, reading.value - slack, "left"))
    high = int(np.searchsorted(sizes, reading.value + slack, "right"))
    if low >= high:
        return None
    return low + int(np.argmin(np.abs(sizes[low:high] - reading.value)))


def _readings(figure: Figure, target: Unit, percentish: bool, *, exact: bool = False) -> list[_Reading]:
    """`figure` as values in a column's unit: as written, and through each unit change a reader accepts."""
    if figure.unit in _TIMES_UNITS:
        return []
    tolerance = _EXACT if exact else figure.tolerance
    number, value = abs(figure.number), abs(figure.value)
    if figure.percent:
        if not percentish:
            return []
        return [_Reading(number, tolerance), _Reading(number / 100.0, tolerance / 100.0, "share->%")]
    unit = figure_unit(figure.unit, figure.currency)
    if not unit.compatible(target) or (target.family == "percent" and unit.known):
        return []
    if exact:
        return [_Reading(value, tolerance)]
    if unit.known and target.known:  # both say their unit: convert exactly
        factor = unit.scale / target.scale
        same = unit.scale * figure.magnitude == target.scale
        via = None if same else f"{_scale_label(target)}->{_written(figure, unit)}"
        return [_Reading(value * factor, tolerance * factor, via)]
    if target.family in (None, "money") and target.scale != 1.0 and figure.magnitude != 1.0:
        via = None if figure.magnitude == target.scale else f"{_scale_label(target)}->{_written(figure, unit)}"
        return [_Reading(value / target.scale, tolerance / target.scale, via)]  # "1.2 million", a column in millions
    if target.known or target.scale != 1.0:
        return [_Reading(value, tolerance)]  # a figure without a unit is read in the column's
    readings = [_Reading(value, tolerance)]
    if figure.magnitude != 1.0:
        readings.append(_Reading(number, tolerance / figure.magnitude))  # a table kept in millions
    if unit.family in ("power", "energy", "mass"):
        for factor in (1e3, 1e-3):
            readings.append(_Reading(value * factor, tolerance * factor,
                                     f"{prefixed(unit, unit.scale / factor)}->{unit.label}"))
    return readings


def _derived_readings(figure: Figure, derived: Derived,
                      readings: Callable[[Figure, Unit, bool], list[_Reading]]) -> list[_Reading]:
    column = derived.column
    if derived.reading == "amount":
        return readings(figure, column.unit, column.percentish) if column is not None else []
    if derived.reading == "percent":
        return [_Reading(abs(figure.number), figure.tolerance / figure.magnitude)] if figure.percent else []
    if derived.reading == "times":
        return [_Reading(abs(figure.number), figure.tolerance)] if figure.unit in _TIMES_UNITS else []
    return [_Reading(abs(figure.value), _EXACT)] if figure.bare else []


def _scale_label(unit: Unit) -> str:
    """How a trace names a column's unit: `MW`, `bn EUR`, `millions`."""
    return unit.label or _SCALE_WORDS.get(unit.scale, "units")


def _written(figure: Figure, unit: Unit) -> str:
    if unit.family in ("power", "energy", "mass"):
        return unit.label
    word = _SCALE_WORDS.get(figure.magnitude, "")
    return f"{word} {unit.label}".strip() or "units"


def _clip(sentence: str, limit: int = 120) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"

