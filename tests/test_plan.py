"""Planning is pure: selection, dependency wiring and objective admission order, without threads."""

from __future__ import annotations

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


def test_limit_takes_the_first_tasks_and_marks_dependencies_outside_the_run():
    plan = build_plan(make_sheet(2, 2, depends={"O1.T2": ("O2.T1",)}), limit=2)
    assert list(plan.tasks) == ["O1.T1", "O1.T2"]
    assert plan.missing == {"O1.T2": ("O2.T1",)}
    assert plan.parents["O1.T2"] == ()


def test_admission_order_is_a_pure_function_of_the_edges():
    plan = build_plan(make_sheet(3, 1, depends={"O2.T1": ("O3.T1",)}))
    assert admission_order(plan.objectives, plan.tasks, plan.parents) == ("O1", "O3", "O2")
