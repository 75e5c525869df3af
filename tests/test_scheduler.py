"""The scheduler, driven by a gated fake runner: tasks finish in a random (seeded) order that
the test controls with Events, never with sleeps."""

from __future__ import annotations

import dataclasses

import random
import threading
from pathlib import Path

import pytest

from report_pipeline.errors import AuthError, BudgetExceeded
from report_pipeline.models import Objective, PromptSheet, Task, TaskResult
from report_pipeline.run.plan import build_plan
from report_pipeline.run.results import ReportStructureManager
from report_pipeline.run.scheduler import (
    InlineExecutor,
    Scheduler,
    SchedulerHooks,
    make_executors,
)


def make_sheet(n_objectives: int, n_tasks: int, depends: dict[str, tuple[str, ...]] | None = None) -> PromptSheet:
    depends = depends or {}
    objectives = tuple(Objective(f"O{i}", f"Chapter {i}", index=i - 1) for i in range(1, n_objectives + 1))
    tasks = []
    for i in range(1, n_objectives + 1):
        for j in range(1, n_tasks + 1):
            key = f"O{i}.T{j}"
            tasks.append(Task(f"O{i}", f"T{j}", prompt="p", title=key, depends_on=depends.get(key, ()), index=len(tasks)))
    return PromptSheet(path=Path("x.xlsx"), objectives=objectives, tasks=tuple(tasks))


class GatedRunner:
    """Each task blocks until the controller releases it; the controller releases running
    tasks in a seeded random order, so completion order is random but repeatable."""

    def __init__(self, seed: int, fail: set[str] = frozenset(), raise_for: dict[str, BaseException] | None = None, first_batch: int = 1) -> None:
        self.first_batch = first_batch  # hold the first release until this many tasks wait
        self.rng = random.Random(seed)
        self.fail = fail
        self.raise_for = raise_for or {}
        self.cond = threading.Condition()
        self.running: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.completed: list[str] = []
        self.max_running_per_objective: dict[str, int] = {}
        self.max_active_objectives = 0
        self.max_running = 0
        self.done = False

    def __call__(self, task: Task) -> TaskResult:
        gate = threading.Event()
        with self.cond:
            self.gates[task.key] = gate
            self.running.append(task.key)
            self.started.append(task.key)
            mine = sum(k.split(".")[0] == task.objective_id for k in self.running)
            self.max_running_per_objective[task.objective_id] = max(self.max_running_per_objective.get(task.objective_id, 0), mine)
            self.max_active_objectives = max(self.max_active_objectives, len({k.split(".")[0] for k in self.running}))
            self.max_running = max(self.max_running, len(self.running))
            self.cond.notify_all()
        gate.wait()
        with self.cond:
            self.running.remove(task.key)
            self.completed.append(task.key)
        if task.key in self.raise_for:
            raise self.raise_for[task.key]
        status = "failed" if task.key in self.fail else "done"
        return TaskResult(task.objective_id, task.task_id, task.title, status, error="boom" if status == "failed" else "", text=f"text of {task.key}")

    def control(self) -> None:
        """Release one running task at a time, chosen at random, until told to stop."""
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.done or len(self._waiting()) >= self.first_batch)
                if self.done:
                    return
                self.first_batch = 1
                waiting = self._waiting()
                self.gates[self.rng.choice(waiting)].set()

    def _waiting(self) -> list[str]:
        return [k for k in self.running if not self.gates[k].is_set()]

    def stop(self) -> None:
        with self.cond:
            self.done = True
            for gate in self.gates.values():
                gate.set()
            self.cond.notify_all()


def run_scheduler(sheet: PromptSheet, runner, *, objective_slots=2, task_slots=3, inline=False, stop=None, hooks=None,
                  threads=None, scheduler_class=Scheduler, **options):
    """Run `sheet` through a scheduler (`options`: dispatch_limit, priority) on pools of `threads`."""
    plan = build_plan(sheet)
    manager = ReportStructureManager(plan)
    if inline:
        objective_pool, task_pool = InlineExecutor(), InlineExecutor()
    else:
        objective_pool, task_pool = make_executors(min(objective_slots, 4), threads or objective_slots * task_slots,
                                                   sequential_objectives=False, sequential_tasks=False)
    controller = None
    if isinstance(runner, GatedRunner) and not inline:
        controller = threading.Thread(target=runner.control, daemon=True)
        controller.start()
    scheduler = scheduler_class(
        plan, runner, lambda r: manager.record(r).objective_finished,
        objective_slots=objective_slots, task_slots=task_slots,
        objective_executor=objective_pool, task_executor=task_pool, hooks=hooks, stop=stop, **options,
    )
    try:
        halt = scheduler.run()
    finally:
        if isinstance(runner, GatedRunner):
            runner.stop()
        if controller:
            controller.join()
        task_pool.shutdown(wait=True)
        objective_pool.shutdown(wait=True)
    return plan, manager, halt


class InstantRunner:
    def __init__(self, fail=frozenset()):
        self.fail = fail
        self.calls: list[str] = []

    def __call__(self, task):
        self.calls.append(task.key)
        status = "failed" if task.key in self.fail else "done"
        return TaskResult(task.objective_id, task.task_id, task.title, status, text=f"text of {task.key}")


@pytest.mark.parametrize("seed", range(5))
def test_results_come_back_in_sheet_order_whatever_the_completion_order(seed):
    sheet = make_sheet(4, 5)
    runner = GatedRunner(seed)
    plan, manager, halt = run_scheduler(sheet, runner)
    assert halt is None
    assert [r.key for r in manager.all_results()] == list(plan.tasks)
    assert runner.completed != list(plan.tasks)  # it really did finish out of order


def test_completion_order_differs_between_seeds():
    orders = set()
    for seed in range(3):
        runner = GatedRunner(seed)
        run_scheduler(make_sheet(2, 4), runner)
        orders.add(tuple(runner.completed))
    assert len(orders) > 1


def test_tasks_per_objective_and_active_objectives_stay_within_their_slots():
    runner = GatedRunner(7, first_batch=6)
    run_scheduler(make_sheet(6, 6), runner, objective_slots=2, task_slots=3)
    assert max(runner.max_running_per_objective.values()) <= 3
    assert runner.max_active_objectives <= 2
    assert runner.max_running == 6  # the slots were actually used


def test_tasks_sequential_inside_objectives_when_task_slots_is_one():
    runner = GatedRunner(3, first_batch=3)
    run_scheduler(make_sheet(3, 4), runner, objective_slots=3, task_slots=1)
    assert max(runner.max_running_per_objective.values()) == 1
    assert runner.max_active_objectives == 3


def test_inline_executors_run_one_task_at_a_time_in_sheet_order():
    runner = InstantRunner()
    plan, manager, _ = run_scheduler(make_sheet(3, 3), runner, objective_slots=1, task_slots=1, inline=True)
    assert runner.calls == list(plan.tasks)
    assert [r.status for r in manager.all_results()] == ["done"] * 9


def test_failed_task_leaves_siblings_and_other_objectives_done():
    runner = GatedRunner(11, fail={"O2.T2"})
    _, manager, halt = run_scheduler(make_sheet(3, 3), runner)
    statuses = {r.key: r.status for r in manager.all_results()}
    assert statuses.pop("O2.T2") == "failed"
    assert set(statuses.values()) == {"done"}
    assert halt is None


def test_a_raising_task_is_recorded_failed_with_its_error():
    runner = GatedRunner(5, raise_for={"O1.T2": ValueError("bad cell")})
    _, manager, _ = run_scheduler(make_sheet(2, 2), runner)
    result = manager.get("O1.T2")
    assert result.status == "failed"
    assert "bad cell" in result.error
    assert manager.get("O1.T1").status == "done"


def test_failed_task_skips_its_dependents_transitively_with_reason():
    sheet = make_sheet(3, 2, depends={"O2.T1": ("O1.T1",), "O3.T2": ("O2.T1",), "O3.T1": ("O1",)})
    runner = InstantRunner(fail={"O1.T1"})
    _, manager, _ = run_scheduler(sheet, runner, inline=True, objective_slots=1, task_slots=1)
    assert manager.get("O2.T1").status == "skipped"
    assert "O1.T1" in manager.get("O2.T1").error
    assert manager.get("O3.T2").status == "skipped"
    assert "O2.T1" in manager.get("O3.T2").error
    assert manager.get("O3.T1").status == "skipped"
    assert "O3.T2" not in runner.calls and "O2.T1" not in runner.calls
    assert manager.get("O2.T2").status == "done"


def test_summary_first_in_sheet_runs_last_even_with_one_objective_slot():
    sheet = make_sheet(4, 2, depends={"O1.T1": ("O2", "O3", "O4"), "O1.T2": ("O2", "O3", "O4")})
    runner = InstantRunner()
    plan, manager, _ = run_scheduler(sheet, runner, objective_slots=1, task_slots=1, inline=True)
    assert runner.calls[-2:] == ["O1.T1", "O1.T2"]
    assert [r.key for r in manager.all_results()][:2] == ["O1.T1", "O1.T2"]  # report keeps sheet order


@pytest.mark.parametrize("seed", range(3))
def test_dependent_starts_only_after_its_parents_finish(seed):
    sheet = make_sheet(3, 3, depends={"O1.T1": ("O2", "O3.T1"), "O2.T3": ("O2.T1",)})
    runner = GatedRunner(seed)
    run_scheduler(sheet, runner, objective_slots=3, task_slots=3)
    for parent in ("O2.T1", "O2.T2", "O2.T3", "O3.T1"):
        assert runner.completed.index(parent) < runner.started.index("O1.T1")
    assert runner.completed.index("O2.T1") < runner.started.index("O2.T3")


def test_budget_halt_skips_everything_not_started_with_reason():
    runner = InstantRunner()
    calls = []

    def budget_runner(task):
        calls.append(task.key)
        if len(calls) == 3:
            raise BudgetExceeded("spent $1.00 of $1.00")
        return runner(task)

    _, manager, halt = run_scheduler(make_sheet(2, 3), budget_runner, inline=True, objective_slots=1, task_slots=1)
    assert halt is not None and halt.reason == "budget"
    statuses = [r.status for r in manager.all_results()]
    assert statuses == ["done", "done", "skipped", "skipped", "skipped", "skipped"]
    assert all("budget" in r.error for r in manager.all_results() if r.status == "skipped")
    assert len(calls) == 3


def test_auth_error_halts_the_run():
    def runner(task):
        raise AuthError("HTTP 401 invalid key", status_code=401)

    _, manager, halt = run_scheduler(make_sheet(2, 2), runner, inline=True, objective_slots=1, task_slots=1)
    assert halt.reason == "aborted"
    assert len(manager.all_results()) == 4


def test_stop_event_drains_in_flight_and_skips_the_rest():
    stop = threading.Event()
    seen = []

    def runner(task):
        seen.append(task.key)
        if len(seen) == 2:
            stop.set()
        return TaskResult(task.objective_id, task.task_id, task.title, "done", text="x")

    _, manager, halt = run_scheduler(make_sheet(2, 3), runner, inline=True, objective_slots=1, task_slots=1, stop=stop)
    assert halt.reason == "interrupted"
    assert [r.status for r in manager.all_results()].count("done") == 2
    assert len(seen) == 2


def test_objective_finished_fires_once_per_objective_even_when_all_its_tasks_are_skipped():
    sheet = make_sheet(3, 2, depends={"O3.T1": ("O1.T1",), "O3.T2": ("O1.T1",)})
    finished = []
    hooks = SchedulerHooks(objective_finished=finished.append)
    run_scheduler(sheet, InstantRunner(fail={"O1.T1"}), inline=True, objective_slots=1, task_slots=1, hooks=hooks)
    assert sorted(finished) == ["O1", "O2", "O3"]


def test_thread_count_is_bounded_by_config_not_by_task_count():
    before = threading.active_count()
    peak = [0]

    def runner(task):
        peak[0] = max(peak[0], threading.active_count())
        return TaskResult(task.objective_id, task.task_id, task.title, "done", text="x")

    run_scheduler(make_sheet(50, 40), runner, objective_slots=3, task_slots=4)
    assert peak[0] <= before + 3 + 12


def test_a_task_whose_many_dependencies_are_not_in_the_run_names_a_few_and_counts_the_rest():
    sheet = make_sheet(2, 6, depends={"O1.T1": ("O2",)})
    sheet = dataclasses.replace(sheet, objectives=(sheet.objectives[0], dataclasses.replace(sheet.objectives[1], enabled=False)))
    _, manager, _ = run_scheduler(sheet, InstantRunner(), inline=True)
    skipped = next(r for r in manager.all_results() if r.key == "O1.T1")
    assert skipped.status == "skipped"
    assert skipped.error == "depends on O2.T1, O2.T2, O2.T3 and 3 more, which are not part of this run"


def test_a_few_names_a_short_list_whole():
    from report_pipeline.text import a_few

    assert a_few(["a"]) == "a" and a_few(["a", "b", "c", "d"]) == "a, b, c, d"
    assert a_few([f"t{i}" for i in range(24)]) == "t0, t1, t2 and 21 more"


# -- fail_fast ---------------------------------------------------------------------------


def test_fail_fast_stops_the_run_at_the_first_failed_task_and_skips_the_rest_with_the_reason():
    runner = InstantRunner(fail={"O1.T2"})
    _, manager, halt = run_scheduler(make_sheet(2, 3), runner, inline=True, objective_slots=1, task_slots=1,
                                     fail_fast=True)
    assert halt is not None and halt.reason == "fail_fast" and "O1.T2" in halt.message
    assert runner.calls == ["O1.T1", "O1.T2"]  # nothing started after the failure
    statuses = {r.key: r.status for r in manager.all_results()}
    assert statuses == {"O1.T1": "done", "O1.T2": "failed", "O1.T3": "skipped",
                        "O2.T1": "skipped", "O2.T2": "skipped", "O2.T3": "skipped"}
    assert all("fail-fast: task O1.T2 failed" in r.error for r in manager.all_results() if r.status == "skipped")


@pytest.mark.parametrize("seed", range(5))
def test_fail_fast_lets_the_tasks_in_flight_finish_under_random_completion_order(seed):
    runner = GatedRunner(seed, fail={"O2.T2"}, first_batch=6)
    _, manager, halt = run_scheduler(make_sheet(3, 3), runner, objective_slots=3, task_slots=2, fail_fast=True)
    assert halt is not None and halt.reason == "fail_fast"
    results = manager.all_results()
    assert len(results) == 9  # every task has its one result
    for r in results:
        # a task that started ran to its own end (done or failed); one never started is skipped
        assert (r.status == "skipped") == (r.key not in runner.started), r.key
    assert manager.get("O2.T2").status == "failed"
    # after the failure settled, nothing new was started
    assert set(runner.started) <= set(runner.completed)
    assert not any(r.status == "skipped" and "fail-fast" not in r.error for r in results)


def test_without_fail_fast_a_failure_stops_nothing():
    runner = InstantRunner(fail={"O1.T2"})
    _, manager, halt = run_scheduler(make_sheet(2, 3), runner, inline=True, objective_slots=1, task_slots=1)
    assert halt is None and len(runner.calls) == 6


def test_a_fail_fast_chapter_stops_alone_and_what_depends_on_it_is_skipped():
    objectives = (Objective("O1", "One", index=0, fail_fast=True), Objective("O2", "Two", index=1))
    tasks = tuple(Task(o, t, prompt="p", title=f"{o}.{t}", index=i,
                       depends_on=("O1.T3",) if (o, t) == ("O2", "T2") else ())
                  for i, (o, t) in enumerate((o, t) for o in ("O1", "O2") for t in ("T1", "T2", "T3")))
    sheet = PromptSheet(path=Path("x.xlsx"), objectives=objectives, tasks=tasks)
    runner = InstantRunner(fail={"O1.T1", "O2.T1"})
    _, manager, halt = run_scheduler(sheet, runner, inline=True, objective_slots=1, task_slots=1)
    assert halt is None  # the run goes on
    statuses = {r.key: r.status for r in manager.all_results()}
    assert statuses == {"O1.T1": "failed", "O1.T2": "skipped", "O1.T3": "skipped",
                        "O2.T1": "failed", "O2.T2": "skipped", "O2.T3": "done"}  # O2 has no fail_fast: T3 ran
    assert manager.get("O1.T2").error == "fail-fast: chapter O1 stopped when task O1.T1 failed"
    assert "O1.T3" in manager.get("O2.T2").error  # its dependency was skipped
    assert "O1.T2" not in runner.calls and "O1.T3" not in runner.calls
