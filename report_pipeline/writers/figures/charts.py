"""Charts of the `data` sheet's tables: one PNG per source that declares `chart`.

A source row with `chart` (line or bar), `x` and `y` becomes `charts/<slug>.png`
in the run folder, drawn once however many tasks (and threads) attach it, then
placed by the writers 15 cm wide in report.docx and linked from report.md.

This half reads the table (pandas), checks its columns and turns it into a
`ChartSpec` of plain values; chart_drawing.py draws the spec. A run hands the
drawing to its drawing process (drawing_process.py), so matplotlib runs on the
machine's other core; `ChartRenderer`'s default draws in this process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...lazy import lazy_module
from ...models import DataSource
from ...text import readable_name
from ...workbook.data import DataStore
from ..labels import column_label, table_title
from ..safety import slugify
from .chart_drawing import DPI, FIGSIZE_IN, ChartSpec, draw_chart_png, spec_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
else:
    pd = lazy_module("pandas")

__all__ = ["CHART_DIR", "DPI", "FIGSIZE_IN", "ChartImage", "ChartRenderer", "PngDrawer", "chart_caption", "chart_figure", "chart_spec"]

CHART_DIR = "charts"
#: Draws a spec to a PNG at a path (atomically), or raises.
PngDrawer = Callable[[Path, ChartSpec], None]


@dataclass(frozen=True)
class ChartImage:
    """A rendered chart: `relative` is `path` seen from the run folder, for report.md links."""

    path: Path
    caption: str  # without the "Figure N:" label: writers number figures in reading order
    relative: str


# Column-name tails read as units: `germany_eur_mwh` -> "germany", "EUR/MWh"
_UNITS = {
    "pct": "%", "percent": "%", "share": "%",
    "gw": "GW", "gwh": "GWh", "mw": "MW", "mwh": "MWh", "kw": "kW", "kwh": "kWh", "twh": "TWh",
    "mt": "Mt", "kt": "kt", "t": "t",
    "eur": "EUR", "usd": "USD", "gbp": "GBP",
    "bn": "bn", "m": "m", "k": "thousand", "thousand": "thousand", "million": "million", "billion": "bn",
}
_CURRENCIES = frozenset({"eur", "usd", "gbp"})


def chart_caption(source: DataSource) -> str:
    """`EU generation — coal, gas, wind by year` (writers add the "Figure N:" label)."""
    columns = ", ".join(column_label(source, y, capitalize=False) for y in source.y)
    shaded = f" (shaded: {source.shade[1]})" if source.shade else ""
    return f"{table_title(source)} — {columns} by {column_label(source, source.x or '', capitalize=False)}{shaded}"


@dataclass
class _Slot:
    """One source's chart: its own lock, so two different charts can be requested at once."""

    file_name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    image: ChartImage | None = None
    error: str | None = None


class ChartRenderer:
    """Renders each declared chart once, to `out_dir/charts/<slug>.png`, whatever the threads.

    `render(name, store)` returns the same `ChartImage` to every caller; the first
    draws it, the others wait on that source's lock. A chart that cannot be drawn
    is remembered too: every caller gets a ValueError with the same message and
    the table is read once.
    """

    def __init__(self, out_dir: Path, *, draw_png: PngDrawer = draw_chart_png) -> None:
        self.out_dir = Path(out_dir)
        self._draw_png = draw_png
        self.chart_dir = self.out_dir / CHART_DIR
        self._slots: dict[str, _Slot] = {}
        self._registry = threading.Lock()  # guards _slots and the file names taken

    def render(self, name: str, store: DataStore) -> ChartImage:
        """The chart of data source `name`; ValueError names the source when it cannot be drawn."""
        source = store.source(name)  # KeyError for an unknown name
        if not source.chart:
            raise ValueError(f"data source {name!r} declares no chart (set chart to line or bar)")
        slot = self._slot(name)
        with slot.lock:
            if slot.image is None and slot.error is None:
                try:
                    slot.image = self._draw(source, store, slot.file_name)
                except ValueError as error:
                    slot.error = str(error)
            if slot.error is not None:
                raise ValueError(slot.error)
            assert slot.image is not None
            return slot.image

    def rendered(self) -> list[ChartImage]:
        """The charts drawn so far (for run.json's outputs, say), in the order first asked for."""
        with self._registry:
            slots = list(self._slots.values())
        return [slot.image for slot in slots if slot.image is not None]

    def _slot(self, name: str) -> _Slot:
        with self._registry:
            slot = self._slots.get(name)
            if slot is None:
                slot = _Slot(self._unique_file_name(name))
                self._slots[name] = slot
            return slot

    def _unique_file_name(self, name: str) -> str:
        """`<slug>.png`; two names with one slug (`EU gen`, `eu_gen`) get `-2`, `-3`, ..."""
        taken = {slot.file_name for slot in self._slots.values()}
        base = slugify(name)
        candidate, number = f"{base}.png", 2
        while candidate in taken:
            candidate, number = f"{base}-{number}.png", number + 1
        return candidate

    def _draw(self, source: DataSource, store: DataStore, file_name: str) -> ChartImage:
        frame = store.frame(source.name)  # DataSourceError is a ValueError that names the source
        path = self.chart_dir / file_name
        self._draw_png(path, chart_spec(source, frame))
        return ChartImage(path=path, caption=chart_caption(source), relative=f"{CHART_DIR}/{file_name}")


# --- the chart's values --------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    column: str
    label: str
    values: pd.Series


def chart_spec(source: DataSource, frame: pd.DataFrame) -> ChartSpec:
    """What the chart shows, as plain values; ValueError names the source when the data do not fit."""
    if source.chart not in ("line", "bar"):
        raise ValueError(f"data source {source.name!r}: chart must be line or bar, not {source.chart!r}")
    x, series, unit = _chart_data(source, frame)
    marked = _marked(source, frame)
    is_date = pd.api.types.is_datetime64_any_dtype(x)
    numeric = is_date or (pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x))
    if source.chart == "line" and numeric:
        order = x.sort_values(kind="stable").index  # a line over numbers or dates runs left to right
        x = x.loc[order]
        series = [replace(item, values=item.values.loc[order]) for item in series]
        marked = marked.loc[order] if marked is not None else None
    if source.chart == "bar" or not numeric:
        x_kind = "category"
    elif is_date:
        x_kind = "datetime"
    else:
        x_kind = "integer" if pd.api.types.is_integer_dtype(x) else "number"
    if x_kind == "datetime":
        moments = x.dt.tz_convert(None) if getattr(x.dt, "tz", None) is not None else x
        values: tuple[Any, ...] = tuple(str(v.isoformat()) if not pd.isna(v) else None for v in moments)
    elif x_kind == "category":
        values = tuple(str(v) for v in x)
    else:
        values = tuple(v.item() if hasattr(v, "item") else v for v in x)
    labels = tuple(_category_label(v) for v in x) if source.chart == "bar" else tuple(str(v) for v in x)
    ylabel = source.unit or unit or (series[0].label if len(series) == 1 else "")
    return ChartSpec(
        kind=source.chart, title=table_title(source), x_label=column_label(source, source.x or ""), y_label=ylabel,
        x_kind=x_kind,
        x=values, x_labels=labels if x_kind == "category" else (),
        series=tuple((item.label, tuple(float(v) for v in item.values)) for item in series),
        shaded=tuple(i for i, hit in enumerate(marked) if hit) if marked is not None else (),
        shade_label=readable_name(source.shade[1]) if source.shade else "",
    )


def _marked(source: DataSource, frame: pd.DataFrame) -> pd.Series | None:
    """Which rows the sheet's `shade` (column, value) marks, aligned with the frame."""
    if not source.shade:
        return None
    column, value = source.shade
    if column not in frame.columns:
        raise ValueError(f"data source {source.name!r}: shade column {column!r} is not in the table")
    return frame[column].astype("string").str.strip().eq(value).fillna(False)


def chart_figure(source: DataSource, frame: pd.DataFrame) -> Figure:
    """The chart as a Figure (no pyplot); ValueError names the source when the data do not fit.

    Call it under `drawlock.DRAW_LOCK` when other threads may draw (draw_chart_png does).
    """
    return spec_figure(chart_spec(source, frame))


def _chart_data(source: DataSource, frame: pd.DataFrame) -> tuple[pd.Series, list[_Series], str]:
    """(x values, one series per y column, unit for the y axis); checks every column."""
    where = f"data source {source.name!r}"
    if not source.x or not source.y:
        raise ValueError(f"{where}: a chart needs an x column and at least one y column")
    missing = [c for c in (source.x, *source.y) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: chart column {missing[0]!r} is not in the table "
            f"(it has: {', '.join(map(str, frame.columns))})"
        )
    if frame.empty:
        raise ValueError(f"{where}: the table has no rows to chart (check its filter)")
    x = _x_values(frame[source.x])
    repeated = x[x.duplicated()]
    if len(repeated):
        raise ValueError(
            f"{where}: x column {source.x!r} repeats {repeated.iloc[0]!r}; a chart needs one row per "
            "x value (filter the source, e.g. by country)"
        )
    labels, unit = _labels(source.y)
    labels = [dict(source.labels).get(column, label) for column, label in zip(source.y, labels)]
    series = [_Series(c, label, _y_values(frame[c], where, c)) for c, label in zip(source.y, labels)]
    return x, series, unit


def _x_values(column: pd.Series) -> pd.Series:
    """Whole-number floats become ints (years stay 2024, not 2024.0)."""
    if pd.api.types.is_float_dtype(column):
        values = column.dropna()
        if len(values) == len(column) and bool((values == values.round()).all()):
            return column.astype("int64")
    return column


def _y_values(column: pd.Series, where: str, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        raise ValueError(f"{where}: chart y column {name!r} holds TRUE/FALSE, not numbers")
    numbers = pd.to_numeric(column, errors="coerce")
    bad = column[numbers.isna() & column.notna() & (column.astype("string").str.strip() != "")]
    if len(bad):
        raise ValueError(f"{where}: chart y column {name!r} is not numeric (it holds {str(bad.iloc[0])!r})")
    if numbers.isna().all():
        raise ValueError(f"{where}: chart y column {name!r} is empty")
    return numbers.astype("float64")


def _labels(columns: Sequence[str]) -> tuple[list[str], str]:
    """Legend labels without the unit tail they share, and that unit for the y axis.

    `germany_eur_mwh, france_eur_mwh` -> (["Germany", "France"], "EUR/MWh");
    `coal, gas` -> (["Coal", "Gas"], ""). A single column keeps its name in full.
    """
    words = [re.split(r"[_\s]+", str(c).strip().lower()) for c in columns]
    tail = 0
    while all(len(w) > tail + 1 for w in words) and len({w[-1 - tail] for w in words}) == 1:
        if words[0][-1 - tail] not in _UNITS:
            break
        tail += 1
    if tail == 0 or len(columns) == 1:
        return [readable_name(c) for c in columns], ""
    labels = [readable_name(" ".join(w[:-tail])) for w in words]
    return labels, _unit_text(words[0][-tail:])


def _unit_text(words: Sequence[str]) -> str:
    """`eur mwh` -> EUR/MWh, `bn eur` -> bn EUR, `pct` -> %."""
    out = _UNITS[words[0]]
    for before, word in zip(words, words[1:]):
        out += ("/" if before in _CURRENCIES else " ") + _UNITS[word]
    return out




def _category_label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else str(value)
    return str(value)
