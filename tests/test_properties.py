"""Properties of whole runs on random workbooks, and of the plan behind them.

Each example writes a random, valid workbook (tests/strategies.py) to a fresh
folder and runs it through the pipeline with a scripted offline model: every
task's call takes its own drawn time, so tasks finish in a random order, and
the drawn failure set raises `ProviderError`. Whatever the finishing order,
the outputs must follow the sheet and the dependency graph.

Hypothesis examples share one test call, so each uses `tempfile.TemporaryDirectory()`
rather than the function-scoped `tmp_path`. Profiles (`ci`, `long`) live in
tests/strategies.py; `HYPOTHESIS_PROFILE=long` explores more.
"""

from __future__ import annotations

import csv
import graphlib
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from report_pipeline.config import load_config
from report_pipeline.errors import ProviderError
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.run.outcome import RunResult
from report_pipeline.run.plan import build_plan
from report_pipeline.workbook.reader import load_prompt_sheet
from report_pipeline.writers import objective_csv_name
from tests.strategies import Scenario, WorkbookSpec, scenarios, workbooks

# Planning is pure and takes milliseconds: explore it four times as widely as whole runs.
PLAN_EXAMPLES = settings.default.max_examples * 4


class ScriptedProvider(OfflineProvider):
    """The offline model, taking a set time per task and failing the chosen ones.

    The sleep is the model's work (it decides which task finishes first), not
    synchronisation: no assertion waits on it.
    """

    def __init__(self, config, *, latency_ms, failing) -> None:
        super().__init__(config)
        self.latency_ms = latency_ms
        self.failing = failing

    def complete(self, request):
        key = request.label.rsplit(".", 1)[0]  # label is OBJ.TASK.step
        time.sleep(self.latency_ms.get(key, 0) / 1000)
        if key in self.failing:
            raise ProviderError("scripted failure for this task", status_code=400)
        return super().complete(request)


def run_scenario(scenario: Scenario, folder: Path, *, sequential: bool = False) -> RunResult:
    sheet = load_prompt_sheet(scenario.workbook.write(folder / "workbook"))
    overrides = {
        "output_dir": folder / ("sequential" if sequential else "concurrent"),
        "max_objective_workers": scenario.max_objective_workers,
        "max_task_workers": scenario.max_task_workers,
    }
    if sequential:
        overrides |= {"run_objectives_concurrent": False, "run_task_concurrent": False}
    config = load_config(overrides=overrides, environ={})
    # One at a time, timing cannot change the order: leave the latencies out and save the time.
    latency = {} if sequential else scenario.latency_ms
    provider = ScriptedProvider(config, latency_ms=latency, failing=scenario.failing)
    return ReportGenerationPipeline(config, sheet, provider=provider).run()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def row_key(row: dict[str, str]) -> str:
    return f"{row['objective_id']}.{row['task_id']}"


# -- whole runs --------------------------------------------------------------------------


@given(scenarios())
def test_every_enabled_task_appears_once_in_sheet_order_in_every_output(scenario: Scenario):
    spec = scenario.workbook
    expected = spec.report_order()
    titles = [spec.task(key).title for key in expected]
    with tempfile.TemporaryDirectory() as folder:
        result = run_scenario(scenario, Path(folder))
        run_dir = result.run_dir

        assert [r.key for r in result.results] == expected

        rows = read_csv(run_dir / "results.csv")  # completion order: compare as a multiset
        assert Counter(row_key(r) for r in rows) == Counter(expected)

        report = (run_dir / "report.md").read_text(encoding="utf-8")
        assert re.findall(r"^### (.*)$", report, re.M) == titles
        chapters = [o.title for o in spec.running_objectives]
        assert re.findall(r"^## \d+\. (.*)$", report, re.M) == chapters

        names = []  # numbered by sheet position, disabled objectives included
        for number, objective in enumerate(spec.objectives, start=1):
            if not objective.enabled:
                continue
            name = objective_csv_name(number, objective.title)
            names.append(name)
            mine = [key for key in expected if key.split(".")[0] == objective.objective_id]
            assert [row_key(r) for r in read_csv(run_dir / "objectives" / name)] == mine
        assert sorted(p.name for p in (run_dir / "objectives").iterdir()) == sorted(names)


@given(scenarios())
def test_a_task_fails_only_when_its_model_call_fails_and_skips_only_after_a_dependency(scenario: Scenario):
    spec = scenario.workbook
    expected = spec.expected_statuses(scenario.failing)
    with tempfile.TemporaryDirectory() as folder:
        result = run_scenario(scenario, Path(folder))
        rows = read_csv(result.run_dir / "results.csv")

    statuses = {r.key: r.status for r in result.results}
    assert statuses == expected
    assert {row_key(r): r["status"] for r in rows} == expected
    for r in result.results:
        if r.status == "skipped":  # the reason names a dependency that did not finish
            named = re.fullmatch(r"dependency (\S+) (failed|skipped)", r.error)
            assert named and named.group(1) in spec.parents(r.key) and statuses[named.group(1)] == named.group(2)
        if r.status == "failed":
            assert "scripted failure" in r.error
    counts = Counter(expected.values())
    assert result.counts == {s: counts[s] for s in ("done", "failed", "skipped")} | {"total": len(expected)}
    assert result.exit_code == (0 if counts["done"] == len(expected) else 1)


@given(scenarios())
def test_sequential_and_concurrent_runs_give_every_task_the_same_status_and_text(scenario: Scenario):
    with tempfile.TemporaryDirectory() as folder:
        concurrent = run_scenario(scenario, Path(folder))
        sequential = run_scenario(scenario, Path(folder), sequential=True)

    def outcome(result: RunResult) -> dict[str, tuple[str, str]]:
        return {r.key: (r.status, r.text) for r in result.results}

    assert outcome(concurrent) == outcome(sequential)
    assert [r.key for r in concurrent.results] == [r.key for r in sequential.results]


# -- the plan, without threads --------------------------------------------------------------


def objective_needs(plan) -> dict[str, set[str]]:
    """Objective -> the other objectives it waits on, read from the plan's task edges."""
    needs: dict[str, set[str]] = {o.objective_id: set() for o in plan.objectives}
    for key, parents in plan.parents.items():
        mine = plan.objective_of(key)
        needs[mine].update(plan.objective_of(p) for p in parents if plan.objective_of(p) != mine)
    return needs


def is_acyclic(needs: dict[str, set[str]]) -> bool:
    try:
        graphlib.TopologicalSorter(needs).prepare()
    except graphlib.CycleError:
        return False
    return True


@st.composite
def plans(draw: st.DrawFn, **workbook_options) -> tuple[WorkbookSpec, tuple[str, ...] | None, int | None]:
    """A workbook, an optional `--objectives` selection and an optional `--limit`."""
    spec = draw(workbooks(**workbook_options))
    enabled = [o.objective_id for o in spec.running_objectives]
    selection = draw(st.none() | st.lists(st.sampled_from(enabled), min_size=1, unique=True).map(tuple))
    limit = draw(st.none() | st.integers(1, len(spec.report_order())))
    return spec, selection, limit


@settings(max_examples=PLAN_EXAMPLES)
@given(plans())
def test_plan_waits_only_on_planned_tasks_and_names_the_rest_missing(drawn):
    spec, selection, limit = drawn
    plan = build_plan(spec.prompt_sheet(), objectives=selection, limit=limit)

    chosen = set(selection or [o.objective_id for o in spec.running_objectives])
    runnable = [t.key for t in spec.tasks if spec.runs(t) and t.objective_id in chosen][:limit]
    needed, todo = set(runnable), list(runnable)  # what the chosen tasks depend on runs too
    while todo:
        for dep in spec.parents(todo.pop()):
            if dep in spec.report_order() and dep not in needed:
                needed.add(dep)
                todo.append(dep)
    assert list(plan.tasks) == [key for key in spec.report_order() if key in needed]
    assert set(plan.taken_in) == needed - set(runnable)

    for key in plan.tasks:
        parents, missing = plan.parents[key], plan.missing.get(key, ())
        assert set(parents) <= set(plan.tasks)
        assert len(set(parents)) == len(parents)
        assert not set(missing) & set(plan.tasks)
        assert set(parents) | set(missing) == spec.parents(key)
        assert key not in plan.missing or missing  # listed only when something is missing
    assert set(plan.missing) <= set(plan.tasks)
    assert {(p, c) for c, ps in plan.parents.items() for p in ps} == {(p, c) for p, cs in plan.children.items() for c in cs}


@settings(max_examples=PLAN_EXAMPLES)
@given(plans(objective_blocks=True))
def test_admission_order_starts_each_objective_after_those_it_waits_on(drawn):
    spec, selection, limit = drawn
    plan = build_plan(spec.prompt_sheet(), objectives=selection, limit=limit)
    needs = objective_needs(plan)
    assert is_acyclic(needs)  # the strategy never lets chapters wait on each other in a circle

    order = plan.admission_order
    assert sorted(order) == sorted(o.objective_id for o in plan.objectives)
    position = {objective: i for i, objective in enumerate(order)}
    for objective, deps in needs.items():
        assert all(position[dep] < position[objective] for dep in deps), (objective, deps, order)
    # "sheet order otherwise": each next objective is the first in the sheet whose needs are met
    sheet = [o.objective_id for o in plan.objectives]
    placed: set[str] = set()
    for objective in order:
        ready = [o for o in sheet if o not in placed and needs[o] <= placed]
        assert objective == ready[0]
        placed.add(objective)


@settings(max_examples=PLAN_EXAMPLES)
@given(plans(objective_blocks=False))
def test_admission_order_lists_every_objective_once_even_when_chapters_wait_on_each_other(drawn):
    spec, selection, limit = drawn
    plan = build_plan(spec.prompt_sheet(), objectives=selection, limit=limit)
    needs = objective_needs(plan)
    order = plan.admission_order
    assert sorted(order) == sorted(o.objective_id for o in plan.objectives)
    assert len(set(order)) == len(order)
    if is_acyclic(needs):
        position = {objective: i for i, objective in enumerate(order)}
        assert all(position[d] < position[o] for o, deps in needs.items() for d in deps)
