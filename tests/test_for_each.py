"""For-each tasks: one prompt over a table's rows or groups, each item a call of its own, through the
real openai SDK to the simulator; and the pure parts (items, joining) without threads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from report_pipeline.cli import cli
from report_pipeline.errors import PromptSheetError
from report_pipeline.models import ItemResult
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.run.foreach import assemble_items, combine_allowed, failed_items
from report_pipeline.workbook.items import ForEach, expand_items, item_problems, parse_for_each
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.test_pipeline_simulator import KEY, openai_config
from tests.workbooks import make_workbook

FRAME = pd.DataFrame({
    "country": ["Germany", "Germany", "France", "Spain", "France"],
    "year": [2024, 2030, 2024, 2024, 2030],
    "share": [52.5, 80.0, 27.1, 56.0, 40.0],
})


# -- the pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize("text, spec", [
    ("prices", ForEach("prices")), (" prices.country ", ForEach("prices", "country")),
])
def test_for_each_names_a_table_or_a_table_and_column(text, spec):
    assert parse_for_each(text) == spec


@pytest.mark.parametrize("text, says", [
    ("", "write a data table's name"), ("prices.", "name the column after the dot"), ("2x", "write a data table's name"),
])
def test_a_bad_for_each_says_what_to_write(text, says):
    with pytest.raises(ValueError, match=says):
        parse_for_each(text)


def test_rows_are_items_in_table_order_named_by_the_cells_that_tell_them_apart():
    items = expand_items(ForEach("t"), FRAME)
    assert [i.label for i in items] == ["Germany, 2024", "Germany, 2030", "France, 2024", "Spain, 2024", "France, 2030"]
    assert items[1].fields == {"country": "Germany", "year": 2030, "share": 80}
    assert [i.number for i in items] == [1, 2, 3, 4, 5]


def test_groups_keep_the_order_their_value_first_appears_and_hold_all_their_rows():
    items = expand_items(ForEach("t", "country"), FRAME)
    assert [i.label for i in items] == ["Germany", "France", "Spain"]
    assert items[1].rows["year"].tolist() == [2024, 2030]
    assert items[0].fields == {"country": "Germany"}


def test_a_group_column_with_empty_cells_makes_no_empty_item():
    frame = pd.DataFrame({"country": ["A", None, "B"], "v": [1, 2, 3]})
    assert [i.label for i in expand_items(ForEach("t", "country"), frame)] == ["A", "B"]


@pytest.mark.parametrize("spec, frame, max_items, says", [
    (ForEach("t", "nation"), FRAME, 200, "table t has no column 'nation' (it has: country, year, share)"),
    (ForEach("t"), FRAME.iloc[0:0], 200, "table t has no rows after its filter"),
    (ForEach("t"), FRAME, 4, "5 items, more than max_items (4)"),
    (ForEach("t", "country"), FRAME, 3, None),
])
def test_item_problems_name_the_column_the_empty_table_and_too_many_items(spec, frame, max_items, says):
    problems = item_problems(spec, frame, max_items=max_items)
    assert (problems == []) if says is None else (says in problems[0])


def test_sections_mark_a_failed_item_in_place_and_the_error_counts_them():
    outcomes = [ItemResult(1, "Germany", text="# Grid\nFine."), ItemResult(2, "France", error="HTTP 500")]
    text = assemble_items(outcomes)
    assert text.startswith("### Germany\n\n#### Grid\nFine.")  # the item's own heading sits below ours
    assert '### France\n\n[item 2 "France" failed: HTTP 500]' in text
    assert failed_items(outcomes) == '1 of 2 items failed: item 2 "France" failed: HTTP 500'


@pytest.mark.parametrize("total, failed, allowed", [(10, 1, True), (10, 2, False), (9, 1, False), (3, 0, True),
                                                    (20, 2, True), (1, 1, False)])
def test_combine_goes_ahead_when_at_most_one_item_in_ten_failed(total, failed, allowed):
    outcomes = [ItemResult(n, str(n), error="x" if n <= failed else "", text="t") for n in range(1, total + 1)]
    assert combine_allowed(outcomes) is allowed


# -- through the simulator ---------------------------------------------------------------


def _workbook(tmp_path: Path, *, for_each: str, prompt: str, merge: str | None = None, rows=None,
              steps: str | None = None, prompts=None, settings=None) -> Path:
    folder = tmp_path / "wb"
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows or [
        {"country": "Germany", "year": 2024, "share": 52.5, "note": ""},
        {"country": "Germany", "year": 2030, "share": 80.0, "note": ""},
        {"country": "France", "year": 2024, "share": 27.1, "note": ""},
        {"country": "Spain", "year": 2024, "share": 56.0, "note": ""},
    ]
    pd.DataFrame(rows).to_csv(folder / "shares.csv", index=False)
    task = {"objective_id": "c", "task_id": "each", "prompt": prompt, "title": "Per country", "for_each": for_each}
    if merge:
        task["merge"] = merge
    if steps:
        task["steps"] = steps
    return make_workbook(
        folder / "sheet.xlsx",
        objectives=[{"objective_id": "c", "title": "Countries"}],
        tasks=[task, {"objective_id": "c", "task_id": "after", "prompt": "Sum up: {{ results['c.each'] }}",
                      "depends_on": "c.each"}],
        data=[{"name": "shares", "path": "shares.csv"}],
        prompts=prompts, settings=settings,
    )


def _run(sheet: Path, config, **kwargs):
    return ReportGenerationPipeline(config, load_prompt_sheet(sheet), **kwargs).run()


def test_a_call_per_group_each_prompt_holding_only_its_rows_joined_as_sections(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _workbook(tmp_path, for_each="shares.country",
                      prompt="A paragraph on {{ item }}.\n\n{{ item.table }}", steps="generate, refine")
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    assert result.exit_code == 0
    each = next(r for r in result.results if r.key == "c.each")
    assert [i.name for i in each.items] == ["Germany", "France", "Spain"]
    assert sim.stats()["calls"] == 3 * 2 + 1  # a generate and a refine per item, then the dependent task
    with sqlite_ledger(tmp_path / "out") as db:
        sent = [row[0] for row in db.execute("SELECT prompt FROM calls WHERE task_key = 'c.each' AND step LIKE 'generate%'")]
    assert sorted(("| Germany" in p, "| France" in p, "| Spain" in p) for p in sent) == sorted(
        [(True, False, False), (False, True, False), (False, False, True)])  # each prompt holds its own rows only
    headings = [line for line in each.text.splitlines() if line.startswith("### ")]
    assert headings == ["### Germany", "### France", "### Spain"]
    # the dependent task reads the joined text
    after = next(r for r in result.results if r.key == "c.after")
    assert after.status == "done"
    rows = list(csv.DictReader(open(result.run_dir / "results.csv", encoding="utf-8")))
    assert {r["task_id"]: r["items"] for r in rows} == {"each": "3", "after": ""}
    manifest = json.loads((result.run_dir / "run.json").read_text())
    listed = next(t for t in manifest["tasks"] if t["task_id"] == "each")["items"]
    assert [(i["name"], i["status"], i["calls"]) for i in listed] == [("Germany", "done", 2), ("France", "done", 2),
                                                                       ("Spain", "done", 2)]
    assert sum(i["prompt_tokens"] for i in listed) == each.prompt_tokens


def test_each_item_prompt_carries_its_own_fields(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _workbook(tmp_path, for_each="shares", prompt="{{ item.country }} in {{ item.year }}: {{ item.share }}%")
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    each = next(r for r in result.results if r.key == "c.each")
    assert [i.name for i in each.items] == ["Germany, 2024", "Germany, 2030", "France, 2024", "Spain, 2024"]
    with sqlite_ledger(tmp_path / "out") as db:
        sent = [row[0] for row in db.execute("SELECT prompt FROM calls WHERE task_key = 'c.each'")]
    for expected in ["Germany in 2024: 52.5%", "Germany in 2030: 80%", "France in 2024: 27.1%", "Spain in 2024: 56%"]:
        assert sum(expected in p for p in sent) == 1, expected


def sqlite_ledger(out: Path):
    import contextlib
    import sqlite3

    return contextlib.closing(sqlite3.connect(out / "ledger.sqlite"))


def test_a_failed_item_is_marked_in_place_fails_the_task_and_a_rerun_pays_only_for_it(tmp_path, make_simulator):
    sim = make_simulator()
    rows = [{"country": "Germany", "year": 2024, "share": 52.5, "note": "-"},
            {"country": "France", "year": 2024, "share": 27.1, "note": "sim:status=400"},
            {"country": "Spain", "year": 2024, "share": 56.0, "note": "-"}]
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}", rows=rows)
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    each = next(r for r in result.results if r.key == "c.each")
    assert each.status == "failed" and result.exit_code == 1
    assert '1 of 3 items failed: item 2 "France" failed' in each.error
    assert "### Germany" in each.text and '[item 2 "France" failed:' in each.text  # what was written is kept
    assert next(r for r in result.results if r.key == "c.after").status == "skipped"
    assert sim.stats()["calls"] == 3

    fixed = [dict(r, note="-") for r in rows]
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}", rows=fixed)
    again = _run(sheet, openai_config(sim, tmp_path / "out"))
    assert again.exit_code == 0
    # Germany and Spain were answered last time: cache hits; France and the dependent task are new calls
    assert sim.stats()["calls"] == 3 + 2


def test_combine_writes_one_text_from_the_items_with_an_overridable_prompt(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}", merge="combine",
                      prompts={"combine": "COMBINE {{ title }}: {% for i in items %}[{{ i.name }}] {{ i.text }} {% endfor %}"})
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    each = next(r for r in result.results if r.key == "c.each")
    assert each.status == "done" and len(each.items) == 3
    assert [c.step for c in each.calls].count("combine") == 1
    assert sim.stats()["calls"] == 3 + 1 + 1
    with sqlite_ledger(tmp_path / "out") as db:
        (prompt,) = db.execute("SELECT prompt FROM calls WHERE step = 'combine'").fetchone()
    assert "COMBINE Per country: [Germany]" in prompt and "[Spain]" in prompt


def test_combine_with_too_many_failed_items_fails_the_task(tmp_path, make_simulator):
    sim = make_simulator()
    rows = [{"country": c, "year": 2024, "share": 1.0, "note": "sim:status=400" if c == "B" else ""} for c in "ABC"]
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}",
                      merge="combine", rows=rows)
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    each = next(r for r in result.results if r.key == "c.each")
    assert each.status == "failed" and "too many items failed to combine" in each.error
    assert not any(c.step == "combine" for c in each.calls)


def test_sequential_mode_gives_the_same_text(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}")
    concurrent = _run(sheet, openai_config(sim, tmp_path / "a", cache=False))
    sequential = _run(sheet, openai_config(sim, tmp_path / "b", cache=False, run_objectives_concurrent=False,
                                           run_task_concurrent=False))
    assert [r.text for r in concurrent.results] == [r.text for r in sequential.results]


# -- validation and --dry-run ------------------------------------------------------------


def _validate(sheet: Path, *extra: str):
    return CliRunner().invoke(cli, ["validate", str(sheet), *extra])


def test_an_unknown_table_is_named_with_the_known_ones(tmp_path):
    sheet = _workbook(tmp_path, for_each="sahres.country", prompt="On {{ item }}")
    result = _validate(sheet)
    assert result.exit_code == 2
    assert "(for_each): unknown data table 'sahres' (did you mean 'shares'?)" in result.output


@pytest.mark.parametrize("for_each, settings, says", [
    ("shares.nation", None, "tasks!row 2 (for_each): for_each shares.nation: table shares has no column 'nation'"),
    ("shares", {"max_items": 3}, "for_each shares: 4 items, more than max_items (3)"),
])
def test_a_missing_column_or_too_many_items_is_refused_before_anything_is_sent(tmp_path, for_each, settings, says):
    sheet = _workbook(tmp_path, for_each=for_each, prompt="On {{ item }}", settings=settings)
    result = _validate(sheet)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_table_with_no_rows_after_its_filter_is_refused(tmp_path):
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}")
    from openpyxl import load_workbook

    wb = load_workbook(sheet)
    wb["data"]["C1"], wb["data"]["C2"] = "filter", "year > 2050"
    wb.save(sheet)
    result = _validate(sheet)
    assert result.exit_code == 2 and "table shares has no rows after its filter" in result.output


def test_item_in_a_task_without_for_each_and_a_merge_that_does_not_fit_are_errors(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "c", "title": "C"}],
        tasks=[{"objective_id": "c", "task_id": "1", "prompt": "On {{ item }}"},
               {"objective_id": "c", "task_id": "2", "prompt": "x", "merge": "combine"}],
    )
    with pytest.raises(PromptSheetError) as caught:
        load_prompt_sheet(sheet)
    messages = [str(p) for p in caught.value.problems]
    assert any("item is set only in a for_each task" in m for m in messages)
    assert any("combine joins the items of a for_each task" in m for m in messages)


def test_dry_run_counts_and_prices_every_item(tmp_path):
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}",
                      merge="combine", steps="generate, refine")
    result = CliRunner().invoke(cli, ["run", str(sheet), "--dry-run", "--show-prompts"])
    assert result.exit_code == 0, result.output
    total = next(line for line in result.output.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["2", "8"]  # 2 tasks; 3 items x 2 steps + combine + the dependent task
    assert "c.each: 3 items (for_each shares.country), a call chain each, then one combine call" in result.output
    assert "== c.each item 2 'France'" in result.output


def test_a_for_each_run_writes_the_key_nowhere(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}")
    result = _run(sheet, openai_config(sim, tmp_path / "out"))
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


def test_in_batch_mode_every_item_goes_into_one_wave_and_the_refines_into_the_next(tmp_path, make_simulator):
    from tests.test_batch import batch_config

    sim = make_simulator(batch_delay_s=0.05)
    sheet = _workbook(tmp_path, for_each="shares.country", prompt="On {{ item }}:\n{{ item.table }}",
                      steps="generate, refine")
    result = _run(sheet, batch_config(sim, tmp_path / "out"))
    assert result.exit_code == 0, [r.error for r in result.results]
    each = next(r for r in result.results if r.key == "c.each")
    assert [i.name for i in each.items] == ["Germany", "France", "Spain"] and all(i.ok for i in each.items)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["batch"]["waves"][0]["requests"] == 3  # the three items' generate calls, together


def test_a_for_each_task_with_several_models_or_a_bad_for_each_cell_is_named_in_the_sheet(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "c", "title": "C"}],
        tasks=[{"objective_id": "c", "task_id": "1", "prompt": "On {{ item }}", "for_each": "shares.country",
                "model": "a, b"},
               {"objective_id": "c", "task_id": "2", "prompt": "x", "for_each": "shares."}],
        data=[{"name": "shares", "path": "shares.csv"}],
    )
    with pytest.raises(PromptSheetError) as caught:
        load_prompt_sheet(sheet)
    messages = [str(p) for p in caught.value.problems]
    assert any("(model): a for_each task takes one model" in m for m in messages)
    assert any("(for_each): for_each 'shares.': name the column after the dot" in m for m in messages)


def test_an_unknown_locale_is_refused_naming_the_key():
    from report_pipeline.config import load_config
    from report_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="locale: unknown locale 'xx'"):
        load_config(overrides={"locale": "xx"})
