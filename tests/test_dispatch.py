"""Work-conserving, critical-path-first dispatch: the ranking as pure functions of the plan, then the
scheduler on random DAGs with random completion order (a gated runner, no sleeps)."""

from __future__ import annotations

import random

import pytest

from report_pipeline.config import UNCAPPED, RunConfig
from report_pipeline.models import Objective, PromptSheet, Task
from report_pipeline.run.plan import build_plan, dispatch_priority, own_seconds, remaining_path
from report_pipeline.run.scheduler import Scheduler
from tests.test_scheduler import GatedRunner, InstantRunner, make_sheet, run_scheduler

# -- the ranking, pure ------------------------------------------------------------------


def _monday_sheet(chapters: int = 4) -> PromptSheet:
    """A summary placed first that waits for every chapter; each chapter's last task is a 3-step chain."""
    objectives = (Objective("SUM", "Summary", index=0),) + tuple(
        Objective(f"C{i}", f"Chapter {i}", index=i) for i in range(1, chapters + 1))
    tasks = [Task("SUM", "S", prompt="p", depends_on=tuple(f"C{i}" for i in range(1, chapters + 1)), index=0)]
    for i in range(1, chapters + 1):
        for j in range(1, 4):
            steps = ("generate", "refine", "check") if j == 3 else ()
            tasks.append(Task(f"C{i}", f"T{j}", prompt="p", steps=steps, index=len(tasks)))
    return PromptSheet(path=None, objectives=objectives, tasks=tuple(tasks))


def test_a_chain_the_summary_waits_on_ranks_before_single_calls_in_sheet_order():
    plan = build_plan(_monday_sheet())
    path = remaining_path(plan, own_seconds(plan, ("generate",)))
    assert path["C1.T3"] == 4.0 and path["C1.T1"] == 2.0 and path["SUM.S"] == 1.0  # own + the summary's
    priority = dispatch_priority(plan, path)
    ready = ["C1.T1", "C1.T2", "C1.T3", "C2.T1", "C2.T3"]
    assert sorted(ready, key=priority.__getitem__) == ["C1.T3", "C2.T3", "C1.T1", "C1.T2", "C2.T1"]


def test_what_the_ledger_measured_of_a_task_and_a_model_outranks_a_count_of_calls():
    plan = build_plan(make_sheet(1, 3))
    own = own_seconds(plan, ("generate",), known_task_s={"O1.T2": 9.0}, known_model_call_s={"slow": 5.0},
                      default_model="fast", default_call_s=1.0)
    assert own == {"O1.T1": 1.0, "O1.T2": 9.0, "O1.T3": 1.0}
    own = own_seconds(plan, ("generate", "refine"), known_model_call_s={"fast": 0.5}, default_model="fast")
    assert own["O1.T1"] == 1.0  # two rounds of the model's mean call


def test_with_no_chains_and_one_model_the_order_is_the_sheet_order():
    plan = build_plan(make_sheet(3, 4))
    priority = dispatch_priority(plan, remaining_path(plan, own_seconds(plan, ("generate",))))
    assert sorted(plan.tasks, key=priority.__getitem__) == list(plan.tasks)


def test_the_defaults_cap_nothing_but_calls_in_flight():
    config = RunConfig()
    assert (config.objective_slots, config.task_slots) == (UNCAPPED, UNCAPPED)
    assert config.task_threads == config.max_concurrent_requests == 16
    capped = RunConfig(max_objective_workers=2, max_task_workers=3)
    assert (capped.objective_slots, capped.task_slots, capped.task_threads) == (2, 3, 6)
    assert RunConfig(run_task_concurrent=False, run_objectives_concurrent=False).task_threads == 1


# -- the scheduler ------------------------------------------------------------------------


class CheckedScheduler(Scheduler):
    """Counts, after every dispatch, the times a ready task was left waiting while there was room."""

    idle_with_work = 0

    def _dispatch(self) -> None:
        super()._dispatch()
        room = self._dispatch_limit is None or self._in_flight < self._dispatch_limit
        waiting = [key for _, key in self._ready if key not in self._finished and key not in self._running
                   and self._objectives[self._plan.objective_of(key)].running < self._task_slots]
        CheckedScheduler.idle_with_work += bool(room and waiting and not self._halting())


def _random_dag(rng: random.Random) -> PromptSheet:
    """Random chapters and tasks; each task depends on a few tasks anywhere before it in a random order."""
    n_objectives = rng.randint(1, 6)
    objectives = tuple(Objective(f"O{i}", f"Chapter {i}", index=i - 1) for i in range(1, n_objectives + 1))
    keys = [f"O{i}.T{j}" for i in range(1, n_objectives + 1) for j in range(1, rng.randint(1, 7) + 1)]
    order = keys[:]
    rng.shuffle(order)
    depends = {key: tuple(rng.sample(order[:n], k=min(n, rng.choice((0, 0, 1, 2, 3))))) for n, key in enumerate(order)}
    tasks = tuple(Task(k.split(".")[0], k.split(".")[1], prompt="p", depends_on=depends[k], index=i)
                  for i, k in enumerate(keys))
    return PromptSheet(path=None, objectives=objectives, tasks=tasks)


def _run(sheet: PromptSheet, runner, *, limit: int | None, inline: bool = False, priority=None,
         objective_slots: int = UNCAPPED, task_slots: int = UNCAPPED):
    """(plan, results, times a ready task waited while there was room)."""
    CheckedScheduler.idle_with_work = 0
    plan, manager, halt = run_scheduler(sheet, runner, objective_slots=objective_slots, task_slots=task_slots,
                                        inline=inline, threads=limit or 4, scheduler_class=CheckedScheduler,
                                        dispatch_limit=limit, priority=priority)
    assert halt is None
    return plan, manager, CheckedScheduler.idle_with_work


@pytest.mark.parametrize("seed", range(40))
def test_on_random_dags_no_ready_task_waits_while_there_is_room_and_each_runs_once(seed):
    rng = random.Random(seed)
    sheet = _random_dag(rng)
    limit = rng.randint(1, 6)
    plan = build_plan(sheet)
    priority = dispatch_priority(plan, remaining_path(plan, {k: rng.uniform(0.1, 3.0) for k in plan.tasks}))
    runner = GatedRunner(seed)
    plan, manager, idle = _run(sheet, runner, limit=limit, priority=priority)
    assert idle == 0
    assert sorted(runner.started) == sorted(plan.tasks)  # every task once
    assert runner.max_running <= limit
    for key, parents in plan.parents.items():
        for parent in parents:
            assert runner.completed.index(parent) < runner.started.index(key)
    sequential = InstantRunner()
    _, same, _ = _run(sheet, sequential, limit=1, inline=True, objective_slots=1, task_slots=1)
    assert [(r.key, r.text) for r in manager.all_results()] == [(r.key, r.text) for r in same.all_results()]


def test_a_chapter_down_to_one_slow_task_does_not_hold_the_others_back():
    """Two chapters, a limit of 3: while O1.T1 runs on, O2's tasks take every free slot."""
    runner = GatedRunner(0, first_batch=3)
    _, _, idle = _run(make_sheet(2, 3), runner, limit=3)
    assert idle == 0 and runner.max_running == 3


def test_with_one_slot_the_longest_chain_starts_first():
    runner = InstantRunner()
    sheet = _monday_sheet(3)
    plan = build_plan(sheet)
    priority = dispatch_priority(plan, remaining_path(plan, own_seconds(plan, ("generate",))))
    _run(sheet, runner, limit=1, inline=True, priority=priority)
    assert runner.calls[:3] == ["C1.T3", "C2.T3", "C3.T3"]
    assert runner.calls[-1] == "SUM.S"


def test_an_explicit_chapter_cap_still_holds():
    runner = GatedRunner(3, first_batch=2)
    _run(make_sheet(5, 4), runner, limit=8, objective_slots=2, task_slots=1)
    assert runner.max_active_objectives <= 2 and max(runner.max_running_per_objective.values()) == 1
