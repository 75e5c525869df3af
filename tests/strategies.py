"""Hypothesis strategies for random prompt workbooks, and the profiles the property tests run under.

A drawn `WorkbookSpec` is plain data: objectives and task rows in sheet order,
enabled flags, and `depends_on` cells that can never form a cycle (each task
only names tasks, or whole objectives, that come earlier in a random
topological order). It writes itself as a real .xlsx (`write`), builds the
same `PromptSheet` without a file (`prompt_sheet`, for pure planning tests),
and answers what a correct run must do (`report_order`, `parents`,
`expected_statuses`) without using the library's own dependency code, so the
tests compare two independent accounts.

Profiles: `ci` (the default) is small and derandomized so CI is fast and
repeatable; `long` (`HYPOTHESIS_PROFILE=long`) explores 300 examples a test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from report_pipeline.models import Objective, PromptSheet, Task
from tests.workbooks import make_workbook

settings.register_profile(
    "ci",
    max_examples=15,
    deadline=None,  # a run writes .docx, .xlsx and a .png: its time says nothing about correctness
    derandomize=True,  # the same examples on every CI run; a failure reproduces as is
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Neither list is sorted, so an order taken from ids instead of the sheet shows up.
OBJECTIVE_IDS = ("market", "alpha", "zulu", "costs", "intro", "beta")
TASK_IDS = ("t3", "t1", "t6", "t2", "t5", "t4")

# Shrinks towards True (the first element): a smaller counterexample has fewer disabled rows.
_mostly_enabled = st.sampled_from([True, True, True, False])


@dataclass(frozen=True)
class ObjectiveSpec:
    objective_id: str
    enabled: bool

    @property
    def title(self) -> str:
        return f"Chapter {self.objective_id}"


@dataclass(frozen=True)
class TaskSpec:
    objective_id: str
    task_id: str
    enabled: bool  # the row's own flag; a disabled objective disables it too
    depends_on: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.objective_id}.{self.task_id}"

    @property
    def title(self) -> str:
        """Unique in the workbook, so `### <title>` in report.md names exactly one task."""
        return f"Section {self.task_id} of {self.objective_id}"

    @property
    def prompt(self) -> str:
        """Every dependency's text goes into the prompt, so a task's text depends on theirs."""
        lines = [f"Write {self.title}."]
        lines += [f'{{{{ results["{ref}"] }}}}' for ref in self.depends_on]
        return "\n".join(lines)


@dataclass(frozen=True)
class WorkbookSpec:
    objectives: tuple[ObjectiveSpec, ...]  # the objectives sheet, in order
    tasks: tuple[TaskSpec, ...]  # the tasks sheet, in order (objectives interleaved)
    topological: tuple[str, ...]  # every task key, each after everything it depends on

    # -- what the workbook says --------------------------------------------------------

    def objective(self, objective_id: str) -> ObjectiveSpec:
        return next(o for o in self.objectives if o.objective_id == objective_id)

    def task(self, key: str) -> TaskSpec:
        return next(t for t in self.tasks if t.key == key)

    def runs(self, task: TaskSpec) -> bool:
        return task.enabled and self.objective(task.objective_id).enabled

    def tasks_of(self, objective_id: str) -> list[TaskSpec]:
        return [t for t in self.tasks if t.objective_id == objective_id]

    @property
    def running_objectives(self) -> list[ObjectiveSpec]:
        return [o for o in self.objectives if o.enabled]

    def report_order(self) -> list[str]:
        """Enabled task keys: objectives in sheet order, then tasks in sheet order."""
        return [t.key for o in self.running_objectives for t in self.tasks_of(o.objective_id) if self.runs(t)]

    def parents(self, key: str) -> set[str]:
        """The enabled tasks `key` waits for: `OBJ` is every enabled task of that objective."""
        parents: set[str] = set()
        for ref in self.task(key).depends_on:
            if "." in ref:
                parents.add(ref)
            else:
                parents.update(t.key for t in self.tasks_of(ref) if self.runs(t))
        parents.discard(key)
        return {p for p in parents if self.runs(self.task(p))}

    def expected_statuses(self, failing: frozenset[str]) -> dict[str, str]:
        """What a correct run gives each enabled task when the model fails exactly `failing`.

        A task whose dependency did not finish is never sent, so it is `skipped`
        even when it is in `failing` too.
        """
        status: dict[str, str] = {}
        for key in self.topological:
            if not self.runs(self.task(key)):
                continue
            if any(status[p] != "done" for p in self.parents(key)):
                status[key] = "skipped"
            else:
                status[key] = "failed" if key in failing else "done"
        return status

    # -- as a file or as models ----------------------------------------------------------

    def write(self, folder: Path) -> Path:
        """The workbook as a real .xlsx in `folder`."""
        return make_workbook(
            folder,
            objectives=[
                {"objective_id": o.objective_id, "title": o.title, "enabled": o.enabled} for o in self.objectives
            ],
            tasks=[
                {
                    "objective_id": t.objective_id,
                    "task_id": t.task_id,
                    "prompt": t.prompt,
                    "title": t.title,
                    "depends_on": ", ".join(t.depends_on) or None,
                    "enabled": t.enabled,
                }
                for t in self.tasks
            ],
        )

    def prompt_sheet(self) -> PromptSheet:
        """The `PromptSheet` the reader builds from `write()`'s file, made directly (no I/O)."""
        objectives = tuple(
            Objective(o.objective_id, o.title, enabled=o.enabled, index=i, row=i + 2)
            for i, o in enumerate(self.objectives)
        )
        tasks = tuple(
            Task(
                t.objective_id, t.task_id, t.prompt, title=t.title, depends_on=t.depends_on,
                enabled=self.runs(t), index=i, row=i + 2,
            )
            for i, t in enumerate(self.tasks)
        )
        return PromptSheet(path=Path("generated.xlsx"), objectives=objectives, tasks=tasks)


@st.composite
def workbooks(
    draw: st.DrawFn,
    *,
    max_objectives: int = 6,
    max_tasks: int = 6,
    objective_blocks: bool | None = None,
) -> WorkbookSpec:
    """A valid workbook: 1..max_objectives objectives of 1..max_tasks tasks, acyclic dependencies.

    `objective_blocks=True` draws the topological order objective by objective, so
    objectives never wait on each other in a circle; False draws any order of
    tasks, where two chapters often wait on each other through different tasks
    (legal: the tasks themselves never form a cycle). None draws either.
    """
    ids = draw(st.permutations(OBJECTIVE_IDS))[: draw(st.integers(1, max_objectives))]
    keys_of = {
        oid: [f"{oid}.{tid}" for tid in draw(st.permutations(TASK_IDS))[: draw(st.integers(1, max_tasks))]]
        for oid in ids
    }
    objective_enabled = {oid: draw(_mostly_enabled) for oid in ids}
    if not any(objective_enabled.values()):
        objective_enabled[ids[0]] = True
    task_enabled = {key: draw(_mostly_enabled) for oid in ids for key in keys_of[oid]}
    for oid in ids:  # the validator rejects an enabled objective without an enabled task
        if objective_enabled[oid] and not any(task_enabled[k] for k in keys_of[oid]):
            task_enabled[keys_of[oid][0]] = True

    all_keys = [k for oid in ids for k in keys_of[oid]]
    rows = draw(st.permutations(all_keys))  # the tasks sheet interleaves objectives
    blocks = draw(st.booleans()) if objective_blocks is None else objective_blocks
    if blocks:
        topological = [k for oid in draw(st.permutations(ids)) for k in draw(st.permutations(keys_of[oid]))]
    else:
        topological = list(draw(st.permutations(all_keys)))

    def runs(key: str) -> bool:
        return task_enabled[key] and objective_enabled[key.split(".")[0]]

    depends_on: dict[str, tuple[str, ...]] = {}
    for position, key in enumerate(topological):
        own = key.split(".")[0]
        earlier = set(topological[:position])
        # A whole objective only when all its rows (enabled or not) come earlier: the
        # validator looks for cycles across every row, disabled ones included.
        whole = [oid for oid in ids if oid != own and all(k in earlier for k in keys_of[oid])]
        if runs(key):  # an enabled task may only wait for work that runs
            candidates = [k for k in topological[:position] if runs(k)]
            candidates += [oid for oid in whole if objective_enabled[oid]]
        else:
            candidates = list(topological[:position]) + whole
        if candidates:
            depends_on[key] = tuple(draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True)))

    objectives = tuple(ObjectiveSpec(oid, objective_enabled[oid]) for oid in ids)
    tasks = tuple(
        TaskSpec(key.split(".")[0], key.split(".")[1], task_enabled[key], depends_on.get(key, ())) for key in rows
    )
    return WorkbookSpec(objectives=objectives, tasks=tasks, topological=tuple(topological))


@dataclass(frozen=True)
class Scenario:
    """A workbook plus how the fake model behaves on it and how wide the pools are."""

    workbook: WorkbookSpec
    failing: frozenset[str]  # task keys whose generate call raises ProviderError
    latency_ms: Mapping[str, int]  # task key -> how long its model call takes
    max_objective_workers: int
    max_task_workers: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    workbook = draw(workbooks())
    keys = workbook.report_order()
    failing = draw(st.sets(st.sampled_from(keys), max_size=min(3, len(keys))))
    latencies = draw(st.lists(st.integers(0, 15), min_size=len(keys), max_size=len(keys)))
    return Scenario(
        workbook=workbook,
        failing=frozenset(failing),
        latency_ms=dict(zip(keys, latencies)),
        max_objective_workers=draw(st.integers(1, 4)),
        max_task_workers=draw(st.integers(1, 4)),
    )
