"""Pure planning: which tasks run, what waits for what, in which order objectives start.

Everything here is a function of plain data, tested without threads; the scheduler
only follows the plan.
"""

from __future__ import annotations

import difflib
import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..models import Objective, PromptSheet, Task
from ..workbook.dependencies import expand_dependencies


@dataclass(frozen=True)
class Plan:
    """The tasks of one run and the edges between them, all keyed by `OBJ.TASK`."""

    objectives: tuple[Objective, ...]  # selected and enabled, in sheet order
    tasks: dict[str, Task]  # key -> task, in report order (objective order, then task order)
    tasks_by_objective: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]  # key -> keys it waits for (planned ones only)
    children: dict[str, tuple[str, ...]]
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # deps outside this run
    admission_order: tuple[str, ...] = ()  # objective ids, dependencies first
    taken_in: tuple[str, ...] = ()  # tasks outside the selection that a selected task depends on
    objectives_in_sheet: int = 0  # every objective of the sheet, selected or not: how chapters are numbered

    @property
    def task_count(self) -> int:
        return len(self.tasks)

    def objective_of(self, key: str) -> str:
        return self.tasks[key].objective_id


def select_objectives(objectives: Sequence[Objective], selection: Sequence[str] | None) -> list[Objective]:
    """The objectives `--objectives` names, by id or by 1-based position in the sheet.

    An id wins over a position, so a sheet whose ids are numbers behaves as it reads.
    """
    enabled = [o for o in objectives if o.enabled]
    if not selection:
        return enabled
    by_id = {o.objective_id: o for o in objectives}
    chosen: set[str] = set()
    for token in selection:
        token = token.strip()
        if token in by_id:
            objective = by_id[token]
        elif token.isdigit() and 1 <= int(token) <= len(objectives):
            objective = objectives[int(token) - 1]
        else:
            known = ", ".join(o.objective_id for o in objectives[:12])
            raise ConfigError(
                f"--objectives: no objective {token!r}: give objective ids ({known}) "
                f"or positions 1..{len(objectives)}"
            )
        if not objective.enabled:
            raise ConfigError(
                f"--objectives: objective {objective.objective_id!r} is disabled in the sheet: enable it first"
            )
        chosen.add(objective.objective_id)
    return [o for o in enabled if o.objective_id in chosen]


def select_tasks(sheet: PromptSheet, keys: Sequence[str]) -> list[Task]:
    """The tasks `--task OBJ.TASK` names (enabled ones), in sheet order; a key the sheet lacks is an error."""
    enabled = {t.key: t for t in sheet.tasks if t.enabled}
    every = {t.key for t in sheet.tasks}
    for key in keys:
        if key not in enabled:
            if key in every:
                raise ConfigError(f"--task {key}: the task is disabled in the sheet: enable it first")
            close = difflib.get_close_matches(key, list(enabled), n=1)
            hint = f": did you mean {close[0]}?" if close else ": write OBJECTIVE_ID.TASK_ID as in the tasks sheet"
            raise ConfigError(f"--task {key}: no such task{hint}")
    wanted = set(keys)
    return [t for t in sheet.tasks if t.key in wanted]


def build_plan(
    sheet: PromptSheet,
    *,
    objectives: Sequence[str] | None = None,
    limit: int | None = None,
    tasks: Sequence[str] | None = None,
) -> Plan:
    """Select enabled objectives and tasks, take in what they depend on, then wire the dependencies.

    A selection (`--objectives`, `--limit`, `--task`) that leaves out a task a chosen one
    depends on would only skip the chosen one: the dependency runs too (`Plan.taken_in`),
    with its own dependencies, and the run says so."""
    selected = select_objectives(sheet.objectives, objectives)
    selected_ids = {o.objective_id for o in selected}
    position = {o.objective_id: i for i, o in enumerate(sheet.objectives)}
    if tasks:
        runnable = [t for t in select_tasks(sheet, tasks) if t.objective_id in selected_ids]
    else:
        runnable = [t for t in sheet.tasks if t.enabled and t.objective_id in selected_ids]
    if limit is not None:
        runnable = runnable[:limit]
    expanded = expand_dependencies([t for t in sheet.tasks if t.enabled])
    enabled_objectives = {o.objective_id for o in sheet.objectives if o.enabled}
    candidates = [t for t in sheet.tasks if t.enabled and t.objective_id in enabled_objectives]
    chosen = {t.key for t in runnable}
    needed = _with_dependencies(chosen, expanded, {t.key for t in candidates})
    taken_in = tuple(t.key for t in candidates if t.key in needed and t.key not in chosen)
    runnable = [t for t in candidates if t.key in needed]
    runnable.sort(key=lambda t: (position[t.objective_id], t.index))
    planned = {t.key: t for t in runnable}
    kept_ids = {t.objective_id for t in runnable}
    kept_objectives = tuple(o for o in sheet.objectives if o.objective_id in kept_ids)
    parents: dict[str, tuple[str, ...]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    children: dict[str, list[str]] = {key: [] for key in planned}
    for key in planned:
        deps = expanded.get(key, ())
        parents[key] = tuple(d for d in deps if d in planned)
        outside = tuple(d for d in deps if d not in planned)
        if outside:
            missing[key] = outside
        for parent in parents[key]:
            children[parent].append(key)

    by_objective: dict[str, list[str]] = {o.objective_id: [] for o in kept_objectives}
    for key, task in planned.items():
        by_objective[task.objective_id].append(key)

    return Plan(
        objectives=kept_objectives,
        tasks=planned,
        tasks_by_objective={k: tuple(v) for k, v in by_objective.items()},
        parents=parents,
        children={k: tuple(v) for k, v in children.items()},
        missing=missing,
        admission_order=admission_order(kept_objectives, planned, parents),
        taken_in=taken_in,
        objectives_in_sheet=len(sheet.objectives),
    )


def _with_dependencies(chosen: set[str], expanded: dict[str, tuple[str, ...]], enabled: set[str]) -> set[str]:
    """`chosen` and every enabled task they depend on, directly or not."""
    needed = set(chosen)
    todo = deque(chosen)
    while todo:
        for dep in expanded.get(todo.popleft(), ()):
            if dep in enabled and dep not in needed:
                needed.add(dep)
                todo.append(dep)
    return needed


def admission_order(
    objectives: Sequence[Objective], tasks: dict[str, Task], parents: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """Objectives in the order they should start: an objective after every objective
    it waits on, sheet order otherwise (Kahn's algorithm with a sheet-order heap).

    Objectives that wait on each other through different tasks (a cycle between
    chapters, not between tasks) cannot be ordered; they follow in sheet order, and
    the scheduler's deadlock breaker admits past the slot limit if it must.
    """
    index = {o.objective_id: i for i, o in enumerate(objectives)}
    needs: dict[str, set[str]] = {o.objective_id: set() for o in objectives}
    for key, deps in parents.items():
        mine = tasks[key].objective_id
        for dep in deps:
            theirs = tasks[dep].objective_id
            if theirs != mine:
                needs[mine].add(theirs)
    waiting_on = {obj: len(deps) for obj, deps in needs.items()}
    unblocks: dict[str, list[str]] = {obj: [] for obj in needs}
    for obj, deps in needs.items():
        for dep in deps:
            unblocks[dep].append(obj)
    heap = [(index[obj], obj) for obj, n in waiting_on.items() if n == 0]
    heapq.heapify(heap)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(needs):
        if not heap:  # a cycle between chapters: take the first remaining in sheet order
            obj = min((o for o in needs if o not in placed), key=index.__getitem__)
            heapq.heappush(heap, (index[obj], obj))
        _, obj = heapq.heappop(heap)
        if obj in placed:
            continue
        placed.add(obj)
        order.append(obj)
        for later in unblocks[obj]:
            waiting_on[later] -= 1
            if waiting_on[later] == 0 and later not in placed:
                heapq.heappush(heap, (index[later], later))
    return tuple(order)


def sheet_order_key(plan: Plan):
    """Sort key that puts results in report order whatever order they finished in."""
    rank = {key: i for i, key in enumerate(plan.tasks)}
    return lambda key: rank[key]


def call_rounds(task: Task, *, steps: Sequence[str], outline: bool) -> int:
    """How many calls of `task` must wait for one another: its share of the critical path.

    One per step; an outline's generate is a plan, then its sections (in parallel); with
    several models the chains run side by side, except `first_success`, which tries one
    model after the other (at worst all of them), and `best`, whose judge comes last.
    """
    generate = 2 if outline else 1
    models = len(task.model or ()) or 1
    if models > 1 and task.merge == "first_success":
        generate *= models
    rounds = sum(generate if step == "generate" else 1 for step in steps)
    if models > 1 and task.merge == "best":
        rounds += 1
    return rounds


def critical_path_rounds(plan: Plan, default_steps: Sequence[str]) -> int:
    """The longest chain of calls that must wait for one another, through dependencies.

    In batch mode that is the number of waves when nothing fails or is retried (an outline
    plan retried, a first_success model that failed, add one each); it does not grow with
    the number of tasks.
    """
    outline = {o.objective_id for o in plan.objectives if o.mode == "outline"}
    depth: dict[str, int] = {}
    for key in topological_order(plan):
        task = plan.tasks[key]
        own = call_rounds(task, steps=task.steps or default_steps, outline=task.objective_id in outline)
        depth[key] = own + max((depth[p] for p in plan.parents[key]), default=0)
    return max(depth.values(), default=0)


def topological_order(plan: Plan) -> list[str]:
    """Every task key after all of its parents (Kahn's algorithm, sheet order among equals)."""
    waiting = {key: len(parents) for key, parents in plan.parents.items()}
    ready = deque(key for key in plan.tasks if waiting[key] == 0)
    order: list[str] = []
    while ready:
        key = ready.popleft()
        order.append(key)
        for child in plan.children.get(key, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return order


def own_seconds(
    plan: Plan,
    default_steps: Sequence[str],
    *,
    known_task_s: Mapping[str, float] | None = None,
    known_model_call_s: Mapping[str, float] | None = None,
    default_model: str = "",
    default_call_s: float = 1.0,
) -> dict[str, float]:
    """How long each task's own calls should take, one after the other: what the ledger measured for
    the same task last time, else its rounds of calls (`call_rounds`) at its model's mean call time,
    else at `default_call_s`. Only the ratios matter: they rank ready tasks."""
    known_task_s = known_task_s or {}
    known_model_call_s = known_model_call_s or {}
    outline = {o.objective_id for o in plan.objectives if o.mode == "outline"}
    seconds: dict[str, float] = {}
    for key, task in plan.tasks.items():
        if key in known_task_s and known_task_s[key] > 0:
            seconds[key] = known_task_s[key]
            continue
        rounds = call_rounds(task, steps=task.steps or default_steps, outline=task.objective_id in outline)
        models = task.model or (default_model,)
        seconds[key] = rounds * max(known_model_call_s.get(m, default_call_s) for m in models)
    return seconds


def remaining_path(plan: Plan, own: Mapping[str, float]) -> dict[str, float]:
    """For each task, the longest chain of work from its start to the end of the run: its own seconds
    plus the longest remaining path of the tasks that wait for it. A ready task with a long one left
    (a 3-step chain, a chapter the summary waits on) is the run's tail if it starts last."""
    path: dict[str, float] = {}
    for key in reversed(topological_order(plan)):
        later = max((path[child] for child in plan.children.get(key, ()) if child in path), default=0.0)
        path[key] = own.get(key, 0.0) + later
    return path


def dispatch_priority(plan: Plan, path: Mapping[str, float]) -> dict[str, tuple[float, int]]:
    """The order ready tasks start in: the longest remaining path first, sheet order among equals
    (so a sheet with no chains and one model runs in sheet order, as before)."""
    return {key: (-round(path.get(key, 0.0), 6), rank) for rank, key in enumerate(plan.tasks)}
