"""Comparing runs: the word diff, changed data rows, the ranking, `diff`, `runs --diff` and changes.md.

The pure parts (words, tables, the comparison, its renderings) are tested on plain values; the
rest on two real runs of one real workbook with the offline provider, the second editing one
prompt and one data row, in one real ledger.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from report_pipeline.compare.render import as_markdown, as_text, markdown_escape
from report_pipeline.compare.runs import (
    RunSide,
    TaskSide,
    base_run,
    compare_runs,
    run_side,
    settings_changes,
)
from report_pipeline.compare.tables import row_changes, split_prompt
from report_pipeline.compare.words import (
    Piece,
    changed_words,
    hunks,
    new_text,
    old_text,
    tokens,
    word_diff,
)
from report_pipeline.ledger.store import RunRow, TaskRow
from report_pipeline.writers.diff_html import render_diff_html
from tests.test_cli import invoke, run_dirs
from tests.workbooks import make_workbook

# -- the word diff ------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [
    ("", ""),
    ("", "A new section."),
    ("An old section.", ""),
    ("Sales rose to 52 in 2024.", "Sales rose to 61 in 2024, led by France."),
    ("line one\n\n- a bullet\n- another", "line one\n\n- a bullet, edited\n\n| a | b |\n| --- | --- |"),
    ("  leading and trailing  ", "leading and trailing"),
    ("Zürich: 1,234.5 t (41%)", "Zürich: 1,300.0 t (43%) — revised"),
    ("a b c d e f", "f e d c b a"),
])
def test_the_pieces_of_a_word_diff_put_back_together_give_both_texts_exactly(old: str, new: str) -> None:
    pieces = word_diff(old, new)
    assert old_text(pieces) == old and new_text(pieces) == new
    assert "".join(tokens(old)) == old


def test_a_changed_number_is_one_word_replaced() -> None:
    pieces = word_diff("to 52 (B), up 4.5%", "to 61 (B), up 12.25%")
    assert pieces == (Piece("equal", "to "), Piece("delete", "52"), Piece("insert", "61"),
                      Piece("equal", " (B), up "), Piece("delete", "4.5%"), Piece("insert", "12.25%"))
    assert changed_words(pieces) == 2


def test_changes_separated_only_by_spaces_read_as_one_replacement() -> None:
    assert word_diff("keep a b c keep", "keep x y z keep") == (
        Piece("equal", "keep "), Piece("delete", "a b c"), Piece("insert", "x y z"), Piece("equal", " keep"))


def test_hunks_show_a_few_words_around_each_change_and_join_close_ones() -> None:
    words = " ".join(f"w{i}" for i in range(60))
    edited = words.replace("w10", "X").replace("w12", "Y").replace("w50", "Z")
    found = hunks(word_diff(words, edited), context=3)
    assert len(found) == 2  # w10 and w12 are close: one hunk; w50 is its own
    first = "".join(p.text for p in found[0])
    assert first.startswith("…w7 w8 w9 ") and first.endswith(" w13 w14 w15…")
    assert hunks(word_diff("same", "same")) == []


# -- data tables in a prompt ------------------------------------------------------------------------

PROMPT = ("Describe sales.\n\n| country | sales | note |\n| --- | ---: | --- |\n| A | 10 | x |\n| B | 52 | y |\n"
          "| B | 7 | second B |\n\nThen stop. | not a table |")


def test_a_prompt_splits_into_its_prose_and_its_tables() -> None:
    parts = split_prompt(PROMPT)
    assert parts.prose == "Describe sales.\n\n[table 1]\n\nThen stop. | not a table |"
    (table,) = parts.tables
    assert table.columns == ("country", "sales", "note") and table.rows[1] == ("B", "52", "y")


def test_changed_added_and_removed_rows_are_named_by_their_first_cell() -> None:
    edited = PROMPT.replace("| B | 52 | y |", "| B | 61 | y |").replace("| A | 10 | x |\n", "") \
        .replace("| B | 7 | second B |", "| B | 7 | second B |\n| C | 3 | new |")
    found = [c.describe() for c in row_changes(split_prompt(PROMPT).tables, split_prompt(edited).tables)]
    assert found == ['row "B" of table 1: sales 52 → 61', 'row "C" of table 1 added: sales 3, note new',
                     'row "A" of table 1 removed: sales 10, note x']


def test_a_table_whose_columns_changed_is_said_once() -> None:
    edited = PROMPT.replace("| country | sales | note |\n| --- | ---: | --- |", "| country | revenue | note |\n| --- | ---: | --- |")
    (change,) = row_changes(split_prompt(PROMPT).tables, split_prompt(edited).tables)
    assert change.kind == "columns" and "sales" in change.describe() and "revenue" in change.describe()


# -- the comparison ---------------------------------------------------------------------------------


def _run(run_id: str, *, started: float = 0.0, status: str = "done", sheet: str = "/w/sheet.xlsx",
         config: dict | None = None) -> RunRow:
    identity = json.dumps(config or {"model": "m", "temperature": 0.2})
    return RunRow(run_id, sheet, "h-" + run_id, "c-" + identity, started, started + 1 if status != "running" else None,
                  status, 0, 0, 0, 0, 0, 0, 0.0, None, None, identity)


def _task(key: str, text: str, prompt: str = "", *, status: str = "done", model: str = "m", tokens: int = 10,
          cost: float = 0.01, cached: bool = False) -> TaskSide:
    objective_id, _, _ = key.partition(".")
    return TaskSide(key, objective_id, key.upper(), status, "" if status == "done" else "boom", text, model,
                    prompt or f"[user]\nWrite {key}.", tokens, 0, cost, cached)


TABLE = "| country | sales |\n| --- | ---: |\n| A | 10 |\n| B | {b} |"
UPSTREAM = "The market grew strongly, led by the north."


def _sides() -> tuple[RunSide, RunSide]:
    before = [
        _task("a.data", "Sales peak at 52 in B.", f"[user]\nDescribe.\n\n{TABLE.format(b=52)}"),
        _task("a.dep", "Summary of sales.", f"[user]\nSummarise: {UPSTREAM}"),
        _task("b.up", UPSTREAM),
        _task("b.edited", "Old words here.", "[user]\nWrite the old way."),
        _task("b.same", "Same text.", cost=0.01),
        _task("c.cost", "Same answer.", tokens=10),
        _task("c.cached", "Cached answer.", cost=0.02),
        _task("c.gone", "Removed later."),
    ]
    after = [
        _task("a.data", "Sales peak at 61 in B.", f"[user]\nDescribe.\n\n{TABLE.format(b=61)}"),
        _task("a.dep", "Summary of sales.", f"[user]\nSummarise: {UPSTREAM} Now faster."),
        _task("b.up", UPSTREAM + " Now faster."),
        _task("b.edited", "New words here.", "[user]\nWrite the new way."),
        _task("b.same", "Same text.", cost=0.01),
        _task("c.cost", "Same answer.", tokens=25),
        _task("c.cached", "Cached answer.", cost=0.0, cached=True),
        _task("c.new", "Added now."),
    ]
    chapters = (("a", "Alpha"), ("b", "Beta"), ("c", "Gamma"))
    return (RunSide(_run("r1", started=1.0), tuple(before), chapters),
            RunSide(_run("r2", started=2.0), tuple(after), chapters))


def test_each_task_is_changed_unchanged_added_or_removed_with_what_changed() -> None:
    comparison = compare_runs(*_sides())
    by_key = {t.key: t for t in comparison.tasks}
    assert {k: (t.status, t.significance) for k, t in by_key.items()} == {
        "a.data": ("changed", "data"), "a.dep": ("changed", "input"), "b.up": ("changed", "answer"),
        "b.edited": ("changed", "answer"), "b.same": ("unchanged", "none"), "c.cost": ("changed", "cost"),
        "c.cached": ("unchanged", "none"),  # free from the cache is not a change
        "c.gone": ("removed", "answer"), "c.new": ("added", "answer"),
    }
    assert by_key["a.data"].rows[0].describe() == 'row "B" of table 1: sales 52 → 61'
    assert by_key["a.dep"].upstream == ("b.up",) and not by_key["a.dep"].prompt  # its own words did not change
    assert by_key["b.edited"].reasons() == ["answer changed (1 word)", "prompt edited"]
    assert by_key["c.cost"].tokens_delta == 15
    assert comparison.counts == {"changed": 5, "unchanged": 2, "added": 1, "removed": 1}


def test_chapters_and_tasks_come_most_significant_first() -> None:
    comparison = compare_runs(*_sides())
    # a data row first; then, of two chapters of changed answers, the one with more changes
    assert [c.objective_id for c in comparison.chapters] == ["a", "c", "b"]
    assert [t.key for t in comparison.chapters[0].tasks] == ["a.data", "a.dep"]  # data, then input only
    assert [t.key for t in comparison.chapters[1].tasks] == ["c.new", "c.gone", "c.cost", "c.cached"]
    assert comparison.chapters[0].summary().startswith("2 of 2 tasks changed: 1 data, 1 input only;")
    assert comparison.chapters[1].summary().startswith("3 of 4 tasks changed: 1 added, 1 removed, 1 cost only;")
    assert comparison.chapters[2].number == 2  # the sheet's numbering, as in the report


def test_a_changed_data_row_outranks_a_chapter_of_rewritten_answers() -> None:
    before, after = _sides()
    only = {"a.data", "b.edited", "b.up"}
    comparison = compare_runs(RunSide(before.run, tuple(t for t in before.tasks if t.key in only), before.chapters),
                              RunSide(after.run, tuple(t for t in after.tasks if t.key in only), after.chapters))
    assert [c.objective_id for c in comparison.chapters] == ["a", "b"]


def test_settings_that_shape_answers_are_listed_and_how_fast_or_where_is_not() -> None:
    before = _run("r1", config={"model": "m", "temperature": 0.2, "max_concurrent_requests": 4, "output_dir": "x",
                                "track_changes": False})
    after = _run("r2", config={"model": "m2", "temperature": 0.2, "max_concurrent_requests": 16, "output_dir": "y",
                               "track_changes": True})
    assert settings_changes(before, after) == (("model", "m", "m2"),)
    assert settings_changes(before, before) == ()


def test_a_tasks_input_is_what_its_first_step_sent_in_the_sheets_order() -> None:
    def row(key: str) -> TaskRow:
        objective_id, _, task_id = key.partition(".")
        return TaskRow("r", key, objective_id, task_id, key, "done", "", 1.0, 2.0, "text", "m", ("generate",),
                       "", "", 5, 5, 0.0, 1)

    def call(key: str, step: str, user: str, status: str = "ok", cached: bool = True) -> dict:
        return {"task_key": key, "step": step, "status": status, "cached": cached,
                "prompt": json.dumps([{"role": "system", "content": "S"}, {"role": "user", "content": user}])}

    calls = [call("b.t", "generate", "sent, then failed", status="error"), call("b.t", "generate", "answered"),
             call("b.t", "refine", "the draft"), call("a.t", "generate[x]", "item x"), call("a.t", "generate[y]", "item y"),
             call("c.t", "check", "only a check", cached=False)]
    side = run_side(_run("r"), [row("b.t"), row("c.t"), row("a.t")], calls, chapters=(("a", "A"), ("b", "B")),
                    order=("a.t", "b.t"))
    assert [t.key for t in side.tasks] == ["a.t", "b.t", "c.t"]
    assert [t.prompt for t in side.tasks] == ["[system]\nS\n\n[user]\nitem x\n\n[system]\nS\n\n[user]\nitem y",
                                              "[system]\nS\n\n[user]\nanswered", "[system]\nS\n\n[user]\nonly a check"]
    assert [t.from_cache for t in side.tasks] == [True, True, False]


def test_the_base_of_a_run_is_the_latest_earlier_finished_run_of_the_same_workbook() -> None:
    current = _run("now", started=10.0, status="running")
    runs = [_run("old", started=1.0), _run("last", started=5.0, status="failed"),
            _run("stopped", started=6.0, status="interrupted"), _run("other", started=7.0, sheet="/w/other.xlsx"),
            _run("later", started=11.0), current]
    assert base_run(runs, current).run_id == "last"  # a run with failed tasks finished; interrupted did not
    assert base_run([current], current) is None


def test_text_from_a_model_or_a_workbook_is_never_markup_in_changes_md_or_the_page() -> None:
    before, after = _sides()
    evil = "<script>alert(1)</script> **bold** [link](http://x) | cell |"
    task = _task("a.data", evil + " 61")
    comparison = compare_runs(RunSide(before.run, (_task("a.data", evil + " 52"),), before.chapters),
                              RunSide(after.run, (task,), (("a", "<img src=x onerror=alert(1)>"),)))
    page = render_diff_html(comparison)
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "<del>52</del><ins>61</ins>" in page
    markdown = as_markdown(comparison)
    assert re.search(r"(?<!\\)<", markdown) is None  # every < escaped: no tag for a Markdown renderer
    assert "\\</script\\>" in markdown and "\\*\\*bold\\*\\*" in markdown and "\\<img" in markdown
    assert "~~52~~**61**" in markdown
    assert markdown_escape("a_b|c") == "a\\_b\\|c"
    assert "[-52-]{+61+}" in as_text(comparison)


# -- two runs of one workbook -------------------------------------------------------------------------

EXPECTED_CHANGED = {"O1.T1", "O1.T2", "O2.T1", "O2.T2", "O3.T2"}
EXPECTED_UNCHANGED = {"O3.T1", "O3.T3"}


def weekly_sheet(folder: Path, *, edited: bool) -> Path:
    """The workbook of a weekly report: in its edited form one prompt (O1.T1) and one data row (sales of B)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "sales.csv").write_text(f"country,sales\nA,10\nB,{61 if edited else 52}\nC,30\n")
    (folder / "data" / "other.csv").write_text("year,value\n2023,1\n2024,2\n")
    return make_workbook(
        folder / "weekly.xlsx",
        objectives=[{"objective_id": "O1", "title": "Market"}, {"objective_id": "O2", "title": "Sales"},
                    {"objective_id": "O3", "title": "Outlook"}],
        tasks=[
            {"objective_id": "O1", "task_id": "T1", "title": "Market",
             "prompt": "Write about the market in 2025." if edited else "Write about the market."},
            {"objective_id": "O1", "task_id": "T2", "title": "Market summary", "depends_on": "O1.T1",
             "prompt": '{{ results["O1.T1"] }}\n\nSummarise the section above.'},
            {"objective_id": "O2", "task_id": "T1", "title": "Sales", "data": "sales",
             "prompt": "Describe sales.\n\n{{ data.sales }}"},
            {"objective_id": "O2", "task_id": "T2", "title": "Sales summary", "depends_on": "O2.T1",
             "prompt": 'Summarise: {{ results["O2.T1"] }}'},
            {"objective_id": "O3", "task_id": "T1", "title": "Outlook", "data": "other",
             "prompt": "Write the outlook.\n\n{{ data.other }}"},
            {"objective_id": "O3", "task_id": "T2", "title": "Sales compared", "data": "sales",
             "prompt": "Compare sales.\n\n{{ data.sales }}"},
            {"objective_id": "O3", "task_id": "T3", "title": "Closing", "prompt": "Closing words."},
        ],
        data=[{"name": "sales", "path": "data/sales.csv"}, {"name": "other", "path": "data/other.csv"}],
    )


def run_sheet(sheet: Path, out: Path, *args: str) -> str:
    """Run the workbook offline; the new run's id."""
    before = {p.name for p in run_dirs(out)} if out.exists() else set()
    result = invoke("run", sheet, "--provider", "offline", "--output", out, "--no-progress", *args)
    assert result.exit_code == 0, result.output
    (new,) = {p.name for p in run_dirs(out)} - before
    return new


def weekly_runs(folder: Path) -> tuple[Path, str, str]:
    """Last week's run, then this week's (workbook edited, tracked changes on): (output root, base, new)."""
    out = folder / "out"
    first = run_sheet(weekly_sheet(folder, edited=False), out)
    second = run_sheet(weekly_sheet(folder, edited=True), out, "--set", "track_changes=true")
    return out, first, second


@pytest.fixture(scope="module")
def weekly(tmp_path_factory) -> tuple[Path, str, str]:
    return weekly_runs(tmp_path_factory.mktemp("weekly"))


def test_diff_lists_exactly_the_edited_task_the_data_dependent_tasks_and_their_dependents(weekly) -> None:
    out, first, second = weekly
    result = invoke("diff", first, second, "--output", out, "--json")
    assert result.exit_code == 0, result.output
    tasks = {t["task"]: t for c in json.loads(result.output)["chapters"] for t in c["tasks"]}
    assert {k for k, t in tasks.items() if t["status"] == "changed"} == EXPECTED_CHANGED
    assert {k for k, t in tasks.items() if t["status"] == "unchanged"} == EXPECTED_UNCHANGED
    assert tasks["O2.T1"]["rows"] == [{"table": 1, "item": "", "row": "B", "kind": "changed", "count": 0,
                                       "cells": [{"column": "sales", "before": "52", "after": "61"}]}]
    assert tasks["O3.T2"]["significance"] == "data"
    assert tasks["O1.T1"]["significance"] == "answer" and "prompt edited" in tasks["O1.T1"]["reasons"]


def test_a_dependent_of_a_changed_task_is_changed_and_says_which_task_changed_it(weekly) -> None:
    """The offline draft echoes its prompt's first line: O1.T2's prompt starts with O1.T1's text, so its
    answer changes too. O2.T2 carries O2.T1's text further in: its input changed, whatever the draft says."""
    out, first, second = weekly
    tasks = {t["task"]: t for c in json.loads(invoke("diff", first, second, "--output", out, "--json").output)["chapters"]
             for t in c["tasks"]}
    assert tasks["O1.T2"]["upstream"] == ["O1.T1"] and tasks["O1.T2"]["significance"] == "answer"
    assert ["insert", " in 2025"] in tasks["O1.T2"]["text_diff"]
    assert tasks["O2.T2"]["upstream"] == ["O2.T1"] and not tasks["O2.T2"]["prompt_diff"]  # none of its own words
    answered = any(op != "equal" for op, _ in tasks["O2.T2"]["text_diff"])
    assert tasks["O2.T2"]["significance"] == ("answer" if answered else "input")
    assert "uses the changed text of O2.T1" in tasks["O2.T2"]["reasons"]


def test_diff_prints_chapters_most_significant_first_with_a_word_diff(weekly) -> None:
    out, first, second = weekly
    result = invoke("diff", first, second, "--output", out)
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"run {first} → run {second}: 5 changed, 2 unchanged, 0 added, 0 removed" in text
    chapters = [line.split(" (")[0] for line in text.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert chapters == ["2. Sales", "3. Outlook", "1. Market"]  # data rows first
    assert 'data row "B" of table 1: sales 52 → 61' in text and "to [-52-]{+61+} (B)" in text
    assert "unchanged: O3.T1, O3.T3" in text
    assert invoke("runs", "--diff", first, second, "--output", out).output == text  # the alias


def test_the_new_run_writes_changes_md_beside_its_report_naming_what_changed(weekly) -> None:
    out, first, second = weekly
    changes = (out / second / "changes.md").read_text(encoding="utf-8")
    assert changes.startswith(f"# What changed since run {first}\n")
    for key in EXPECTED_CHANGED:
        assert f"(`{key}`)" in changes, key
    assert changes.index("## 2. Sales") < changes.index("## 3. Outlook") < changes.index("## 1. Market")
    assert 'data row "B" of table 1: sales 52 → 61' in changes and "~~52~~**61**" in changes
    assert "Unchanged: Outlook (`O3.T1`), Closing (`O3.T3`)." in changes
    assert not (out / first / "changes.md").exists()  # the first run had nothing to compare with
    assert json.loads((out / second / "run.json").read_text())["outputs"]["changes_md"] == "changes.md"


def test_compare_to_picks_another_base_and_an_unknown_one_stops_the_run_before_it_starts(weekly, tmp_path) -> None:
    out, first, _ = weekly
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    sheet = weekly_sheet(tmp_path / "sheet", edited=True)
    third = run_sheet(sheet, copy, "--compare-to", first)
    assert (copy / third / "changes.md").read_text(encoding="utf-8").startswith(f"# What changed since run {first}\n")
    assert not (copy / third / "report.clean.docx").exists()  # track_changes is off: report.docx is clean
    before = {p.name for p in run_dirs(copy)}
    refused = invoke("run", sheet, "--provider", "offline", "--output", copy, "--no-progress", "--compare-to", "nope")
    assert refused.exit_code == 2 and "--compare-to: no run 'nope'" in refused.output
    assert "Traceback" not in refused.output and {p.name for p in run_dirs(copy)} == before


def test_an_unchanged_rerun_says_nothing_changed(weekly, tmp_path) -> None:
    out, _, second = weekly
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    third = run_sheet(out.parent / "weekly.xlsx", copy)  # this week's workbook, run again as it is
    changes = (copy / third / "changes.md").read_text(encoding="utf-8")
    assert f"since run {second}" in changes and "0 of 7 tasks changed" in changes and "Nothing changed" in changes


@pytest.mark.parametrize(("args", "said"), [
    (["nope", "{second}"], "no run 'nope'"),
    (["{first}", "{second}x"], "did you mean"),
])
def test_an_unknown_run_id_is_exit_2_with_what_to_do(weekly, args, said) -> None:
    out, first, second = weekly
    result = invoke("diff", *[a.format(first=first, second=second) for a in args], "--output", out)
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output


def test_diff_without_a_ledger_is_exit_2_naming_the_folder(tmp_path) -> None:
    result = invoke("diff", "a", "b", "--output", tmp_path / "nothing")
    assert result.exit_code == 2 and "no runs recorded under" in result.output


def test_diff_html_writes_a_self_contained_page_with_insertions_and_deletions(weekly, tmp_path) -> None:
    out, first, second = weekly
    page = tmp_path / "diff.html"
    result = invoke("diff", first, second, "--output", out, "--html", page)
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "<del>52</del><ins>61</ins>" in html and "<ins> in 2025</ins>" in html
    assert "http" not in html.replace("http-equiv", "") and "<script" not in html  # no network, no script
    assert html.index('id="chapter-O2"') < html.index('id="chapter-O3"') < html.index('id="chapter-O1"')
    (tmp_path / "a-file").write_text("")
    unwritable = invoke("diff", first, second, "--output", out, "--html", tmp_path / "a-file" / "diff.html")
    assert unwritable.exit_code == 2 and "--html" in unwritable.output and "Traceback" not in unwritable.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_diff_reads_a_folder_it_cannot_write(weekly) -> None:
    out, first, second = weekly
    modes = {path: path.stat().st_mode for path in [out, *out.iterdir()]}
    try:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode) & ~0o222)
        result = invoke("diff", first, second, "--output", out)
        assert result.exit_code == 0, result.output
        assert "5 changed, 2 unchanged" in result.output
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))


def test_diff_writes_nothing_in_the_folder_it_reads(weekly) -> None:
    out, first, second = weekly

    def state() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*")}

    before = state()
    for args in (["diff", first, second], ["diff", first, second, "--json"], ["runs", "--diff", second, first]):
        assert invoke(*args, "--output", out).exit_code == 0
    assert state() == before


def test_track_changes_must_be_a_boolean(tmp_path) -> None:
    sheet = weekly_sheet(tmp_path, edited=False)
    result = invoke("run", sheet, "--provider", "offline", "--output", tmp_path / "out", "--set", "track_changes=maybe")
    assert result.exit_code == 2 and "track_changes" in result.output and "Traceback" not in result.output
