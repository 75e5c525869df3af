"""Nothing paid twice: the ledger's cache on re-runs, --resume after a stop, one run per output folder."""

from __future__ import annotations

import csv
import json
import os
import shlex
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from report_pipeline.cli import cli
from report_pipeline.config import load_config
from report_pipeline.errors import LedgerError, OutputError, RunLocked
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.run.outcome import RunObserver
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook


class CountingProvider(OfflineProvider):
    """The offline provider, counting the calls that actually reach it (by label)."""

    def __init__(self, config, gate: threading.Event | None = None) -> None:
        super().__init__(config)
        self.labels: list[str] = []
        self._labels_lock = threading.Lock()
        self.gate = gate

    def complete(self, request):
        if self.gate is not None:
            assert self.gate.wait(timeout=30)
        with self._labels_lock:
            self.labels.append(request.label)
        return super().complete(request)


def workbook(path: Path, summary_prompt: str = 'Sum up: {{ results["ch"] }}', first_prompt: str = "First part") -> Path:
    return make_workbook(
        path,
        objectives=[{"objective_id": "sum", "title": "Summary"}, {"objective_id": "ch", "title": "Chapter"},
                    {"objective_id": "other", "title": "Other"}],
        tasks=[
            {"objective_id": "sum", "task_id": "1", "prompt": summary_prompt, "depends_on": "ch"},
            {"objective_id": "ch", "task_id": "1", "prompt": first_prompt, "steps": "generate, refine"},
            {"objective_id": "ch", "task_id": "2", "prompt": "Second part"},
            {"objective_id": "other", "task_id": "1", "prompt": "Unrelated"},
        ],
    )


def run(sheet_path: Path, out: Path, *, provider_factory=CountingProvider, stop=None, observer=None, run_id=None, resume=False, **overrides):
    sheet = load_prompt_sheet(sheet_path)
    config = load_config(overrides={"output_dir": out, **overrides}, environ={})
    provider = provider_factory(config)
    pipeline = ReportGenerationPipeline(config, sheet, provider=provider, stop=stop, observer=observer, run_id=run_id, resume=resume)
    return pipeline.run(), provider


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def comparable(run_dir: Path) -> list[tuple]:
    """results.csv without the columns that differ between runs by nature (times, cache flag)."""
    keep = ("objective_id", "task_id", "status", "error", "text", "model", "steps", "prompt_tokens", "completion_tokens", "cost_usd")
    return sorted(tuple(r[k] for k in keep) for r in rows(run_dir / "results.csv"))


def test_rerun_of_an_unchanged_sheet_makes_no_call(tmp_path):
    sheet = workbook(tmp_path / "wb")
    first, provider = run(sheet, tmp_path / "out")
    assert len(provider.labels) == 5
    second, provider = run(sheet, tmp_path / "out")
    assert provider.labels == []
    assert second.exit_code == 0
    assert all(r["cached"] == "true" for r in rows(second.run_dir / "results.csv"))
    assert comparable(first.run_dir) == comparable(second.run_dir)


def test_editing_one_prompt_reruns_that_task_and_its_dependents_only(tmp_path):
    run(workbook(tmp_path / "wb"), tmp_path / "out")
    edited = workbook(tmp_path / "wb2", first_prompt="First part, shorter")
    _, provider = run(edited, tmp_path / "out")
    assert sorted(provider.labels) == ["ch.1.generate", "ch.1.refine", "sum.1.generate"]


def test_no_cache_makes_every_call_again(tmp_path):
    sheet = workbook(tmp_path / "wb")
    run(sheet, tmp_path / "out")
    _, provider = run(sheet, tmp_path / "out", cache=False)
    assert len(provider.labels) == 5


class StopAfter(RunObserver):
    def __init__(self, stop: threading.Event, count: int) -> None:
        self.stop, self.count, self.seen = stop, count, 0

    def task_finished(self, result):
        self.seen += 1
        if self.seen == self.count:
            self.stop.set()


def test_resume_after_a_stop_runs_only_unfinished_work_and_matches_an_uninterrupted_run(tmp_path):
    sheet = workbook(tmp_path / "wb")
    whole, _ = run(sheet, tmp_path / "whole", max_objective_workers=1, max_task_workers=1)
    stop = threading.Event()
    stopped, provider = run(sheet, tmp_path / "out", stop=stop, observer=StopAfter(stop, 2),
                            run_objectives_concurrent=False, run_task_concurrent=False)
    assert stopped.exit_code == 130 and stopped.status == "interrupted"
    done_before = {r.key for r in stopped.results if r.status == "done"}
    assert len(done_before) == 2
    resumed, provider = run(sheet, tmp_path / "out", run_id=stopped.run_id, resume=True)
    assert resumed.exit_code == 0 and resumed.run_dir == stopped.run_dir
    assert not any(label.rsplit(".", 1)[0] in done_before for label in provider.labels)
    assert comparable(resumed.run_dir) == comparable(whole.run_dir)
    assert sorted(p.name for p in (resumed.run_dir / "objectives").iterdir()) == sorted(
        p.name for p in (whole.run_dir / "objectives").iterdir()
    )


def test_resume_of_an_unknown_run_is_a_clear_error(tmp_path):
    sheet = workbook(tmp_path / "wb")
    run(sheet, tmp_path / "out")
    result = CliRunner().invoke(cli, ["run", str(sheet), "--output", str(tmp_path / "out"), "--resume", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output and "report-pipeline runs" in result.output


def test_resume_in_a_folder_without_runs_creates_nothing(tmp_path):
    sheet = workbook(tmp_path / "wb")
    out = tmp_path / "never-used"
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(out), "--resume", "r1"])
    assert result.exit_code == 2
    assert "no ledger there" in result.output and f"report-pipeline runs --output {out}" in result.output
    assert not out.exists()


@pytest.mark.parametrize(("folder", "why"), [(False, "no such run folder there"), (True, "the ledger does not know it")])
def test_resume_of_a_run_the_ledger_or_the_folder_lacks_names_which(tmp_path, folder, why):
    sheet = workbook(tmp_path / "wb")
    run(sheet, tmp_path / "out")
    if folder:
        (tmp_path / "out" / "ghost").mkdir()  # a folder, but no run of that id in the ledger
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(tmp_path / "out"),
                                      "--resume", "ghost"])
    assert result.exit_code == 2
    assert f"no such run under {tmp_path / 'out'} ({why})" in result.output


def test_resume_with_the_ledger_turned_off_says_it_needs_the_ledger(tmp_path):
    sheet = workbook(tmp_path / "wb")
    first, _ = run(sheet, tmp_path / "out")
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(tmp_path / "out"),
                                      "--set", "ledger=false", "--resume", first.run_id])
    assert result.exit_code == 2
    assert "ledger: false" in result.output and "no such run" not in result.output


def test_runs_lists_recent_runs_and_shows_failed_tasks(tmp_path):
    sheet = workbook(tmp_path / "wb")
    first, _ = run(sheet, tmp_path / "out")
    listing = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out")])
    assert listing.exit_code == 0
    assert first.run_id in listing.output and "done" in listing.output
    shown = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out"), "--show", first.run_id])
    assert shown.exit_code == 0 and "4 done" in shown.output


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_runs_writes_nothing_in_the_output_folder(tmp_path):
    """`runs` reads: the ledger is not migrated, locked for writing or given a -wal/-shm, so
    another user's cron output or a read-only mount can be read (root here cannot be refused)."""
    sheet = workbook(tmp_path / "wb")
    first, _ = run(sheet, tmp_path / "out")
    before = _folder_state(tmp_path / "out")
    assert "ledger.sqlite-wal" not in before  # the run's last connection checkpointed and removed it
    for args in ([], ["--show", first.run_id]):
        result = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out"), *args])
        assert result.exit_code == 0, result.output
        assert first.run_id in result.output
    assert _folder_state(tmp_path / "out") == before


@pytest.mark.skipif(getattr(os, "geteuid", lambda: -1)() == 0, reason="root writes read-only files")
def test_runs_reads_a_ledger_in_a_folder_it_may_not_write(tmp_path):
    sheet = workbook(tmp_path / "wb")
    first, _ = run(sheet, tmp_path / "out")
    ledger = tmp_path / "out" / "ledger.sqlite"
    ledger.chmod(0o444)
    (tmp_path / "out").chmod(0o555)
    try:
        result = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out"), "--show", first.run_id])
    finally:
        (tmp_path / "out").chmod(0o755)
    assert result.exit_code == 0, result.output
    assert "4 done" in result.output


def test_runs_while_a_run_is_writing_sees_it_running(tmp_path):
    sheet = workbook(tmp_path / "wb")
    gate, started = threading.Event(), threading.Event()

    class Started(RunObserver):
        def run_started(self, plan, run_dir):
            started.set()

    thread = threading.Thread(target=lambda: run(sheet, tmp_path / "out", observer=Started(),
                                                 provider_factory=lambda c: CountingProvider(c, gate)))
    thread.start()
    try:
        assert started.wait(timeout=30)
        result = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out")])
    finally:
        gate.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert "running" in result.output


def test_a_second_run_on_the_same_output_folder_is_refused_naming_the_active_run(tmp_path):
    sheet = workbook(tmp_path / "wb")
    gate, started = threading.Event(), threading.Event()
    holder: dict = {}

    class Started(RunObserver):
        def run_started(self, plan, run_dir):  # called with the folder's lock held
            started.set()

    def first_run():
        holder["result"], _ = run(sheet, tmp_path / "out", observer=Started(),
                                  provider_factory=lambda c: CountingProvider(c, gate))

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert started.wait(timeout=30)
        with pytest.raises(RunLocked) as error:
            run(sheet, tmp_path / "out")
    finally:
        gate.set()
        thread.join()
    assert holder["result"].exit_code == 0
    assert holder["result"].run_id in str(error.value)
    third, _ = run(sheet, tmp_path / "out")  # the lock is released at the end of a run
    assert third.exit_code == 0


def test_a_corrupted_ledger_is_a_clear_error_naming_the_file(tmp_path):
    sheet = workbook(tmp_path / "wb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="ledger.sqlite"):
        run(sheet, out)
    result = CliRunner().invoke(cli, ["run", str(sheet), "--output", str(out)])
    assert result.exit_code == 2 and "ledger.sqlite" in result.output
    assert not [p for p in out.iterdir() if p.is_dir()]


def stopped_run(tmp_path: Path, sheet: Path):
    stop = threading.Event()
    stopped, _ = run(sheet, tmp_path / "out", stop=stop, observer=StopAfter(stop, 2),
                     run_objectives_concurrent=False, run_task_concurrent=False)
    assert stopped.exit_code == 130
    return stopped


def test_resume_with_an_edited_workbook_is_refused_and_says_to_run_again(tmp_path):
    sheet = workbook(tmp_path / "wb")
    stopped = stopped_run(tmp_path, sheet)
    workbook(tmp_path / "wb", first_prompt="First part, rewritten")  # the analyst edits a prompt
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(tmp_path / "out"),
                                      "--resume", stopped.run_id])
    assert result.exit_code == 2, result.output
    assert "changed since that run started" in result.output and "without --resume" in result.output
    assert "Traceback" not in result.output


def test_resume_with_another_model_runs_the_finished_tasks_again_on_it(tmp_path):
    sheet = workbook(tmp_path / "wb")
    stopped = stopped_run(tmp_path, sheet)
    done_before = {r.key for r in stopped.results if r.status == "done"}
    resumed, provider = run(sheet, tmp_path / "out", run_id=stopped.run_id, resume=True, model="other-model")
    assert resumed.exit_code == 0
    assert {r.model for r in resumed.results} == {"other-model"}
    assert done_before <= {label.rsplit(".", 1)[0] for label in provider.labels}  # asked again, on the new model


def test_resume_with_an_empty_run_id_is_refused_not_a_new_run(tmp_path):
    sheet = workbook(tmp_path / "wb")
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(tmp_path / "out"),
                                      "--resume", ""])
    assert result.exit_code == 2 and "--resume needs the id" in result.output
    assert not (tmp_path / "out").exists() or not any(p.is_dir() for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_output_path_that_cannot_be_a_folder_is_a_clear_error(tmp_path, where):
    sheet = workbook(tmp_path / "wb")
    (tmp_path / "taken").write_text("not a folder")
    output = tmp_path / "taken" if where == "a file" else tmp_path / "taken" / "out"
    result = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--output", str(output)])
    assert result.exit_code == 2, result.output
    assert f"cannot use the output folder {output}" in result.output and "Traceback" not in result.output
    assert (tmp_path / "taken").read_text() == "not a folder"


class Sabotage(RunObserver):
    """Once the run folder exists, puts something in the way of one of its files."""

    def __init__(self, blocked: str) -> None:
        super().__init__()
        self.blocked = blocked

    def run_started(self, plan, run_dir):
        target = Path(run_dir) / self.blocked
        if target.is_dir():
            target.rmdir()
            target.write_text("in the way")  # a file where the chapter CSVs' folder should be
        else:
            target.mkdir()  # a folder where report.md should be


@pytest.mark.parametrize("blocked", ["objectives", "report.md"])
def test_a_file_the_run_cannot_write_is_a_clear_error_and_resume_writes_it_for_free(tmp_path, blocked):
    sheet = workbook(tmp_path / "wb")
    with pytest.raises(OutputError, match=r"could not write .*--resume"):
        run(sheet, tmp_path / "out", observer=Sabotage(blocked))
    ledger_db = tmp_path / "out" / "ledger.sqlite"
    import sqlite3
    with sqlite3.connect(ledger_db) as db:
        run_id, status = db.execute("SELECT run_id, status FROM runs").fetchone()
    assert status == ("done" if blocked == "objectives" else "interrupted")
    run_dir = tmp_path / "out" / run_id
    if blocked == "objectives":
        assert (run_dir / "report.md").is_file()  # the rest of the run was still written
    (run_dir / blocked).unlink() if blocked == "objectives" else (run_dir / blocked).rmdir()
    resumed, provider = run(sheet, tmp_path / "out", run_id=run_id, resume=True)
    assert resumed.exit_code == 0 and provider.labels == []  # nothing paid twice
    assert (run_dir / "report.md").is_file() and len(list((run_dir / "objectives").iterdir())) == 3


def test_a_cache_row_that_cannot_be_read_is_a_miss_and_the_call_is_made_again(tmp_path):
    import sqlite3

    sheet = workbook(tmp_path / "wb")
    first, _ = run(sheet, tmp_path / "out")
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:  # a damaged row: not UTF-8 any more
        db.execute("UPDATE calls SET response = CAST(x'c328' AS TEXT) WHERE task_key = 'other.1'")
    again, provider = run(sheet, tmp_path / "out")
    assert again.exit_code == 0
    assert [label.rsplit(".", 1)[0] for label in provider.labels] == ["other.1"]  # only that one paid again


# -- a resumed run is what it was started as (the CLI, the real SDK, the simulator) --------------


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False,
                              env={"OPENAI_API_KEY": "sk-test-resume"})


def _budget_stopped_run(tmp_path, sim, *extra):
    """A run on the simulator that stops on its budget with tasks left (exit 3)."""
    from tests.workbooks import simple_workbook

    sheet = simple_workbook(tmp_path / "wb", 3, 4)
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text("max_cost_usd: 0.0015\nprices:\n  sim-small: {input: 10, output: 10}\n")
    first = _cli("run", sheet, "--config", config, "--provider", "openai", "--base-url", sim.base_url,
                 "--model", "sim-small", "--output", out, "--no-progress", "--max-concurrency", "1", *extra)
    assert first.exit_code == 3, first.output
    run_id = next(p.name for p in out.iterdir() if p.is_dir())
    return sheet, out, run_id


def test_resume_without_flags_continues_on_the_provider_and_model_it_was_started_with(tmp_path, make_simulator):
    """It used to finish the remaining tasks with the offline provider and exit 0."""
    sim = make_simulator()
    sheet, out, run_id = _budget_stopped_run(tmp_path, sim)
    sent_before = sim.stats()["calls"]
    resumed = _cli("run", sheet, "--output", out, "--resume", run_id, "--no-progress", "--set", "max_cost_usd=10")
    assert resumed.exit_code == 0, resumed.output
    assert sim.stats()["calls"] > sent_before  # the remaining tasks went to the model
    results = rows(out / run_id / "results.csv")
    assert len(results) == 12 and all(r["status"] == "done" for r in results)
    assert not any("Offline draft" in r["text"] for r in results)
    assert {r["model"] for r in results} == {"sim-small"}
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert manifest["provider"] == "openai" and manifest["config"]["base_url"] == sim.base_url
    assert manifest["written_by"] == [{"provider": "openai", "model": "sim-small", "sections": 12}]
    assert "Written by: openai sim-small (12 sections)" in (out / run_id / "report.md").read_text()


@pytest.mark.parametrize(("flag", "recorded"), [
    (["--provider", "offline"], "provider openai"),
    (["--model", "sim-large"], "model sim-small"),
    (["--batch"], "execution realtime"),
    (["--set", "steps=generate,refine"], "steps generate"),
])
def test_resume_refuses_a_flag_that_contradicts_the_run(tmp_path, make_simulator, flag, recorded):
    sim = make_simulator()
    sheet, out, run_id = _budget_stopped_run(tmp_path, sim)
    sent_before = sim.stats()["calls"]
    refused = _cli("run", sheet, "--output", out, "--resume", run_id, *flag)
    assert refused.exit_code == 2
    assert f"was started with {recorded}" in refused.output and "Traceback" not in refused.output
    assert sim.stats()["calls"] == sent_before  # nothing was sent


def test_resume_may_change_how_fast_and_how_much(tmp_path, make_simulator):
    sim = make_simulator()
    sheet, out, run_id = _budget_stopped_run(tmp_path, sim)
    resumed = _cli("run", sheet, "--output", out, "--resume", run_id, "--max-concurrency", "4", "--sequential",
                   "--no-progress", "--set", "max_cost_usd=10", "--set", "max_retries=2")
    assert resumed.exit_code == 0, resumed.output


def test_a_run_that_stops_with_work_left_prints_the_command_that_resumes_it(tmp_path, make_simulator, monkeypatch):
    sim = make_simulator()
    sheet, out, run_id = _budget_stopped_run(tmp_path, sim)
    command = f"report-pipeline run {sheet.resolve()} --resume {run_id} --output {out.resolve()}"
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert manifest["resume_command"] == command
    assert command in (out / run_id / "run.log").read_text()
    shown = _cli("runs", "--output", out, "--show", run_id)
    assert f"continue it with: {command}" in shown.output
    # and the command works as printed, from another folder
    monkeypatch.chdir(tmp_path / "wb")
    resumed = _cli(*shlex.split(command)[1:], "--no-progress", "--set", "max_cost_usd=10")
    assert resumed.exit_code == 0, resumed.output
    done = json.loads((out / run_id / "run.json").read_text())
    assert done["status"] == "done" and done["resume_command"] is None


def test_the_plain_final_lines_of_a_stopped_run_say_how_to_continue(tmp_path, make_simulator):
    sim = make_simulator()
    from tests.workbooks import simple_workbook

    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    config = tmp_path / "run.yaml"
    config.write_text("max_cost_usd: 0.0005\nprices:\n  sim-small: {input: 10, output: 10}\n")
    result = _cli("run", sheet, "--config", config, "--provider", "openai", "--base-url", sim.base_url,
                  "--model", "sim-small", "--output", tmp_path / "out", "--no-progress", "--max-concurrency", "1")
    assert result.exit_code == 3
    assert "to continue it: report-pipeline run " in result.output


@pytest.mark.parametrize("marks_kept", [True, False], ids=["marks-from-the-ledger", "older-ledger-traced-again"])
def test_a_resumed_run_keeps_each_tasks_items_and_figures(tmp_path, marks_kept):
    """A kept task's for_each items and figure marks come back from the ledger (or, from a ledger that
    has no marks, its figures are traced again), so run.json, results.csv and the report match the
    run that finished them."""
    sheet = Path(__file__).resolve().parent.parent / "prompt_sheets" / "energy_transition.xlsx"
    first, _ = run(sheet, tmp_path / "out")
    if not marks_kept:
        with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
            db.execute("UPDATE tasks SET figures = NULL")
    before = {
        "run": json.loads((first.run_dir / "run.json").read_text(encoding="utf-8")),
        "report": _report_body(first.run_dir),
        "rows": {(r["objective_id"], r["task_id"]): r for r in rows(first.run_dir / "results.csv")},
    }
    assert any(t["items"] for t in before["run"]["tasks"]) and before["run"]["figures"]["found"] > 0
    again, provider = run(sheet, tmp_path / "out", run_id=first.run_id, resume=True)
    assert again.exit_code == 0 and provider.labels == []  # every task kept, nothing sent
    after = json.loads((again.run_dir / "run.json").read_text(encoding="utf-8"))
    assert after["figures"] == before["run"]["figures"]
    for was, now in zip(before["run"]["tasks"], after["tasks"], strict=True):
        assert (now["items"], now["figures"]) == (was["items"], was["figures"]), now["task_id"]
    assert _report_body(again.run_dir) == before["report"]
    for row in rows(again.run_dir / "results.csv"):
        was = before["rows"][(row["objective_id"], row["task_id"])]
        assert {k: row[k] for k in row if k == "items" or k.startswith("figures")} == \
               {k: was[k] for k in was if k == "items" or k.startswith("figures")}


def _report_body(run_dir: Path) -> list[str]:
    """report.md without its `Generated:` line (the minute it was written)."""
    lines = (run_dir / "report.md").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if not line.startswith("- Generated:")]


def test_a_kept_task_whose_figures_cannot_be_traced_again_keeps_its_text_and_says_why(tmp_path, caplog):
    """recheck_restored, for a ledger row without marks: traced when it can be; when its prompt no
    longer renders (here a dependency the resume did not keep), a warning and no marks, never a failure."""
    from report_pipeline.models import TaskResult
    from report_pipeline.run.plan import build_plan
    from report_pipeline.run.results import ReportStructureManager
    from report_pipeline.run.runner import TaskRunner
    from report_pipeline.workbook.data import DataStore

    sheet = load_prompt_sheet(make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "a", "prompt": "Sales were 41 in 2024."},
               {"objective_id": "o", "task_id": "b", "prompt": 'Sum up: {{ results["o.a"] }}', "depends_on": "o.a"}],
    ))
    config = load_config(overrides={"output_dir": tmp_path / "out"}, environ={})
    plan = build_plan(sheet)
    runner = TaskRunner(config=config, sheet=sheet, plan=plan, data=DataStore(sheet.data_sources),
                        results=ReportStructureManager(plan), call=lambda request: None)
    kept = {key: TaskResult(objective_id="o", task_id=key[2:], title=key, status="done", text="Sales were 41 and 7.")
            for key in ("o.a", "o.b")}
    both = runner.recheck_restored(kept)
    assert [m.traced for m in both["o.a"].figures] == [True, False]  # 41 is in its prompt, 7 is nowhere
    with caplog.at_level("WARNING"):
        alone = runner.recheck_restored({"o.b": kept["o.b"]})  # o.a not kept: results["o.a"] is undefined
    assert alone["o.b"].figures is None and alone["o.b"].text == "Sales were 41 and 7."
    assert "o.b: figures not checked" in caplog.text
