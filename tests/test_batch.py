"""Batch mode (`--batch`): JSONL lines and batches (pure), waves in the scheduler (no threads),
and whole runs with the real openai SDK against the simulator's /v1/files and /v1/batches."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from report_pipeline.batch.lines import (
    Refusal,
    build_lines,
    jsonl,
    parse_results,
    split_batches,
)
from report_pipeline.cli import cli
from report_pipeline.errors import AwaitingBatch
from report_pipeline.models import Task, TaskResult
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.openai.answers import ChatAnswer
from report_pipeline.run.plan import build_plan
from report_pipeline.run.scheduler import InlineExecutor, Scheduler
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.test_pipeline_simulator import KEY, ROOT, csv_rows, openai_config
from tests.workbooks import make_workbook

# -- lines and batches (pure) -------------------------------------------------------------


def request(label: str, model: str = "m", text: str = "hi") -> ChatRequest:
    return ChatRequest(model=model, messages=({"role": "user", "content": text},), label=label)


def test_lines_are_one_per_distinct_request_with_unique_custom_ids():
    same = request("O.T.generate")
    lines = build_lines(
        [("h1", same), ("h1", same), ("h2", request("O.T.generate", text="other")), ("h3", request("x" * 80))],
        url="/v1/chat/completions",
    )
    assert [line.custom_id for line in lines] == ["O.T.generate", "O.T.generate#2", "x" * 64]
    assert [line.request_hash for line in lines] == ["h1", "h2", "h3"]
    first = json.loads(jsonl(lines).decode().splitlines()[0])
    assert first == {"custom_id": "O.T.generate", "method": "POST", "url": "/v1/chat/completions",
                     "body": same.sampling()}
    assert lines[0].task_key == "O.T" and lines[0].step == "generate"


def test_batches_hold_one_model_each_and_respect_both_limits():
    wanted = [(f"h{i}", request(f"O.T{i}.generate", model="a" if i % 3 else "b")) for i in range(10)]
    lines = build_lines(wanted, url="/v1/chat/completions")
    by_count = split_batches(lines, max_requests=3, max_bytes=10**6)
    # models in the order they first appear (b: 0, 3, 6, 9; a: the other six), at most 3 a batch
    assert [[line.request.label for line in batch] for batch in by_count] == [
        ["O.T0.generate", "O.T3.generate", "O.T6.generate"], ["O.T9.generate"],
        ["O.T1.generate", "O.T2.generate", "O.T4.generate"], ["O.T5.generate", "O.T7.generate", "O.T8.generate"],
    ]
    assert all(len(batch) <= 3 for batch in by_count)
    assert sorted(line.custom_id for batch in by_count for line in batch) == sorted(line.custom_id for line in lines)
    size = lines[0].size
    by_bytes = split_batches(lines, max_requests=100, max_bytes=2 * size + 1)
    assert all(sum(line.size for line in batch) <= 2 * size + 1 for batch in by_bytes)
    assert len(split_batches(lines[:1], max_requests=1, max_bytes=1)) == 1  # too big alone: sent, the server says why


def test_result_lines_read_as_answers_or_refusals():
    content = "\n".join(json.dumps(line) for line in [
        {"custom_id": "ok", "response": {"status_code": 200, "body": {
            "model": "m-1", "choices": [{"message": {"content": "Text"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}}}, "error": None},
        {"custom_id": "bad", "response": {"status_code": 400, "body": {"error": {"message": "too long", "code": "x"}}}},
        {"custom_id": "late", "response": None, "error": {"code": "batch_expired", "message": "window over"}},
        {"custom_id": "odd", "response": {"status_code": 200, "body": {"choices": []}}},
    ]) + "\nnot json\n"
    results = parse_results(content)
    assert results["ok"] == ChatAnswer("Text", "m-1", 5, 7, "length")
    assert results["bad"] == Refusal("too long", status_code=400, code="x") and not results["bad"].never_ran
    assert results["late"].never_ran and results["late"].message == "window over"
    # no choices: the same message a real-time call fails with (answers.py reads both)
    assert isinstance(results["odd"], Refusal) and "no choices" in results["odd"].message


# -- waves in the scheduler (no threads, no HTTP) ------------------------------------------


def test_parked_tasks_wait_for_their_wave_and_dependents_follow_in_later_waves(tmp_path):
    sheet = load_prompt_sheet(make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": o, "title": o} for o in ("A", "B", "S")],
        tasks=[
            {"objective_id": "A", "task_id": "t1", "prompt": "a"},
            {"objective_id": "A", "task_id": "t2", "prompt": "a2"},
            {"objective_id": "B", "task_id": "t1", "prompt": "b"},
            {"objective_id": "S", "task_id": "t1", "prompt": "s", "depends_on": "A,B"},
        ],
    ))
    plan = build_plan(sheet)
    answered: set[str] = set()  # "task:call" answered by a wave
    wanted: set[str] = set()
    waves: list[set[str]] = []
    calls = {"A.t1": 2, "A.t2": 1, "B.t1": 3, "S.t1": 1}  # calls in each task's chain

    def run_task(task: Task) -> TaskResult:
        for number in range(calls[task.key]):
            call = f"{task.key}:{number}"
            if call not in answered:
                wanted.add(call)
                raise AwaitingBatch(call)
        return TaskResult(task.objective_id, task.task_id, task.title, "done", text=task.key)

    def wave():
        waves.append(set(wanted))
        answered.update(wanted)
        wanted.clear()

    recorded: list[str] = []
    scheduler = Scheduler(
        plan, run_task, lambda r: recorded.append(r.key) or False,
        objective_slots=3, task_slots=4, objective_executor=InlineExecutor(), task_executor=InlineExecutor(),
        wave=wave,
    )
    assert scheduler.run() is None
    assert waves == [
        {"A.t1:0", "A.t2:0", "B.t1:0"},
        {"A.t1:1", "B.t1:1"},
        {"B.t1:2"},
        {"S.t1:0"},  # only once both chapters are done
    ]
    assert sorted(recorded) == sorted(calls) and recorded[-1] == "S.t1"  # each settled exactly once


def test_a_wave_that_halts_skips_every_parked_task_with_its_reason(tmp_path):
    from report_pipeline.run.scheduler import Halt

    sheet = load_prompt_sheet(make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": f"t{i}", "prompt": "p"} for i in range(3)],
    ))
    results: list[TaskResult] = []

    def run_task(task: Task) -> TaskResult:
        raise AwaitingBatch(task.key)

    scheduler = Scheduler(
        build_plan(sheet), run_task, lambda r: results.append(r) or False, objective_slots=1, task_slots=3,
        objective_executor=InlineExecutor(), task_executor=InlineExecutor(),
        wave=lambda: Halt("budget", "budget: the next wave would pass max_cost_usd"),
    )
    halt = scheduler.run()
    assert halt is not None and halt.reason == "budget"
    assert [(r.status, r.error) for r in results] == [("skipped", halt.message)] * 3


# -- whole runs against the simulator --------------------------------------------------------


def batch_config(sim, out: Path, **overrides):
    return openai_config(sim, out, **{"execution": "batch", "batch_poll_interval_s": 0.02, **overrides})


def run_one_task_in_batch_mode(sim, tmp_path: Path, **overrides):
    """A one-task workbook (A.t) run in batch mode against `sim`."""
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": "t", "prompt": "Part"}],
    )
    return ReportGenerationPipeline(batch_config(sim, tmp_path / "out", **overrides), load_prompt_sheet(sheet)).run()


def chains_workbook(path: Path) -> Path:
    """Three chapters of two 3-step tasks, and a summary (3 steps) that depends on every chapter."""
    chapters = ("C1", "C2", "C3")
    return make_workbook(
        path,
        objectives=[{"objective_id": o, "title": f"Chapter {o}"} for o in (*chapters, "SUM")],
        tasks=[
            *({"objective_id": c, "task_id": f"t{j}", "prompt": f"Write part {j} of {c}.",
               "steps": "generate,refine,check"} for c in chapters for j in (1, 2)),
            {"objective_id": "SUM", "task_id": "all", "steps": "generate,refine,check",
             "prompt": "Summarise: {{ results['C1'] }} {{ results['C2'] }} {{ results['C3'] }}",
             "depends_on": ",".join(chapters)},
        ],
    )


def report_body(run_dir: Path) -> list[str]:
    return [line for line in (run_dir / "report.md").read_text().splitlines()
            if not line.startswith(("- Generated", "- Run"))]


def test_batch_run_matches_realtime_with_one_batch_per_wave_and_no_request_twice(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.05, batch_steps=2)
    sheet = chains_workbook(tmp_path / "wb")
    prices = {"sim-small": {"input": 2.0, "output": 8.0}}
    batch = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "batch", cache=False, prices=prices), load_prompt_sheet(sheet)
    ).run()
    assert batch.exit_code == 0, [r.error for r in batch.results if r.error]
    stats = sim.stats()
    assert stats["calls"] == 0  # nothing went to the real-time endpoint
    manifest = json.loads((batch.run_dir / "run.json").read_text())
    waves = manifest["batch"]["waves"]
    # generate, refine, check of the six chapter tasks; then the summary's three steps
    assert [w["requests"] for w in waves] == [6, 6, 6, 1, 1, 1]
    assert stats["batches_created"] == len(waves) == manifest["batch"]["batches"]
    assert stats["batch_requests"] == 21 and stats["batch_requests_repeated"] == 0
    saving = manifest["batch"]
    assert saving["cost_usd"] > 0 and saving["saving_usd"] == pytest.approx(saving["cost_usd"], rel=1e-3)
    assert batch.cost_usd == pytest.approx(saving["cost_usd"], rel=1e-3)

    realtime = ReportGenerationPipeline(
        openai_config(sim, tmp_path / "realtime", cache=False), load_prompt_sheet(sheet)
    ).run()
    assert realtime.exit_code == 0
    assert report_body(batch.run_dir) == report_body(realtime.run_dir)
    keep = ("objective_id", "task_id", "status", "text", "check_verdict")
    rows = lambda d: [tuple(r[k] for k in keep) for r in csv_rows(d / "results.csv")]
    assert sorted(rows(batch.run_dir)) == sorted(rows(realtime.run_dir))

    sim.reset()  # the same sheet again, batch mode: every call from the cache
    again = ReportGenerationPipeline(batch_config(sim, tmp_path / "batch"), load_prompt_sheet(sheet)).run()
    assert again.exit_code == 0 and sim.stats()["batches_created"] == 0 and sim.stats()["calls"] == 0


def test_error_file_requests_fail_their_task_and_skip_its_dependents(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1)
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": o, "title": o} for o in ("A", "S")],
        tasks=[
            {"objective_id": "A", "task_id": "ok", "prompt": "Fine"},
            {"objective_id": "A", "task_id": "bad", "prompt": "sim:status=400 refuse this"},
            {"objective_id": "S", "task_id": "sum", "prompt": "Sum", "depends_on": "A.bad"},
            {"objective_id": "S", "task_id": "other", "prompt": "Other", "depends_on": "A.ok"},
        ],
    )
    result = ReportGenerationPipeline(batch_config(sim, tmp_path / "out"), load_prompt_sheet(sheet)).run()
    assert result.exit_code == 1
    status = {r.key: r for r in result.results}
    assert status["A.ok"].status == "done" and status["S.other"].status == "done"
    assert status["A.bad"].status == "failed" and "400" in status["A.bad"].error
    assert status["S.sum"].status == "skipped" and "A.bad" in status["S.sum"].error
    assert sim.stats()["batch_requests_repeated"] == 0  # a request that ran and failed is not sent again


def test_expired_batch_keeps_its_answers_and_resubmits_the_rest_once(tmp_path, make_simulator):
    sim = make_simulator(batch_manual=True, batch_expire=0.5, batch_steps=2)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": f"t{i}", "prompt": f"Part {i}"} for i in range(4)],
    )
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(
        ReportGenerationPipeline(batch_config(sim, tmp_path / "out"), load_prompt_sheet(sheet)).run()
    ))
    worker.start()
    try:
        (first,) = sim.wait_for_batches(1, timeout=30)
        expired = [b for b in sim.advance_batches(first, steps=None) if b["id"] == first][0]
        assert expired["status"] == "expired" and expired["request_counts"]["completed"] == 2
        sim.configure(batch_expire=None, batch_manual=False)  # the resubmitted batch completes
    finally:
        worker.join(timeout=60)
    (result,) = outcome
    assert result.exit_code == 0, [r.error for r in result.results if r.error]
    batches = sim.batches()
    assert [b["request_counts"]["total"] for b in batches] == [4, 2]  # only the two that never ran
    assert sim.stats()["batch_requests_repeated"] == 2
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert [b["attempt"] for b in manifest["batch"]["waves"][0]["batches"]] == [1, 2]


def test_a_batch_that_keeps_expiring_fails_its_tasks_after_the_resubmits(tmp_path, make_simulator):
    sim = make_simulator(batch_expire=0.0, batch_delay_s=0.02, batch_steps=1)
    result = run_one_task_in_batch_mode(sim, tmp_path, batch_resubmits=1)
    assert result.exit_code == 1
    (task,) = result.results
    assert task.status == "failed" and "expired" in task.error and "sent 2 time(s)" in task.error
    assert sim.stats()["batches_created"] == 2


def test_budget_cap_stops_before_a_wave_that_would_pass_it(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": o, "title": o} for o in ("A", "B")],
        tasks=[
            {"objective_id": "A", "task_id": "first", "prompt": "Start"},
            *({"objective_id": "B", "task_id": f"t{i}", "prompt": f"Go on {i}", "depends_on": "A.first"}
              for i in range(4)),
        ],
    )
    # $1,000 per million tokens (batch: $500); max_tokens 2,000 makes each request's estimate about $1
    config = batch_config(sim, tmp_path / "out", prices={"sim-small": {"input": 1000.0, "output": 1000.0}},
                          max_tokens=2000, max_cost_usd=2.0)
    result = ReportGenerationPipeline(config, load_prompt_sheet(sheet)).run()
    assert result.exit_code == 3 and result.status == "budget"
    status = {r.key: r for r in result.results}
    assert status["A.first"].status == "done"
    assert all(status[f"B.t{i}"].status == "skipped" and "max_cost_usd" in status[f"B.t{i}"].error for i in range(4))
    assert sim.stats()["batches_created"] == 1  # the second wave was never sent
    assert result.cost_usd <= 2.0


def test_provider_without_a_batch_api_is_exit_2_before_anything_is_sent(tmp_path, make_simulator, monkeypatch):
    sim = make_simulator(no_batch_api=True)
    sheet = chains_workbook(tmp_path / "wb")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = CliRunner().invoke(cli, [
        "run", str(sheet), "--batch", "--provider", "openai", "--base-url", sim.base_url,
        "--model", "sim-small", "--output", str(tmp_path / "out"), "--no-progress",
    ])
    assert result.exit_code == 2, result.output
    assert "no Batch API" in result.output and "real-time mode" in result.output
    assert "Traceback" not in result.output
    stats = sim.stats()
    assert stats["calls"] == 0 and stats["files_uploaded"] == 0 and stats["batches_created"] == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("2*"))


def test_max_wait_stops_as_interrupted_and_resume_follows_the_recorded_batch(tmp_path, make_simulator):
    sim = make_simulator(batch_manual=True)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": f"t{i}", "prompt": f"Part {i}", "steps": "generate,refine"}
               for i in range(3)],
    )
    first = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "out", batch_max_wait_s=0.2), load_prompt_sheet(sheet)
    ).run()
    assert first.exit_code == 130 and first.status == "interrupted"
    assert "max_wait" in json.loads((first.run_dir / "run.json").read_text())["halt_reason"]
    ledger = sqlite3.connect(tmp_path / "out" / "ledger.sqlite")
    recorded = ledger.execute("SELECT batch_id, collected FROM batches").fetchall()
    ledger.close()
    assert len(recorded) == 1 and recorded[0][0] and recorded[0][1] == 0
    shown = CliRunner().invoke(cli, ["runs", "--output", str(tmp_path / "out"), "--show", first.run_id]).output
    assert f"wave 1 {recorded[0][0]}: in_progress" in shown or f"wave 1 {recorded[0][0]}: validating" in shown
    assert "not collected yet" in shown and "--resume" in shown
    sim.configure(batch_manual=False, batch_delay_s=0.02, batch_steps=1)
    resumed = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "out"), load_prompt_sheet(sheet), run_id=first.run_id, resume=True,
    ).run()
    assert resumed.exit_code == 0, [r.error for r in resumed.results if r.error]
    assert sim.stats()["batches_created"] == 2  # the recorded wave-1 batch, then the refines
    assert sim.stats()["batch_requests_repeated"] == 0
    waves = json.loads((resumed.run_dir / "run.json").read_text())["batch"]["waves"]
    assert waves[0]["adopted_requests"] == 3 and waves[0]["batches"][0]["adopted"] is True


def test_kill_9_mid_wave_then_resume_creates_no_new_batch_for_that_wave(tmp_path, make_simulator):
    sim = make_simulator(batch_manual=True)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": o, "title": o} for o in ("A", "B")],
        tasks=[{"objective_id": o, "task_id": "t", "prompt": f"About {o}", "steps": "generate,refine"}
               for o in ("A", "B")],
    )
    out = tmp_path / "out"
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    command = [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--batch", "--poll-interval", "0.05",
               "--provider", "openai", "--base-url", sim.base_url, "--model", "sim-small", "--output", str(out),
               "--no-progress"]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        (batch_id,) = sim.wait_for_batches(1, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ledger = sqlite3.connect(out / "ledger.sqlite")
    (run_id,) = ledger.execute("SELECT run_id FROM runs").fetchone()
    ledger.close()
    sim.configure(batch_manual=False, batch_delay_s=0.02, batch_steps=1)
    resumed = subprocess.run([*command, "--resume", run_id], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    batches = sim.batches()
    assert batches[0]["id"] == batch_id and len(batches) == 2  # wave 1 followed, wave 2 (the refines) new
    assert sim.stats()["batch_requests_repeated"] == 0
    rows = {f"{r['objective_id']}.{r['task_id']}": r["status"] for r in csv_rows(out / run_id / "results.csv")}
    assert rows == {"A.t": "done", "B.t": "done"}


def test_the_example_runs_offline_in_as_many_waves_as_its_critical_path(tmp_path):
    from report_pipeline.config import load_config
    from report_pipeline.run.plan import critical_path_rounds

    sheet = load_prompt_sheet(ROOT / "prompt_sheets" / "energy_transition.xlsx")
    config = load_config(overrides={"provider": "offline", "execution": "batch", "output_dir": tmp_path,
                                    "batch_poll_interval_s": 0.01})
    result = ReportGenerationPipeline(config, sheet).run()
    assert result.exit_code == 0
    waves = json.loads((result.run_dir / "run.json").read_text())["batch"]["waves"]
    assert len(waves) == critical_path_rounds(build_plan(sheet), config.steps) > 1
    assert sum(w["requests"] for w in waves) == sum(len(r.calls) for r in result.results)


def test_dry_run_in_batch_mode_gives_the_waves_and_the_batch_price(tmp_path):
    sheet = chains_workbook(tmp_path / "wb")
    result = CliRunner().invoke(cli, ["run", str(sheet), "--batch", "--dry-run", "--set", "model=gpt-4o-mini"])
    assert result.exit_code == 0, result.output
    assert "Batch mode: 6 wave(s)" in result.output


def test_ctrl_c_while_waiting_stops_at_once_as_interrupted_with_the_batch_recorded(tmp_path, make_simulator):
    from report_pipeline.run.outcome import RunObserver

    sim = make_simulator(batch_manual=True)
    sheet = chains_workbook(tmp_path / "wb")
    stop = threading.Event()

    class PressCtrlC(RunObserver):
        def wave_progress(self, progress) -> None:
            stop.set()  # what the SIGINT handler does

    result = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "out", batch_poll_interval_s=600), load_prompt_sheet(sheet),
        observer=PressCtrlC(), stop=stop,
    ).run()  # a 600 s poll interval: only the stop can end the wait in time
    assert result.exit_code == 130 and result.status == "interrupted"
    assert all(r.status == "skipped" for r in result.results)
    ledger = sqlite3.connect(tmp_path / "out" / "ledger.sqlite")
    assert ledger.execute("SELECT count(*) FROM batches WHERE batch_id IS NOT NULL AND collected = 0").fetchone() == (1,)
    ledger.close()


def test_a_crash_between_create_and_its_record_finds_the_batch_by_its_input_file(tmp_path, make_simulator):
    sim = make_simulator(batch_manual=True)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": f"t{i}", "prompt": f"Part {i}"} for i in range(2)],
    )
    first = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "out", batch_max_wait_s=0.1), load_prompt_sheet(sheet)
    ).run()
    assert first.exit_code == 130
    ledger = sqlite3.connect(tmp_path / "out" / "ledger.sqlite")
    with ledger:  # as if the process died right after batches.create returned
        ledger.execute("UPDATE batches SET batch_id = NULL, status = 'uploaded'")
    ledger.close()
    sim.configure(batch_manual=False, batch_delay_s=0.02, batch_steps=1)
    resumed = ReportGenerationPipeline(
        batch_config(sim, tmp_path / "out"), load_prompt_sheet(sheet), run_id=first.run_id, resume=True,
    ).run()
    assert resumed.exit_code == 0
    assert sim.stats()["batches_created"] == 1 and sim.stats()["files_uploaded"] == 1


def test_batches_that_fail_validation_fail_their_tasks_with_the_batch_error(tmp_path, make_simulator):
    sim = make_simulator(batch_fail=True, batch_delay_s=0.02, batch_steps=1)
    result = run_one_task_in_batch_mode(sim, tmp_path, batch_resubmits=0)
    (task,) = result.results
    assert result.exit_code == 1 and task.status == "failed"
    assert "failed" in task.error and "token" in task.error.lower()  # the server's reason, from errors.data
    assert sim.stats()["batches_created"] == 1


def test_azure_batches_use_the_deployment_path_without_the_version_prefix():
    from report_pipeline.batch.backend import make_batch_backend
    from report_pipeline.config import load_config
    from report_pipeline.providers.factory import make_provider, open_endpoint

    config = load_config(overrides={
        "provider": "azure", "base_url": "https://example-resource.openai.azure.com", "model": "gpt-4o-mini-batch",
        "azure_api_version": "2024-10-21", "execution": "batch",
    }, environ={"OPENAI_API_KEY": KEY})
    endpoint = open_endpoint(config)
    provider = make_provider(config, endpoint=endpoint)
    try:
        backend = make_batch_backend(config, provider, endpoint, scrub=lambda text: text)
        assert backend.name == "azure" and backend.url == "/chat/completions"
        line = json.loads(build_lines([("h", request("A.t.generate", model="gpt-4o-mini-batch"))],
                                      url=backend.url)[0].line)
        assert line["url"] == "/chat/completions" and line["body"]["model"] == "gpt-4o-mini-batch"
    finally:
        provider.close()
        endpoint.close()


@pytest.mark.parametrize("execution", ["realtime", "batch"])
def test_an_empty_answer_fails_its_task_the_same_way_online_and_in_batch(tmp_path, make_simulator, execution):
    """One reader for both modes: `--batch` used to call an empty answer 'done' with no text."""
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1)
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": "empty", "prompt": "Say nothing sim:empty=1", "steps": "generate"},
               {"objective_id": "A", "task_id": "full", "prompt": "Say something", "steps": "generate"}],
    )
    config = openai_config(sim, tmp_path / "out", execution=execution, batch_poll_interval_s=0.02)
    result = ReportGenerationPipeline(config, load_prompt_sheet(sheet)).run()
    by_id = {r.task_id: r for r in result.results}
    assert by_id["full"].status == "done" and by_id["full"].text
    assert by_id["empty"].status == "failed"
    assert by_id["empty"].error.endswith("the model returned an empty answer (finish_reason stop)")
    assert result.exit_code == 1
