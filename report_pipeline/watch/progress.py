"""Plain progress lines for cron logs, CI and pipes: no control characters, one line per event.

    objective 3/12 "Grid" done: 6/6 tasks, 41 s
    progress 120/480 tasks (25%): 118 done, 2 failed, 0 skipped; 3 min elapsed, ETA 9 min
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..models import Task, TaskResult, Usage
from ..run.outcome import RunObserver, RunResult, WaveProgress
from ..run.plan import Plan
from ..text import format_duration

#: Every plain line starts with the local time it was written, as cron logs are read.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def timestamp(wall: float) -> str:
    return time.strftime(TIMESTAMP_FORMAT, time.localtime(wall))


class PlainProgress(RunObserver):
    """Writes a line per finished objective and an overall line every `interval_s` seconds.

    For cron, pipes and `--no-progress`: every line starts with a timestamp, and they go to
    `stream` (standard output), the summary and the outputs last; warnings and errors go
    to standard error (the log handler), so `run ... | tee log` keeps the summary."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval_s: float = 10.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self._wall_clock = wall_clock
        self._interval_s = interval_s
        self._quiet = quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._started = 0.0
        self._last_line = 0.0
        self._objective_started: dict[str, float] = {}
        self._objectives_done = 0
        self._counts = {"done": 0, "failed": 0, "skipped": 0}
        self._last_wave: tuple[object, ...] = ()
        self._concurrency: Callable[[], str] | None = None
        self._last_wave_line = 0.0

    def _say(self, line: str, *, always: bool = False) -> None:
        if always or not self._quiet:
            stamp = timestamp(self._wall_clock())
            self._stream.write("".join(f"{stamp} {part}\n" for part in line.split("\n")))
            self._stream.flush()

    def watch_concurrency(self, current: Callable[[], str]) -> None:
        self._concurrency = current

    def run_started(self, plan: Plan, run_dir: Path) -> None:
        self._plan = plan
        self._started = self._last_line = self._clock()
        self._say(f"run {run_dir.name}: {len(plan.objectives)} objectives, {plan.task_count} tasks -> {run_dir}")

    def task_started(self, task: Task) -> None:
        with self._lock:
            self._objective_started.setdefault(task.objective_id, self._clock())

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self._counts[result.status] += 1
            now = self._clock()
            due = now - self._last_line >= self._interval_s
            if due:
                self._last_line = now
        if due:
            self._say(self.overall_line())

    def overall_line(self) -> str:
        assert self._plan is not None
        total = self._plan.task_count
        finished = sum(self._counts.values())
        elapsed = self._clock() - self._started
        eta = ""
        if 0 < finished < total:
            eta = f", ETA {format_duration(elapsed / finished * (total - finished))}"
        percent = 100 * finished / total if total else 100
        return (
            f"progress {finished}/{total} tasks ({percent:.0f}%): {self._counts['done']} done, "
            f"{self._counts['failed']} failed, {self._counts['skipped']} skipped; "
            f"{format_duration(elapsed)} elapsed{eta}"
            + (f"; calls in flight at most {self._concurrency()}" if self._concurrency is not None else "")
        )

    def wave_progress(self, progress: WaveProgress) -> None:
        """A line when a wave's batches change status, else one every `interval_s` while waiting."""
        seen = (progress.wave, tuple(sorted(progress.statuses.items())))
        now = self._clock()
        with self._lock:
            due = seen != self._last_wave or now - self._last_wave_line >= self._interval_s
            if due:
                self._last_wave, self._last_wave_line = seen, now
        if due:
            self._say(progress.describe())

    def objective_finished(self, objective_id: str, results: tuple[TaskResult, ...]) -> None:
        """`objective 3/7 "Grids" done (2 of 7 finished): ...`: numbered by its place in the sheet, as its file is."""
        assert self._plan is not None
        with self._lock:
            self._objectives_done += 1
            finished = self._objectives_done
            began = self._objective_started.get(objective_id, self._clock())
        objective = next((o for o in self._plan.objectives if o.objective_id == objective_id), None)
        title = objective.title if objective is not None else objective_id
        if objective is not None and objective.entity_id:  # a family run: which entity's chapter
            title = f"{objective.entity_id}: {title}"
        number = objective.index + 1 if objective is not None else finished
        done = sum(r.status == "done" for r in results)
        failed = sum(r.status == "failed" for r in results)
        skipped = sum(r.status == "skipped" for r in results)
        extra = "".join(
            f", {n} {label}" for n, label in ((failed, "failed"), (skipped, "skipped")) if n
        )
        total = len(self._plan.objectives)
        in_sheet = self._plan.objectives_in_sheet or total
        self._say(
            f'objective {number}/{in_sheet} "{title}" done ({finished} of {total} finished): '
            f"{done}/{len(results)} tasks{extra}, {format_duration(self._clock() - began)}; "
            f"{Usage.of(results).describe()}"
        )

    def run_finished(self, result: RunResult) -> None:
        c = result.counts
        line = (
            f"run {result.run_id} {result.status}: {c['done']} done, {c['failed']} failed, "
            f"{c['skipped']} skipped of {c['total']} tasks; tokens {result.tokens_text()}; "
            f"cost ${result.cost_usd:.4f}{_saving(result)}{result.figures_text()}; {format_duration(result.duration_s)}; "
            f"report {result.outputs.get('report_md') or _family_reports(result)}"
        )
        if result.outputs:
            names = " ".join(Path(path).name for path in result.outputs.values())
            self._say(f"outputs in {result.run_dir}: {names}")
        if result.resume_command:  # before the summary, which stays the last line (scripts read it)
            self._say(f"to continue it: {result.resume_command}", always=True)
        self._say(line, always=True)  # the final line is printed even with --quiet


def _saving(result: RunResult) -> str:
    """` (prompt cache saved $0.0123)` when the endpoint's prompt cache saved anything."""
    saving = result.prompt_cache_saving_usd
    return f" (prompt cache saved ${saving:.4f})" if saving >= 0.00005 else ""


def _family_reports(result: RunResult) -> str:
    """Where a run's report is: its folder's report.md, or a family run's, one per entity."""
    if result.outputs and "report_md" not in result.outputs:
        return f"{result.run_dir / 'entities'}/*/report.md (one per entity)"
    return str(result.run_dir / "report.md")
