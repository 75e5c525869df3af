"""Reading a prompt sheet: every problem at once, each located and saying what to do.

Every workbook here is a real .xlsx written by openpyxl (tests/workbooks.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from report_pipeline.errors import EXIT_BAD_INPUT, PromptSheetError, SheetProblem
from report_pipeline.models import PromptSheet
from report_pipeline.workbook.reader import (
    load_prompt_sheet,
    read_prompt_sheet,
    validate_sheet,
)
from tests.workbooks import make_workbook, simple_workbook

OBJECTIVES = [{"objective_id": "A", "title": "Chapter A"}, {"objective_id": "B", "title": "Chapter B"}]
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an OLE2 compound file: .xls, or an encrypted .xlsx


def tasks(*rows: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Task rows with defaults, so each test states only what it is about."""
    return [{"objective_id": "A", "task_id": f"T{i}", "prompt": "Write.", **row} for i, row in enumerate(rows, start=1)]


def problems_in(path: Path) -> list[str]:
    sheet, problems = validate_sheet(path)
    assert (sheet is None) == bool(problems)
    return [str(p) for p in problems]


def only_problem(path: Path) -> str:
    found = problems_in(path)
    assert len(found) == 1, found
    return found[0]


def workbook(tmp_path: Path, *, objectives: Sequence[Mapping[str, Any]] = OBJECTIVES, task_rows: Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> Path:
    if task_rows is None:
        task_rows = [
            {"objective_id": "A", "task_id": "T1", "prompt": "Write A."},
            {"objective_id": "B", "task_id": "T1", "prompt": "Write B."},
        ]
    return make_workbook(tmp_path / "sheet.xlsx", objectives=objectives, tasks=task_rows, **kwargs)


def both_chapters(*rows: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`rows` in chapter A, plus one plain task so chapter B is not empty."""
    return [*tasks(*rows), {"objective_id": "B", "task_id": "T1", "prompt": "Write B."}]


# -- a good workbook ------------------------------------------------------------------------------


def test_a_good_workbook_becomes_a_prompt_sheet(tmp_path: Path) -> None:
    path = simple_workbook(tmp_path / "good.xlsx", n_objectives=2, n_tasks=2)
    sheet, problems = validate_sheet(path)
    assert problems == []
    assert isinstance(sheet, PromptSheet)
    assert [o.objective_id for o in sheet.objectives] == ["O1", "O2"]
    assert [t.key for t in sheet.tasks] == ["O1.T1", "O1.T2", "O2.T1", "O2.T2"]
    assert [(t.index, t.row) for t in sheet.tasks] == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert sheet.path == path


def test_every_column_is_read_into_the_models(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("month,sales,region\n1,10,N\n2,20,S\n", encoding="utf-8")
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        objectives=[
            {"objective_id": "A", "title": " Chapter A ", "description": "About A", "enabled": "yes", "system_prompt": "Be brief.", "mode": "Outline"},
        ],
        tasks=[
            {
                "objective_id": "A", "task_id": "T1", "prompt": "  {{ data.sales }}  ", "title": "First", "data": "sales",
                "depends_on": "", "steps": "generate, check", "model": "gpt-4o, gpt-4o-mini", "temperature": "0.5",
                "max_tokens": 800.0, "enabled": 1, "merge": "BEST", "include_table": "y",
            },
            {"objective_id": "A", "task_id": "T2", "prompt": "{{ results['A.T1'] }}", "depends_on": "A.T1"},
        ],
        data=[{"name": "sales", "path": "sales.csv", "columns": "month, `sales`", "filter": "sales > 5", "chart": "Line", "x": "month", "y": "sales"}],
        settings={"model": "gpt-4o", "max_tokens": 900},
        prompts={"Refine": "Improve: {{ draft }}"},
    )
    sheet = load_prompt_sheet(path)
    (objective,) = sheet.objectives
    assert (objective.title, objective.description, objective.system_prompt, objective.mode) == ("Chapter A", "About A", "Be brief.", "outline")
    first, second = sheet.tasks
    assert first.prompt == "{{ data.sales }}"
    assert first.data == ("sales",)
    assert first.steps == ("generate", "check")
    assert first.model == ("gpt-4o", "gpt-4o-mini")
    assert (first.temperature, first.max_tokens, first.merge, first.include_table) == (0.5, 800, "best", True)
    assert (second.steps, second.model, second.temperature, second.max_tokens, second.merge, second.include_table) == (
        None, None, None, None, "collect_all", False,
    )
    assert second.depends_on == ("A.T1",)
    source = sheet.data_sources["sales"]
    assert source.path == tmp_path / "sales.csv"
    assert (source.columns, source.filter, source.chart, source.x, source.y, source.row) == (
        ("month", "sales"), "sales > 5", "line", "month", ("sales",), 2,
    )
    assert sheet.settings == {"model": "gpt-4o", "max_tokens": 900}
    assert sheet.prompts == {"refine": "Improve: {{ draft }}"}


def test_numeric_ids_read_as_whole_number_text(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        objectives=[{"objective_id": 1, "title": "One"}, {"objective_id": 2.0, "title": "Two"}],
        tasks=[
            {"objective_id": 1, "task_id": 1, "prompt": "a"},
            {"objective_id": 2, "task_id": 1.5, "prompt": "{{ results['1.1'] }}", "depends_on": 1.1},
        ],
    )
    sheet = load_prompt_sheet(path)
    assert [o.objective_id for o in sheet.objectives] == ["1", "2"]
    assert [t.key for t in sheet.tasks] == ["1.1", "2.1.5"]
    assert sheet.tasks[1].depends_on == ("1.1",)


def test_headers_match_whatever_the_case_and_spacing_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        raw_sheets={
            "Objectives ": [["Objective ID", " TITLE ", "Notes for me"], ["A", "Chapter A", "ask Sam"]],
            "TASKS": [["objective_id", "Task-ID", "Prompt", "Reviewer"], ["A", "T1", "Write.", "Jo"]],
        },
        omit_sheets=("objectives", "tasks"),
    )
    sheet = load_prompt_sheet(path)
    assert sheet.objectives[0].title == "Chapter A"
    assert sheet.tasks[0].key == "A.T1"


def test_blank_rows_are_skipped_and_row_numbers_stay_true(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        objectives=OBJECTIVES[:1],
        raw_sheets={
            "tasks": [
                ["objective_id", "task_id", "prompt", "notes"],
                ["A", "T1", "Write."],
                [None, None, None],
                ["   ", None, ""],
                ["A", "T2", ""],
            ]
        },
        omit_sheets=("tasks",),
    )
    assert problems_in(path) == ["tasks!C5 (prompt): empty prompt — write one or set enabled to FALSE"]


def test_a_row_with_only_notes_in_unknown_columns_is_blank(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        objectives=OBJECTIVES[:1],
        raw_sheets={"tasks": [["objective_id", "task_id", "prompt", "notes"], ["A", "T1", "Write."], [None, None, None, "a note"]]},
        omit_sheets=("tasks",),
    )
    assert problems_in(path) == []


# -- not a workbook ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("renamed.xlsx", b"just some text\nnot a workbook\n", "renamed.xlsx: not an .xlsx workbook (BadZipFile"),
        ("table.csv", b"objective_id,title\nA,Chapter\n", "table.csv: this is CSV text, not an .xlsx workbook"),
        ("csv_renamed.xlsx", b"objective_id,title\nA,Chapter\n", "csv_renamed.xlsx: this is CSV text, not an .xlsx workbook"),
        ("empty.xlsx", b"", "empty.xlsx: the file is empty — it is not an .xlsx workbook"),
        (
            "old.xls",
            OLE_SIGNATURE + b"\x00" * 100,
            (
                "old.xls: this file was saved as .xls or protected with a password — open it in Excel and save an "
                "unprotected copy as .xlsx"
            ),
        ),
        (
            "old_renamed.xlsx",
            OLE_SIGNATURE + b"\x00" * 100,
            "old_renamed.xlsx: this file was saved as .xls or protected with a password",
        ),
    ],
)
def test_a_file_that_is_not_an_xlsx_workbook_is_one_clear_problem(tmp_path: Path, name: str, content: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert only_problem(path).startswith(says)


def test_a_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.xlsx"
    assert only_problem(path) == f"nowhere.xlsx: file not found: {path} — check the path"


def test_a_folder_is_one_clear_problem(tmp_path: Path) -> None:
    folder = tmp_path / "sheets.xlsx"
    folder.mkdir()
    assert "is a folder" in only_problem(folder)


def test_load_raises_prompt_sheet_error_with_every_problem(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}, {"temperature": 9}))
    with pytest.raises(PromptSheetError) as caught:
        load_prompt_sheet(path)
    error = caught.value
    assert error.exit_code == EXIT_BAD_INPUT
    assert [str(p) for p in error.problems] == [
        "tasks!C2 (prompt): empty prompt — write one or set enabled to FALSE",
        "tasks!D3 (temperature): 9 is not a number from 0 to 2 — e.g. 0.2, or leave it blank",
    ]
    assert "2 problems in the prompt sheet" in str(error)


def test_problems_are_sheet_problems_with_their_parts(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}))
    _, (problem,) = validate_sheet(path)
    assert problem == SheetProblem(
        sheet="tasks", message="empty prompt — write one or set enabled to FALSE", row=2, column="prompt", cell="C2"
    )


# -- sheets and columns -------------------------------------------------------------------------------


def test_an_empty_workbook_misses_both_required_sheets(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "sheet.xlsx", omit_sheets=("objectives", "tasks"))
    assert problems_in(path) == [
        "objectives: missing sheet 'objectives' — add a sheet named objectives with the columns objective_id, title (the workbook has: Sheet1)",
        "tasks: missing sheet 'tasks' — add a sheet named tasks with the columns objective_id, task_id, prompt (the workbook has: Sheet1)",
    ]


def test_a_missing_tasks_sheet_is_named(tmp_path: Path) -> None:
    path = workbook(tmp_path, omit_sheets=("tasks",))
    assert only_problem(path).startswith("tasks: missing sheet 'tasks'")


def test_sheets_with_only_headers_have_no_rows(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx", objective_columns=["objective_id", "title"], task_columns=["objective_id", "task_id", "prompt"]
    )
    assert problems_in(path) == [
        "objectives!row 2: no objectives — add at least one row under the header",
        "tasks!row 2: no tasks — add at least one row under the header",
    ]


def test_a_sheet_with_nothing_in_it_asks_for_a_header(tmp_path: Path) -> None:
    path = workbook(tmp_path, raw_sheets={"objectives": []}, omit_sheets=("objectives",))
    assert problems_in(path)[0] == "objectives!row 1: the sheet is empty — put the column names (objective_id, title, ...) in row 1"


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_columns=["objective_id", "task_id", "title"])
    assert problems_in(path) == ["tasks!row 1 (prompt): missing required column — add a header cell named prompt in row 1"]


def test_a_misspelt_optional_column_is_not_silently_ignored(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"depend_on": "B"}))
    assert problems_in(path) == ["tasks!D1 (depend_on): unknown column 'depend_on' — did you mean depends_on? Rename it (otherwise it is ignored)"]


def test_a_column_given_twice_is_a_problem(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        raw_sheets={"tasks": [["objective_id", "task_id", "prompt", "Prompt"], ["A", "T1", "a", "b"], ["B", "T1", "c", "d"]]},
        omit_sheets=("tasks",),
    )
    assert problems_in(path) == ["tasks!D1 (prompt): column prompt appears twice (C and D) — keep one"]


# -- ids ----------------------------------------------------------------------------------------------------


def test_empty_ids_are_problems(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[*OBJECTIVES, {"objective_id": None, "title": "No id"}],
        task_rows=both_chapters({"task_id": None}, {"objective_id": " "}),
    )
    assert problems_in(path) == [
        "objectives!A4 (objective_id): empty objective_id — give this row an id, or delete the row",
        "tasks!B2 (task_id): empty task_id — give this row an id, or delete the row",
        "tasks!A3 (objective_id): empty objective_id — give this row an id, or delete the row",
    ]


def test_duplicate_objective_id_names_the_first_row(tmp_path: Path) -> None:
    path = workbook(tmp_path, objectives=[*OBJECTIVES, {"objective_id": "A", "title": "Again"}])
    assert only_problem(path) == "objectives!A4 (objective_id): duplicate objective_id 'A' (first at row 2) — ids must be unique"


def test_duplicate_task_names_the_first_row(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"task_id": "T1"}, {"task_id": "T1"}))
    assert only_problem(path) == "tasks!B3 (task_id): duplicate task A.T1 (first at row 2) — task ids must be unique within an objective"


def test_the_same_task_id_in_two_objectives_is_fine(tmp_path: Path) -> None:
    assert problems_in(workbook(tmp_path)) == []


def test_ids_with_separators_are_problems(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[*OBJECTIVES, {"objective_id": "C.1", "title": "Dotted"}],
        task_rows=both_chapters({"task_id": "T1,T2"}),
    )
    assert problems_in(path) == [
        "objectives!A4 (objective_id): 'C.1' contains a comma or a dot, which depends_on uses as separators — choose another id",
        "tasks!B2 (task_id): 'T1,T2' contains a comma, which depends_on uses as separators — choose another id",
    ]


def test_task_pointing_at_an_unknown_objective(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"objective_id": "Z"}))
    assert problems_in(path) == [
        "objectives!A2 (objective_id): objective A has no enabled tasks — add rows to the tasks sheet (an outline chapter needs one: its brief), or set enabled to FALSE",
        "tasks!A2 (objective_id): unknown objective 'Z' — add it to the objectives sheet (known: A, B)",
    ]


# -- prompts and templates ----------------------------------------------------------------------------------


def test_empty_prompt(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {}, {}, {}, {}, {"prompt": "   "}))
    assert only_problem(path) == "tasks!C7 (prompt): empty prompt — write one or set enabled to FALSE"


def test_unknown_template_variable(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "Summarise {{ objective.title }} for {{ audience }}."}))
    assert only_problem(path) == (
        "tasks!C2 (prompt): unknown variable 'audience' — a prompt may use objective, task, data, results, project, settings"
    )


def test_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "Intro.\n{{ objective.title }\nMore."}))
    assert only_problem(path) == "tasks!C2 (prompt): template syntax error on line 2: unexpected '}' — line 2 reads: {{ objective.title }"


def test_sandbox_escape_attempt_is_reported(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "{{ ''.__class__.__mro__ }}"}))
    assert only_problem(path) == "tasks!C2 (prompt): .__class__, .__mro__ are not allowed in a prompt: names starting with _ are blocked"


def test_result_not_in_depends_on_says_to_add_it(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"prompt": 'Build on {{ results["A.T1"] }}'}))
    assert only_problem(path) == 'tasks!C3 (prompt): results["A.T1"] is not a dependency of this task — add A.T1 to its depends_on'


def test_results_may_use_a_whole_objective_listed_in_depends_on(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        task_rows=[
            {"objective_id": "A", "task_id": "T1", "prompt": "a"},
            {"objective_id": "A", "task_id": "T2", "prompt": "b"},
            {"objective_id": "B", "task_id": "S", "prompt": '{{ results["A"] }} {{ results["A.T2"] }}', "depends_on": "A"},
        ],
    )
    assert problems_in(path) == []


def test_settings_used_in_a_template_must_be_in_the_settings_sheet(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "{{ settings.model }} {{ settings.temperature }}"}), settings={"model": "gpt-4o"})
    assert only_problem(path) == (
        "tasks!C2 (prompt): settings.temperature is not set in the settings sheet — add a row with key temperature and a value (set: model)"
    )


def test_disabled_rows_skip_the_deep_checks(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        task_rows=both_chapters({}, {"prompt": "", "enabled": False}, {"prompt": "{{ nope }", "enabled": "no", "data": "ghost", "depends_on": "X.9"}),
    )
    assert problems_in(path) == []


def test_disabled_rows_still_get_their_cells_checked(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"enabled": False, "temperature": "hot"}))
    assert only_problem(path) == "tasks!E3 (temperature): 'hot' is not a number from 0 to 2 — e.g. 0.2, or leave it blank"


# -- data -------------------------------------------------------------------------------------------------------


@pytest.fixture
def sales_csv(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("region,month,sales\nNorth,1,10\nSouth,1,20\n", encoding="utf-8")
    return path


def test_unknown_data_source_in_the_data_column(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"data": "sales, costs"}), data=[{"name": "sales", "path": "sales.csv"}])
    assert only_problem(path) == "tasks!D2 (data): unknown data source 'costs' — add it to the data sheet (known: sales)"


def test_unknown_data_source_without_a_data_sheet(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"data": "sales"}))
    assert only_problem(path) == "tasks!D2 (data): unknown data source 'sales' — add it to the data sheet (known: none: add a data sheet)"


def test_unknown_data_source_in_a_template(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "{{ data.sale }}"}), data=[{"name": "sales", "path": "sales.csv"}])
    assert only_problem(path) == (
        "tasks!C2 (prompt): unknown data source 'sale' (did you mean 'sales'?) in data.sale — add it to the data sheet (known: sales)"
    )


def test_missing_data_file(tmp_path: Path) -> None:
    path = workbook(tmp_path, data=[{"name": "sales", "path": "data/sales.csv"}])
    assert only_problem(path) == (
        f"data!B2 (path): file not found: {tmp_path / 'data' / 'sales.csv'} (a relative path starts at the workbook's folder)"
    )


def test_unreadable_data_file(tmp_path: Path) -> None:
    (tmp_path / "broken.xlsx").write_text("not really excel", encoding="utf-8")
    path = workbook(tmp_path, data=[{"name": "broken", "path": "broken.xlsx"}])
    assert only_problem(path).startswith(f"data!B2 (path): {tmp_path / 'broken.xlsx'}: cannot read it as an Excel workbook")


def test_wrong_sheet_of_a_data_workbook(tmp_path: Path) -> None:
    make_workbook(tmp_path / "book.xlsx", objectives=[{"objective_id": "x", "title": "y"}], omit_sheets=("tasks",))
    path = workbook(tmp_path, data=[{"name": "book", "path": "book.xlsx", "sheet": "Sales"}])
    assert only_problem(path) == "data!C2 (sheet): book.xlsx has no sheet 'Sales' (it has: objectives)"


def test_data_columns_the_file_does_not_have(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(tmp_path, data=[{"name": "sales", "path": "sales.csv", "columns": "month, profit"}])
    assert only_problem(path) == "data!C2 (columns): column 'profit' not in sales.csv (it has: region, month, sales)"


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("sales >> 5", "bad filter 'sales >> 5': expected a value after sales >"),
        ("profit > 5", "filter uses column 'profit', which the file does not have"),
        ("sales == lots", "column 'sales' holds numbers"),
    ],
)
def test_bad_filter(tmp_path: Path, sales_csv: Path, expression: str, says: str) -> None:
    path = workbook(tmp_path, data=[{"name": "sales", "path": "sales.csv", "filter": expression}])
    assert only_problem(path).startswith(f"data!C2 (filter): {says}")


def test_chart_without_x_and_y(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(tmp_path, data=[{"name": "sales", "path": "sales.csv", "chart": "bar", "x": "month"}])
    assert problems_in(path) == ["data!C2 (chart): chart bar needs x and y — name the x column and one or more y columns"]


def test_chart_with_unknown_columns_and_a_bad_chart_kind(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(
        tmp_path,
        data=[
            {"name": "sales", "path": "sales.csv", "chart": "line", "x": "day", "y": "sales, cost"},
            {"name": "pie", "path": "sales.csv", "chart": "pie", "x": "month", "y": "sales"},
        ],
    )
    assert problems_in(path) == [
        "data!D2 (x): chart x column 'day' is not in the table (it has: region, month, sales)",
        "data!E2 (y): chart y column 'cost' is not in the table (it has: region, month, sales)",
        "data!C3 (chart): 'pie' is not a chart — use one of line, bar",
    ]


def test_data_names_must_work_as_data_dot_name(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(tmp_path, data=[{"name": "sales 2024", "path": "sales.csv"}, {"name": "sales", "path": "sales.csv"}, {"name": "sales", "path": "sales.csv"}])
    assert problems_in(path) == [
        "data!A2 (name): 'sales 2024' cannot be used as data.NAME — use letters, digits and _ only (e.g. sales_2024)",
        "data!A4 (name): duplicate data source 'sales' (first at row 3) — names must be unique",
    ]


def test_data_paths_may_leave_the_workbook_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    (elsewhere / "kpis.csv").write_text("k,v\na,1\n", encoding="utf-8")
    book = tmp_path / "books"
    path = make_workbook(
        book / "sheet.xlsx",
        objectives=OBJECTIVES,
        tasks=both_chapters({"prompt": "{{ data.absolute }} {{ data.relative }}"}),
        data=[{"name": "absolute", "path": str(elsewhere / "kpis.csv")}, {"name": "relative", "path": "../shared/kpis.csv"}],
    )
    sheet = load_prompt_sheet(path)
    assert sheet.data_sources["absolute"].path == elsewhere / "kpis.csv"
    assert sheet.data_sources["relative"].path.resolve() == (elsewhere / "kpis.csv").resolve()


def test_a_data_row_without_a_path(tmp_path: Path) -> None:
    path = workbook(tmp_path, data=[{"name": "sales", "path": None, "sheet": "x"}])
    assert only_problem(path) == "data!B2 (path): empty path — give the CSV or XLSX file, relative to the workbook's folder"


# -- cell values ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "enabled"),
    [(True, True), (False, False), (1, True), (0, False), ("TRUE", True), ("false", False), ("Yes", True), ("NO", False),
     ("y", True), ("N", False), ("1", True), ("0", False), (None, True)],
)
def test_enabled_accepts_the_usual_spellings(tmp_path: Path, cell: Any, enabled: bool) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"enabled": cell}))
    assert load_prompt_sheet(path).tasks[1].enabled is enabled


@pytest.mark.parametrize(("cell", "shown"), [("maybe", "'maybe'"), (2, "2"), ("on", "'on'")])
def test_bad_enabled_value(tmp_path: Path, cell: Any, shown: str) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"enabled": cell}))
    assert only_problem(path) == f"tasks!D3 (enabled): {shown} is not TRUE or FALSE — write TRUE, FALSE, yes, no, 1 or 0"


@pytest.mark.parametrize(("cell", "value"), [(0, 0.0), (2, 2.0), (0.7, 0.7), ("1.5", 1.5)])
def test_temperature_accepts_numbers_from_0_to_2(tmp_path: Path, cell: Any, value: float) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"temperature": cell}))
    assert load_prompt_sheet(path).tasks[0].temperature == value


@pytest.mark.parametrize(("cell", "shown"), [(-0.1, "-0.1"), (2.5, "2.5"), ("warm", "'warm'"), ("0,7", "'0,7'"), (True, "TRUE")])
def test_bad_temperature(tmp_path: Path, cell: Any, shown: str) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"temperature": cell}))
    assert only_problem(path) == f"tasks!D2 (temperature): {shown} is not a number from 0 to 2 — e.g. 0.2, or leave it blank"


@pytest.mark.parametrize(("cell", "value"), [(1, 1), (800, 800), (1200.0, 1200), ("64", 64)])
def test_max_tokens_accepts_whole_numbers_from_1(tmp_path: Path, cell: Any, value: int) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"max_tokens": cell}))
    assert load_prompt_sheet(path).tasks[0].max_tokens == value


@pytest.mark.parametrize(("cell", "shown"), [(0, "0"), (-5, "-5"), (10.5, "10.5"), ("lots", "'lots'")])
def test_bad_max_tokens(tmp_path: Path, cell: Any, shown: str) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"max_tokens": cell}))
    assert only_problem(path) == f"tasks!D2 (max_tokens): {shown} is not a whole number of at least 1 — e.g. 800, or leave it blank"


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("refine", "steps must start with `generate`"),
        ("generate, polish", "unknown step 'polish': choose from generate, refine, check"),
        ("generate, refine, refine", "a step is listed twice"),
    ],
)
def test_bad_steps_use_the_config_message(tmp_path: Path, cell: str, says: str) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"steps": cell}))
    assert only_problem(path) == f"tasks!D2 (steps): {says} (e.g. generate, refine, check)"


def test_bad_mode_and_merge_values(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[{"objective_id": "A", "title": "A", "mode": "essay"}, OBJECTIVES[1]],
        task_rows=both_chapters({"merge": "vote"}),
    )
    assert problems_in(path) == [
        "objectives!C2 (mode): 'essay' is not a mode — use one of tasks, outline",
        "tasks!D2 (merge): 'vote' is not a merge — use one of collect_all, first_success, best, sections, combine",
    ]


def test_a_model_listed_twice(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"model": "gpt-4o, gpt-4o"}))
    assert only_problem(path) == "tasks!D2 (model): a model is listed twice — list each once"


# -- enabled objectives and tasks --------------------------------------------------------------------------------


def test_tasks_of_a_disabled_objective_are_disabled(tmp_path: Path) -> None:
    path = workbook(tmp_path, objectives=[OBJECTIVES[0], {**OBJECTIVES[1], "enabled": "FALSE"}])
    sheet = load_prompt_sheet(path)
    assert [(t.key, t.enabled) for t in sheet.tasks] == [("A.T1", True), ("B.T1", False)]


def test_depending_on_a_disabled_task(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"enabled": False}, {"depends_on": "A.T1"}))
    assert only_problem(path) == "tasks!E3 (depends_on): depends on A.T1, which is disabled — enable it or remove it from depends_on"


def test_depending_on_a_task_of_a_disabled_objective(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[OBJECTIVES[0], {**OBJECTIVES[1], "enabled": False}],
        task_rows=[{"objective_id": "A", "task_id": "T1", "prompt": "a", "depends_on": "B.T1, B"}, {"objective_id": "B", "task_id": "T1", "prompt": "b"}],
    )
    assert problems_in(path) == [
        "tasks!D2 (depends_on): depends on B.T1, which is in disabled objective B — enable it or remove it from depends_on",
        "tasks!D2 (depends_on): depends on objective B, which is disabled — enable it or remove it from depends_on",
    ]


def test_depending_on_an_objective_whose_tasks_are_all_disabled(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[*OBJECTIVES, {"objective_id": "C", "title": "C", "mode": "outline"}],
        task_rows=[
            {"objective_id": "A", "task_id": "T1", "prompt": "a", "depends_on": "B"},
            {"objective_id": "B", "task_id": "T1", "prompt": "b", "enabled": False},
        ],
    )
    assert problems_in(path) == [
        "objectives!A3 (objective_id): objective B has no enabled tasks — add rows to the tasks sheet (an outline chapter needs one: its brief), or set enabled to FALSE",
        "objectives!A4 (objective_id): objective C has no enabled tasks — add rows to the tasks sheet (an outline chapter needs one: its brief), or set enabled to FALSE",
        "tasks!D2 (depends_on): depends on objective B, which has no enabled tasks — enable one or remove it from depends_on",
    ]


def test_every_task_disabled_is_a_problem(tmp_path: Path) -> None:
    path = workbook(tmp_path, objectives=[{**o, "enabled": False} for o in OBJECTIVES])
    assert problems_in(path) == ["tasks!row 2: every task is disabled (or in a disabled objective) — enable at least one"]


def test_a_disabled_objective_needs_no_title(tmp_path: Path) -> None:
    path = workbook(tmp_path, objectives=[*OBJECTIVES, {"objective_id": "C", "title": None, "enabled": False}])
    assert problems_in(path) == []


def test_an_enabled_objective_needs_a_title(tmp_path: Path) -> None:
    path = workbook(tmp_path, objectives=[OBJECTIVES[0], {"objective_id": "B", "title": " "}])
    assert only_problem(path) == "objectives!B3 (title): empty title — give the chapter a title, or set enabled to FALSE"


# -- dependencies ----------------------------------------------------------------------------------------------------------


def test_unknown_dependency(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"depends_on": "A.T9"}))
    assert only_problem(path) == (
        "tasks!D3 (depends_on): unknown dependency 'A.T9' (did you mean A.T1?) — use OBJ.TASK for a task or an objective_id for a whole chapter"
    )


def test_dependency_cycle_across_chapters(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        task_rows=[
            {"objective_id": "A", "task_id": "T1", "prompt": "a", "depends_on": "B.T1"},
            {"objective_id": "B", "task_id": "T1", "prompt": "b", "depends_on": "A"},
        ],
    )
    assert only_problem(path) == (
        "tasks!D2 (depends_on): dependency cycle: A.T1 -> B.T1 -> A.T1 — each waits for the next; remove one of these dependencies"
    )


def test_self_dependency(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"depends_on": "A.T1"}))
    assert only_problem(path) == "tasks!D2 (depends_on): task A.T1 depends on itself — remove A.T1 from depends_on"


def test_depends_on_accepts_commas_semicolons_and_new_lines(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {}, {"depends_on": "A.T1; A.T2\nB"}))
    assert load_prompt_sheet(path).tasks[2].depends_on == ("A.T1", "A.T2", "B")


# -- settings and step prompts ---------------------------------------------------------------------------------------------


def test_settings_are_raw_values_with_their_cells(tmp_path: Path) -> None:
    path = workbook(tmp_path, settings={"Model": " gpt-4o ", "max_tokens": 900, "requests_per_minute": None, "temperature": "0.5"})
    reading = read_prompt_sheet(path)
    assert reading.problems == ()
    assert reading.sheet is not None
    assert reading.sheet.settings == {"model": "gpt-4o", "max_tokens": 900, "temperature": "0.5"}  # config converts them
    assert reading.settings_locations == {
        "model": "settings!B2", "max_tokens": "settings!B3", "requests_per_minute": "settings!B4", "temperature": "settings!B5",
    }


def test_settings_locations_are_known_even_when_other_sheets_have_problems(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}), settings={"model": "x"})
    reading = read_prompt_sheet(path)
    assert reading.sheet is None and not reading.ok
    assert reading.settings_locations == {"model": "settings!B2"}
    with pytest.raises(PromptSheetError):
        reading.require()


def test_bad_settings_keys(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        raw_sheets={"settings": [["key", "value"], ["modle", "x"], ["api_key", "sk-123"], ["model", "a"], ["MODEL", "b"], [None, 3]]},
    )
    assert problems_in(path) == [
        "settings!A2 (key): unknown setting 'modle' — did you mean model?",
        "settings!A3 (key): api_key: never put a key in a workbook: set the environment variable named by api_key_env",
        "settings!A5 (key): model is set twice (first at settings!B4) — keep one row",
        "settings!A6 (key): empty key — name the setting (e.g. model), or clear the row",
    ]


def test_step_prompts_sheet(tmp_path: Path) -> None:
    path = workbook(tmp_path, prompts={"refine": "Polish {{ draft }}", "judge": "{{ oops }", "summary": "x", "check": ""})
    assert problems_in(path) == [
        "prompts!B3 (template): template syntax error on line 1: unexpected '}' — line 1 reads: {{ oops }",
        "prompts!A4 (name): 'summary' is not a step prompt — use one of refine, check, outline, section, judge, combine, fix",
        "prompts!B5 (template): empty template for check — write one, or delete the row to use the built-in prompt",
    ]


# -- every problem at once ---------------------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_in_sheet_order(tmp_path: Path, sales_csv: Path) -> None:
    path = workbook(
        tmp_path,
        objectives=[*OBJECTIVES, {"objective_id": "A", "title": "dup"}],
        task_rows=[
            {"objective_id": "B", "task_id": "T1", "prompt": "{{ nope }}", "temperature": 5},
            {"objective_id": "A", "task_id": "T1", "prompt": "", "depends_on": "Q.1"},
            {"objective_id": "Z", "task_id": "T1", "prompt": "z"},
        ],
        data=[{"name": "sales", "path": "sales.csv", "filter": "sales ="}],
        settings={"modle": 1},
    )
    found = problems_in(path)
    assert [p.split(" ")[0] for p in found] == [
        "objectives!A4",
        "tasks!C2", "tasks!D2",
        "tasks!C3", "tasks!E3",
        "tasks!A4",
        "data!C2",
        "settings!A2",
    ]


def test_odd_cell_types_become_text_and_are_checked_like_any_other(tmp_path: Path) -> None:
    import datetime as dt

    path = workbook(
        tmp_path,
        objectives=[{"objective_id": dt.date(2024, 1, 1), "title": 3.5}, OBJECTIVES[1]],
        task_rows=[
            {"objective_id": "2024-01-01", "task_id": True, "prompt": 42, "depends_on": 7, "data": 1.5, "steps": 3, "model": 0},
            {"objective_id": "B", "task_id": "T1", "prompt": "b"},
        ],
    )
    assert problems_in(path) == [
        "tasks!D2 (depends_on): unknown dependency '7' — use OBJ.TASK for a task or an objective_id for a whole chapter",
        "tasks!E2 (data): unknown data source '1.5' — add it to the data sheet (known: none: add a data sheet)",
        "tasks!F2 (steps): unknown step '3': choose from generate, refine, check (e.g. generate, refine, check)",
    ]


def test_a_date_typed_as_an_id_reads_as_the_date(tmp_path: Path) -> None:
    import datetime as dt

    path = workbook(
        tmp_path,
        objectives=[{"objective_id": dt.date(2024, 1, 1), "title": "New year"}],
        task_rows=[{"objective_id": "2024-01-01", "task_id": True, "prompt": 42}],
    )
    sheet = load_prompt_sheet(path)
    assert sheet.objectives[0].objective_id == "2024-01-01"
    assert (sheet.tasks[0].key, sheet.tasks[0].prompt) == ("2024-01-01.TRUE", "42")


def test_one_broken_row_does_not_also_report_its_chapter_as_empty(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"task_id": None}))
    assert problems_in(path) == ["tasks!B2 (task_id): empty task_id — give this row an id, or delete the row"]


# -- formulas ---------------------------------------------------------------------------------------


def test_a_row_of_formulas_with_no_saved_values_is_reported_not_dropped(tmp_path: Path) -> None:
    """openpyxl and pandas write formulas without results: read for values, the row looks blank."""
    path = workbook(tmp_path, task_rows=[
        {"objective_id": "A", "task_id": "T1", "prompt": "Write A."},
        {"objective_id": '="A"', "task_id": '="T2"', "prompt": '="Write more."'},
        {"objective_id": "B", "task_id": "T1", "prompt": "Write B."},
    ])
    found = problems_in(path)
    assert any("tasks!A3" in p and 'the formula ="A" has no saved value' in p for p in found), found
    assert any("tasks!C3" in p and "open and save the workbook in Excel" in p for p in found), found


def test_a_cell_showing_an_excel_error_is_reported(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": "#N/A"}))
    assert "Excel error #N/A" in only_problem(path) and "tasks!C2" in only_problem(path)


def test_a_workbook_without_blank_or_missing_cells_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import report_pipeline.workbook.reader as sheet_module

    opened: list[bool] = []
    real = sheet_module.load_workbook

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs.get("data_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(sheet_module, "load_workbook", counting)
    assert problems_in(workbook(tmp_path)) == []
    assert opened == [True]  # no formulas pass for a clean workbook


# -- settings values are checked with the rest of the sheet -------------------------------------------------------------


def test_a_bad_settings_value_is_reported_with_the_sheets_other_problems(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}), settings={"max_task_workers": "lots", "model": "gpt-4o"})
    assert problems_in(path) == [
        "tasks!C2 (prompt): empty prompt — write one or set enabled to FALSE",
        (
            "settings!B2 (value): max_task_workers: Input should be a valid integer, unable to parse string as an integer "
            "(got 'lots') — fix the value, or clear it to use the default"
        ),
    ]


def test_every_bad_settings_value_is_reported_at_once(tmp_path: Path) -> None:
    path = workbook(tmp_path, settings={"max_tokens": 0, "cache": "maybe", "base_url": "localhost:8000", "provider": "openia"})
    found = problems_in(path)
    assert [p.split(" ")[0] for p in found] == ["settings!B2", "settings!B3", "settings!B4", "settings!B5"]
    assert "max_tokens: Input should be greater than or equal to 1 (got 0)" in found[0]
    assert "cache: Input should be a valid boolean" in found[1]
    assert "base_url must start with http:// or https://" in found[2]
    assert "provider: Input should be 'offline', 'openai' or 'azure'" in found[3]


@pytest.mark.parametrize(
    ("key", "cell", "expected"),
    [
        ("project_name", 2024, "2024"),  # openpyxl reads a typed number as an int
        ("project_name", 2024.0, "2024"),  # ... or as a float: never "2024.0"
        ("project_name", 3.5, "3.5"),
        ("model", 4, "4"),
        ("output_dir", 2024, Path("2024")),
        ("project_name", dt.date(2024, 9, 30), "2024-09-30"),  # Excel made the text a date
        ("cache", True, True),  # a TRUE cell
        ("cache", False, False),
        ("cache", "yes", True),
        ("cache", "No", False),
        ("cache", 0, False),
        ("max_task_workers", "10", 10),  # a number typed as text
        ("max_task_workers", 10.0, 10),
        ("temperature", "0.5", 0.5),
        ("requests_per_minute", "120", 120.0),
        ("steps", "generate, check", ("generate", "check")),
    ],
)
def test_settings_cells_read_as_the_type_their_key_needs(tmp_path: Path, key: str, cell: Any, expected: Any) -> None:
    from report_pipeline.config import load_config

    reading = read_prompt_sheet(workbook(tmp_path, settings={key: cell}))
    assert reading.problems == ()
    config = load_config(settings=reading.require().settings, settings_locations=reading.settings_locations)
    assert getattr(config, key) == expected


def test_a_number_in_a_text_setting_of_a_yaml_file_is_text_too(tmp_path: Path) -> None:
    from report_pipeline.config import load_config

    config_path = tmp_path / "run.yaml"
    config_path.write_text("project_name: 2024\nmodel: 4\n", encoding="utf-8")
    config = load_config(config_path=config_path)
    assert (config.project_name, config.model) == ("2024", "4")


# -- merged cells -----------------------------------------------------------------------------------------------------------


def merged_tasks(tmp_path: Path, merges: Sequence[str], rows: Sequence[Sequence[Any]] | None = None) -> Path:
    header = ["objective_id", "task_id", "prompt", "title", "notes"]
    rows = rows or [["A", "T1", "Write 1.", "One", None], [None, "T2", "Write 2.", "Two", None], [None, "T3", "Write 3.", "Three", None]]
    return make_workbook(
        tmp_path / "sheet.xlsx",
        objectives=[{"objective_id": "A", "title": "Chapter A"}],
        raw_sheets={"tasks": [header, *rows]},
        merges={"tasks": list(merges)},
    )


def test_a_merged_objective_id_belongs_to_every_row_it_covers(tmp_path: Path) -> None:
    sheet = load_prompt_sheet(merged_tasks(tmp_path, ["A2:A4"]))
    assert [task.key for task in sheet.tasks] == ["A.T1", "A.T2", "A.T3"]
    assert [task.row for task in sheet.tasks] == [2, 3, 4]


def test_a_merged_value_fills_down_in_any_column(tmp_path: Path) -> None:
    rows = [["A", "T1", "Write the same.", "One", None], ["A", "T2", None, "Two", None]]
    sheet = load_prompt_sheet(merged_tasks(tmp_path, ["C2:C3"], rows))
    assert [task.prompt for task in sheet.tasks] == ["Write the same.", "Write the same."]


def test_a_row_holding_only_a_merged_value_is_blank(tmp_path: Path) -> None:
    rows = [["A", "T1", "Write 1.", None, None], [None, "T2", "Write 2.", None, None], [None, None, None, None, None]]
    sheet = load_prompt_sheet(merged_tasks(tmp_path, ["A2:A4"], rows))
    assert [task.key for task in sheet.tasks] == ["A.T1", "A.T2"]


def test_a_cell_merged_across_two_columns_is_a_problem_naming_the_range(tmp_path: Path) -> None:
    rows = [["A", "T1", "A long prompt spread over two columns.", None, None]]
    assert only_problem(merged_tasks(tmp_path, ["C2:D2"], rows)) == (
        "tasks!C2 (prompt): cells C2:D2 are merged, so title reads empty — unmerge them and give each column its own value"
    )


def test_a_merge_into_notes_columns_is_fine(tmp_path: Path) -> None:
    rows = [["A", "T1", "Write.", "A title running into the notes", None]]
    sheet = load_prompt_sheet(merged_tasks(tmp_path, ["D2:E2"], rows))
    assert sheet.tasks[0].title == "A title running into the notes"


# -- the header row ---------------------------------------------------------------------------------------------------------


def titled(rows: Sequence[Sequence[Any]], *titles: Sequence[Any]) -> list[list[Any]]:
    return [list(title) for title in titles] + [list(row) for row in rows]


def test_headers_below_a_title_row_are_found(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "sheet.xlsx",
        raw_sheets={
            "objectives": titled([["objective_id", "title"], ["A", "Chapter A"]], ["Q3 report prompts"]),
            "tasks": titled([["objective_id", "task_id", "prompt"], ["A", "T1", "Write."], ["A", "T2", ""]], ["Q3 report prompts"], []),
        },
        merges={"objectives": ["A1:B1"]},
    )
    assert problems_in(path) == ["tasks!C5 (prompt): empty prompt — write one or set enabled to FALSE"]


def test_a_missing_column_is_named_in_the_header_row_found(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        raw_sheets={"tasks": titled([["objective_id", "task_id", "title"], ["A", "T1", "x"]], ["Q3 report prompts"])},
    )
    assert problems_in(path) == ["tasks!row 2 (prompt): missing required column — add a header cell named prompt in row 2"]


def test_rows_under_a_lower_header_are_checked_for_unsaved_formulas(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        raw_sheets={"tasks": titled([["objective_id", "task_id", "prompt"], ["A", "T1", "a"], ["B", "T1", '="b"']], ["Q3"])},
    )
    assert "tasks!C4 (prompt): prompt: the formula =\"b\" has no saved value" in "\n".join(problems_in(path))


# -- describing a good sheet ------------------------------------------------------------------------------------------------


def test_the_summary_counts_what_will_run_and_says_how_much_is_disabled(tmp_path: Path) -> None:
    from report_pipeline.workbook.reader import describe_sheet

    path = workbook(
        tmp_path,
        objectives=[*OBJECTIVES, {"objective_id": "C", "title": "Parked", "enabled": False}],
        task_rows=[
            *both_chapters({}, {"enabled": False}, {"enabled": "no"}),
            {"objective_id": "C", "task_id": "T1", "prompt": "x"},
        ],
    )
    assert describe_sheet(load_prompt_sheet(path)) == "2 objectives (1 disabled), 2 tasks to run (3 disabled), 0 data sources"


def test_the_summary_leaves_out_disabled_counts_of_zero(tmp_path: Path) -> None:
    from report_pipeline.workbook.reader import describe_sheet

    path = simple_workbook(tmp_path / "s.xlsx", n_objectives=1, n_tasks=1)
    assert describe_sheet(load_prompt_sheet(path)) == "1 objective, 1 task to run, 0 data sources"


# -- the validate command ---------------------------------------------------------------------------------------------------


def validate_command(*args: Any) -> Any:
    from click.testing import CliRunner

    from report_pipeline.cli import cli

    return CliRunner().invoke(cli, ["validate", *map(str, args)], catch_exceptions=False)


def test_validate_reports_sheet_and_settings_problems_in_one_pass(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}), settings={"project_name": 2024, "max_task_workers": "lots"})
    result = validate_command(path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "tasks!C2 (prompt): empty prompt" in result.output
    assert "settings!B3 (value): max_task_workers" in result.output
    assert "project_name" not in result.output
    assert "Traceback" not in result.output


def test_validate_reports_config_file_problems_with_the_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}))
    config_path = tmp_path / "run.yaml"
    config_path.write_text("max_task_workrs: 4\n", encoding="utf-8")
    result = validate_command(path, "--config", config_path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "tasks!C2 (prompt): empty prompt" in result.output
    assert "max_task_workrs" in result.output


def test_validate_counts_only_the_tasks_that_would_run(tmp_path: Path) -> None:
    path = workbook(tmp_path, task_rows=both_chapters({}, {"enabled": False}, {"enabled": 0}))
    result = validate_command(path)
    assert result.exit_code == 0, result.output
    assert f"{path}: OK: 2 objectives, 2 tasks to run (2 disabled), 0 data sources" in result.output


def test_validate_a_password_protected_workbook(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"
    path.write_bytes(encrypted_ooxml_bytes())
    result = validate_command(path)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "locked.xlsx: this workbook is protected with a password — open it in Excel and save an unprotected copy" in result.output
    assert "Traceback" not in result.output


def encrypted_ooxml_bytes() -> bytes:
    """The parts of an encrypted .xlsx the reader looks at: the OLE2 signature and the
    compound file's directory naming the `EncryptionInfo` and `EncryptedPackage` streams."""
    entries = b"".join(name.encode("utf-16-le") + b"\x00\x00" + b"\x00" * (64 - 2 * len(name) - 2) + b"\x00" * 64
                       for name in ("Root Entry", "EncryptionInfo", "EncryptedPackage"))
    return OLE_SIGNATURE + b"\x00" * 504 + entries + b"\x00" * 512


@pytest.mark.parametrize("dry_run", [False, True])
def test_run_reports_config_file_problems_with_the_sheets(tmp_path: Path, dry_run: bool) -> None:
    """As validate does: one pass, both lists, exit 2, nothing written."""
    from click.testing import CliRunner

    from report_pipeline.cli import cli

    path = workbook(tmp_path, task_rows=both_chapters({"prompt": ""}))
    config_path = tmp_path / "run.yaml"
    config_path.write_text("max_task_workrs: 4\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(path), "--config", str(config_path), "--provider", "offline",
                                      "--output", str(out), *(["--dry-run"] if dry_run else [])])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "tasks!C2 (prompt): empty prompt" in result.output
    assert "run.yaml: " in result.output and "max_task_workrs" in result.output
    assert not out.exists()


def test_a_shade_that_is_not_column_equals_value_or_names_a_missing_column_is_reported(tmp_path) -> None:
    from report_pipeline.workbook.reader import load_prompt_sheet
    from tests.workbooks import make_workbook

    (tmp_path / "wb").mkdir()
    (tmp_path / "wb" / "coal.csv").write_text("year,basis,coal\n2024,historical,1\n", encoding="utf-8")
    sheet = make_workbook(
        tmp_path / "wb" / "s.xlsx",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "p", "data": "a, b"}],
        data=[{"name": "a", "path": "coal.csv", "chart": "line", "x": "year", "y": "coal", "shade": "basis projection"},
              {"name": "b", "path": "coal.csv", "chart": "line", "x": "year", "y": "coal", "shade": "kind = x"}],
    )
    with pytest.raises(PromptSheetError) as caught:
        load_prompt_sheet(sheet)
    message = str(caught.value)
    assert "data!" in message and "(shade)" in message
    assert "write COLUMN = VALUE, e.g. basis = projection" in message
    assert "column 'kind' is not in the table" in message
