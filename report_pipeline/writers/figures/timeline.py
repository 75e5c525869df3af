"""A run's timeline: every step of every task on the worker thread that ran it, as a Gantt chart.

`timeline_data()` turns results into bars (pure, testable without an image);
`timeline_layout()` places them (pure: rows, scale, ticks, legend, margins);
`draw_timeline_png()` paints the layout with Pillow. Rows are worker threads in
natural order (task_0, task_1, ..., task_10), x is seconds since the first task
started, and colour is the objective. What each bar means:

- a call that succeeded: one bar per `CallRecord`, from its start to its finish,
  in the objective's colour, lighter for refine and lighter still for check;
- the step a task failed on: a failed call leaves no `CallRecord`, so its bar runs
  from the end of the task's last successful call (or the task's start) to the
  task's finish, on the task's thread, with `failed=True`, a red edge and an ✕ at
  its end: that is the time the thread spent on the failing call and its retries.
  A failure with no time on a thread (an error that escaped the task) is just the ✕;
- a skipped task never ran on any thread: it is a grey tick on a separate row,
  `SKIPPED_ROW`, at the moment it was settled (so a halt shows as a wall of ticks
  at the halt time).

Why Pillow and not matplotlib: the timeline is drawn after the last call, so its
drawing time is the run's. matplotlib spent 0.2 s on 100 tasks (artists, layout,
a text engine, then the PNG) after every optimisation; painting rectangles and
about a hundred short texts straight into an image costs a tenth of that, most
of it the PNG encoding, and a run without data charts never imports matplotlib.
The look is matplotlib's (its palette, DejaVu Sans, a frame with ticks and a
dotted grid), and the figure size is capped however many threads there are.
A run draws it in its drawing process (`drawing_process.py`) while it writes its
other reports; `write_timeline()` is the same drawing in the caller's process.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...models import STEP_NAMES, TaskResult
from .. import atomic_path
from .drawlock import DRAW_LOCK

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "NO_THREAD",
    "SKIPPED_ROW",
    "Bar",
    "TimelineLayout",
    "draw_timeline_png",
    "natural_key",
    "timeline_data",
    "timeline_layout",
    "warm_up",
    "write_timeline",
]

SKIPPED_ROW = "(skipped)"  # the row of tasks that never ran
NO_THREAD = "(no thread)"  # a failure recorded without a thread name

_DPI = 100  # pixels per inch: sizes below are in inches and points, as a figure's would be
_WIDTH_IN = 12.0
_ROW_IN = 0.28
_MIN_HEIGHT_IN = 3.0
_MAX_HEIGHT_IN = 18.0
_MAX_ROW_LABELS = 60  # beyond this, label every k-th row so names stay legible
_MAX_LEGEND = 20  # objectives named in the legend; beyond, only the steps and marks are
_LEGEND_CHARS = 32  # a legend entry is cut to this many characters
# zlib level 1: the PNG is a fifth larger than at the default level 6 and encodes in two thirds
# of the time; the pixels are the same
_PNG_OPTIONS = {"compress_level": 1}
_FAILED_EDGE = (214, 39, 40)
_SKIPPED_MARK = (102, 102, 102)
_TEXT = (0, 0, 0)
_SUBTLE_TEXT = (89, 89, 89)
_GRID = (190, 190, 190)
_BACKGROUND = (255, 255, 255)
# later steps of a chain are lighter shades of their objective's colour
_STEP_SHADE = {"generate": 0.0, "refine": 0.35, "check": 0.6}
# matplotlib's tab10 and tab20 palettes (their RGB values), so the colours match the data charts
_TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
_TAB20 = ((31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44),
          (152, 223, 138), (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213),
          (140, 86, 75), (196, 156, 148), (227, 119, 194), (247, 182, 210), (127, 127, 127),
          (199, 199, 199), (188, 189, 34), (219, 219, 141), (23, 190, 207), (158, 218, 229))
# font sizes in points, as matplotlib's defaults for these texts
_TITLE_PT, _LABEL_PT, _TICK_PT, _SMALL_PT = 11, 10, 10, 8
_PAD = 4  # pixels around the picture's contents and between its parts
_TICK = 5  # tick mark length, pixels
# control characters, and every line or paragraph break: Pillow's text layout (raqm) fails on
# a paragraph separator (\r, \x1c-\x1e, \x85, \u2029) inside a line
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

RGB = tuple[int, int, int]


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
    with DRAW_LOCK:
        image = timeline_image(bars, title=title, objective_titles=objective_titles)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", **_PNG_OPTIONS)


def warm_up() -> None:
    """Load Pillow and the fonts and paint a small timeline of every kind of bar in memory.

    The drawing process calls it while the calls wait on the network, so the run's
    last moments do not pay for importing Pillow, reading the font files or the first
    use of each glyph size.
    """
    bars = [
        Bar("A.T1", "A", "generate", "task_0", 0.0, 1.0),
        Bar("A.T1", "A", "refine", "task_0", 1.0, 2.0),
        Bar("B.T1", "B", "check", "task_1", 0.5, 1.5, failed=True),
        Bar("B.T2", "B", "", SKIPPED_ROW, 2.0, 2.0, skipped=True),
    ]
    with DRAW_LOCK:
        image = timeline_image(bars, title="warm-up", objective_titles={"A": "0123456789", "B": "abcxyz"})
        image.save(io.BytesIO(), format="PNG", **_PNG_OPTIONS)


# -- layout (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class LegendEntry:
    """One line of the legend: how its key is drawn ("patch", "failed", "skipped") and its text."""

    kind: str
    label: str
    colour: RGB


@dataclass(frozen=True)
class TimelineLayout:
    """Where everything goes, in pixels (y down): testable without painting."""

    width: int
    height: int
    frame: tuple[int, int, int, int]  # left, top, right, bottom of the plotting area
    rows: tuple[str, ...]  # top to bottom
    labelled_rows: tuple[tuple[int, str], ...]  # (row, name) of the rows whose name is drawn
    x_max: float  # seconds at the frame's right edge
    x_ticks: tuple[tuple[float, str], ...]
    legend: tuple[LegendEntry, ...]
    colours: Mapping[str, RGB]  # objective -> colour
    title: str
    subtitle: str
    empty: bool  # nothing ran: "no task ran" in the frame

    def x(self, seconds: float) -> float:
        left, _, right, _ = self.frame
        return left + (right - left) * seconds / self.x_max

    def row_y(self, row: int) -> float:
        """The centre of row `row`."""
        _, top, _, bottom = self.frame
        return top + (bottom - top) * (row + 0.5) / max(len(self.rows), 1)

    @property
    def row_height(self) -> float:
        _, top, _, bottom = self.frame
        return (bottom - top) / max(len(self.rows), 1)


def timeline_layout(
    bars: Sequence[Bar], *, title: str, objective_titles: Mapping[str, str] | None = None
) -> TimelineLayout:
    """Place the chart: rows, x scale and ticks, legend, and margins fitted to the texts' sizes."""
    rows = tuple(_rows(bars))
    objectives = list(dict.fromkeys(b.objective_id for b in bars))
    colours = _colours(objectives)
    height_in = min(_MAX_HEIGHT_IN, max(_MIN_HEIGHT_IN, 1.6 + _ROW_IN * len(rows)))
    width, height = round(_WIDTH_IN * _DPI), round(height_in * _DPI)
    small, label, tick, big = (_font(pt) for pt in (_SMALL_PT, _LABEL_PT, _TICK_PT, _TITLE_PT))
    labelled = tuple(_row_labels(rows))
    legend = tuple(_legend(bars, objectives, colours, objective_titles or {}))
    span = max((b.end for b in bars), default=0.0)
    x_max = span * 1.02 if span > 0 else 1.0

    names_width = max((_text_width(name, small) for _, name in labelled), default=0)
    left = _PAD + _line_height(label) + _PAD + names_width + _PAD + _TICK
    legend_width = max((_text_width(e.label, small) for e in legend), default=0)
    right = width - _PAD - (legend_width + _LEGEND_KEY + 2 * _PAD if legend else 0) - _PAD
    top = _PAD + _line_height(small) + _PAD + _line_height(big) + _PAD
    bottom = height - _PAD - _line_height(label) - _PAD - _line_height(tick) - _TICK
    frame = (round(left), round(top), round(max(right, left + 1)), round(max(bottom, top + 1)))
    ticks = _x_ticks(x_max, frame[2] - frame[0], tick)
    return TimelineLayout(
        width=width, height=height, frame=frame, rows=rows, labelled_rows=labelled, x_max=x_max,
        x_ticks=ticks, legend=legend, colours=colours, title=_one_line(title),
        subtitle=_subtitle(bars, rows), empty=not bars,
    )


_LEGEND_KEY = 22  # the width of a legend entry's colour patch


def _rows(bars: Sequence[Bar]) -> list[str]:
    threads = sorted({b.thread for b in bars if not b.skipped}, key=natural_key)
    return threads + ([SKIPPED_ROW] if any(b.skipped for b in bars) else [])


def _row_labels(rows: Sequence[str]) -> list[tuple[int, str]]:
    """(row, label) of the rows that are named: all of them up to `_MAX_ROW_LABELS`, beyond that
    every k-th row so names stay legible, and the skipped row always."""
    step = max(1, -(-len(rows) // _MAX_ROW_LABELS))
    return [(i, _short(_one_line(name))) for i, name in enumerate(rows) if i % step == 0 or name == SKIPPED_ROW]


def _colours(objectives: Sequence[str]) -> dict[str, RGB]:
    """A qualitative palette in objective order; past 20 objectives the colours repeat."""
    palette = _TAB10 if len(objectives) <= 10 else _TAB20
    return {o: palette[i % len(palette)] for i, o in enumerate(objectives)}


def _shade(colour: RGB, step: str) -> RGB:
    """Mix the objective's colour with white by step, so a chain reads left to right."""
    mix = _STEP_SHADE.get(step, 0.0)
    return tuple(round(c + (255 - c) * mix) for c in colour)  # type: ignore[return-value]


def _legend(
    bars: Sequence[Bar], objectives: Sequence[str], colours: Mapping[str, RGB], names: Mapping[str, str]
) -> list[LegendEntry]:
    entries = []
    if len(objectives) <= _MAX_LEGEND:
        entries += [
            LegendEntry("patch", _short(_one_line(f"{o} {names[o]}" if o in names else o), _LEGEND_CHARS), colours[o])
            for o in objectives
        ]
    steps = [s for s in _STEP_SHADE if any(b.step == s for b in bars)]
    if len(steps) > 1:
        entries += [LegendEntry("patch", s, _shade((89, 89, 89), s)) for s in steps]
    if any(b.failed for b in bars):
        entries.append(LegendEntry("failed", "failed step (✕)", _FAILED_EDGE))
    if any(b.skipped for b in bars):
        entries.append(LegendEntry("skipped", "skipped task", _SKIPPED_MARK))
    return entries


def _x_ticks(x_max: float, frame_width: int, font: ImageFont.FreeTypeFont) -> tuple[tuple[float, str], ...]:
    """Round values (1, 2, 2.5 or 5 times a power of ten) across [0, x_max], their labels not
    crowding each other: as matplotlib's default locator picks them."""
    widest = _text_width(f"{x_max:.2f}", font) + 2 * _PAD
    most = max(2, min(10, frame_width // max(widest, 1)))
    raw = x_max / most
    power = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), 10 * power)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (1 if round(step / power, 6) == 2.5 else 0))
    count = math.floor(x_max / step + 1e-9)
    return tuple((i * step, f"{i * step:.{decimals}f}") for i in range(count + 1))


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


def _one_line(text: str) -> str:
    """Control characters and line and paragraph breaks become spaces: every text here is one line."""
    return _CONTROL.sub(" ", text).strip()


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- painting ------------------------------------------------------------------------


def timeline_image(
    bars: Sequence[Bar], *, title: str, objective_titles: Mapping[str, str] | None = None
) -> Image.Image:
    """The chart as an RGB Pillow image: the layout, painted back to front."""
    from PIL import Image, ImageDraw

    layout = timeline_layout(bars, title=title, objective_titles=objective_titles)
    image = Image.new("RGB", (layout.width, layout.height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    _paint_axes(draw, layout)
    _paint_bars(draw, layout, bars)
    _paint_texts(image, draw, layout)
    return image


def _paint_axes(draw: ImageDraw.ImageDraw, layout: TimelineLayout) -> None:
    """The dotted x grid, the frame, its tick marks and the x tick labels."""
    left, top, right, bottom = layout.frame
    font = _font(_TICK_PT)
    for value, text in layout.x_ticks:
        x = round(layout.x(value))
        draw.point([(x, y) for y in range(top + 1, bottom, 3)], fill=_GRID)
        draw.line([(x, bottom), (x, bottom + _TICK)], fill=_TEXT)
        width = _text_width(text, font)
        _draw_text(draw, (x - width / 2, bottom + _TICK + 1), text, font, _TEXT)
    for row, _ in layout.labelled_rows:
        y = round(layout.row_y(row))
        draw.line([(left - _TICK, y), (left, y)], fill=_TEXT)
    draw.rectangle(layout.frame, outline=_TEXT)
    if layout.empty:
        font = _font(_LABEL_PT)
        text = "no task ran"
        _draw_text(draw, ((left + right - _text_width(text, font)) / 2, (top + bottom) / 2 - _line_height(font) / 2),
                   text, font, (102, 102, 102))


def _paint_bars(draw: ImageDraw.ImageDraw, layout: TimelineLayout, bars: Sequence[Bar]) -> None:
    """Each bar 0.8 rows high in its shade; failed steps edged in red with an ✕ at their end,
    skipped tasks a grey tick on their row. Bars on one row never overlap: no order matters."""
    row_of = {name: i for i, name in enumerate(layout.rows)}
    half = max(layout.row_height * 0.4, 0.5)
    shade_of: dict[tuple[str, str], RGB] = {}
    failed, skipped = [], []
    for bar in bars:
        if bar.skipped:
            skipped.append(bar)
            continue
        if bar.failed:
            failed.append(bar)
        key = (bar.objective_id, bar.step)
        colour = shade_of.get(key)
        if colour is None:
            colour = shade_of[key] = _shade(layout.colours[bar.objective_id], bar.step)
        y = layout.row_y(row_of[bar.thread])
        x0, x1 = layout.x(bar.start), layout.x(bar.end)
        if x1 - x0 < 1e-9 and bar.failed:
            continue  # no time on a thread: only its ✕
        draw.rectangle((round(x0), round(y - half), max(round(x0), round(x1) - 1), round(y + half) - 1), fill=colour)
    for bar in failed:
        y = layout.row_y(row_of[bar.thread])
        x0, x1 = round(layout.x(bar.start)), round(layout.x(bar.end))
        if x1 > x0:
            draw.rectangle((x0, round(y - half), max(x0, x1 - 1), round(y + half) - 1), outline=_FAILED_EDGE, width=2)
        arm = max(2, min(4, round(half)))
        cy = round(y)
        draw.line([(x1 - arm, cy - arm), (x1 + arm, cy + arm)], fill=_FAILED_EDGE, width=2)
        draw.line([(x1 - arm, cy + arm), (x1 + arm, cy - arm)], fill=_FAILED_EDGE, width=2)
    if skipped:
        y = layout.row_y(row_of[SKIPPED_ROW])
        for bar in skipped:
            x = round(layout.x(bar.start))
            draw.line([(x, round(y - half)), (x, round(y + half))], fill=_SKIPPED_MARK, width=1)


def _paint_texts(image: Image.Image, draw: ImageDraw.ImageDraw, layout: TimelineLayout) -> None:
    """Row names, axis labels, title, subtitle and legend."""
    left, top, right, bottom = layout.frame
    small, label, big = _font(_SMALL_PT), _font(_LABEL_PT), _font(_TITLE_PT)
    line = _line_height(small)
    for row, name in layout.labelled_rows:
        y = layout.row_y(row)
        _draw_text(draw, (left - _TICK - _PAD - _text_width(name, small), y - line / 2), name, small, _TEXT)
    x_label = "seconds since the first task started"
    _draw_text(draw, ((left + right - _text_width(x_label, label)) / 2, layout.height - _PAD - _line_height(label)),
               x_label, label, _TEXT)
    _paint_vertical(image, "worker thread", label, (_PAD, (top + bottom) / 2))
    title = _fitted(layout.title, big, right - left)
    _draw_text(draw, (left, top - _PAD - _line_height(big)), title, big, _TEXT)
    subtitle = _fitted(layout.subtitle, small, layout.width - 2 * _PAD)
    _draw_text(draw, (layout.width - _PAD - _text_width(subtitle, small), _PAD), subtitle, small, _SUBTLE_TEXT)
    _paint_legend(draw, layout, small)


def _paint_legend(draw: ImageDraw.ImageDraw, layout: TimelineLayout, font: ImageFont.FreeTypeFont) -> None:
    """One entry a line right of the frame, from its top; lines close up to fit the height."""
    if not layout.legend:
        return
    _, top, right, _ = layout.frame
    line = _line_height(font)
    spacing = min(line * 1.7, max(line, (layout.height - _PAD - top) / len(layout.legend)))
    x = right + 2 * _PAD
    for index, entry in enumerate(layout.legend):
        y = top + index * spacing
        middle = round(y + line / 2)
        key = (x, middle - 4, x + _LEGEND_KEY - 4, middle + 4)
        if entry.kind == "patch":
            draw.rectangle(key, fill=entry.colour)
        elif entry.kind == "failed":
            draw.rectangle(key, fill=_BACKGROUND, outline=entry.colour, width=2)
        else:
            centre = x + (_LEGEND_KEY - 4) // 2
            draw.line([(centre, middle - 5), (centre, middle + 5)], fill=entry.colour, width=1)
        _draw_text(draw, (x + _LEGEND_KEY + 2, y), entry.label, font, _TEXT)


def _paint_vertical(image: Image.Image, text: str, font: ImageFont.FreeTypeFont, at: tuple[float, float]) -> None:
    """`text` turned a quarter left, its top at x = at[0], centred on y = at[1]."""
    from PIL import Image, ImageDraw

    width, height = _text_width(text, font), _line_height(font)
    mask = Image.new("L", (width, height), 0)
    _draw_text(ImageDraw.Draw(mask), (0, 0), text, font, 255)
    mask = mask.transpose(Image.Transpose.ROTATE_90)
    image.paste(_TEXT, (round(at[0]), round(at[1] - width / 2)), mask)


def _fitted(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """`text`, cut with … to fit `width` pixels."""
    if _text_width(text, font) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _text_width(text[:middle] + "…", font) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


# -- fonts ---------------------------------------------------------------------------

_fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
_fonts_lock = threading.Lock()


def _font(points: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at `points` (at the picture's 100 px per inch), loaded once per size.

    The file is matplotlib's copy, found without importing matplotlib; Pillow's own
    default font stands in where matplotlib is not installed or the file cannot be read.
    """
    font = _fonts.get(points)
    if font is None:
        with _fonts_lock:
            font = _fonts.get(points)
            if font is None:
                font = _fonts[points] = _load_font(round(points * _DPI / 72))
    return font  # type: ignore[return-value]


def _load_font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    path = _dejavu_path()
    if path is not None:
        with contextlib.suppress(OSError, ImportError):  # unreadable, or a Pillow without FreeType
            return ImageFont.truetype(str(path), pixels)
    # FreeType's Aileron at that size; without FreeType, a fixed-size bitmap font of Latin-1 only
    return ImageFont.load_default(size=pixels)


def _dejavu_path() -> Path | None:
    import importlib.util  # here, not at the top: `import report_pipeline.writers.figures.timeline` stays cheap

    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return path
    return None


def _drawable(text: str, font: ImageFont.FreeTypeFont) -> str:
    """`text` as `font` can take it: FreeType shows a box for a glyph it lacks, but Pillow's
    bitmap font (a Pillow built without FreeType) raises on anything beyond Latin-1."""
    if hasattr(font, "getmetrics"):  # FreeType
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def _draw_text(draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, font: ImageFont.FreeTypeFont,
               fill: RGB | int) -> None:
    draw.text(at, _drawable(text, font), font=font, fill=fill)


def _text_width(text: str, font: ImageFont.FreeTypeFont) -> int:
    return math.ceil(font.getlength(_drawable(text, font)))


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    if not hasattr(font, "getmetrics"):  # the bitmap font: its cell's height
        return font.getbbox("Ag")[3]
    ascent, descent = font.getmetrics()
    return ascent + descent
