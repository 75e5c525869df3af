"""A chart as plain values (`ChartSpec`), and drawing it: no pandas, so a child process can.

charts.py reads a data source with pandas and checks its columns; what it hands on is
a `ChartSpec`: the x values in drawing order, one list of numbers per y column, and
the labels. The spec travels as JSON to the drawing process (drawing_process.py), which
draws on the machine's other core with matplotlib and never imports pandas; a run
without that process draws the same spec here. One spec gives the same PNG either way.

Drawing uses `matplotlib.figure.Figure` with the Agg canvas, never pyplot: pyplot
keeps every figure in global state (and leaks them unless closed). matplotlib is not
thread-safe, so drawing and saving happen under `DRAW_LOCK`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_path
from .drawlock import DRAW_LOCK

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "FIGSIZE_IN", "X_KINDS", "ChartSpec", "draw_chart_png", "spec_figure"]

FIGSIZE_IN = (7.0, 3.8)  # 17.8 x 9.7 cm, shown 15 cm wide: text stays at 8-9 pt on paper
DPI = 150
MAX_CATEGORY_LABELS = 16  # bar charts: beyond this, label every k-th category
FONT_SIZE = 9
_LINE_MARKERS_UP_TO = 30  # points per line: more than this and markers become clutter

#: integer (years: 2024, never 2.024e3), number, datetime (ISO text), category (text labels)
X_KINDS = ("integer", "number", "datetime", "category")


@dataclass(frozen=True)
class ChartSpec:
    """Everything a chart shows, as JSON-able values.

    `x` is in drawing order: sorted for a line over numbers or dates, sheet order
    otherwise. `x_labels` are the tick texts of a category axis (bars, or a line over
    text). Each series is (legend label, one value per x; NaN where the cell is empty).
    """

    kind: str  # "line" or "bar"
    title: str
    x_label: str
    y_label: str
    x_kind: str
    x: tuple[Any, ...]
    x_labels: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]
    shaded: tuple[int, ...] = ()  # positions (in `x`) of the rows the sheet's `shade` marks
    shade_label: str = ""  # their legend entry, e.g. "Projection"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChartSpec:
        return cls(
            kind=data["kind"], title=data["title"], x_label=data["x_label"], y_label=data["y_label"],
            x_kind=data["x_kind"], x=tuple(data["x"]), x_labels=tuple(data["x_labels"]),
            series=tuple((label, tuple(values)) for label, values in data["series"]),
            shaded=tuple(data.get("shaded", ())), shade_label=data.get("shade_label", ""),
        )


def draw_chart_png(path: Path, spec: ChartSpec) -> None:
    """The chart to a PNG at `path`, atomically (the half a run and drawing_process share)."""
    with DRAW_LOCK:
        figure = spec_figure(spec)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=DPI)


def spec_figure(spec: ChartSpec) -> Figure:
    """The chart as a Figure (no pyplot). Call it under `DRAW_LOCK` when other threads may draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if spec.kind not in ("line", "bar"):
        raise ValueError(f"chart {spec.title!r}: chart must be line or bar, not {spec.kind!r}")
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no backend lookup, no display
    ax = figure.add_subplot()
    _style_axes(ax)
    if spec.kind == "line":
        _draw_lines(ax, spec)
    else:
        _draw_bars(ax, spec)
    if spec.shaded:
        _shade(ax, spec)
    ax.set_title(spec.title, loc="left", fontsize=FONT_SIZE + 2, fontweight="bold")
    ax.set_xlabel(spec.x_label, fontsize=FONT_SIZE)
    if spec.y_label:
        ax.set_ylabel(spec.y_label, fontsize=FONT_SIZE)
    if len(spec.series) > 1 or spec.shaded:
        figure.legend(
            loc="outside lower center", ncols=min(len(spec.series), 5), frameon=False, fontsize=FONT_SIZE
        )
    return figure


def _style_axes(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", linestyle=":", linewidth=0.6, alpha=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=FONT_SIZE)


def _x_positions(spec: ChartSpec) -> Any:
    if spec.x_kind == "datetime":
        import numpy as np

        return np.array(spec.x, dtype="datetime64[ns]")
    if spec.x_kind == "category":
        return range(len(spec.x))
    return list(spec.x)


def _draw_lines(ax: Axes, spec: ChartSpec) -> None:
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    positions = _x_positions(spec)
    marker = "o" if len(spec.x) <= _LINE_MARKERS_UP_TO else None
    for label, values in spec.series:
        ax.plot(positions, values, label=label, linewidth=2, marker=marker, markersize=3)
    if all(value >= 0 for _, values in spec.series for value in values if not math.isnan(value)):
        ax.set_ylim(bottom=0)  # quantities read against zero, as the bars do
    if spec.x_kind == "integer":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}"))  # 2024, never 2.024e3 or 2,024
    elif spec.x_kind == "category":
        _category_ticks(ax, spec.x_labels)


def _draw_bars(ax: Axes, spec: ChartSpec) -> None:
    """Grouped bars, one group per x value, one bar per y column, in sheet row order."""
    count = len(spec.series)
    width = 0.8 / count
    for number, (label, values) in enumerate(spec.series):
        offset = (number - (count - 1) / 2) * width
        ax.bar([i + offset for i in range(len(spec.x))], values, width=width, label=label)
    _category_ticks(ax, spec.x_labels)
    ax.set_xlim(-0.6, len(spec.x) - 0.4)


def _shade(ax: Axes, spec: ChartSpec) -> None:
    """A grey band behind each run of marked rows (projections after history), half a step either
    side, and one legend entry for them."""
    positions = list(_x_positions(spec)) if spec.kind == "line" else list(range(len(spec.x)))
    if spec.x_kind == "datetime" and spec.kind == "line":
        import matplotlib.dates as mdates

        positions = [float(mdates.date2num(p)) for p in positions]
    runs: list[list[int]] = []
    for index in sorted(spec.shaded):
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    for number, run in enumerate(runs):
        first, last = run[0], run[-1]
        left = positions[first] - _half_step(positions, first, -1)
        right = positions[last] + _half_step(positions, last, +1)
        ax.axvspan(left, right, color="#dfe4ea", alpha=0.8, zorder=0, linewidth=0,
                   label=spec.shade_label if number == 0 else None)


def _half_step(positions: Sequence[float], index: int, direction: int) -> float:
    neighbour = index + direction
    if 0 <= neighbour < len(positions):
        return abs(positions[neighbour] - positions[index]) / 2
    other = index - direction
    return abs(positions[index] - positions[other]) / 2 if 0 <= other < len(positions) else 0.5


def _category_ticks(ax: Axes, labels: Sequence[str]) -> None:
    step = max(1, -(-len(labels) // MAX_CATEGORY_LABELS))
    ax.set_xticks(range(0, len(labels), step))
    shown = list(labels[::step])
    ax.set_xticklabels(shown, fontsize=FONT_SIZE)
    if max((len(label) for label in shown), default=0) * len(shown) > 90:
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
