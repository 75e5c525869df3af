"""Charts of the `data` sheet's tables: one PNG per source that declares `chart`.

A source row with `chart` (line or bar), `x` and `y` becomes `charts/<slug>.png`
in the run folder, drawn once however many tasks (and threads) attach it, then
placed by the writers 15 cm wide in report.docx and linked from report.md.

Drawing uses `matplotlib.figure.Figure` with the Agg canvas, never pyplot: pyplot
keeps every figure in global state (and leaks them unless closed). matplotlib
itself is not thread-safe ("Working with threads" in its FAQ: serialise access
yourself), so drawing and saving happen under one lock for the process; charts
are few and small, so the lock costs nothing that matters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attachments import ChartImage
from .data import DataStore
from .drawlock import DRAW_LOCK
from .lazy import lazy_module
from .models import DataSource
from .writers.atomic import atomic_path
from .writers.safety import slugify

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
else:
    pd = lazy_module("pandas")

__all__ = ["CHART_DIR", "DPI", "DRAW_LOCK", "FIGSIZE_IN", "ChartRenderer", "chart_caption", "chart_figure"]

CHART_DIR = "charts"
FIGSIZE_IN = (7.0, 3.8)  # 17.8 x 9.7 cm, shown 15 cm wide: text stays at 8-9 pt on paper
DPI = 150
MAX_CATEGORY_LABELS = 16  # bar charts: beyond this, label every k-th category
_FONT_SIZE = 9
_LINE_MARKERS_UP_TO = 30  # points per line: more than this and markers become clutter


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
    """`eu_generation — coal, gas, wind by year` (writers add the "Figure N:" label)."""
    return f"{source.name} — {', '.join(source.y)} by {source.x}"


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

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
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
        with DRAW_LOCK:
            figure = chart_figure(source, frame)
            with atomic_path(path) as tmp:
                figure.savefig(tmp, format="png", dpi=DPI)
        return ChartImage(path=path, caption=chart_caption(source), relative=f"{CHART_DIR}/{file_name}")


# --- drawing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    column: str
    label: str
    values: pd.Series


def chart_figure(source: DataSource, frame: pd.DataFrame) -> Figure:
    """The chart as a Figure (no pyplot); ValueError names the source when the data do not fit.

    Call it under `DRAW_LOCK` when other threads may draw (ChartRenderer does).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if source.chart not in ("line", "bar"):
        raise ValueError(f"data source {source.name!r}: chart must be line or bar, not {source.chart!r}")
    x, series, unit = _chart_data(source, frame)
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no backend lookup, no display
    ax = figure.add_subplot()
    _style_axes(ax)
    if source.chart == "line":
        _draw_lines(ax, x, series)
    else:
        _draw_bars(ax, x, series)
    ax.set_title(source.name, loc="left", fontsize=_FONT_SIZE + 2, fontweight="bold")
    ax.set_xlabel(_human(source.x or ""), fontsize=_FONT_SIZE)
    ylabel = unit or (series[0].label if len(series) == 1 else "")
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=_FONT_SIZE)
    if len(series) > 1:
        figure.legend(
            loc="outside lower center", ncols=min(len(series), 5), frameon=False, fontsize=_FONT_SIZE
        )
    return figure


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

    `germany_eur_mwh, france_eur_mwh` -> (["germany", "france"], "EUR/MWh");
    `coal, gas` -> (["coal", "gas"], ""). A single column keeps its name in full.
    """
    words = [re.split(r"[_\s]+", str(c).strip().lower()) for c in columns]
    tail = 0
    while all(len(w) > tail + 1 for w in words) and len({w[-1 - tail] for w in words}) == 1:
        if words[0][-1 - tail] not in _UNITS:
            break
        tail += 1
    if tail == 0 or len(columns) == 1:
        return [_human(c) for c in columns], ""
    labels = [" ".join(w[:-tail]) for w in words]
    return labels, _unit_text(words[0][-tail:])


def _unit_text(words: Sequence[str]) -> str:
    """`eur mwh` -> EUR/MWh, `bn eur` -> bn EUR, `pct` -> %."""
    out = _UNITS[words[0]]
    for before, word in zip(words, words[1:]):
        out += ("/" if before in _CURRENCIES else " ") + _UNITS[word]
    return out


def _human(name: str) -> str:
    return re.sub(r"[_\s]+", " ", name).strip()


def _style_axes(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", linestyle=":", linewidth=0.6, alpha=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=_FONT_SIZE)


def _draw_lines(ax: Axes, x: pd.Series, series: list[_Series]) -> None:
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    numeric = pd.api.types.is_numeric_dtype(x) or pd.api.types.is_datetime64_any_dtype(x)
    order = x.sort_values(kind="stable").index if numeric else x.index
    positions: Any = x.loc[order] if numeric else range(len(x))
    marker = "o" if len(x) <= _LINE_MARKERS_UP_TO else None
    for item in series:
        ax.plot(positions, item.values.loc[order], label=item.label, linewidth=2, marker=marker, markersize=3)
    if all(bool((item.values.dropna() >= 0).all()) for item in series):
        ax.set_ylim(bottom=0)  # quantities read against zero, as the bars do
    if pd.api.types.is_integer_dtype(x):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}"))  # 2024, never 2.024e3 or 2,024
    elif not numeric:
        _category_ticks(ax, [str(v) for v in x])


def _draw_bars(ax: Axes, x: pd.Series, series: list[_Series]) -> None:
    """Grouped bars, one group per x value, one bar per y column, in sheet row order."""
    count = len(series)
    width = 0.8 / count
    for number, item in enumerate(series):
        offset = (number - (count - 1) / 2) * width
        ax.bar([i + offset for i in range(len(x))], item.values, width=width, label=item.label)
    _category_ticks(ax, [_category_label(v) for v in x])
    ax.set_xlim(-0.6, len(x) - 0.4)


def _category_label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else str(value)
    return str(value)


def _category_ticks(ax: Axes, labels: list[str]) -> None:
    step = max(1, -(-len(labels) // MAX_CATEGORY_LABELS))
    ax.set_xticks(range(0, len(labels), step))
    shown = labels[::step]
    ax.set_xticklabels(shown, fontsize=_FONT_SIZE)
    if max((len(label) for label in shown), default=0) * len(shown) > 90:
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
