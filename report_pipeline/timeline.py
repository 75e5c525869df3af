"""A run's timeline: every step of every task on the worker thread that ran it, as a Gantt chart.

`timeline_data()` turns results into bars (pure, testable without a figure);
`write_timeline()` draws them to a PNG. Rows are worker threads in natural order
(task_0, task_1, ..., task_10), x is seconds since the first task started, and
colour is the objective. What each bar means:

- a call that succeeded: one bar per `CallRecord`, from its start to its finish,
  in the objective's colour, lighter for refine and lighter still for check;
- the step a task failed on: a failed call leaves no `CallRecord`, so its bar runs
  from the end of the task's last successful call (or the task's start) to the
  task's finish, on the task's thread, with `failed=True`: that is the time the
  thread spent on the failing call and its retries. A failure with no time on a
  thread (an error that escaped the task) is a zero-width bar, drawn as an ✕;
- a skipped task never ran on any thread: it is a zero-width marker on a separate
  row, `SKIPPED_ROW`, at the moment it was settled (so a halt shows as a wall of
  markers at the halt time).

Drawing cost does not grow with the number of bars' Python calls: every bar is one
rectangle of a single `PolyCollection` with per-bar colours, so 10,000 bars are one
artist, and the figure size is capped however many threads there are.

The timeline is written when every call is done, so its drawing time is the run's
time: the margins are fitted in one measuring pass (`_fit_axes`) rather than by
matplotlib's constrained layout, which draws the whole figure an extra time first.
A run draws it in a child process (`drawing_process.py`), which imports matplotlib
and `warm_up()`s while the calls wait, and draws while the run writes its other
reports; `write_timeline()` is the same drawing in the caller's process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .drawlock import DRAW_LOCK
from .models import STEP_NAMES, TaskResult
from .writers import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = ["ROW_LABEL_GID", "SKIPPED_ROW", "Bar", "draw_timeline_png", "natural_key", "timeline_data", "timeline_figure", "warm_up", "write_timeline"]

SKIPPED_ROW = "(skipped)"  # the row of tasks that never ran
NO_THREAD = "(no thread)"  # a failure recorded without a thread name
ROW_LABEL_GID = "timeline-row-label"  # the gid of the Text artists naming the rows (see _draw_row_labels)

_WIDTH_IN = 12.0
_DPI = 100  # the figure's and the PNG's: one renderer measures and draws (see _fit_axes)
_PAD_IN = 3 / 72  # space around the figure's contents, as constrained layout leaves
# zlib level 1: the PNG is a fifth larger (about 120 kB at 100 tasks) and encodes in two thirds
# of the time of the default level 6; the pixels are the same
_PNG_OPTIONS = {"compress_level": 1}
_ROW_IN = 0.28
_MIN_HEIGHT_IN = 3.0
_MAX_HEIGHT_IN = 18.0
_MAX_ROW_LABELS = 60  # beyond this, label every k-th row so names stay legible
_MAX_LEGEND = 20
_FAILED_EDGE = "#d62728"
# later steps of a chain are lighter shades of their objective's colour
_STEP_SHADE = {"generate": 0.0, "refine": 0.35, "check": 0.6}


@dataclass(frozen=True)
class Bar:
    """One step of one task on one thread; times in seconds since the run's first start."""

    task: str  # OBJ.TASK
    objective_id: str
    step: str  # generate, refine, check; "" for a skipped task
    thread: str  # worker thread name, or SKIPPED_ROW
    start: float
    end: float
    failed: bool = False  # the step the task failed on
    skipped: bool = False  # the task never ran: a zero-width marker

    @property
    def duration(self) -> float:
        return self.end - self.start


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort `task_2` before `task_10`: digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def timeline_data(results: Sequence[TaskResult]) -> list[Bar]:
    """Bars for every call, failed step and skipped task, in the order of `results`.

    Times are relative to the earliest start among all calls and tasks, so the
    first bar starts at 0 whatever clock the run used.
    """
    origin = _origin(results)
    if origin is None:
        return []
    bars: list[Bar] = []
    for result in results:
        bars.extend(_bars_of(result, origin))
    return bars


def _origin(results: Sequence[TaskResult]) -> float | None:
    starts = [r.started_at for r in results if r.started_at]
    starts += [c.started_at for r in results for c in r.calls if c.started_at]
    return min(starts) if starts else None


def _bars_of(result: TaskResult, origin: float) -> list[Bar]:
    key, objective = result.key, result.objective_id
    if result.status == "skipped":
        at = (result.finished_at or result.started_at or origin) - origin
        return [Bar(key, objective, "", SKIPPED_ROW, at, at, skipped=True)]
    bars = [
        Bar(key, objective, c.step, c.thread or result.thread or NO_THREAD,
            c.started_at - origin, max(c.started_at, c.finished_at) - origin)
        for c in result.calls
    ]
    if result.status == "failed":
        bars.append(_failed_step(result, origin))
    return bars


def _failed_step(result: TaskResult, origin: float) -> Bar:
    """The bar of the step a task failed on, which has no CallRecord of its own."""
    steps = result.steps or STEP_NAMES[:1]
    step = steps[len(result.calls)] if len(result.calls) < len(steps) else steps[-1]
    last = result.calls[-1].finished_at if result.calls else 0.0
    start = last or result.started_at or result.finished_at or origin
    end = max(start, result.finished_at or start)
    return Bar(result.key, result.objective_id, step, result.thread or NO_THREAD,
               start - origin, end - origin, failed=True)


# -- drawing -----------------------------------------------------------------------


def write_timeline(
    path: Path,
    results: Sequence[TaskResult],
    *,
    title: str,
    objective_titles: Mapping[str, str] | None = None,
) -> list[Bar]:
    """Draw the run's timeline to a PNG at `path` (atomically) and return the bars drawn.

    `objective_titles` (id -> chapter title) makes the legend readable; without it
    the legend shows ids.
    """
    bars = timeline_data(results)
    draw_timeline_png(path, bars, title=title, objective_titles=objective_titles)
    return bars


def draw_timeline_png(
    path: Path, bars: Sequence[Bar], *, title: str, objective_titles: Mapping[str, str] | None = None
) -> None:
    """The bars to a PNG at `path`, atomically (the half a run and drawing_process share)."""
    with DRAW_LOCK, atomic_path(path) as tmp:
        figure = timeline_figure(bars, title=title, objective_titles=objective_titles)
        figure.savefig(tmp, format="png", dpi=_DPI, pil_kwargs=_PNG_OPTIONS)


# Every printable ASCII character, so that warm_up() renders each glyph a real timeline may use.
_WARM_TEXT = "".join(chr(c) for c in range(33, 127)).replace("$", "")


def warm_up() -> None:
    """Import matplotlib and draw a small timeline of every kind of bar into memory, and throw it away.

    A run draws its timeline after the last call, when the ~0.5 s of importing matplotlib,
    reading its font cache and loading the font would count against the run, and a first
    drawing costs a third more than the next (legend, markers, each glyph at each size drawn
    once). Called while the calls wait on the network (by `drawing_process`'s child), it
    pays all that in time that is otherwise spent waiting.
    """
    bars = [
        Bar("A.T1", "A", "generate", "task_0", 0.0, 1.0),
        Bar("A.T1", "A", "refine", "task_0", 1.0, 2.0),
        Bar("B.T1", "B", "check", "task_1", 0.5, 1.5, failed=True),
        Bar("B.T2", "B", "", SKIPPED_ROW, 2.0, 2.0, skipped=True),
    ]
    with DRAW_LOCK:
        figure = timeline_figure(bars, title=_WARM_TEXT, objective_titles={"A": _WARM_TEXT, "B": _WARM_TEXT})
        for size in (8, 9, 11):
            figure.text(0.0, 0.0, _WARM_TEXT, fontsize=size)
        figure.savefig(io.BytesIO(), format="png", dpi=_DPI, pil_kwargs=_PNG_OPTIONS)


def timeline_figure(
    bars: Sequence[Bar],
    *,
    title: str,
    objective_titles: Mapping[str, str] | None = None,
) -> Figure:
    """The Gantt chart as a matplotlib Figure, without pyplot (no global state, no display).

    matplotlib is imported here, not at module load, so runs that never draw a
    timeline do not pay for it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = _rows(bars)
    row_of = {name: i for i, name in enumerate(rows)}
    objectives = list(dict.fromkeys(b.objective_id for b in bars))
    colour_of = _colours(objectives)
    height = min(_MAX_HEIGHT_IN, max(_MIN_HEIGHT_IN, 1.6 + _ROW_IN * len(rows)))
    figure = Figure(figsize=(_WIDTH_IN, height), dpi=_DPI)
    FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no backend lookup, no display
    ax = figure.add_subplot()

    _draw_bars(ax, bars, row_of, colour_of)
    _draw_markers(ax, bars, row_of)

    row_labels = _draw_row_labels(ax, rows)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first thread at the top
    if not bars:
        ax.text(0.5, 0.5, "no task ran", transform=ax.transAxes, ha="center", va="center", color="0.4")
    span = max((b.end for b in bars), default=0.0)
    ax.set_xlim(0, span * 1.02 if span > 0 else 1.0)
    ax.set_xlabel("seconds since the first task started")
    ax.set_ylabel("worker thread")
    ax.grid(axis="x", linestyle=":", linewidth=0.5, alpha=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title, loc="left", fontsize=11)
    subtitle = figure.suptitle(_subtitle(bars, rows), x=0.99, ha="right", va="top", fontsize=8, color="0.35")

    handles: list[Patch | Line2D] = []
    if len(objectives) <= _MAX_LEGEND:
        names = objective_titles or {}
        handles += [
            Patch(facecolor=colour_of[o], label=_short(f"{o} {names[o]}" if o in names else o)) for o in objectives
        ]
    steps = [s for s in _STEP_SHADE if any(b.step == s for b in bars)]
    if len(steps) > 1:
        handles += [Patch(facecolor=_shade((0.35, 0.35, 0.35, 1.0), s), label=s) for s in steps]
    if any(b.failed for b in bars):
        handles.append(Patch(facecolor="white", edgecolor=_FAILED_EDGE, linewidth=1.5, label="failed step (✕)"))
    if any(b.skipped for b in bars):
        handles.append(Line2D([], [], color="0.4", marker="|", linestyle="", markersize=10, label="skipped task"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    _fit_axes(figure, ax, subtitle, row_labels)
    return figure


def _row_labels(rows: Sequence[str]) -> list[tuple[int, str]]:
    """(row, label) of the rows that are named: all of them up to `_MAX_ROW_LABELS`, beyond that
    every k-th row so names stay legible, and the skipped row always."""
    step = max(1, -(-len(rows) // _MAX_ROW_LABELS))
    return [(i, name) for i, name in enumerate(rows) if i % step == 0 or name == SKIPPED_ROW]


def _draw_row_labels(ax: Axes, rows: Sequence[str]) -> list[Text]:
    """The rows' names and tick marks, drawn as a y axis' ticks would look, without its ticks.

    matplotlib makes a `Tick` (two lines, two texts, a grid line) per y tick, lays out and
    measures each, which cost the most of the whole drawing at 50 threads. Here the tick marks
    are one `Line2D` of tick markers and each name is one plain `Text` at the tick label's place
    (the tick's length plus its pad to the left of the frame, in the tick labels' alignment);
    the names are left out of the axes' tight bbox and measured once in `_fit_axes`.
    """
    from matplotlib import rcParams
    from matplotlib.lines import Line2D
    from matplotlib.markers import TICKLEFT

    ax.set_yticks([])
    if not rows:
        return []
    size, pad = rcParams["ytick.major.size"], rcParams["ytick.major.pad"]
    tick_transform = ax.get_yaxis_transform(which="tick1")  # x in axes coordinates, y in rows
    ax.add_line(Line2D(
        [0.0] * len(rows), range(len(rows)), transform=tick_transform, linestyle="", marker=TICKLEFT,
        markersize=size, markeredgewidth=rcParams["ytick.major.width"], color=rcParams["ytick.color"],
        clip_on=False, zorder=2.5,
    ))
    transform, va, ha = ax.get_yaxis_text1_transform(size + pad)
    colour = rcParams["ytick.labelcolor"]
    colour = rcParams["ytick.color"] if colour == "inherit" else colour
    labels = []
    for row, name in _row_labels(rows):
        label = ax.text(0.0, row, name, transform=transform, ha=ha, va=va, fontsize=8, color=colour, clip_on=False,
                        gid=ROW_LABEL_GID)
        label.set_in_layout(False)  # measured in _fit_axes, not by get_tightbbox
        labels.append(label)
    return labels


def _fit_axes(figure: Figure, ax: Axes, subtitle: Text, row_labels: Sequence[Text] = ()) -> None:
    """Place the axes so its labels, title and legend just fit, the subtitle above them.

    What constrained layout would do, in one pass: measure how far the axes' decorations
    reach beyond its frame (they do not depend on the frame's size, bar the legend's 0.5 %
    offset: under a pixel), then size the frame to leave exactly that room, with a 3 pt pad
    around it all and on either side of the subtitle. The text measured here is drawn with
    the same renderer, so its layout is not worked out twice. The row names (plain texts, not
    ticks: see `_draw_row_labels`) are measured apart, all at once, and the y label is moved
    out past them as matplotlib would move it past tick labels.
    """
    from matplotlib import rcParams

    width, height = figure.bbox.width, figure.bbox.height
    pad = _PAD_IN * figure.dpi
    renderer = figure.canvas.get_renderer()
    subtitle.set_y(1.0 - pad / height)
    top = subtitle.get_window_extent(renderer).height + 2 * pad
    frame = ax.get_window_extent(renderer)
    # the row names reach this far left of the frame, whatever its size: their offset is in points;
    # the y label goes that much further out, as it would beyond tick labels
    names = _names_reach(figure, renderer, row_labels, frame.x0)
    ax.yaxis.labelpad = rcParams["axes.labelpad"] + names * 72 / figure.dpi
    reach = ax.get_tightbbox(renderer)
    left = pad + frame.x0 - min(reach.x0, frame.x0 - names)
    right = width - pad - (reach.x1 - frame.x1)
    bottom = pad + frame.y0 - reach.y0
    upper = height - top - pad - (reach.y1 - frame.y1)
    ax.set_position([left / width, bottom / height, max(right - left, 1.0) / width, max(upper - bottom, 1.0) / height])


def _names_reach(figure: Figure, renderer, row_labels: Sequence[Text], frame_x0: float) -> float:
    """How far, in pixels, the right-aligned row names reach left of the axes' frame.

    All names are measured at once as the lines of one text (its width is the widest line's);
    the renderer keeps each line's metrics, so drawing the names does not measure them again.
    A name that matplotlib would read as math is measured on its own, as it is drawn.
    """
    from matplotlib.text import Text

    if not row_labels:
        return 0.0
    prop = row_labels[0].get_fontproperties()
    plain = [t.get_text() for t in row_labels if t.get_text().count("$") < 2]
    widest = Text(text="\n".join(plain), fontproperties=prop, figure=figure).get_window_extent(renderer).width
    widest = max([widest, *(t.get_window_extent(renderer).width for t in row_labels if t.get_text().count("$") >= 2)])
    anchor = row_labels[0].get_transform().transform((0.0, 0.0))[0]  # where the names end, right-aligned
    return frame_x0 - anchor + widest


def _rows(bars: Sequence[Bar]) -> list[str]:
    threads = sorted({b.thread for b in bars if not b.skipped}, key=natural_key)
    return threads + ([SKIPPED_ROW] if any(b.skipped for b in bars) else [])


def _colours(objectives: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """A qualitative palette in objective order; past 20 objectives the colours repeat."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(objectives) <= 10 else "tab20"].colors
    return {o: (*palette[i % len(palette)][:3], 1.0) for i, o in enumerate(objectives)}


def _draw_bars(ax, bars: Sequence[Bar], row_of: dict[str, int], colour_of: dict[str, tuple]) -> None:
    """Every bar a rectangle 0.8 rows high of one `PolyCollection`, with per-bar face and edge
    colours: one artist however many bars and threads (bars on one row never overlap)."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    drawn = [b for b in bars if not b.skipped]
    if not drawn:
        return
    x0 = np.array([b.start for b in drawn])
    x1 = np.array([b.end for b in drawn])
    rows = np.array([row_of[b.thread] for b in drawn], dtype=float)
    y0, y1 = rows - 0.4, rows + 0.4
    # the corners in broken_barh's order: bottom left, top left, top right, bottom right
    corners = np.stack([np.stack([x0, y0], 1), np.stack([x0, y1], 1), np.stack([x1, y1], 1), np.stack([x1, y0], 1)], 1)
    shade_of = {key: _shade(colour_of[key[0]], key[1]) for key in {(b.objective_id, b.step) for b in drawn}}
    failed = any(b.failed for b in drawn)
    ax.add_collection(PolyCollection(
        corners,
        facecolors=[shade_of[b.objective_id, b.step] for b in drawn],
        # one edge for all bars when none failed: matplotlib scales a list of widths bar by bar
        edgecolors=[_FAILED_EDGE if b.failed else "none" for b in drawn] if failed else "none",
        linewidths=[1.5 if b.failed else 0.0 for b in drawn] if failed else 0.0,
    ))


def _shade(colour: tuple, step: str) -> tuple[float, float, float, float]:
    """Mix the objective's colour with white by step, so a chain reads left to right."""
    mix = _STEP_SHADE.get(step, 0.0)
    return (*(c + (1.0 - c) * mix for c in colour[:3]), 1.0)


def _draw_markers(ax, bars: Sequence[Bar], row_of: dict[str, int]) -> None:
    """An ✕ at the end of each failed step and a tick per skipped task: one scatter each."""
    failed = [b for b in bars if b.failed]
    if failed:
        ax.scatter([b.end for b in failed], [row_of[b.thread] for b in failed],
                   marker="x", s=28, color=_FAILED_EDGE, linewidths=1.5, zorder=3)
    skipped = [b for b in bars if b.skipped]
    if skipped:
        ax.scatter([b.start for b in skipped], [row_of[SKIPPED_ROW]] * len(skipped),
                   marker="|", s=60, color="0.4", linewidths=1.0, zorder=3)


def _subtitle(bars: Sequence[Bar], rows: Sequence[str]) -> str:
    tasks = {b.task for b in bars}
    calls = sum(1 for b in bars if not b.skipped and not b.failed)
    threads = sum(1 for r in rows if r != SKIPPED_ROW)
    failed = len({b.task for b in bars if b.failed})
    skipped = sum(1 for b in bars if b.skipped)
    span = max((b.end for b in bars), default=0.0)
    return (
        f"{len(tasks)} tasks, {calls} calls on {threads} threads; {failed} failed, {skipped} skipped; "
        f"{span:.1f} s"
    )


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
