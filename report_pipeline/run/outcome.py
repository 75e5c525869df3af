"""What a run reports as it goes and when it ends: the observer's hooks and the values they carry.

They live below the engine and the displays alike: the scheduler, batch waves and the
pipeline produce these values, progress.py and live.py consume them, and neither side
imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..models import FiguresTally, Task, TaskResult
from ..text import format_duration
from .plan import Plan


@dataclass(frozen=True)
class RunResult:
    """What a finished (or stopped) run produced and how it ended."""

    run_id: str
    run_dir: Path
    status: str  # done, failed, interrupted, budget, aborted
    exit_code: int
    counts: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    duration_s: float
    results: tuple[TaskResult, ...] = ()
    outputs: dict[str, str] = field(default_factory=dict)
    resume_command: str | None = None  # when it stopped with work left: the command that continues it

    @property
    def reasoning_tokens(self) -> int:
        """Of completion_tokens: what reasoning models spent thinking."""
        return sum(r.reasoning_tokens for r in self.results)

    @property
    def cached_tokens(self) -> int:
        """Of prompt_tokens: served from the endpoint's prompt cache."""
        return sum(r.cached_tokens for r in self.results)

    @property
    def prompt_cache_saving_usd(self) -> float:
        return sum(r.cache_saving_usd for r in self.results)

    def figures_text(self) -> str:
        """`; 412 figures, 398 traced, 14 flagged in 9 tasks` when the figures check ran, else ""."""
        tally = FiguresTally.of(self.results)
        return f"; {tally.describe()}" if tally.checked_tasks else ""

    def tokens_text(self) -> str:
        """`1,234 in (1,024 cached) / 567 out (96 reasoning)`: the details only where there are some."""
        cached = f" ({self.cached_tokens:,} cached)" if self.cached_tokens else ""
        reasoning = f" ({self.reasoning_tokens:,} reasoning)" if self.reasoning_tokens else ""
        return f"{self.prompt_tokens:,} in{cached} / {self.completion_tokens:,} out{reasoning}"


@dataclass(frozen=True)
class WaveProgress:
    """What a progress display shows about the wave being waited for."""

    wave: int
    batches: int
    statuses: dict[str, int]
    total: int
    completed: int
    failed: int
    waited_s: float
    eta_s: float | None

    def describe(self) -> str:
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        eta = "" if self.eta_s is None else f", wave ETA {format_duration(self.eta_s)}"
        return (
            f"wave {self.wave}: {self.batches} batch(es) {statuses}; requests {self.completed}/{self.total} "
            f"completed, {self.failed} failed; waiting {format_duration(self.waited_s)}{eta}"
        )


class RunObserver:
    """Hooks for progress displays; the default does nothing."""

    def run_started(self, plan: Plan, run_dir: Path) -> None: ...
    def task_started(self, task: Task) -> None: ...
    def task_finished(self, result: TaskResult) -> None: ...
    def objective_finished(self, objective_id: str, results: tuple[TaskResult, ...]) -> None: ...
    def watch_concurrency(self, current: Callable[[], str]) -> None:
        """The run's calls-in-flight limit, as text (`4`, or per model), for a display to read when it draws."""
    def wave_progress(self, progress: WaveProgress) -> None:
        """Batch mode: the wave being waited for (batch statuses, request counts, ETA), after each poll."""
    def run_finished(self, result: RunResult) -> None: ...
    def close(self) -> None:
        """Release the display (a live terminal area) even when the run raised."""
