"""`report-pipeline show`: a run's chapters and one task's chain from the ledger, read-only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.test_cli import EXAMPLE, invoke, run_dirs


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("show") / "out"
    result = invoke("run", EXAMPLE, "--provider", "offline", "--output", out, "--no-progress")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(out)
    return out, run_dir.name


def test_a_run_shows_its_chapters_in_sheet_order_with_calls_and_cost(example_run) -> None:
    out, run_id = example_run
    result = invoke("show", run_id, "--output", out)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()
            if line.startswith("  ") and len(line.split()) == 7 and line.split()[1].isdigit()]
    assert [row[0] for row in rows] == ["exec", "gen", "ren", "grid", "elec", "price", "policy"]
    # per chapter: done, failed, skipped, calls, tokens, cost; the chapters' tokens add up to the run's
    assert all(int(row[4]) >= 4 and int(row[5].replace(",", "")) > 0 for row in rows)
    run_json = json.loads((out / run_id / "run.json").read_text())
    assert sum(int(row[5].replace(",", "")) for row in rows) == run_json["tokens"]["total"]
    assert [o["calls"] for o in run_json["objectives"]] == [int(row[4]) for row in rows]
    assert "28 done, 0 failed, 0 skipped of 28" in result.output


def test_a_task_shows_each_steps_prompt_and_answer(example_run) -> None:
    out, run_id = example_run
    result = invoke("show", run_id, "gen.t1", "--output", out)
    assert result.exit_code == 0, result.output
    assert "--- generate:" in result.output and "--- refine:" in result.output
    assert "[user]" in result.output and "[answer]" in result.output
    assert 'Write the section "EU generation mix 2015-2030"' in result.output


def test_json_is_for_scripts(example_run) -> None:
    out, run_id = example_run
    task = json.loads(invoke("show", run_id, "gen.t1", "--output", out, "--json").output)
    assert task["task"] == "gen.t1" and [c["step"] for c in task["calls"]] == ["generate", "refine"]
    assert task["calls"][0]["messages"][-1]["role"] == "user" and task["calls"][0]["answer"]
    run = json.loads(invoke("show", run_id, "--output", out, "--json").output)
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert sum(c["calls"] for c in run["chapters"]) == sum(len(task["calls"]) for task in manifest["tasks"])


@pytest.mark.parametrize(("args", "said"), [
    (["no-such-run"], "no run 'no-such-run'"),
    (["{run}", "gen.t99"], "has no task gen.t99: did you mean gen.t"),
])
def test_an_unknown_run_or_task_is_exit_2_with_what_to_do(example_run, args, said) -> None:
    out, run_id = example_run
    result = invoke("show", *[a.format(run=run_id) for a in args], "--output", out)
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_it_reads_a_folder_it_cannot_write(example_run, tmp_path) -> None:
    out, run_id = example_run
    modes = {path: path.stat().st_mode for path in [out, *out.iterdir()]}
    try:
        for path in modes:
            path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
        assert invoke("show", run_id, "gen.t1", "--output", out).exit_code == 0
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))


def test_logs_lists_calls_newest_first_and_filters_by_run_task_and_text(example_run) -> None:
    out, run_id = example_run
    every = json.loads(invoke("logs", "--output", out, "-n", "500", "--json").output)
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert len(every) == sum(len(task["calls"]) for task in manifest["tasks"])
    assert [c["when"] for c in every] == sorted((c["when"] for c in every), reverse=True)
    one_task = json.loads(invoke("logs", "--output", out, "--run", run_id, "--task", "gen.t1", "--json").output)
    assert [c["step"] for c in one_task] == ["refine", "generate"]  # newest first
    found = json.loads(invoke("logs", "--output", out, "-q", "EU generation mix 2015-2030", "--json").output)
    assert found and all("EU generation mix 2015-2030" in json.dumps(c) for c in found)
    text = invoke("logs", "--output", out, "--task", "gen.t1")
    assert text.exit_code == 0 and "gen.t1 generate" in text.output and "  > " in text.output


def test_logs_takes_percent_and_underscore_as_written(example_run) -> None:
    out, _ = example_run
    result = invoke("logs", "--output", out, "-q", "100%_of_nothing")
    assert result.exit_code == 0 and result.output.strip() == "no calls match"


def test_logs_without_a_ledger_is_exit_2_naming_the_folder(tmp_path) -> None:
    result = invoke("logs", "--output", tmp_path / "nothing")
    assert result.exit_code == 2 and "no runs recorded under" in result.output and "Traceback" not in result.output


def test_show_and_logs_write_nothing_in_the_folder_they_read(example_run) -> None:
    """What lets them read another user's folder or a read-only copy (checked even as root)."""
    out, run_id = example_run

    def state() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*")}

    before = state()
    for args in (["show", run_id], ["show", run_id, "gen.t1", "--json"], ["logs", "-q", "coal"]):
        assert invoke(*args, "--output", out).exit_code == 0
    assert state() == before
