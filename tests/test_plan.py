"""Planning is pure: selection, dependency wiring and objective admission order, without threads."""

from __future__ import annotations

import dataclasses

import pytest

from report_pipeline.errors import ConfigError
from report_pipeline.run.plan import admission_order, build_plan
from tests.test_scheduler import make_sheet


def test_plan_keeps_sheet_order_and_groups_tasks_by_objective():
    plan = build_plan(make_sheet(2, 2))
    assert list(plan.tasks) == ["O1.T1", "O1.T2", "O2.T1", "O2.T2"]
    assert plan.tasks_by_objective == {"O1": ("O1.T1", "O1.T2"), "O2": ("O2.T1", "O2.T2")}


def test_whole_objective_dependency_expands_to_its_tasks():
    plan = build_plan(make_sheet(3, 2, depends={"O1.T1": ("O2", "O3.T2")}))
    assert plan.parents["O1.T1"] == ("O2.T1", "O2.T2", "O3.T2")
    assert plan.children["O2.T1"] == ("O1.T1",)


def test_summary_objective_is_admitted_after_the_chapters_it_depends_on():
    plan = build_plan(make_sheet(4, 1, depends={"O1.T1": ("O2", "O3", "O4")}))
    assert plan.admission_order == ("O2", "O3", "O4", "O1")


def test_admission_falls_back_to_sheet_order_for_chapters_waiting_on_each_other():
    plan = build_plan(make_sheet(2, 2, depends={"O1.T2": ("O2.T1",), "O2.T2": ("O1.T1",)}))
    assert plan.admission_order == ("O1", "O2")


@pytest.mark.parametrize("selection, expected", [(("2",), ["O2"]), (("O3", "1"), ["O1", "O3"]), (("O2",), ["O2"])])
def test_objectives_selected_by_id_or_position(selection, expected):
    plan = build_plan(make_sheet(3, 1), objectives=selection)
    assert [o.objective_id for o in plan.objectives] == expected


def test_unknown_objective_selection_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="no objective 'O9'"):
        build_plan(make_sheet(2, 1), objectives=("O9",))


def test_limit_takes_the_first_tasks_and_what_they_depend_on():
    """--limit 2 used to skip O1.T2 for want of O2.T1: the dependency runs too, and the plan says it was taken in."""
    plan = build_plan(make_sheet(2, 2, depends={"O1.T2": ("O2.T1",)}), limit=2)
    assert list(plan.tasks) == ["O1.T1", "O1.T2", "O2.T1"]
    assert plan.taken_in == ("O2.T1",) and plan.missing == {}
    assert plan.parents["O1.T2"] == ("O2.T1",)


def test_objectives_take_in_the_chapters_they_depend_on_transitively():
    plan = build_plan(make_sheet(3, 1, depends={"O1.T1": ("O2.T1",), "O2.T1": ("O3.T1",)}), objectives=["O1"])
    assert list(plan.tasks) == ["O1.T1", "O2.T1", "O3.T1"] and plan.taken_in == ("O2.T1", "O3.T1")


def test_task_selection_runs_those_tasks_and_their_dependencies_only():
    plan = build_plan(make_sheet(2, 3, depends={"O2.T2": ("O1.T3",)}), tasks=["O2.T2"])
    assert list(plan.tasks) == ["O1.T3", "O2.T2"] and plan.taken_in == ("O1.T3",)


def test_an_unknown_task_key_is_refused_with_the_nearest():
    with pytest.raises(ConfigError, match=r"--task O1\.T9: no such task: did you mean O1\.T\d\?"):
        build_plan(make_sheet(1, 2), tasks=["O1.T9"])
