"""One scheduler for every mode: objectives and tasks on two bounded pools, driven by completions.

The loop runs on the calling thread and owns all scheduling state, so no lock is
needed for it. Workers only run a task and post its result on a queue. A task is
ready when its last parent finishes (a countdown, O(1) per completion), so no
thread ever waits on another task. Sequential mode is the same loop with inline
executors.

    objective pool ("objective_N"): objective-level work, e.g. writing that
        chapter's CSV the moment its last task finishes
    task pool ("task_N"): one task's step chain (generate -> refine -> check)

Work-conserving: every ready task of the run is in one priority queue, and one is
started whenever fewer than `dispatch_limit` tasks run (the task pool's threads, sized
to the in-flight limit), so a chapter down to its one slow task never holds the run's
call slots while other chapters have work. Among ready tasks the one with the longest
remaining path to the end of the run starts first (`plan.dispatch_priority`), sheet
order among equals. `objective_slots` bounds how many objectives are active at once (1
when run_objectives_concurrent is off, else `max_objective_workers` if set);
`task_slots` how many tasks of one objective run at once (1 when run_task_concurrent
is off, else `max_task_workers` if set). A task whose objective is at its cap waits in
that objective's own queue until one of its tasks finishes.

Batch mode uses the same loop. A task whose next call is not answered yet raises
`AwaitingBatch` and is *parked*: not settled, its dependents left waiting. When
nothing can run any more and tasks are parked, the loop calls the `wave` hook
(submit every call they wait for, wait for the answers) and then runs the parked
tasks again from the top; calls answered in earlier waves come back at once. So
each wave is every call whose inputs are ready, and the number of waves is the
critical path, whatever the number of tasks.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import AwaitingBatch, BudgetExceeded, NotSent, RunAborted
from ..models import Task, TaskResult
from ..text import a_few
from .plan import Plan

log = logging.getLogger("report_pipeline.scheduler")

TaskRunner = Callable[[Task], TaskResult]
#: Batch mode: send the calls parked tasks wait for and wait for their answers; a Halt stops the run.
WaveHook = Callable[[], "Halt | None"]


class InlineExecutor(Executor):
    """Runs each submission at once on the caller's thread: sequential mode, same loop."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - the future carries it, as a pool's would
            future.set_exception(error)
        return future


@dataclass(frozen=True)
class Halt:
    """Why the run stopped scheduling new work early."""

    reason: str  # "budget", "aborted", "interrupted", "fail_fast"
    message: str
    error: BaseException | None = None


@dataclass
class SchedulerHooks:
    """Callbacks the pipeline gives the scheduler; all run on the loop's thread
    except `objective_finished`, which runs on the objective pool."""

    task_started: Callable[[Task], None] = lambda task: None
    task_finished: Callable[[TaskResult], None] = lambda result: None
    objective_started: Callable[[str], None] = lambda objective_id: None
    objective_finished: Callable[[str], None] = lambda objective_id: None
    halted: Callable[[Halt], None] = lambda halt: None  # once, when the run first stops scheduling


Priority = tuple[float, int]


@dataclass
class _ObjectiveState:
    held: list[tuple[Priority, str]] = field(default_factory=list)  # ready, but the objective is at its cap
    running: int = 0
    left: int = 0
    admitted: bool = False


class Scheduler:
    """Runs a plan's tasks on bounded pools in dependency order; never blocks a worker on a future."""

    def __init__(
        self,
        plan: Plan,
        run_task: TaskRunner,
        record: Callable[[TaskResult], bool],
        *,
        objective_slots: int,
        task_slots: int,
        objective_executor: Executor,
        task_executor: Executor,
        hooks: SchedulerHooks | None = None,
        stop: threading.Event | None = None,
        restored: dict[str, TaskResult] | None = None,
        scrub: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.time,
        wave: WaveHook | None = None,
        dispatch_limit: int | None = None,
        priority: Mapping[str, Priority] | None = None,
        fail_fast: bool = False,
    ) -> None:
        self._plan = plan
        self._fail_fast = fail_fast  # the first failed task halts the run
        self._stop_chapter_on_failure = {o.objective_id for o in plan.objectives if o.fail_fast}
        self._stopped_chapters: dict[str, str] = {}  # objective id -> why it stopped (fail_fast column)
        self._dispatch_limit = dispatch_limit  # tasks running at once across the run (None: no limit)
        self._priority = dict(priority) if priority is not None else {
            key: (0.0, rank) for rank, key in enumerate(plan.tasks)}
        self._ready: list[tuple[Priority, str]] = []  # ready tasks of admitted objectives, best first
        self._run_task = run_task
        self._record = record  # stores a result; True when it finished its objective
        self._objective_slots = objective_slots
        self._task_slots = task_slots
        self._objective_executor = objective_executor
        self._task_executor = task_executor
        self._hooks = hooks or SchedulerHooks()
        self._stop = stop or threading.Event()
        self._clock = clock
        self._scrub = scrub  # keeps secrets out of every recorded error message
        self._restored = restored or {}  # finished before a resume: settled, never run
        self._events: queue.Queue[tuple[str, TaskResult | None, BaseException | None]] = queue.Queue()
        self._waiting = {key: len(parents) for key, parents in plan.parents.items()}
        self._objectives = {
            obj: _ObjectiveState(left=len(keys)) for obj, keys in plan.tasks_by_objective.items()
        }
        self._pending_admission = deque(plan.admission_order)
        self._active = 0
        self._in_flight = 0
        self._finished: set[str] = set()
        self._running: set[str] = set()
        self._objective_futures: list[Future[Any]] = []
        self._wave = wave
        self._parked: list[str] = []  # waiting for their wave, in the order they parked
        self._blocked: set[str] = set()  # parked, or depending on a parked task
        self.waves = 0
        self.halt: Halt | None = None
        self._announced = False
        self.abandoned = 0  # tasks still running when the grace period ran out (their threads are left)

    # -- the loop -----------------------------------------------------------------

    def run(self, *, grace_s: float = 30.0) -> Halt | None:
        """Run until every task has a result, or until a halt and the in-flight tasks drain."""
        for key, result in self._restored.items():
            self._settle(key, result)
        for key, outside in self._plan.missing.items():
            noun = "which is" if len(outside) == 1 else "which are"
            reason = f"depends on {a_few(outside)}, {noun} not part of this run"
            self._settle(key, self._skipped(key, reason))
        self._admit()
        self._dispatch()
        deadline: float | None = None
        while len(self._finished) < len(self._plan.tasks):
            if self._stop.is_set() and self.halt is None:
                self.halt = Halt("interrupted", "interrupted: stopped before this task started")
            if self.halt is not None:
                if not self._announced:
                    self._announced = True
                    self._hooks.halted(self.halt)
                self._skip_unstarted()
                if self._in_flight == 0:
                    break
                # a fail-fast halt lets the calls in flight finish (each is bounded by its own timeout);
                # only a stop (Ctrl-C) starts the grace period
                if deadline is None and (self.halt.reason != "fail_fast" or self._stop.is_set()):
                    deadline = time.monotonic() + grace_s
            if self._in_flight == 0 and len(self._finished) < len(self._plan.tasks):
                if self._parked and self._only_parked_left():
                    self._next_wave()
                else:
                    self._break_deadlock()
                continue
            timeout = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                key, result, error = self._events.get(timeout=timeout)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    log.warning("grace period over: %d task(s) still in flight are abandoned", self._in_flight)
                    self._abandon(grace_s)
                    break
                continue
            self._in_flight -= 1
            self._running.discard(key)
            self._free_slot(self._plan.objective_of(key))
            if isinstance(error, AwaitingBatch):
                self._park(key)
            else:
                if error is not None:
                    result = self._after_error(key, error)
                assert result is not None
                if result.error:
                    result = replace(result, error=self._scrub(result.error))
                self._settle(key, result)
                if result.status == "failed":
                    self._after_failure(key)
            if self.halt is None:
                self._admit()
                self._dispatch()
        for future in self._objective_futures:
            future.result()
        return self.halt

    # -- steps of the loop ----------------------------------------------------------

    def _admit(self) -> None:
        """Start objectives in admission order while there are free objective slots."""
        while self._pending_admission and self._active < self._objective_slots:
            self._admit_one(self._pending_admission.popleft())

    def _admit_one(self, objective_id: str) -> None:
        state = self._objectives[objective_id]
        if state.admitted:
            return
        state.admitted = True
        if state.left == 0:  # settled before it started (all skipped): its finish already fired
            return
        self._active += 1
        self._hooks.objective_started(objective_id)
        for key in self._plan.tasks_by_objective[objective_id]:
            if self._waiting[key] == 0 and key not in self._finished:
                self._make_ready(key)

    def _make_ready(self, key: str) -> None:
        heapq.heappush(self._ready, (self._priority[key], key))

    def _free_slot(self, objective_id: str) -> None:
        """One of the objective's tasks ended: its best held task (if any) may start."""
        state = self._objectives[objective_id]
        state.running -= 1
        if state.held:
            heapq.heappush(self._ready, heapq.heappop(state.held))

    def _has_room(self) -> bool:
        return self._dispatch_limit is None or self._in_flight < self._dispatch_limit

    def _dispatch(self) -> None:
        """Start the best ready tasks while fewer than `dispatch_limit` run, at most `task_slots` per objective."""
        while self._ready and self._has_room() and not self._halting():
            entry = heapq.heappop(self._ready)
            key = entry[1]
            if key in self._finished or key in self._running:
                continue
            state = self._objectives[self._plan.objective_of(key)]
            if state.running >= self._task_slots:
                heapq.heappush(state.held, entry)
                continue
            state.running += 1
            self._in_flight += 1
            self._running.add(key)
            task = self._plan.tasks[key]
            self._hooks.task_started(task)
            self._task_executor.submit(self._work, task)

    def _halting(self) -> bool:
        return self.halt is not None or self._stop.is_set()

    def _work(self, task: Task) -> None:
        """Runs on a task thread: one task, its result (or error) posted to the loop."""
        try:
            self._events.put((task.key, self._run_task(task), None))
        except BaseException as error:  # noqa: BLE001 - reported to the loop, never kills a worker
            self._events.put((task.key, None, error))

    def _after_error(self, key: str, error: BaseException) -> TaskResult:
        """Turn a task's escaped error into its result; budget and auth errors halt the run."""
        now = self._clock()
        task = self._plan.tasks[key]
        base = TaskResult(
            objective_id=task.objective_id,
            task_id=task.task_id,
            title=task.title,
            status="failed",
            error=self._scrub(f"{type(error).__name__}: {error}"),
            started_at=now,
            finished_at=now,
            thread=threading.current_thread().name,
        )
        if isinstance(error, BudgetExceeded):
            if self.halt is None:
                said = str(error)  # the meter's sentence: spent, held, what to do
                self.halt = Halt("budget", said if said.startswith("budget") else f"budget: {said}", error)
                log.error("%s", self.halt.message)
            skipped = "budget: max_cost_usd reached before this task was sent"
            return replace(base, status="skipped", error=skipped if self.halt.reason == "budget" else str(error))
        if isinstance(error, RunAborted):
            if self.halt is None:
                self.halt = Halt("aborted", f"aborted: {error}", error)
                log.error("%s", self.halt.message)  # why, once: the other tasks are skipped with it
            if error.attempts == 0:  # never sent: the provider refused it after the first 401 (which may report later)
                return replace(base, status="skipped", error=self.halt.message)
            return base
        if isinstance(error, NotSent):  # the run is stopping: its next call was never sent
            if self.halt is None:
                self.halt = Halt("interrupted", "interrupted: stopped before this task started", error)
            return replace(base, status="skipped", error=f"{self.halt.reason}: stopped before its next call was sent")
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            self._stop.set()
        log.error("task %s failed: %s", key, base.error)
        return base

    def _after_failure(self, key: str) -> None:
        """fail_fast: the run stops (nothing new is sent; calls in flight finish). A chapter with the
        `fail_fast` column stops alone: its tasks not started are skipped, and what depends on them."""
        if self._fail_fast and self.halt is None:
            self.halt = Halt("fail_fast", f"fail-fast: task {key} failed, so nothing after it was started")
            log.error("%s", self.halt.message)
            return
        objective_id = self._plan.objective_of(key)
        if objective_id not in self._stop_chapter_on_failure or objective_id in self._stopped_chapters:
            return
        reason = f"fail-fast: chapter {objective_id} stopped when task {key} failed"
        self._stopped_chapters[objective_id] = reason
        log.error("%s", reason)
        for other in self._plan.tasks_by_objective[objective_id]:
            if other not in self._finished and other not in self._running:
                self._settle(other, self._skipped(other, reason))

    def _settle(self, key: str, result: TaskResult) -> None:
        """Record a final result, then release or skip its dependents."""
        if key in self._finished:
            return
        self._finished.add(key)
        objective_done = self._record(result)
        self._hooks.task_finished(result)
        state = self._objectives[self._plan.objective_of(key)]
        state.left -= 1
        for child in self._plan.children.get(key, ()):
            if child in self._finished:
                continue
            if result.status != "done":
                self._settle(child, self._skipped(child, f"dependency {key} {result.status}"))
                continue
            self._waiting[child] -= 1
            if self._waiting[child] == 0 and self._objectives[self._plan.objective_of(child)].admitted:
                self._make_ready(child)
        if objective_done:
            self._objective_done(result.objective_id)

    def _objective_done(self, objective_id: str) -> None:
        state = self._objectives[objective_id]
        if state.admitted:
            self._active -= 1
        future = self._objective_executor.submit(self._hooks.objective_finished, objective_id)
        self._objective_futures.append(future)

    def _park(self, key: str) -> None:
        """The task waits for its wave: neither settled nor released, and neither are its dependents."""
        if self._wave is None:
            raise RuntimeError(f"task {key} waits for a batch, but this run has no batch waves")
        self._parked.append(key)
        pending = [key]
        while pending:
            current = pending.pop()
            if current in self._blocked or current in self._finished:
                continue
            self._blocked.add(current)
            pending.extend(self._plan.children.get(current, ()))

    def _only_parked_left(self) -> bool:
        return all(key in self._finished or key in self._blocked for key in self._plan.tasks)

    def _next_wave(self) -> None:
        """Everything left waits for answers: send the wave, then run the parked tasks again."""
        assert self._wave is not None
        self.waves += 1
        halt = self._wave()
        parked, self._parked = self._parked, []
        self._blocked.clear()
        if halt is not None:
            self.halt = halt
            return  # the loop skips them, with the halt's reason
        for key in parked:
            self._make_ready(key)
        self._dispatch()

    def _skip_unstarted(self) -> None:
        """After a halt, every task not yet started gets its final result: skipped with the reason."""
        assert self.halt is not None
        for key in self._plan.tasks:
            if key in self._finished or key in self._running:
                continue
            self._settle(key, self._skipped(key, self.halt.message))

    def _abandon(self, grace_s: float) -> None:
        """The grace period is over: every task still running is skipped now, so that the report
        (and --resume) account for it; its thread is left to its call, and its result ignored."""
        assert self.halt is not None
        reason = f"{self.halt.reason}: still running when the grace period ({grace_s:g} s) ran out"
        running = [key for key in self._plan.tasks if key in self._running]  # in sheet order
        for key in running:
            self._free_slot(self._plan.objective_of(key))
            self._settle(key, self._skipped(key, reason))
        self.abandoned = len(running)
        self._running.clear()
        self._in_flight = 0

    def _break_deadlock(self) -> None:
        """Nothing runs and work is left: admit the next objective past the slot limit.

        This only happens when chapters wait on each other through different tasks;
        anything else left over is a planning bug, reported rather than hung on.
        """
        if self._pending_admission:
            self._admit_one(self._pending_admission.popleft())
            self._dispatch()
            return
        stuck = [k for k in self._plan.tasks if k not in self._finished]
        raise RuntimeError(f"scheduler deadlock: {len(stuck)} task(s) can never start: {stuck[:5]}")

    def _skipped(self, key: str, reason: str) -> TaskResult:
        task = self._plan.tasks[key]
        now = self._clock()
        return TaskResult(
            objective_id=task.objective_id,
            task_id=task.task_id,
            title=task.title,
            status="skipped",
            error=reason,
            started_at=now,
            finished_at=now,
        )


def make_executors(objective_slots: int, task_threads: int, *, sequential_objectives: bool, sequential_tasks: bool) -> tuple[Executor, Executor]:
    """The two pools: named, bounded by config, inline where that level is sequential."""
    objective_executor: Executor
    task_executor: Executor
    if sequential_objectives and sequential_tasks:
        return InlineExecutor(), InlineExecutor()
    objective_executor = ThreadPoolExecutor(max_workers=max(1, objective_slots), thread_name_prefix="objective")
    task_executor = ThreadPoolExecutor(max_workers=max(1, task_threads), thread_name_prefix="task")
    return objective_executor, task_executor
