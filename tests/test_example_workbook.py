"""The shipped examples work: the example workbook, its data, config/example.yaml and `init`.

These read the committed files themselves (not copies), so a sheet edited by hand
without re-running `prompt_sheets/build_examples.py`, or a RunConfig key added
without documenting it, fails here.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from report_pipeline.config import RunConfig, load_config, read_yaml
from report_pipeline.errors import ConfigError
from report_pipeline.workbook.starter import STARTER_FILES, write_starter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "prompt_sheets"
EXAMPLE_WORKBOOK = EXAMPLES / "energy_transition.xlsx"
EXAMPLE_CONFIG = ROOT / "config" / "example.yaml"

REQUIRED_COLUMNS = {
    "objectives": {"objective_id", "title"},
    "tasks": {"objective_id", "task_id", "prompt"},
    "data": {"name", "path"},
    "settings": {"key", "value"},
}
DOCUMENTED_COLUMNS = {
    "objectives": {"objective_id", "title", "description", "enabled", "system_prompt"},
    "tasks": {"objective_id", "task_id", "prompt", "title", "data", "depends_on", "steps", "model",
              "temperature", "max_tokens", "enabled", "include_table"},
    "data": {"name", "path", "sheet", "columns", "filter", "chart", "x", "y"},
    "settings": {"key", "value"},
}
DATA_REFERENCE = re.compile(r"\{\{\s*data\.(\w+)\s*\}\}")
RESULTS_REFERENCE = re.compile(r"""\{\{\s*results\[\s*["']([^"']+)["']\s*\]\s*\}\}""")
SECRET_FIELDS = {"api_key"}


# -- helpers ---------------------------------------------------------------------------


def read_rows(path: Path, sheet: str) -> list[dict[str, Any]]:
    """A sheet as dicts by header, skipping empty rows."""
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(workbook[sheet].iter_rows(values_only=True))
    finally:
        workbook.close()
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, row)) for row in rows[1:] if any(v not in (None, "") for v in row)]


def split_list(cell: Any) -> list[str]:
    return [part.strip() for part in str(cell or "").split(",") if part.strip()]


def table_columns(workbook_dir: Path, source: dict[str, Any]) -> list[str]:
    """The header of the data file a `data` row points at."""
    path = workbook_dir / source["path"]
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle))
    workbook = load_workbook(path, read_only=True)
    try:
        sheet = workbook[source["sheet"]] if source.get("sheet") else workbook.worksheets[0]
        return [str(c) for c in next(sheet.iter_rows(min_row=1, max_row=1, values_only=True))]
    finally:
        workbook.close()


def load_builder():
    spec = importlib.util.spec_from_file_location("build_examples", EXAMPLES / "build_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_fields() -> set[str]:
    return set(RunConfig.model_fields) - SECRET_FIELDS


@pytest.fixture(scope="module")
def example() -> dict[str, list[dict[str, Any]]]:
    return {sheet: read_rows(EXAMPLE_WORKBOOK, sheet) for sheet in REQUIRED_COLUMNS}


@pytest.fixture()
def starter_dir(tmp_path: Path) -> Path:
    write_starter(tmp_path / "starter")
    return tmp_path / "starter"


# -- the example workbook --------------------------------------------------------------


def test_example_workbook_has_every_sheet_with_its_documented_columns():
    workbook = load_workbook(EXAMPLE_WORKBOOK, read_only=True)
    try:
        assert workbook.sheetnames == ["objectives", "tasks", "data", "settings"]
        for sheet, expected in DOCUMENTED_COLUMNS.items():
            header = {c for c in next(workbook[sheet].iter_rows(max_row=1, values_only=True))}
            assert REQUIRED_COLUMNS[sheet] <= header, sheet
            assert expected <= header, f"{sheet} lacks {sorted(expected - header)}"
    finally:
        workbook.close()


def test_example_header_rows_are_bold_and_frozen():
    workbook = load_workbook(EXAMPLE_WORKBOOK)
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes in ("A2", "C2"), sheet.title
        assert all(cell.font.bold for cell in sheet[1]), sheet.title
    tasks = workbook["tasks"]
    prompt_column = next(cell.column_letter for cell in tasks[1] if cell.value == "prompt")
    assert tasks[f"{prompt_column}2"].alignment.wrap_text
    assert tasks.column_dimensions[prompt_column].width >= 60


def test_example_has_an_executive_summary_first_that_depends_on_every_other_chapter(example):
    objective_ids = [o["objective_id"] for o in example["objectives"]]
    assert objective_ids[0] == "exec"
    chapters = objective_ids[1:]
    assert len(chapters) >= 5
    exec_tasks = [t for t in example["tasks"] if t["objective_id"] == "exec"]
    assert exec_tasks
    for task in exec_tasks:
        assert set(split_list(task["depends_on"])) == set(chapters), task["task_id"]
        assert set(RESULTS_REFERENCE.findall(task["prompt"])) >= set(chapters), task["task_id"]


def test_example_chapters_have_at_least_four_enabled_tasks(example):
    for objective in example["objectives"][1:]:
        tasks = [t for t in example["tasks"] if t["objective_id"] == objective["objective_id"] and t["enabled"]]
        assert len(tasks) >= 4, objective["objective_id"]


def test_example_ids_are_unique_and_dependencies_known(example):
    objective_ids = {o["objective_id"] for o in example["objectives"]}
    keys = [f'{t["objective_id"]}.{t["task_id"]}' for t in example["tasks"]]
    assert len(keys) == len(set(keys))
    for task in example["tasks"]:
        assert task["objective_id"] in objective_ids
        for dependency in split_list(task["depends_on"]):
            assert dependency in objective_ids or dependency in keys, (task["task_id"], dependency)


def test_example_prompts_use_only_attached_data_and_declared_dependencies(example):
    sources = {s["name"] for s in example["data"]}
    for task in example["tasks"]:
        attached = set(split_list(task["data"]))
        assert attached <= sources, task
        assert set(DATA_REFERENCE.findall(task["prompt"])) == attached, (task["objective_id"], task["task_id"])
        if task.get("for_each"):  # its table comes through {{ item.table }}
            assert task["for_each"].split(".")[0] in sources
        assert set(RESULTS_REFERENCE.findall(task["prompt"])) <= set(split_list(task["depends_on"]))
        for variable in ("{{ objective.title }}", "{{ task.title }}", "{{ project.name }}"):
            assert variable in task["prompt"], (task["objective_id"], task["task_id"], variable)


def test_example_tables_in_a_prompt_are_separated_by_text(example):
    """Two tables on consecutive lines read as one Markdown table, to a model and to a parser."""
    for task in example["tasks"]:
        lines = task["prompt"].splitlines()
        for line, following in zip(lines, lines[1:]):
            assert not (DATA_REFERENCE.search(line) and DATA_REFERENCE.search(following)), task["task_id"]


def test_example_prompts_are_valid_sandboxed_templates(example):
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    data = {s["name"]: f"| table {s['name']} |" for s in example["data"]}
    for task in example["tasks"]:
        results = {key: f"text of {key}" for key in split_list(task["depends_on"])}
        item = {"table": "| its rows |"} if task.get("for_each") else {}  # a for_each task's prompt sees its item
        text = environment.from_string(task["prompt"]).render(
            objective={"title": "Chapter"}, task={"title": task["title"]},
            project={"name": "Project"}, data=data, results=results, **({"item": item} if item else {}),
        )
        assert "{{" not in text


def test_example_varies_steps_tables_and_charts(example):
    steps = {tuple(split_list(t["steps"])) for t in example["tasks"]}
    assert {("generate",), ("generate", "refine"), ("generate", "refine", "check")} <= steps
    assert sum(bool(t["include_table"]) for t in example["tasks"]) >= 2
    charts = [s for s in example["data"] if s.get("chart")]
    assert charts and all(s["chart"] in ("line", "bar") and s["x"] and s["y"] for s in charts)
    assert any(s.get("columns") and s.get("filter") for s in example["data"])


def test_every_example_data_path_exists_with_the_columns_the_sheet_names(example):
    assert any(s["path"].endswith(".xlsx") for s in example["data"])
    for source in example["data"]:
        path = EXAMPLES / source["path"]
        assert path.is_file(), source["path"]
        header = table_columns(EXAMPLES, source)
        named = split_list(source.get("columns")) + split_list(source.get("y")) + split_list(source.get("x"))
        assert set(named) <= set(header), (source["name"], sorted(set(named) - set(header)))


def test_example_settings_are_run_config_keys_that_validate(example):
    settings = {row["key"]: row["value"] for row in example["settings"]}
    assert set(settings) <= config_fields()
    config = load_config(settings=settings, environ={})
    assert config.project_name == "European Energy Transition Outlook 2026"


def test_example_readme_says_the_figures_are_illustrative():
    assert "figures are illustrative, not sourced" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_build_examples_is_reproducible_and_matches_the_committed_files(tmp_path):
    builder = load_builder()
    first = builder.build(tmp_path / "a")
    second = builder.build(tmp_path / "b")
    for path in first:
        relative = path.relative_to(tmp_path / "a")
        assert path.read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
        committed = EXAMPLES / relative
        assert committed.is_file(), f"{relative}: run python prompt_sheets/build_examples.py"
        if path.suffix == ".csv":
            assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), relative
        else:  # compare cell values, not bytes: another openpyxl version may zip differently
            for sheet in load_workbook(path, read_only=True).sheetnames:
                assert read_rows(committed, sheet) == read_rows(path, sheet), f"{relative}: {sheet}"
    assert len(second) == len(first)


# -- config/example.yaml -----------------------------------------------------------------


def test_example_config_loads_offline():
    config = load_config(config_path=EXAMPLE_CONFIG, environ={})
    assert config.provider == "offline"


def test_example_config_sets_every_run_config_key():
    assert set(read_yaml(EXAMPLE_CONFIG)) == config_fields()


def test_example_config_values_are_the_defaults():
    """The file documents the defaults: change a default in config.py, change it here."""
    config = load_config(config_path=EXAMPLE_CONFIG, environ={})
    defaults = RunConfig()
    differing = [name for name in config_fields() if getattr(config, name) != getattr(defaults, name)]
    # output_dir: relative to the file, ../output is the repository's output/, the default's folder from its root
    assert Path(config.output_dir).resolve() == (EXAMPLE_CONFIG.parent.parent / defaults.output_dir).resolve()
    assert differing == ["output_dir"]


def test_example_config_comments_every_key():
    lines = EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\w+):", line)
        if match:
            above = lines[number - 1] if number else ""
            assert above.startswith("#") or "#" in line, f"{match.group(1)} has no comment"


def test_example_config_holds_no_secret():
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert not re.search(r"^\s*api_key\s*:", text, re.M)
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)
    assert "api_key_env" in read_yaml(EXAMPLE_CONFIG)


# -- report-pipeline init ----------------------------------------------------------------


def test_write_starter_writes_the_workbook_config_and_data(tmp_path):
    written = write_starter(tmp_path / "new")
    assert [p.relative_to(tmp_path / "new").as_posix() for p in written] == list(STARTER_FILES)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)


def test_starter_workbook_has_two_chapters_of_two_tasks(starter_dir):
    workbook = load_workbook(starter_dir / "prompt_sheet.xlsx", read_only=True)
    try:
        assert workbook.sheetnames == ["objectives", "tasks", "data", "settings"]
    finally:
        workbook.close()
    objectives = read_rows(starter_dir / "prompt_sheet.xlsx", "objectives")
    tasks = read_rows(starter_dir / "prompt_sheet.xlsx", "tasks")
    assert len(objectives) == 2
    for objective in objectives:
        assert len([t for t in tasks if t["objective_id"] == objective["objective_id"]]) == 2
    for source in read_rows(starter_dir / "prompt_sheet.xlsx", "data"):
        assert (starter_dir / source["path"]).is_file()
        assert set(split_list(source.get("columns"))) <= set(table_columns(starter_dir, source))


def test_starter_config_and_settings_load(starter_dir):
    settings = {r["key"]: r["value"] for r in read_rows(starter_dir / "prompt_sheet.xlsx", "settings")}
    config = load_config(config_path=starter_dir / "config.yaml", settings=settings, environ={})
    assert config.provider == "offline"
    assert not re.search(r"^\s*api_key\s*:", (starter_dir / "config.yaml").read_text(encoding="utf-8"), re.M)


def test_write_starter_refuses_to_overwrite_and_changes_nothing(starter_dir):
    (starter_dir / "config.yaml").write_text("provider: offline  # edited\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="would overwrite.*config.yaml"):
        write_starter(starter_dir)
    assert (starter_dir / "config.yaml").read_text(encoding="utf-8") == "provider: offline  # edited\n"


def test_write_starter_refuses_when_only_one_file_exists(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "power_prices.csv").write_text("mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="power_prices.csv"):
        write_starter(tmp_path)
    assert not (tmp_path / "prompt_sheet.xlsx").exists()


def test_write_starter_with_force_overwrites(starter_dir):
    (starter_dir / "config.yaml").write_text("edited\n", encoding="utf-8")
    write_starter(starter_dir, force=True)
    assert "provider: offline" in (starter_dir / "config.yaml").read_text(encoding="utf-8")


def test_write_starter_refuses_a_file_as_the_folder(tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a folder"):
        write_starter(target)


def test_starter_workbook_is_reproducible(tmp_path):
    first, second = write_starter(tmp_path / "a")[0], write_starter(tmp_path / "b")[0]
    assert first.read_bytes() == second.read_bytes()


# -- the real validator, on both workbooks -----------------------------------------------


@pytest.mark.parametrize("which", ["example", "starter"])
def test_validate_sheet_finds_no_problems(which, tmp_path):
    sheet_module = pytest.importorskip("report_pipeline.workbook.reader")
    path = EXAMPLE_WORKBOOK if which == "example" else write_starter(tmp_path)[0]
    sheet, problems = sheet_module.validate_sheet(path)[:2]
    assert [str(p) for p in problems] == []
    assert sheet is not None
