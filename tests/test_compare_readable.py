"""changes.md as the Monday reader reads it: a few named rows, not a table; an excerpt, not a wall;
only settings that changed; a for_each task compared item by item.

Pure: two runs' sides built from plain values, as `tests/test_compare.py` builds them.
"""

from __future__ import annotations

import json

from report_pipeline.compare.render import as_markdown, as_text
from report_pipeline.compare.runs import (
    RunSide,
    TaskSide,
    compare_runs,
    run_side,
    settings_changes,
)
from report_pipeline.compare.tables import row_changes, split_prompt
from report_pipeline.compare.words import tokens
from report_pipeline.ledger.store import RunRow, TaskRow

CHAPTERS = (("gen", "Generation"),)
COLUMNS = ("country", "year", "basis", "coal", "gas")


def _run(run_id: str, started: float, config: dict | None = None) -> RunRow:
    identity = json.dumps(config or {"model": "m"})
    return RunRow(run_id, "/w/sheet.xlsx", "h", "c-" + identity + run_id, started, started + 1, "done",
                  0, 0, 0, 0, 0, 0, 0.0, None, None, identity)


def _table(rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    return "\n".join([*lines, *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)])


def _rows(countries: list[str], *, coal: dict[tuple[str, int], int] | None = None) -> list[tuple]:
    """Three rows per country (2015, 2024, 2030): no column names a row alone."""
    coal = coal or {}
    return [(c, year, "projection" if year == 2030 else "historical", coal.get((c, year), 100 + year % 100), 50)
            for c in countries for year in (2015, 2024, 2030)]


def _side(run_id: str, started: float, text: str, prompt: str, *, config: dict | None = None) -> RunSide:
    task = TaskSide("gen.t3", "gen", "Country snapshots", "done", "", text, "m", prompt, 10, 10, 0.0, False)
    return RunSide(_run(run_id, started, config), (task,), CHAPTERS)


def _only_task(before: RunSide, after: RunSide):
    (task,) = compare_runs(before, after).tasks
    return task


def _row_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("  - ")]


def test_a_many_row_data_change_lists_five_rows_by_name_then_how_many_more() -> None:
    countries = ["Germany", "France", "Spain", "Poland", "Italy", "Netherlands"]
    old = _rows(countries)
    new = _rows(countries, coal={(c, y): 1 for c in countries for y in (2015, 2024, 2030)})
    task = _only_task(_side("r1", 1.0, "Same.", f"[user]\nDescribe.\n\n{_table(old)}"),
                      _side("r2", 2.0, "Same.", f"[user]\nDescribe.\n\n{_table(new)}"))
    assert len(task.rows) == 18 and task.significance == "data"
    reasons = task.reasons()
    assert reasons[0] == 'data row "Germany, 2015" of table 1: coal 115 → 1'
    assert reasons[5] == "and 13 more data rows" and not reasons[6].startswith("data")
    markdown = as_markdown(compare_runs(_side("r1", 1.0, "Same.", f"[user]\nDescribe.\n\n{_table(old)}"),
                                        _side("r2", 2.0, "Same.", f"[user]\nDescribe.\n\n{_table(new)}")))
    lines = _row_lines(markdown)
    assert len(lines) == 6 and lines[-1] == "  - and 13 more data rows"
    assert "Germany (2)" not in markdown


def test_rows_are_named_by_their_first_cells_until_unique_and_a_changed_value_is_not_part_of_the_name() -> None:
    old = _rows(["Germany", "France"])
    new = _rows(["Germany", "France"], coal={("Germany", 2024): 105})
    found = [c.describe() for c in row_changes(split_prompt(_table(old)).tables, split_prompt(_table(new)).tables)]
    assert found == ['row "Germany, 2024" of table 1: coal 124 → 105']
    # a row added between others keeps every other row matched by its name, not its position
    inserted = old[:1] + [("Germany", 2020, "historical", 134, 95)] + old[1:]
    found = [c.describe() for c in row_changes(split_prompt(_table(old)).tables, split_prompt(_table(inserted)).tables)]
    assert found == ['row "Germany, 2020" of table 1 added: basis historical, coal 134, gas 95']


def test_a_table_only_one_run_sent_is_named_once_with_its_size_never_row_by_row() -> None:
    one = _table(_rows(["Germany"]))
    two = one + "\n\nAnd the other:\n\n" + _table(_rows(["France", "Spain"]))
    (change,) = row_changes(split_prompt(one).tables, split_prompt(two).tables)
    assert change.describe() == "table 2 added (5 columns, 6 rows)"
    (change,) = row_changes(split_prompt(two).tables, split_prompt(one).tables)
    assert change.describe() == "table 2 removed (5 columns, 6 rows)"


def _task_row(run_id: str) -> TaskRow:
    return TaskRow(run_id, "gen.t3", "gen", "t3", "Country snapshots", "done", "", 1.0, 2.0, "Same.", "m",
                   ("generate",), "", "", 5, 5, 0.0, 1)


def _call(step: str, user: str) -> dict:
    return {"task_key": "gen.t3", "step": step, "status": "ok", "cached": False,
            "prompt": json.dumps([{"role": "user", "content": user}])}


def _item_prompt(country: str, rows: list[tuple]) -> str:
    return f"Write on {country}.\n\n{_table([r for r in rows if r[0] == country])}"


def test_a_for_each_task_is_compared_item_by_item_whatever_order_its_calls_were_made_in() -> None:
    countries = ["Germany", "France", "Spain"]
    old, new = _rows(countries), _rows(countries, coal={("Germany", 2024): 105})
    # a pool answers items in any order: the ledger lists the calls as they were made
    first = [_call(f"generate#{n}", _item_prompt(c, old)) for n, c in ((2, "France"), (1, "Germany"), (3, "Spain"))]
    second = [_call(f"generate#{n}", _item_prompt(c, new)) for n, c in ((3, "Spain"), (1, "Germany"), (2, "France"))]
    before = run_side(_run("r1", 1.0), [_task_row("r1")], [*first, _call("refine#1", "the draft")], chapters=CHAPTERS)
    after = run_side(_run("r2", 2.0), [_task_row("r2")], second, chapters=CHAPTERS)
    assert [name for name, _ in before.tasks[0].prompts] == ["#1", "#2", "#3"]
    task = _only_task(before, after)
    assert [r.describe() for r in task.rows] == ['row "Germany, 2024" of table 1 of item 1: coal 124 → 105']
    assert not task.prompt  # no item's own words changed


def test_a_task_that_became_a_for_each_task_compares_its_rows_not_how_they_were_split() -> None:
    countries = ["Germany", "France", "Spain"]
    old, new = _rows(countries), _rows(countries, coal={("Germany", 2024): 105})
    before = run_side(_run("r1", 1.0), [_task_row("r1")], [_call("generate", f"Write on each.\n\n{_table(old)}")],
                      chapters=CHAPTERS)
    after = run_side(_run("r2", 2.0), [_task_row("r2")],
                     [_call(f"generate#{n}", _item_prompt(c, new)) for n, c in enumerate(countries, start=1)],
                     chapters=CHAPTERS)
    task = _only_task(before, after)
    assert [r.describe() for r in task.rows] == ['row "Germany, 2024" of table 1: coal 124 → 105']
    assert "sends 3 prompts (was 1)" in task.reasons()


def test_a_long_inserted_answer_is_cut_to_a_few_short_excerpts() -> None:
    block = " ".join(f"word{i}" for i in range(400))
    old = "Intro sentence stays.\n\nClosing sentence stays."
    new = "Intro sentence stays.\n\n" + block + "\n\nClosing sentence stays. " + ". ".join(
        f"Extra {i} " + "filler " * 30 for i in range(6))
    comparison = compare_runs(_side("r1", 1.0, old, "[user]\nWrite."), _side("r2", 2.0, new, "[user]\nWrite."))
    excerpts = [line for line in as_markdown(comparison).splitlines() if line.startswith("  > ") and len(line) > 5]
    assert 1 <= len(excerpts) <= 3
    for line in excerpts:
        assert sum(t[0].isalnum() for t in tokens(line)) <= 45, line
    assert "…" in excerpts[0] and "word399" not in as_markdown(comparison)
    assert "word399" not in as_text(comparison)


def test_a_setting_only_the_newer_run_recorded_is_a_change_only_away_from_its_default() -> None:
    older = _run("r1", 1.0, {"model": "m", "temperature": 0.2})
    assert settings_changes(older, _run("r2", 2.0, {"model": "m", "temperature": 0.2, "locale": "en"})) == ()
    assert settings_changes(older, _run("r2", 2.0, {"model": "m", "temperature": 0.2, "locale": "de"})) == (
        ("locale", "(none)", "de"),)
    # a key both runs recorded is listed whenever it differs, default or not
    assert settings_changes(_run("r1", 1.0, {"model": "m", "locale": "de"}),
                            _run("r2", 2.0, {"model": "m", "locale": "en"})) == (("locale", "de", "en"),)
    markdown = as_markdown(compare_runs(_side("r1", 1.0, "Same.", "[user]\nW.", config={"model": "m"}),
                                        _side("r2", 2.0, "Same.", "[user]\nW.", config={"model": "m", "locale": "en"})))
    assert "Settings changed" not in markdown


def test_changes_md_is_the_same_for_the_same_two_runs() -> None:
    countries = ["Germany", "France"]
    old, new = _rows(countries), _rows(countries, coal={("France", 2030): 7})
    calls_old = [_call(f"generate#{n}", _item_prompt(c, old)) for n, c in enumerate(countries, start=1)]
    calls_new = [_call(f"generate#{n}", _item_prompt(c, new)) for n, c in enumerate(countries, start=1)]
    shown = set()
    for order in (calls_new, calls_new[::-1]):
        before = run_side(_run("r1", 1.0), [_task_row("r1")], calls_old[::-1], chapters=CHAPTERS)
        after = run_side(_run("r2", 2.0), [_task_row("r2")], order, chapters=CHAPTERS)
        shown.add(as_markdown(compare_runs(before, after)))
    (markdown,) = shown
    assert 'data row "France, 2030" of table 1 of item 2: coal 130 → 7' in markdown
