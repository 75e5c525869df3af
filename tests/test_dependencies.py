"""depends_on: expansion to task keys, and the problems a validator must report."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from report_pipeline.models import Objective, Task
from report_pipeline.workbook.dependencies import (
    dependency_problems,
    expand_dependencies,
    format_cycle,
)


def task(key: str, *depends_on: str, enabled: bool = True) -> Task:
    objective_id, _, task_id = key.partition(".")
    return Task(objective_id=objective_id, task_id=task_id, prompt="p", depends_on=depends_on, enabled=enabled)


def objectives_of(tasks: Sequence[Task]) -> list[Objective]:
    ids = dict.fromkeys(t.objective_id for t in tasks)
    return [Objective(objective_id=i, title=i) for i in ids]


def messages(tasks: Sequence[Task], objectives: Sequence[Objective] | None = None) -> list[tuple[str, str]]:
    found = dependency_problems(tasks, objectives_of(tasks) if objectives is None else objectives)
    return [(t.key, message) for t, message in found]


# -- named DAG shapes --------------------------------------------------------------------


@pytest.fixture
def fan_out_fan_in() -> list[Task]:
    """One source, three parallel branches, one join."""
    return [
        task("A.1"),
        task("B.1", "A.1"),
        task("B.2", "A.1"),
        task("B.3", "A.1"),
        task("C.1", "B.1", "B.2", "B.3"),
    ]


@pytest.fixture
def summary_after_all_chapters() -> list[Task]:
    """Two chapters, then an executive summary that depends on each chapter as a whole."""
    return [
        task("CH1.intro"),
        task("CH1.body"),
        task("CH2.intro"),
        task("CH2.body", "CH2.intro"),
        task("SUM.exec", "CH1", "CH2"),
    ]


@pytest.fixture
def three_cycle() -> list[Task]:
    """A.1 waits for B.1, which waits for C.1, which waits for A.1."""
    return [task("A.1", "B.1"), task("B.1", "C.1"), task("C.1", "A.1")]


# -- expand_dependencies -----------------------------------------------------------------


def test_fan_out_fan_in_expands_to_its_parents(fan_out_fan_in: list[Task]) -> None:
    assert expand_dependencies(fan_out_fan_in) == {
        "A.1": (),
        "B.1": ("A.1",),
        "B.2": ("A.1",),
        "B.3": ("A.1",),
        "C.1": ("B.1", "B.2", "B.3"),
    }


def test_whole_objective_expands_to_every_task_of_it_in_sheet_order(summary_after_all_chapters: list[Task]) -> None:
    expanded = expand_dependencies(summary_after_all_chapters)
    assert expanded["SUM.exec"] == ("CH1.intro", "CH1.body", "CH2.intro", "CH2.body")


def test_expansion_keeps_sheet_order_not_the_order_written() -> None:
    tasks = [task("A.1"), task("A.2"), task("B.1", "A.2", "A.1")]
    assert expand_dependencies(tasks)["B.1"] == ("A.1", "A.2")


def test_expansion_drops_duplicates_from_overlapping_entries() -> None:
    tasks = [task("A.1"), task("A.2"), task("B.1", "A.1", "A", "A.2", "A.1")]
    assert expand_dependencies(tasks)["B.1"] == ("A.1", "A.2")


def test_expansion_ignores_unknown_references() -> None:
    tasks = [task("A.1"), task("B.1", "A.9", "Z", "A.1")]
    assert expand_dependencies(tasks)["B.1"] == ("A.1",)


def test_expansion_never_makes_a_task_wait_for_itself() -> None:
    tasks = [task("A.1"), task("A.2", "A", "A.2")]
    assert expand_dependencies(tasks)["A.2"] == ("A.1",)


def test_task_ids_with_dots_expand_by_their_full_key() -> None:
    tasks = [task("1.1.1"), task("1.1.2"), task("2.1", "1.1.2", "1")]
    assert expand_dependencies(tasks)["2.1"] == ("1.1.1", "1.1.2")


def test_expansion_covers_only_the_tasks_given() -> None:
    """Pass the tasks that will run: an objective then means its running tasks."""
    tasks = [task("A.1"), task("B.1", "A")]
    assert expand_dependencies(tasks)["B.1"] == ("A.1",)
    assert expand_dependencies(tasks[1:])["B.1"] == ()


# -- dependency_problems -----------------------------------------------------------------


def test_valid_shapes_have_no_problems(fan_out_fan_in: list[Task], summary_after_all_chapters: list[Task]) -> None:
    assert messages(fan_out_fan_in) == []
    assert messages(summary_after_all_chapters) == []


def test_unknown_task_is_reported_with_a_suggestion() -> None:
    found = messages([task("A.1"), task("A.2", "A.l")])
    assert found == [
        ("A.2", "unknown dependency 'A.l' (did you mean A.1?) — use OBJ.TASK for a task or an objective_id for a whole chapter")
    ]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("o1.t2", "unknown dependency 'o1.t2' (did you mean O1.T2? ids are case-sensitive)"),
        ("O1.t2", "unknown dependency 'O1.t2' (did you mean O1.T2? ids are case-sensitive)"),
        ("o2", "unknown dependency 'o2' (did you mean O2? ids are case-sensitive)"),
        ("o1.t3", "unknown dependency 'o1.t3' (did you mean O1.T2?)"),  # a near miss in another case
    ],
)
def test_a_dependency_in_the_wrong_case_suggests_the_exact_id(entry: str, says: str) -> None:
    found = messages([task("O1.T1"), task("O1.T2"), task("O2.T1"), task("O3.T1", entry)])
    assert [key for key, _ in found] == ["O3.T1"]
    assert found[0][1].startswith(says), found


def test_ids_stay_case_sensitive() -> None:
    """A wrong-case entry is still an error: ids match exactly everywhere else too (results["O1.T2"])."""
    assert expand_dependencies([task("O1.T2"), task("O2.T1", "o1.t2")])["O2.T1"] == ()


def test_unknown_objective_is_reported() -> None:
    found = messages([task("A.1"), task("B.1", "ZZZ")])
    assert found[0][0] == "B.1"
    assert "unknown dependency 'ZZZ'" in found[0][1]


def test_objective_without_tasks_is_still_a_known_reference() -> None:
    tasks = [task("A.1", "OUTLINE")]
    objectives = [Objective(objective_id="A", title="A"), Objective(objective_id="OUTLINE", title="O", mode="outline")]
    assert messages(tasks, objectives) == []


def test_task_depending_on_itself_is_reported() -> None:
    assert messages([task("A.1", "A.1")]) == [("A.1", "task A.1 depends on itself — remove A.1 from depends_on")]


def test_task_depending_on_its_own_objective_is_reported() -> None:
    found = messages([task("A.1"), task("A.2", "A")])
    assert found == [
        (
            "A.2",
            "task A.2 depends on its own objective A, which includes itself — list the tasks it needs (like A.<task_id>) instead",
        )
    ]


def test_cycle_is_named_in_waiting_order(three_cycle: list[Task]) -> None:
    assert messages(three_cycle) == [
        ("A.1", "dependency cycle: A.1 -> B.1 -> C.1 -> A.1 — each waits for the next; remove one of these dependencies")
    ]


def test_cycle_is_reported_once_on_its_first_task_in_the_sheet() -> None:
    tasks = [task("X.0"), task("B.1", "A.1"), task("A.1", "B.1")]
    found = messages(tasks)
    assert len(found) == 1
    assert found[0][0] == "B.1"
    assert "B.1 -> A.1 -> B.1" in found[0][1]


def test_cycle_through_a_whole_objective_dependency_is_found() -> None:
    tasks = [task("A.1", "B"), task("B.1"), task("B.2", "A.1")]
    found = messages(tasks)
    assert [key for key, _ in found] == ["A.1"]
    assert "A.1 -> B.2 -> A.1" in found[0][1]


def test_separate_cycles_are_each_reported() -> None:
    tasks = [task("A.1", "A.2"), task("A.2", "A.1"), task("B.1", "B.2"), task("B.2", "B.1"), task("C.1", "A.1")]
    found = messages(tasks)
    assert [key for key, _ in found] == ["A.1", "B.1"]


def test_problems_come_in_sheet_order() -> None:
    tasks = [task("A.1", "nope"), task("A.2", "A.2"), task("A.3", "A.4"), task("A.4", "A.3")]
    assert [key for key, _ in messages(tasks)] == ["A.1", "A.2", "A.3"]


def test_format_cycle_closes_the_loop() -> None:
    assert format_cycle(["A.1", "B.2"]) == "A.1 -> B.2 -> A.1"
