"""The command line as a user types it: exit codes, messages, and nothing written on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import click
from click.testing import CliRunner

from report_pipeline.cli import _exit_status, cli
from tests.workbooks import make_workbook, simple_workbook

EXAMPLE = Path(__file__).resolve().parent.parent / "prompt_sheets" / "energy_transition.xlsx"


def run_dirs(out: Path) -> list[Path]:
    """The run folders under an output root (beside them: the ledger)."""
    return [p for p in out.iterdir() if p.is_dir()]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)



def _unstamped(line: str) -> str:
    """A plain line without the timestamp it starts with."""
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line)

def test_run_example_workbook_offline_writes_a_complete_report(tmp_path):
    result = invoke("run", EXAMPLE, "--provider", "offline", "--output", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path)
    for name in ("report.md", "report.docx", "report.xlsx", "results.csv", "run.json", "run.log"):
        assert (run_dir / name).stat().st_size > 0, name
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "done"
    assert manifest["counts"]["done"] == manifest["counts"]["total"] >= 20
    assert len(list((run_dir / "objectives").glob("*.csv"))) >= 6
    assert "\x1b" not in result.output  # not a terminal: plain lines, no control characters
    objective_lines = [line for line in result.output.splitlines() if _unstamped(line).startswith("objective ")]
    assert len(objective_lines) == len(manifest["objectives"])  # one line per finished objective
    for chapter in manifest["objectives"]:  # each chapter's file followed its last answer, and says when
        assert chapter["csv_written_at"] is not None and chapter["csv_after_last_answer_s"] >= 0
        assert (run_dir / chapter["csv"]).exists()


def test_validate_reports_every_problem_with_exit_2_and_no_traceback(tmp_path):
    sheet = make_workbook(
        tmp_path / "bad",
        objectives=[{"objective_id": "a", "title": "A"}, {"objective_id": "a", "title": "A again"}],
        tasks=[
            {"objective_id": "a", "task_id": "1", "prompt": ""},
            {"objective_id": "zz", "task_id": "2", "prompt": "hello {{ nope }}"},
        ],
    )
    result = invoke("validate", sheet)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "objectives!" in result.output and "duplicate" in result.output.lower()
    assert "tasks!C2 (prompt)" in result.output
    assert "zz" in result.output and "nope" in result.output


def test_validate_accepts_the_example_workbook():
    result = invoke("validate", EXAMPLE)
    assert result.exit_code == 0
    assert "OK" in result.output


def test_run_refuses_an_invalid_sheet_and_writes_nothing(tmp_path):
    sheet = make_workbook(tmp_path / "bad", objectives=[{"objective_id": "a", "title": "A"}], tasks=[{"objective_id": "a", "task_id": "1", "prompt": ""}])
    out = tmp_path / "out"
    result = invoke("run", sheet, "--output", out)
    assert result.exit_code == 2
    assert not out.exists() or not run_dirs(out)


def test_not_an_xlsx_is_exit_2_with_a_clear_message(tmp_path):
    fake = tmp_path / "notes.xlsx"
    fake.write_text("this is not a workbook")
    result = invoke("validate", fake)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "notes.xlsx" in result.output


def test_unknown_config_key_is_exit_2_naming_the_key(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 1, 1)
    config = tmp_path / "c.yaml"
    config.write_text("max_task_workrs: 4\n")
    result = invoke("run", sheet, "--config", config, "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "max_task_workrs" in result.output


def test_wrong_type_in_settings_sheet_names_the_cell(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 1, 1, settings={"max_task_workers": "lots"})
    result = invoke("run", sheet, "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "max_task_workers" in result.output and "settings!B2" in result.output


def test_openai_provider_without_key_is_exit_2_naming_the_env_var(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 1, 1)
    out = tmp_path / "out"
    result = invoke("run", sheet, "--provider", "openai", "--output", out)
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output and "--provider offline" in result.output
    assert not out.exists() or not run_dirs(out)


def test_flags_beat_the_settings_sheet_which_beats_the_yaml(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 1, 1, settings={"project_name": "From sheet", "model": "sheet-model"})
    config = tmp_path / "c.yaml"
    config.write_text("project_name: From yaml\nmodel: yaml-model\ntemperature: 0.7\n")
    result = invoke("run", sheet, "--config", config, "--model", "flag-model", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["config"]["project_name"] == "From sheet"
    assert manifest["config"]["model"] == "flag-model"
    assert manifest["config"]["temperature"] == 0.7


def test_dry_run_prices_the_run_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", EXAMPLE, "--dry-run", "--output", out)
    assert result.exit_code == 0, result.output
    assert "nothing is sent" in result.output and "total" in result.output
    assert not out.exists()


def test_limit_runs_only_the_first_tasks(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 3, 3)
    result = invoke("run", sheet, "--limit", "4", "--output", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    assert json.loads((run_dir / "run.json").read_text())["counts"]["total"] == 4
    assert result.output.strip().count("\n") == 0  # --quiet: only the final line


def test_sequential_flag_runs_and_matches(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 2, 2)
    result = invoke("run", sheet, "--sequential", "--output", tmp_path / "out")
    assert result.exit_code == 0
    (run_dir,) = run_dirs(tmp_path / "out")
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["config"]["run_objectives_concurrent"] is False
    assert {t["thread"] for t in manifest["tasks"]} == {"MainThread"}


def test_init_writes_a_starter_that_runs(tmp_path):
    target = tmp_path / "starter"
    result = invoke("init", target)
    assert result.exit_code == 0, result.output
    again = invoke("init", target)
    assert again.exit_code == 2 and "would overwrite" in again.output
    sheet = next(target.glob("*.xlsx"))
    run = invoke("run", sheet, "--config", target / "config.yaml", "--output", tmp_path / "out")
    assert run.exit_code == 0, run.output


def test_batch_mode_offline_writes_the_same_report_as_realtime(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": o, "title": o} for o in ("O1", "O2", "SUM")],
        tasks=[
            {"objective_id": "O1", "task_id": "T1", "prompt": "First", "steps": "generate,refine"},
            {"objective_id": "O2", "task_id": "T1", "prompt": "Second"},
            {"objective_id": "SUM", "task_id": "T1", "prompt": "Sum up {{ results[\"O1\"] }} and {{ results[\"O2\"] }}", "depends_on": "O1,O2"},
        ],
    )
    batch = invoke("run", sheet, "--batch", "--poll-interval", "0.01", "--no-cache", "--output", tmp_path / "batch")
    realtime = invoke("run", sheet, "--no-cache", "--output", tmp_path / "realtime")
    assert batch.exit_code == 0 and realtime.exit_code == 0, batch.output + realtime.output
    (batch_dir,), (realtime_dir,) = run_dirs(tmp_path / "batch"), run_dirs(tmp_path / "realtime")
    manifest = json.loads((batch_dir / "run.json").read_text())
    assert manifest["execution"] == "batch"
    assert manifest["config"]["batch_poll_interval_s"] == 0.01
    # wave 1: both generates; wave 2: the refine; wave 3: the summary, once both chapters are done
    assert [w["requests"] for w in manifest["batch"]["waves"]] == [2, 1, 1]
    body = lambda d: (d / "report.md").read_text().split("\n", 8)[-1]  # noqa: E731 - past the header lines
    assert body(batch_dir) == body(realtime_dir)


def test_set_overrides_any_key_over_the_settings_sheet(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", 1, 1, settings={"max_tokens": 900})
    result = invoke("run", sheet, "--set", "max_tokens=120", "--set", "project_name=Weekly", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["max_tokens"] == 120 and config["project_name"] == "Weekly"
    bad = invoke("run", sheet, "--set", "max_tokens", "--output", tmp_path / "out")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    unknown = invoke("run", sheet, "--set", "max_tokenz=5", "--output", tmp_path / "out")
    assert unknown.exit_code == 2 and "max_tokenz" in unknown.output


def test_errors_reach_the_console_even_with_quiet(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[
            {"objective_id": "o", "task_id": "ok", "prompt": "Fine"},
            {"objective_id": "o", "task_id": "bad", "prompt": "{{ 1 // 0 }}"},  # fails when rendered
        ],
    )
    result = invoke("run", sheet, "--quiet", "--output", tmp_path / "out")
    assert result.exit_code == 1
    lines = [_unstamped(line) for line in result.output.splitlines() if line.strip()]
    assert any(line.startswith("ERROR") and "o.bad" in line for line in lines)
    assert lines[-1].startswith("run ") and "1 failed" in lines[-1]
    assert not any(line.startswith("objective ") for line in lines)  # --quiet: no progress lines


# -- the console script as a process: it leaves with os._exit, so prove nothing is lost ------------


def _console(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m report_pipeline ...`: the same `main()` the installed script runs."""
    return subprocess.run(
        [sys.executable, "-m", "report_pipeline", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )


def test_console_run_exits_0_with_every_output_complete_and_flushed(tmp_path):
    out = tmp_path / "out"
    done = _console("run", EXAMPLE, "--provider", "offline", "--output", out, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "done:" in done.stdout.splitlines()[-1]  # the final line reached the pipe (standard output)
    (run_dir,) = run_dirs(out)
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "done"
    log_lines = (run_dir / "run.log").read_text(encoding="utf-8").splitlines()
    assert f"run {run_dir.name} done: 28 done" in log_lines[-1]  # the log's last line was flushed too
    assert "Traceback" not in done.stderr


def test_console_keeps_each_commands_exit_code(tmp_path):
    bad = _console("validate", tmp_path / "missing.xlsx", cwd=tmp_path)
    assert bad.returncode == 2
    assert "file not found" in bad.stderr
    assert _console("--version", cwd=tmp_path).stdout.startswith("report-pipeline")
    assert _console("run", "--no-such-flag", cwd=tmp_path).returncode == 2  # click's usage error


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("bye", 1)])
def test_exit_status_follows_sys_exit(code, status, capsys):
    assert _exit_status(code) == status
    assert capsys.readouterr().err == ("bye\n" if code == "bye" else "")


@pytest.mark.parametrize("command", ["run", "models", "validate", "runs", "init", "bench"])
def test_every_option_of_every_command_says_what_it_does(command):
    options = [p for p in cli.commands[command].params if isinstance(p, click.Option) and not p.hidden]
    assert [o.name for o in options if not o.help] == []


def test_run_help_lists_the_exit_codes():
    result = invoke("run", "--help")
    assert all(f"{code} " in result.output for code in ("0", "1", "2", "3", "130"))
    assert "Exit codes:" in result.output and "--log-level" in result.output


def test_an_unknown_key_in_set_suggests_the_nearest(tmp_path):
    sheet = make_workbook(tmp_path / "wb", objectives=[{"objective_id": "o", "title": "O"}],
                          tasks=[{"objective_id": "o", "task_id": "t", "prompt": "p"}])
    result = CliRunner().invoke(cli, ["run", str(sheet), "--set", "temprature=0.5", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "did you mean temperature?" in result.output


def test_paths_in_a_config_file_are_relative_to_the_file_not_the_current_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "run.yaml").write_text("output_dir: out\nprovider: offline\n")
    sheet = make_workbook(folder / "wb", objectives=[{"objective_id": "o", "title": "O"}],
                          tasks=[{"objective_id": "o", "task_id": "t", "prompt": "p"}])
    elsewhere = tmp_path / "cron-starts-here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("run", sheet, "--config", folder / "run.yaml", "--no-progress")
    assert result.exit_code == 0
    assert (folder / "out" / "ledger.sqlite").exists() and not (elsewhere / "out").exists()


def test_plain_lines_carry_a_timestamp_and_the_summary_goes_to_standard_output(tmp_path):
    sheet = make_workbook(tmp_path / "wb", objectives=[{"objective_id": "o", "title": "O"}],
                          tasks=[{"objective_id": "o", "task_id": "ok", "prompt": "Fine"},
                                 {"objective_id": "o", "task_id": "bad", "prompt": "{{ 1 // 0 }}"}])
    result = CliRunner().invoke(cli, ["run", str(sheet), "--output", str(tmp_path / "out"), "--no-progress"],
                                catch_exceptions=False)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    out = result.stdout.splitlines()
    assert all(re.match(stamp, line) for line in out)
    assert re.match(stamp + r"run \S+ failed: 1 done, 1 failed", out[-1])
    assert any(re.match(stamp + r"outputs in .*report\.md", line) for line in out)
    err = result.stderr.splitlines()
    assert any(re.match(stamp + r"ERROR: task o\.bad failed", line) for line in err)
    assert not any("ERROR" in line for line in out)


def test_init_prints_a_command_that_works_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "starter")
    command = result.output.strip().splitlines()[-1].removeprefix("next: ")
    assert str((tmp_path / "starter").resolve()) in command


def test_limit_runs_the_first_tasks_with_what_they_depend_on_and_says_so(tmp_path):
    """--limit 3 on the example picks the executive summary's tasks, which need every chapter: they used to be
    skipped, and the run 'failed' with 0 done."""
    result = CliRunner().invoke(cli, ["run", str(EXAMPLE), "--limit", "3", "--output", str(tmp_path), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert "also runs 24 task(s) the chosen ones depend on" in result.stderr
    manifest = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert manifest["counts"] == {"done": 27, "failed": 0, "skipped": 0, "total": 27}


def test_task_runs_one_task_and_what_it_depends_on(tmp_path):
    result = invoke("run", EXAMPLE, "--task", "gen.t4", "--output", tmp_path, "--no-progress")
    assert result.exit_code == 0
    manifest = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert sorted(t["task_id"] for t in manifest["tasks"] if t["objective_id"] == "gen") == ["t1", "t3", "t4"]


def test_an_unknown_task_is_refused_before_anything_runs(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(EXAMPLE), "--task", "gen.t44", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--task gen.t44: no such task: did you mean gen.t4?" in result.output
    assert not list(tmp_path.iterdir())


def test_dry_run_shows_the_prompts_it_promises_and_prices_a_dependency_at_its_max_tokens(tmp_path):
    sheet = make_workbook(tmp_path / "wb", objectives=[{"objective_id": "o", "title": "O"}],
                          tasks=[{"objective_id": "o", "task_id": "a", "prompt": "Write A", "max_tokens": 500},
                                 {"objective_id": "o", "task_id": "b", "prompt": 'Improve: {{ results["o.a"] }}',
                                  "depends_on": "o.a", "max_tokens": 10}])
    shown = invoke("run", sheet, "--dry-run", "--show-prompts")
    assert "== o.b (gpt-4o-mini) ==\nImprove: [text of o.a, written during the run]" in shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("O "))
    prompt_tokens = int(row.split()[3].replace(",", ""))
    assert prompt_tokens >= 500  # o.b's prompt holds o.a's answer, up to 500 tokens


def _lead_sheet(tmp_path: Path) -> Path:
    return make_workbook(
        tmp_path / "wb",
        objectives=[
            {"objective_id": "sum", "title": "Summary", "description": "NOTE: written last, placed first."},
            {"objective_id": "gen", "title": "Generation", "description": "Scope: coal to wind.",
             "lead": "How Europe makes its electricity."},
        ],
        tasks=[{"objective_id": "sum", "task_id": "1", "prompt": "Sum up."},
               {"objective_id": "gen", "task_id": "1", "prompt": "Describe {{ objective.description }}"}],
    )


def test_a_chapter_lead_comes_from_its_lead_cell_and_an_analysts_description_stays_out(tmp_path):
    from docx import Document

    result = invoke("run", _lead_sheet(tmp_path), "--provider", "offline", "--output", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    markdown = (run_dir / "report.md").read_text()
    document = "\n".join(p.text for p in Document(run_dir / "report.docx").paragraphs)
    for text in (markdown, document):
        assert "How Europe makes its electricity." in text
        assert "NOTE: written last" not in text and "Scope: coal to wind." not in text.split("Describe")[0]


def test_description_as_lead_prints_a_description_where_a_chapter_has_no_lead(tmp_path):
    result = invoke("run", _lead_sheet(tmp_path), "--provider", "offline", "--output", tmp_path / "out",
                    "--no-progress", "--set", "description_as_lead=true")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "out")
    markdown = (run_dir / "report.md").read_text()
    assert "NOTE: written last, placed first." in markdown
    assert "How Europe makes its electricity." in markdown and markdown.count("Scope: coal to wind.") <= 1
