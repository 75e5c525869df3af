"""Live progress for an interactive terminal, drawn with rich; `observer.make_observer` picks it or plain lines.

    ✓ 01 Market: 6/6 done, 41 s                      <- printed above, once per finished objective
    ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━  25%  120/480 tasks
    118 done · 5 running · 2 failed · 0 skipped    3 min elapsed · ETA 9 min · 84,210 tokens · $0.0421
      03 Grid          ━━━━━━━━━━━━━━━━━━━━  4/6  2 running  12 s
      04 Storage       ━━━━━━━━━━━━━━━━━━━━  1/9  3 running   4 s
      +188 more running

Hooks only update counters under a lock and return (they run on the scheduler
thread and the objective pool); rich's own refresh thread draws the live area a
few times a second from a snapshot, so a 10,000-task run costs a dict update per
event, and only the first `max_rows` active objectives are ever laid out.

Lock order: rich's refresh thread holds the Live lock while it asks us for the
picture, which takes our lock. So nothing here prints to the console while holding
our lock, or the two threads could each wait for the other.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..models import Objective, Task, TaskResult, Usage
from ..run.outcome import RunObserver, RunResult, WaveProgress
from ..run.plan import Plan
from ..text import format_duration

__all__ = ["LiveProgress"]

DEFAULT_MAX_ROWS = 12  # active objectives shown in the live area; the rest are "+N more running"
DEFAULT_SUMMARY_ROWS = 30  # past this many objectives, the summary lists only those with problems
_TITLE_WIDTH = 32


@dataclass
class _ObjectiveState:
    """What the live area knows about one objective; mutated only under LiveProgress._lock."""

    objective: Objective
    label: str  # "03 Grid"
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    started: float | None = None
    elapsed: float | None = None  # set when the objective finishes
    tokens: int = 0
    cost_usd: float = 0.0

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.skipped


@dataclass(frozen=True)
class _Row:
    """A snapshot of one active objective, taken under the lock and drawn outside it."""

    label: str
    settled: int
    total: int
    running: int
    failed: int
    elapsed: float
    tokens: int = 0
    cost_usd: float = 0.0


class LiveProgress(RunObserver):
    """An overall bar, one line per running objective and a summary table at the end.

    `console` is where everything is drawn (stderr by default); tests pass
    `Console(file=io.StringIO(), force_terminal=True, width=100)`. `clock` is read
    for elapsed times and the ETA.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_summary_rows: int = DEFAULT_SUMMARY_ROWS,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(stderr=True)
        self._max_rows = max_rows
        self._max_summary_rows = max_summary_rows
        self._refresh_per_second = refresh_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._plan: Plan | None = None
        self._started = 0.0
        self._objectives: dict[str, _ObjectiveState] = {}
        self._active: dict[str, None] = {}  # objective ids in the order they started: an ordered set
        self._running: set[str] = set()  # task keys started and not yet settled
        self._counts = {"done": 0, "failed": 0, "skipped": 0}
        self._tokens = 0
        self._cost = 0.0
        self._wave_line = ""  # batch mode: the wave being waited for
        self._concurrency: Callable[[], str] | None = None

    # -- hooks ----------------------------------------------------------------------

    def watch_concurrency(self, current: Callable[[], str]) -> None:
        self._concurrency = current

    def run_started(self, plan: Plan, run_dir: Path) -> None:
        width = max(2, len(str(max((o.index + 1 for o in plan.objectives), default=1))))
        with self._lock:
            self._plan = plan
            self._started = self._clock()
            self._objectives = {
                o.objective_id: _ObjectiveState(
                    objective=o,
                    label=f"{o.index + 1:0{width}d} {o.entity_id + ': ' if o.entity_id else ''}{o.title or o.objective_id}",
                    total=len(plan.tasks_by_objective.get(o.objective_id, ())),
                )
                for o in plan.objectives
            }
        self.console.print(
            Text(f"run {run_dir.name}: {len(plan.objectives)} objectives, {plan.task_count} tasks -> {run_dir}")
        )
        # Only a console on the real stdout/stderr may redirect them: a stray print()
        # or warning then lands above the live area instead of through it.
        redirect = self.console.file in (sys.stdout, sys.stderr)
        self._live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=self._refresh_per_second,
            transient=True,  # the summary table replaces the live area at the end
            redirect_stdout=redirect,
            redirect_stderr=redirect,
        )
        self._live.start()

    def task_started(self, task: Task) -> None:
        with self._lock:
            state = self._objectives.get(task.objective_id)
            self._running.add(task.key)
            if state is None:
                return
            state.running += 1
            if state.started is None:
                state.started = self._clock()
            if state.elapsed is None:
                self._active[task.objective_id] = None

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self._counts[result.status] += 1
            self._tokens += result.prompt_tokens + result.completion_tokens
            self._cost += result.cost_usd
            state = self._objectives.get(result.objective_id)
            was_running = result.key in self._running
            self._running.discard(result.key)
            if state is None:
                return
            setattr(state, result.status, getattr(state, result.status) + 1)
            state.tokens += result.prompt_tokens + result.completion_tokens
            state.cost_usd += result.cost_usd
            if was_running:
                state.running -= 1

    def objective_finished(self, objective_id: str, results: tuple[TaskResult, ...]) -> None:
        with self._lock:
            state = self._objectives.get(objective_id)
            if state is None:
                return
            now = self._clock()
            state.elapsed = now - state.started if state.started is not None else 0.0
            self._active.pop(objective_id, None)
            label, elapsed = state.label, state.elapsed
        self.console.print(_finished_line(label, results, elapsed))  # outside the lock: see the module doc

    def run_finished(self, result: RunResult) -> None:
        self.close()
        self.console.print(self.summary(result))

    def close(self) -> None:
        """Stop the live area and give the terminal back; safe to call twice.

        `run_finished` calls it; a caller whose run raised should call it too, or
        the cursor stays hidden.
        """
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    # -- drawing --------------------------------------------------------------------

    def wave_progress(self, progress: WaveProgress) -> None:
        with self._lock:
            self._wave_line = progress.describe()

    def render(self) -> RenderableType:
        """What the live area shows now; rich calls it on its refresh thread."""
        with self._lock:
            total = self._plan.task_count if self._plan else 0
            counts = dict(self._counts)
            running = len(self._running)
            tokens, cost = self._tokens, self._cost
            now = self._clock()
            elapsed = now - self._started
            limit = self._visible_rows()
            active = [self._objectives[o] for o in self._active]
            rows = [
                _Row(s.label, s.settled, s.total, s.running, s.failed, now - (s.started or now), s.tokens, s.cost_usd)
                for s in active[:limit]
            ]
            hidden = len(active) - len(rows)
            wave_line = self._wave_line
            concurrency = self._concurrency
        finished = sum(counts.values())
        in_flight = f"calls in flight ≤ {concurrency()}" if concurrency is not None else ""
        parts: list[RenderableType] = [
            _overall_bar(finished, total, in_flight),
            _overall_stats(counts, running, finished, total, elapsed, tokens, cost),
        ]
        if wave_line:
            parts.append(Text(wave_line, style="cyan"))
        if rows:
            parts.append(_objective_rows(rows))
        if hidden:
            parts.append(Text(f"  +{hidden} more running", style="dim"))
        return Group(*parts)

    def _visible_rows(self) -> int:
        """`max_rows`, or fewer on a short terminal so the live area never scrolls."""
        return max(1, min(self._max_rows, self.console.height - 6))

    def summary(self, result: RunResult) -> RenderableType:
        """The end-of-run table (objectives, tasks, time, tokens, cost) and the output paths."""
        with self._lock:
            states = list(self._objectives.values())
            now = self._clock()
        by_objective: dict[str, list[TaskResult]] = {}
        for r in result.results:
            by_objective.setdefault(r.objective_id, []).append(r)

        table = Table(
            title=Text(f"run {result.run_id}: {result.status}"), title_justify="left", show_footer=True,
        )
        c = result.counts
        table.add_column("Objective", footer=Text(f"total ({c['total']} tasks)"), no_wrap=True, max_width=44)
        table.add_column("Done", footer=str(c["done"]), justify="right")
        table.add_column("Failed", footer=str(c["failed"]), justify="right")
        table.add_column("Skipped", footer=str(c["skipped"]), justify="right")
        table.add_column("Time", footer=format_duration(result.duration_s), justify="right")
        table.add_column("Tokens", footer=f"{result.prompt_tokens + result.completion_tokens:,}", justify="right")
        table.add_column("Cost", footer=f"${result.cost_usd:.4f}", justify="right")

        shown, hidden = _summary_split(states, by_objective, self._max_summary_rows)
        for state in shown:
            mine = by_objective.get(state.objective.objective_id, [])
            if state.elapsed is not None:
                took = format_duration(state.elapsed)
            elif state.started is not None:
                took = format_duration(now - state.started)
            else:
                took = "—"
            table.add_row(Text(state.label, overflow="ellipsis"), *_status_cells(mine), took, *_usage_cells(mine))
        if hidden:
            mine = [r for s in hidden for r in by_objective.get(s.objective.objective_id, [])]
            table.add_row(Text(f"… {len(hidden)} more objectives", style="dim"), *_status_cells(mine), "", *_usage_cells(mine))

        outputs = Table.grid(padding=(0, 2))
        for kind, path in result.outputs.items():
            outputs.add_row(Text(kind, style="dim"), Text(str(path)))
        parts: list[RenderableType] = [table]
        if result.figures_text():
            parts.append(Text(f"figures check: {result.figures_text()[2:]}"))
        parts += [Text(f"outputs in {result.run_dir}:"), outputs]
        if result.resume_command:
            parts.append(Text(f"to continue it: {result.resume_command}", style="bold"))
        return Group(*parts)


# -- pieces of the picture ----------------------------------------------------------


def _overall_bar(finished: int, total: int, in_flight: str = "") -> Table:
    percent = 100 * finished / total if total else 100.0
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        ProgressBar(total=max(total, 1), completed=finished if total else 1, width=40),
        Text(f"{percent:3.0f}%"),
        Text(f"{finished}/{total} tasks"),
        Text(in_flight, style="dim"),
    )
    return grid


def _overall_stats(
    counts: dict[str, int], running: int, finished: int, total: int, elapsed: float, tokens: int, cost: float
) -> Text:
    eta = format_duration(elapsed / finished * (total - finished)) if 0 < finished < total else "—"
    return Text.assemble(
        (f"{counts['done']} done", "green"),
        " · ",
        (f"{running} running", "cyan"),
        " · ",
        (f"{counts['failed']} failed", "bold red" if counts["failed"] else "dim"),
        " · ",
        (f"{counts['skipped']} skipped", "yellow" if counts["skipped"] else "dim"),
        f"    {format_duration(elapsed)} elapsed · ETA {eta} · {tokens:,} tokens · ${cost:.4f}",
    )


def _objective_rows(rows: Sequence[_Row]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(width=_TITLE_WIDTH, no_wrap=True)
    grid.add_column(width=20)
    grid.add_column(justify="right")
    grid.add_column()
    grid.add_column(justify="right")
    grid.add_column(justify="right", no_wrap=True)
    for row in rows:
        status = Text(f"{row.running} running", style="cyan")
        if row.failed:
            status.append(f", {row.failed} failed", style="red")
        grid.add_row(
            Text("  " + row.label, overflow="ellipsis"),
            ProgressBar(total=max(row.total, 1), completed=row.settled, width=20),
            Text(f"{row.settled}/{row.total}"),
            status,
            Text(format_duration(row.elapsed), style="dim"),
            Text(f"${row.cost_usd:.4f}", style="dim"),
        )
    return grid


def _finished_line(label: str, results: Sequence[TaskResult], elapsed: float) -> Text:
    """`✓ 03 Grid: 6/6 done, 41 s`, or with ✗ and the failures when any task did not finish."""
    done = sum(r.status == "done" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    if failed:
        mark = ("✗", "bold red")
    elif skipped:
        mark = ("✗", "yellow")
    else:
        mark = ("✓", "green")
    line = Text.assemble(mark, " ", (label, "bold"), f": {done}/{len(results)} done")
    if failed:
        line.append(f", {failed} failed", style="red")
    if skipped:
        line.append(f", {skipped} skipped", style="yellow")
    line.append(f", {format_duration(elapsed)}")
    line.append(f"; {Usage.of(results).describe()}", style="dim")
    return line


def _summary_split(
    states: Sequence[_ObjectiveState], by_objective: dict[str, list[TaskResult]], limit: int
) -> tuple[list[_ObjectiveState], list[_ObjectiveState]]:
    """Every objective when they fit; otherwise those with failed or skipped tasks first
    (in sheet order, up to `limit`), the rest folded into one row."""
    if len(states) <= limit:
        return list(states), []

    def troubled(state: _ObjectiveState) -> bool:
        return any(r.status != "done" for r in by_objective.get(state.objective.objective_id, []))

    shown = [s for s in states if troubled(s)][:limit]
    keep = {id(s) for s in shown}
    return shown, [s for s in states if id(s) not in keep]


def _status_cells(results: Sequence[TaskResult]) -> tuple[Text, Text, Text]:
    done = sum(r.status == "done" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    return (
        Text(str(done)),
        Text(str(failed), style="bold red" if failed else "dim"),
        Text(str(skipped), style="yellow" if skipped else "dim"),
    )


def _usage_cells(results: Sequence[TaskResult]) -> tuple[str, str]:
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in results)
    cost = sum(r.cost_usd for r in results)
    return f"{tokens:,}", f"${cost:.4f}"
