"""The whole pipeline with the real openai SDK talking HTTP to the simulator on 127.0.0.1:
faults, a wrong key, a budget, secrets, re-runs, kill -9 and SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from report_pipeline.config import load_config
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook, simple_workbook

KEY = "sk-test-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
ROOT = Path(__file__).resolve().parent.parent


def openai_config(sim, out: Path, **overrides):
    settings = {
        "provider": "openai", "base_url": sim.base_url, "model": "sim-small", "output_dir": out,
        "max_retries": 6, "request_timeout_s": 5, **overrides,
    }
    return load_config(overrides=settings, environ={"OPENAI_API_KEY": KEY})


def run(sheet_path: Path, config):
    return ReportGenerationPipeline(config, load_prompt_sheet(sheet_path)).run()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_task_completes_exactly_once_through_5xx_hangs_drops_and_bad_bodies(tmp_path, make_simulator):
    sim = make_simulator(error_rate=0.10, hang_rate=0.05, hang_s=3.0, drop_rate=0.05, malformed_rate=0.05, seed=4)
    sheet = simple_workbook(tmp_path / "wb", 5, 6, settings={"steps": "generate, refine"})
    result = run(sheet, openai_config(sim, tmp_path / "out", request_timeout_s=1.0, max_concurrent_requests=16))
    assert result.exit_code == 0, [r.error for r in result.results if r.error]
    rows = csv_rows(result.run_dir / "results.csv")
    keys = [f"{r['objective_id']}.{r['task_id']}" for r in rows]
    assert sorted(keys) == sorted(f"O{i}.T{j}" for i in range(1, 6) for j in range(1, 7))
    assert len(keys) == len(set(keys)) == 30
    stats = sim.stats()
    assert sum(stats["faults"].values()) > 0  # faults really happened and were retried
    assert any(int(r["attempts"]) > 2 for r in rows)


def test_wrong_key_stops_the_run_at_once_with_exit_2(tmp_path, make_simulator):
    sim = make_simulator(api_key="sk-the-right-one", latency_s=0.05)
    sheet = simple_workbook(tmp_path / "wb", 4, 10)
    result = run(sheet, openai_config(sim, tmp_path / "out", max_concurrent_requests=4))
    assert result.exit_code == 2 and result.status == "aborted"
    assert sim.stats()["calls"] <= 4
    failed = [r for r in result.results if r.status == "failed"]
    assert 1 <= len(failed) <= sim.stats()["calls"]  # failed: the tasks whose call got the 401
    assert all(r.status == "skipped" and r.error.startswith("aborted") for r in result.results if r not in failed)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["status"] == "aborted"
    assert "401" in manifest["halt_reason"] or "auth" in manifest["halt_reason"].lower()


def test_an_endpoint_that_cannot_be_reached_stops_the_run_after_one_call_has_tried_it(tmp_path):
    """A wrong base_url (or a server down at 06:00): exit 2 naming it, not every task's backoff in turn."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    sheet = simple_workbook(tmp_path / "wb", 4, 10)
    config = load_config(overrides={
        "provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "sim-small",
        "output_dir": tmp_path / "out", "max_retries": 2, "max_concurrent_requests": 4,
    }, environ={"OPENAI_API_KEY": KEY})
    result = run(sheet, config)
    assert result.exit_code == 2 and result.status == "aborted"
    failed = [r for r in result.results if r.status == "failed"]
    assert 1 <= len(failed) <= 4  # the calls under way when the first one gave up
    assert all(r.status == "skipped" and r.error.startswith("aborted") for r in result.results if r not in failed)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert f"no HTTP answer from http://127.0.0.1:{port}/v1" in manifest["halt_reason"]
    assert (result.run_dir / "report.md").exists()  # the report of what there is, as after a 401


def test_budget_cap_stops_sending_and_exits_3(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.01)
    sheet = simple_workbook(tmp_path / "wb", 3, 10)
    prices = {"sim-small": {"input": 1000.0, "output": 1000.0}}  # dollars per million tokens
    config = openai_config(sim, tmp_path / "out", prices=prices, max_cost_usd=1.0, max_concurrent_requests=2,
                           max_tokens=200)  # a call's worst case (prompt + max_tokens) must fit the cap
    result = run(sheet, config)
    assert result.exit_code == 3 and result.status == "budget"
    done = [r for r in result.results if r.status == "done"]
    skipped = [r for r in result.results if r.status == "skipped"]
    assert done and skipped
    assert all("budget" in r.error for r in skipped)
    assert result.cost_usd <= 1.0  # a hard cap: calls in flight were reserved at their worst case
    assert sim.stats()["calls"] == len(done)


def test_a_resumed_run_counts_what_it_paid_before_against_the_budget(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.01)
    sheet = simple_workbook(tmp_path / "wb", 3, 10)
    prices = {"sim-small": {"input": 1000.0, "output": 1000.0}}
    config = openai_config(sim, tmp_path / "out", prices=prices, max_cost_usd=1.0, max_concurrent_requests=2,
                           max_tokens=200)
    first = run(sheet, config)
    assert first.exit_code == 3
    calls = sim.stats()["calls"]
    resumed = ReportGenerationPipeline(config, load_prompt_sheet(sheet), run_id=first.run_id, resume=True).run()
    assert resumed.exit_code == 3 and resumed.status == "budget"  # the cap was spent already: nothing sent
    assert sim.stats()["calls"] == calls


def test_the_key_appears_in_no_output_file(tmp_path, make_simulator):
    sim = make_simulator(error_rate=0.2, seed=1)
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[
            {"objective_id": "o", "task_id": "ok", "prompt": "Fine"},
            {"objective_id": "o", "task_id": "bad", "prompt": "sim:status=400 please"},
        ],
    )
    config = openai_config(sim, tmp_path / "out", log_level="DEBUG")
    result = run(sheet, config)
    assert result.exit_code == 1
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "ledger.sqlite" for p in files) and any(p.name == "run.log" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert "***" in json.loads((result.run_dir / "run.json").read_text())["config"]["api_key"]


def test_rerun_makes_no_call_and_a_changed_prompt_only_its_own(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    first = run(sheet, openai_config(sim, tmp_path / "out"))
    assert first.exit_code == 0 and sim.stats()["calls"] == 6
    sim.reset()
    second = run(sheet, openai_config(sim, tmp_path / "out"))
    assert second.exit_code == 0 and sim.stats()["calls"] == 0
    edited = make_workbook(
        tmp_path / "wb2",
        objectives=[{"objective_id": f"O{i}", "title": f"Chapter {i}"} for i in (1, 2)],
        tasks=[
            {"objective_id": f"O{i}", "task_id": f"T{j}", "title": f"Part {j}",
             "prompt": ("Rewritten. " if (i, j) == (2, 3) else "") + f"Write part {j} of {{{{ objective.title }}}}."}
            for i in (1, 2) for j in (1, 2, 3)
        ],
    )
    sim.reset()
    run(edited, openai_config(sim, tmp_path / "out"))
    assert sim.stats()["calls"] == 1


def gated_workbook(path: Path) -> Path:
    """Chapter A runs freely; chapter B's calls wait at the simulator's gate `b` until
    released; chapter C comes after B. So a test knows exactly which calls completed."""
    return make_workbook(
        path,
        objectives=[{"objective_id": k, "title": f"Chapter {k}"} for k in "ABC"],
        tasks=[
            *({"objective_id": "A", "task_id": f"t{j}", "prompt": f"Part {j} of A"} for j in (1, 2, 3)),
            *({"objective_id": "B", "task_id": f"t{j}", "prompt": f"Part {j} of B sim:hold=b", "depends_on": "A"} for j in (1, 2)),
            {"objective_id": "C", "task_id": "t1", "prompt": "After B", "depends_on": "B"},
        ],
    )


def start_cli(sheet: Path, sim, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    cmd = [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--provider", "openai", "--base-url",
           sim.base_url, "--model", "sim-small", "--output", str(out), "--no-progress", *extra]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger_run(out: Path) -> tuple[str, str]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        return db.execute("SELECT run_id, status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()


def test_kill_9_then_resume_pays_only_for_calls_that_had_not_completed(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = gated_workbook(tmp_path / "wb")
    out = tmp_path / "out"
    proc = start_cli(sheet, sim, out)
    try:
        sim.wait_until_held(2, "b", timeout=60)  # A's three calls are done and recorded; B's two wait
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert sim.stats()["completed"] == 3
    run_id, status = ledger_run(out)
    assert status == "running"  # it never got to say anything else
    sim.reset()  # zero the counters (this closes the gates again), then open gate b for good
    sim.release("b")
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    resumed = subprocess.run(
        [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--provider", "openai", "--base-url", sim.base_url,
         "--model", "sim-small", "--output", str(out), "--resume", run_id, "--no-progress"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats()["calls"] == 3  # B's two and C's one: nothing paid twice

    whole_out = tmp_path / "whole"
    whole = subprocess.run(
        [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--provider", "openai", "--base-url", sim.base_url,
         "--model", "sim-small", "--output", str(whole_out), "--no-progress"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert whole.returncode == 0, whole.stderr
    keep = ("objective_id", "task_id", "status", "text", "model", "steps", "prompt_tokens", "completion_tokens")

    def content(run_dir: Path) -> list[tuple]:
        return sorted(tuple(r[k] for k in keep) for r in csv_rows(run_dir / "results.csv"))

    resumed_dir = out / run_id
    whole_dir = next(p for p in whole_out.iterdir() if p.is_dir())
    assert content(resumed_dir) == content(whole_dir)
    for a, b in zip(sorted((resumed_dir / "objectives").iterdir()), sorted((whole_dir / "objectives").iterdir())):
        assert a.name == b.name
        assert [tuple(r[k] for k in keep) for r in csv_rows(a)] == [tuple(r[k] for k in keep) for r in csv_rows(b)]
    body = lambda d: [l for l in (d / "report.md").read_text().splitlines() if not l.startswith(("- Generated", "- Run"))]  # noqa: E731
    assert body(resumed_dir) == body(whole_dir)


def test_sigterm_mid_run_exits_130_with_completed_work_on_disk(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = gated_workbook(tmp_path / "wb")
    out = tmp_path / "out"
    proc = start_cli(sheet, sim, out)
    sim.wait_until_held(2, "b", timeout=60)
    proc.send_signal(signal.SIGTERM)
    sim.release("b")  # the calls in flight finish within the grace period
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run_id, status = ledger_run(out)
    assert status == "interrupted"
    rows = {f"{r['objective_id']}.{r['task_id']}": r["status"] for r in csv_rows(out / run_id / "results.csv")}
    assert all(rows[f"A.t{j}"] == "done" for j in (1, 2, 3))
    assert rows.get("C.t1") in (None, "skipped")
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["exit_code"] == 130
    assert (out / run_id / "objectives" / "01_chapter-a.csv").exists()


def test_models_command_lists_the_endpoint_models(simulator, monkeypatch):
    from click.testing import CliRunner

    from report_pipeline.cli import cli

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = CliRunner().invoke(cli, ["models", "--provider", "openai", "--base-url", simulator.base_url])
    assert result.exit_code == 0, result.output
    assert "sim-small" in result.output.split()
    monkeypatch.delenv("OPENAI_API_KEY")
    missing = CliRunner().invoke(cli, ["models", "--provider", "openai", "--base-url", simulator.base_url])
    assert missing.exit_code == 2 and "OPENAI_API_KEY" in missing.output


def test_three_step_chain_makes_three_calls_each_reading_the_previous_draft(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "Write about grids sim:label=chain", "steps": "generate, refine, check"}],
    )
    result = run(sheet, openai_config(sim, tmp_path / "out", log_level="DEBUG"))
    (task,) = result.results
    assert [c.step for c in task.calls] == ["generate", "refine", "check"]
    assert sim.stats()["completed"] == 3
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        calls = db.execute("SELECT step, prompt, response FROM calls ORDER BY id").fetchall()
    generate, refine, check = calls
    assert generate[2].strip() in json.loads(refine[1])[-1]["content"]  # the draft went into the refine prompt
    assert refine[2].strip() in json.loads(check[1])[-1]["content"]
    assert task.check_verdict == "pass"


def test_summary_depending_on_every_chapter_runs_last_and_reads_their_text(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.02)
    objectives = [{"objective_id": "exec", "title": "Executive summary"}] + [
        {"objective_id": f"c{i}", "title": f"Chapter {i}"} for i in (1, 2, 3)
    ]
    tasks = [{"objective_id": "exec", "task_id": "t", "prompt": 'Summarise: {{ results["c1"] }} {{ results["c2"] }} {{ results["c3"] }}',
              "depends_on": "c1, c2, c3"}]
    tasks += [{"objective_id": f"c{i}", "task_id": f"t{j}", "prompt": f"Chapter {i} part {j}"} for i in (1, 2, 3) for j in (1, 2)]
    sheet = make_workbook(tmp_path / "wb", objectives=objectives, tasks=tasks)
    result = run(sheet, openai_config(sim, tmp_path / "out"))
    assert result.exit_code == 0
    by_key = {r.key: r for r in result.results}
    summary = by_key["exec.t"]
    assert all(summary.started_at >= r.finished_at for k, r in by_key.items() if k != "exec.t")
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        (prompt,) = db.execute("SELECT prompt FROM calls WHERE task_key = 'exec.t'").fetchone()
    for key, r in by_key.items():
        if key != "exec.t":
            assert r.text in json.loads(prompt)[-1]["content"]
    assert [r.key for r in result.results][0] == "exec.t"  # first in the report, though it ran last


def test_a_failed_dependency_skips_its_dependents_transitively(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": k, "title": k} for k in "abc"],
        tasks=[
            {"objective_id": "a", "task_id": "1", "prompt": "sim:status=400 this one fails"},
            {"objective_id": "a", "task_id": "2", "prompt": "fine"},
            {"objective_id": "b", "task_id": "1", "prompt": "needs a.1", "depends_on": "a.1"},
            {"objective_id": "c", "task_id": "1", "prompt": "needs b", "depends_on": "b"},
        ],
    )
    result = run(sheet, openai_config(sim, tmp_path / "out"))
    status = {r.key: (r.status, r.error) for r in result.results}
    assert status["a.1"][0] == "failed" and status["a.2"][0] == "done"
    assert status["b.1"] == ("skipped", "dependency a.1 failed")
    assert status["c.1"] == ("skipped", "dependency b.1 skipped")
    assert sim.stats()["calls"] == 2  # nothing was sent for the skipped tasks
    assert result.exit_code == 1


def test_a_second_ctrl_c_exits_at_once_leaving_no_half_written_file(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = gated_workbook(tmp_path / "wb")
    out = tmp_path / "out"
    proc = start_cli(sheet, sim, out)
    sim.wait_until_held(2, "b", timeout=60)
    proc.send_signal(signal.SIGINT)
    for line in proc.stderr:  # signals of one kind merge when pending: wait until the first is handled
        if line.startswith("stopping"):
            break
    proc.send_signal(signal.SIGINT)  # the held calls never finish: only the second Ctrl-C ends it
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    for path in run_dir.rglob("*.csv"):
        rows = csv_rows(path)  # every CSV present parses whole
        assert all(r["status"] in ("done", "failed", "skipped") for r in rows)
    sim.release("b")


def test_a_second_run_paces_from_the_first_call_at_the_limits_the_first_learned(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.01, requests_per_window=40, window_s=1.0)
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    config = openai_config(sim, tmp_path / "out", cache=False, max_concurrent_requests=4)
    first = run(sheet, config)
    assert first.exit_code == 0
    assert "rate limits as learned" not in (first.run_dir / "run.log").read_text(encoding="utf-8")
    second = run(sheet, config)
    assert second.exit_code == 0
    log = (second.run_dir / "run.log").read_text(encoding="utf-8")
    assert "rate limits as learned on" in log and "40 requests per 1 s" in log
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        rows = db.execute("SELECT endpoint, requests_limit, requests_window_s FROM endpoint_limits").fetchall()
    assert rows == [(f"openai {sim.base_url}", 40.0, 1.0)]


def test_an_endpoint_without_limit_headers_is_remembered_as_such(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.01)
    sheet = simple_workbook(tmp_path / "wb", 1, 2)
    config = openai_config(sim, tmp_path / "out", cache=False)
    run(sheet, config)
    second = run(sheet, config)
    assert "the endpoint sends no rate-limit headers: no probe" in (second.run_dir / "run.log").read_text(
        encoding="utf-8"
    )


def test_sigterm_sends_no_next_step_and_skips_those_tasks_for_resume(tmp_path, make_simulator):
    """Calls in flight may finish; nothing is sent after them, not even a task's next step."""
    sim = make_simulator()
    sheet = gated_workbook(tmp_path / "wb")
    out = tmp_path / "out"
    proc = start_cli(sheet, sim, out, "--set", "steps=generate,refine")
    sim.wait_until_held(2, "b", timeout=60)
    sent_before = sim.stats()["calls"]
    proc.send_signal(signal.SIGTERM)
    seen: list[str] = []  # the run says it stopped sending before the held calls are let go
    while not seen or ("no new call is sent" not in seen[-1] and seen[-1]):
        seen.append(proc.stderr.readline())
    assert "no new call is sent" in seen[-1], seen
    sim.release("b")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert sim.stats()["calls"] == sent_before  # B's refine steps were never sent
    run_id, _ = ledger_run(out)
    rows = {f"{r['objective_id']}.{r['task_id']}": r for r in csv_rows(out / run_id / "results.csv")}
    assert sorted(rows) == ["A.t1", "A.t2", "A.t3", "B.t1", "B.t2", "C.t1"]  # every task, once
    assert [rows[f"B.t{j}"]["status"] for j in (1, 2)] == ["skipped", "skipped"]
    assert "stopped before its next call was sent" in rows["B.t1"]["error"]


def test_sigterm_with_calls_that_never_answer_leaves_after_the_grace_period(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = gated_workbook(tmp_path / "wb")
    out = tmp_path / "out"
    proc = start_cli(sheet, sim, out, "--set", "shutdown_grace_s=1", "--set", "request_timeout_s=600")
    sim.wait_until_held(2, "b", timeout=60)
    proc.send_signal(signal.SIGTERM)  # gate b stays shut: B's calls never answer
    _, stderr = proc.communicate(timeout=60)  # not request_timeout_s
    assert proc.returncode == 130, stderr
    run_id, status = ledger_run(out)
    assert status == "interrupted"
    rows = {f"{r['objective_id']}.{r['task_id']}": r for r in csv_rows(out / run_id / "results.csv")}
    assert sorted(rows) == ["A.t1", "A.t2", "A.t3", "B.t1", "B.t2", "C.t1"]
    assert [rows[k]["status"] for k in ("B.t1", "B.t2", "C.t1")] == ["skipped"] * 3
    assert "grace period (1 s) ran out" in rows["B.t1"]["error"]
    manifest = json.loads((out / run_id / "run.json").read_text())
    assert manifest["counts"] == {"done": 3, "failed": 0, "skipped": 3, "total": 6}
    sim.release("b")


def test_a_failed_task_shows_how_many_times_its_call_was_sent(tmp_path, make_simulator):
    sim = make_simulator(latency_s=0.0)
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "down", "prompt": "sim:status=500 always"},
               {"objective_id": "o", "task_id": "bad", "prompt": "sim:status=400 never retried"}],
    )
    result = run(sheet, openai_config(sim, tmp_path / "out", max_retries=2))
    rows = {r["task_id"]: r for r in csv_rows(result.run_dir / "results.csv")}
    assert (rows["down"]["status"], rows["down"]["attempts"]) == ("failed", "3")  # 1 + max_retries
    assert (rows["bad"]["status"], rows["bad"]["attempts"]) == ("failed", "1")
    assert sim.stats()["calls"] == 4


def test_the_root_builds_the_shared_machinery_and_the_provider_spends_through_it(tmp_path, make_simulator):
    """The pipeline holds the meter, throttle and endpoint it built; it never asks the provider for them."""
    sim = make_simulator(latency_s=0.01, requests_per_window=6000)
    sheet = simple_workbook(tmp_path / "wb", 2, 2)
    config = openai_config(sim, tmp_path / "out", prices={"sim-small": {"input": 1.0, "output": 2.0}})
    pipeline = ReportGenerationPipeline(config, load_prompt_sheet(sheet))
    assert pipeline.provider.meter is pipeline.controls.meter
    assert pipeline.provider.throttle is pipeline.controls.throttle
    result = pipeline.run()
    assert result.exit_code == 0 and result.cost_usd > 0
    assert pipeline.controls.meter.spent == pytest.approx(result.cost_usd)
    assert pipeline.controls.throttle.pacer.learned() is not None  # learned from the server's headers


def test_fail_fast_sends_nothing_after_the_first_failure_and_says_how_to_continue(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": k, "title": k} for k in "ab"],
        tasks=[
            {"objective_id": "a", "task_id": "1", "prompt": "fine first"},
            {"objective_id": "a", "task_id": "2", "prompt": "sim:status=400 this one fails"},
            {"objective_id": "a", "task_id": "3", "prompt": "never sent"},
            {"objective_id": "b", "task_id": "1", "prompt": "never sent either"},
        ],
    )
    out = tmp_path / "out"
    config = openai_config(sim, out, fail_fast=True, run_objectives_concurrent=False, run_task_concurrent=False)
    result = run(sheet, config)
    status = {r.key: r.status for r in result.results}
    assert status == {"a.1": "done", "a.2": "failed", "a.3": "skipped", "b.1": "skipped"}
    assert sim.stats()["calls"] == 2
    assert result.exit_code == 1 and result.status == "failed"
    assert result.resume_command and result.run_id in result.resume_command
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["halt_reason"].startswith("fail-fast: task a.2 failed")
    assert [o["skipped"] for o in manifest["objectives"]] == [1, 1]
    # every chapter's file and the report are written, as for any run that ended
    assert (result.run_dir / "report.md").exists() and len(list((result.run_dir / "objectives").glob("*.csv"))) == 2

    # continued without fail_fast (a resumed run may change it): only the three not done are sent again (a.2 fails again)
    resumed = ReportGenerationPipeline(
        openai_config(sim, out, run_objectives_concurrent=False, run_task_concurrent=False),
        load_prompt_sheet(sheet), run_id=result.run_id, resume=True).run()
    assert {r.key: r.status for r in resumed.results} == {"a.1": "done", "a.2": "failed", "a.3": "done", "b.1": "done"}
    assert sim.stats()["calls"] == 2 + 3


def test_fail_fast_from_the_command_line_and_a_fail_fast_chapter_from_the_sheet(tmp_path, make_simulator, monkeypatch):
    from click.testing import CliRunner

    from report_pipeline.cli import cli

    sim = make_simulator()
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "a", "title": "A", "fail_fast": "TRUE"}, {"objective_id": "b", "title": "B"}],
        tasks=[
            {"objective_id": "a", "task_id": "1", "prompt": "sim:status=400 fails"},
            {"objective_id": "a", "task_id": "2", "prompt": "not sent: its chapter stopped"},
            {"objective_id": "b", "task_id": "1", "prompt": "sim:status=400 fails too"},
            {"objective_id": "b", "task_id": "2", "prompt": "sent: b has no fail_fast"},
        ],
    )
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    base = ["run", str(sheet), "--provider", "openai", "--base-url", sim.base_url, "--model", "sim-small",
            "--sequential", "--no-progress"]
    chapter = CliRunner().invoke(cli, [*base, "--output", str(tmp_path / "one")])
    assert chapter.exit_code == 1, chapter.output
    assert sim.stats()["calls"] == 3  # a.1, b.1, b.2
    assert "fail-fast: chapter a stopped when task a.1 failed" in chapter.output

    whole = CliRunner().invoke(cli, [*base, "--fail-fast", "--output", str(tmp_path / "two")])
    assert whole.exit_code == 1, whole.output
    assert sim.stats()["calls"] == 3 + 1  # a.1 only: the run stopped there
    assert "--resume" in whole.output
