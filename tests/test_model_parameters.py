"""Today's models with the defaults: what each model at an endpoint takes is guessed, corrected from its
400s once, and remembered in the ledger (simulator over HTTP, the real openai SDK)."""

from __future__ import annotations

import json
import logging

import pytest

from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.openai.dialect import Dialect, first_guess, refused_parameter
from tests.test_pipeline_simulator import openai_config, run
from tests.workbooks import make_workbook, simple_workbook


def _refusals(sim) -> int:
    return sim.stats()["status_counts"].get("400", 0)


def test_a_gpt5_run_with_the_defaults_finishes_every_task(tmp_path, make_simulator, caplog):
    """It used to fail every task: max_tokens and temperature 0.2 are refused by the gpt-5 family."""
    sim = make_simulator()
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    result = run(sheet, openai_config(sim, tmp_path / "out", model="gpt-5-mini", max_concurrent_requests=1))
    assert result.exit_code == 0, [r.error for r in result.results]
    assert all(r.status == "done" and r.text for r in result.results)
    # one call learned both corrections; no other call was refused
    assert _refusals(sim) <= 1  # the name already says "no temperature, max_completion_tokens"
    assert all(r.attempts == 1 for r in result.results)


def test_a_model_the_name_does_not_give_away_is_corrected_once_and_said_once(tmp_path, make_simulator, caplog):
    """An Azure deployment named freely, or a new family: its 400s teach us, and one call pays the lesson."""
    sim = make_simulator(reasoning_models=["prod-chat"])
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    result = run(sheet, openai_config(sim, tmp_path / "out", model="prod-chat", max_concurrent_requests=1))
    assert result.exit_code == 0, [r.error for r in result.results]
    assert _refusals(sim) == 2  # max_tokens, then temperature: on the first call only
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(said) == 2 and all(line.startswith("openai: prod-chat refused ") for line in said)
    assert "Use 'max_completion_tokens' instead" in said[0]
    assert all(r.attempts == 1 for r in result.results)  # a corrected 400 is not a retry


def test_concurrent_calls_learn_a_correction_without_a_400_each(tmp_path, make_simulator):
    sim = make_simulator(reasoning_models=["prod-chat"], latency_s=0.05)
    sheet = simple_workbook(tmp_path / "wb", 4, 10)
    result = run(sheet, openai_config(sim, tmp_path / "out", model="prod-chat", max_concurrent_requests=8))
    assert result.exit_code == 0
    assert _refusals(sim) <= 2 * 8  # at most the calls already sent when the first one learned it
    assert sim.stats()["completed"] == 40


def test_corrections_are_remembered_in_the_ledger_for_the_next_run(tmp_path, make_simulator):
    sim = make_simulator(reasoning_models=["prod-chat"])
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    out = tmp_path / "out"
    assert run(sheet, openai_config(sim, out, model="prod-chat", max_concurrent_requests=1)).exit_code == 0
    learned = _refusals(sim)
    assert learned == 2
    again = run(sheet, openai_config(sim, out, model="prod-chat", max_concurrent_requests=1, cache=False))
    assert again.exit_code == 0 and sim.stats()["completed"] == 12
    assert _refusals(sim) == learned  # the second run sent the right body first


@pytest.mark.parametrize(("base_url", "model", "expected"), [
    (None, "gpt-4o-mini", Dialect("max_completion_tokens", True)),
    ("https://api.openai.com/v1", "gpt-5-mini", Dialect("max_completion_tokens", False)),
    ("https://contoso.openai.azure.com", "my-deployment", Dialect("max_completion_tokens", True)),
    ("http://localhost:11434/v1", "llama3.1", Dialect("max_tokens", True)),
    ("http://127.0.0.1:8080/v1", "gemma-3-270m", Dialect("max_tokens", True)),
    ("https://openrouter.ai/api/v1", "openai/o3-mini", Dialect("max_completion_tokens", False)),
    ("http://vllm:8000/v1", "o1", Dialect("max_completion_tokens", False)),
])
def test_the_first_guess_goes_by_host_then_by_name(base_url, model, expected):
    assert first_guess(base_url, model) == expected


def test_a_dialect_writes_the_body_it_names():
    request = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},), temperature=0.3,
                          max_tokens=99, reasoning_effort="low")
    assert Dialect("max_tokens", True, True).body(request) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3, "max_tokens": 99,
        "reasoning_effort": "low"}
    assert Dialect("max_completion_tokens", False, False).body(request) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 99}


@pytest.mark.parametrize(("status", "body", "message", "param"), [
    (400, {"error": {"param": "max_tokens", "code": "unsupported_parameter"}}, "", "max_tokens"),
    (400, {"error": {"param": "temperature", "code": "unsupported_value"}}, "", "temperature"),
    (400, {"error": {"param": None, "code": None}}, "Unsupported parameter: 'max_tokens' is not supported", "max_tokens"),
    (400, {"error": {"param": "messages", "code": "context_length_exceeded"}}, "too long", None),
    (500, {"error": {"param": "max_tokens", "code": "unsupported_parameter"}}, "", None),
    (400, "plain text", "bad request", None),
])
def test_a_refusal_names_its_parameter_by_code_or_in_words(status, body, message, param):
    assert refused_parameter(status, body, message) == param


def test_reasoning_effort_is_dropped_once_for_a_model_that_refuses_it(tmp_path, make_simulator, caplog):
    sim = make_simulator()
    sheet = simple_workbook(tmp_path / "wb", 1, 3)
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    result = run(sheet, openai_config(sim, tmp_path / "out", model="gpt-4o-mini", reasoning_effort="high",
                                      max_concurrent_requests=1))
    assert result.exit_code == 0 and _refusals(sim) == 1  # gpt-4o-mini takes no reasoning_effort
    assert sum("refused reasoning_effort" in r.getMessage() for r in caplog.records) == 1


def test_reasoning_effort_from_the_config_and_a_task_cell_reaches_the_model(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": "deep", "prompt": "Think hard", "reasoning_effort": "high"},
               {"objective_id": "A", "task_id": "quick", "prompt": "Think a little"}],
    )
    result = run(sheet, openai_config(sim, tmp_path / "out", model="gpt-5-mini", reasoning_effort="low",
                                      max_tokens=2000))
    assert result.exit_code == 0
    reasoning = {r.task_id: r.reasoning_tokens for r in result.results}
    assert reasoning == {"deep": 256, "quick": 32}  # the simulator's high and low


def test_reasoning_and_cached_tokens_are_billed_and_shown_per_call_task_and_run(tmp_path, make_simulator, caplog):
    sim = make_simulator()
    table = "\n".join(f"| row {i} | {i * 7} | {i * 13} |" for i in range(400))  # ~2,400 tokens, twice
    sheet = make_workbook(
        tmp_path / "wb", objectives=[{"objective_id": "A", "title": "A"}],
        tasks=[{"objective_id": "A", "task_id": "t1", "prompt": table + "\nSummarise the table."},
               {"objective_id": "A", "task_id": "t2", "prompt": table + "\nList its largest values.",
                "depends_on": "A.t1"}],
    )
    prices = {"gpt-5-mini": {"input": 1.0, "output": 10.0, "cached_input": 0.1}}
    caplog.set_level(logging.INFO, logger="report_pipeline.pipeline")
    result = run(sheet, openai_config(sim, tmp_path / "out", model="gpt-5-mini", max_tokens=2000, prices=prices))
    assert result.exit_code == 0
    manifest = json.loads((result.run_dir / "run.json").read_text())
    first, second = manifest["tasks"]
    assert first["cached_tokens"] == 0 and second["cached_tokens"] >= 1024  # the shared table was cached
    assert first["reasoning_tokens"] == second["reasoning_tokens"] == 96  # medium, the default
    call = second["calls"][0]
    expected = ((call["prompt_tokens"] - call["cached_tokens"]) * 1.0 + call["cached_tokens"] * 0.1
                + call["completion_tokens"] * 10.0) / 1e6
    assert call["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert manifest["tokens"]["reasoning"] == 192 and manifest["tokens"]["cached"] == second["cached_tokens"]
    assert manifest["prompt_cache_saving_usd"] == pytest.approx(second["cached_tokens"] * 0.9 / 1e6, abs=1e-6)
    final = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"run {result.run_id} done")]
    assert "cached)" in final[0] and "(192 reasoning)" in final[0]


def _batch(sim, tmp_path, sheet, out, **overrides):
    config = openai_config(sim, out, execution="batch", batch_poll_interval_s=0.02, **overrides)
    return run(sheet, config)


def test_batch_lines_carry_the_body_a_real_time_call_would(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1)
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    result = _batch(sim, tmp_path, sheet, tmp_path / "out", model="gpt-5-mini")
    assert result.exit_code == 0, [r.error for r in result.results]
    assert sim.stats()["batch_requests"] == 6  # no line refused, none sent twice


def test_a_refused_batch_line_is_corrected_and_sent_again(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1, reasoning_models=["prod-chat"])
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    result = _batch(sim, tmp_path, sheet, tmp_path / "out", model="prod-chat")
    assert result.exit_code == 0, [r.error for r in result.results]
    assert sim.stats()["batch_requests"] == 18  # refused for max_tokens, then temperature, then answered


def test_a_correction_learned_in_real_time_serves_the_next_batch_run(tmp_path, make_simulator):
    sim = make_simulator(batch_delay_s=0.02, batch_steps=1, reasoning_models=["prod-chat"])
    sheet = simple_workbook(tmp_path / "wb", 2, 3)
    out = tmp_path / "out"
    assert run(sheet, openai_config(sim, out, model="prod-chat", max_concurrent_requests=1)).exit_code == 0
    result = _batch(sim, tmp_path, sheet, out, model="prod-chat", cache=False)
    assert result.exit_code == 0
    assert sim.stats()["batch_requests"] == 6  # the ledger's lesson: every line right the first time
