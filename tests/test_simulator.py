"""Specification of the simulator: the OpenAI contract it mimics, and its knobs.

Every HTTP test drives the real ``openai`` SDK (``max_retries=0``) against a
real server on 127.0.0.1. Pure pieces (durations, directives, the sliding
window, config validation) are pinned with tables and a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import openai
import pytest

from report_pipeline.simulator import (
    DEFAULT_MODELS,
    Directives,
    RateLimiter,
    SimulatorConfig,
    SimulatorHandle,
    estimate_tokens,
    format_reset,
    main,
    parse_directives,
    raise_open_file_limit,
    serve_in_thread,
    summarize,
)
from tests.simulator_support import make_simulator, simulator  # noqa: F401
from tests.simulator_support import open_client

JSON_OBJECT = {"type": "json_object"}


def ask(client: openai.OpenAI, content: str, *, model: str = "sim-small", **options: Any) -> Any:
    """One chat completion with a single user message."""
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **options
    )


def control(
    handle: SimulatorHandle, method: str, path: str, body: object = None
) -> tuple[int, Any]:
    """Call a ``/_sim/...`` endpoint over plain HTTP; returns (status, JSON body)."""
    root = handle.base_url.removesuffix("/v1")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(root + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


# --- the chat completion contract -------------------------------------------


def test_chat_completion_has_openai_shape_and_usage(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        completion = ask(client, "Summarise quarterly revenue by region")

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "sim-small"
    assert isinstance(completion.created, int)
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    usage = completion.usage
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == estimate_tokens(choice.message.content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_answer_mentions_simulation_and_echoes_the_last_user_message(
    simulator: SimulatorHandle,
) -> None:
    prompt = "Describe the churn trend for enterprise customers over the last two quarters. " * 3
    with open_client(simulator) as client:
        completion = client.chat.completions.create(
            model="sim-small",
            messages=[
                {"role": "system", "content": "You are an analyst."},
                {"role": "user", "content": prompt},
            ],
        )

    text = completion.choices[0].message.content
    assert "simulated" in text.lower()
    assert summarize(prompt) in text
    assert len(summarize(prompt)) <= 83  # ~80 characters plus "..."


def test_answer_is_deterministic_in_model_messages_temperature_and_seed(
    make_simulator: Any,
) -> None:
    prompt = "Explain the regional split"
    first, other_seed = make_simulator(seed=1), make_simulator(seed=2)
    with open_client(first) as client, open_client(other_seed) as other_client:
        answer = ask(client, prompt).choices[0].message.content
        assert ask(client, prompt).choices[0].message.content == answer
        assert ask(client, prompt, model="sim-large").choices[0].message.content != answer
        assert ask(client, prompt, temperature=0.9).choices[0].message.content != answer
        assert ask(other_client, prompt).choices[0].message.content != answer


def test_max_tokens_cuts_the_answer_and_reports_length(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        full = ask(client, "Write the analysis").choices[0].message.content
        cut = ask(client, "Write the analysis", max_tokens=5)

    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens <= 5
    assert full.startswith(cut.choices[0].message.content)


def test_json_object_format_answers_three_sections(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        completion = ask(client, "Plan the chapter on costs", response_format=JSON_OBJECT)

    sections = json.loads(completion.choices[0].message.content)["sections"]
    assert len(sections) == 3
    assert all(isinstance(s["title"], str) and isinstance(s["brief"], str) for s in sections)
    assert len({s["title"] for s in sections}) == 3


def test_verdict_prompt_answers_a_verdict_line_then_notes(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        passing = ask(client, "Check the draft against the data; reply VERDICT: PASS or FAIL")
        failing = ask(client, "Check the draft. VERDICT please. sim:verdict=FAIL")

    lines = passing.choices[0].message.content.splitlines()
    assert lines[0] == "VERDICT: PASS"
    assert lines[1].startswith("NOTES:")
    assert failing.choices[0].message.content.startswith("VERDICT: FAIL\nNOTES:")


# --- models ----------------------------------------------------------------------


def test_models_list_defaults_to_the_simulated_models(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        assert [model.id for model in client.models.list()] == list(DEFAULT_MODELS)
        assert client.models.retrieve("sim-large").id == "sim-large"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")


def test_models_list_uses_the_configured_models(make_simulator: Any) -> None:
    sim = make_simulator(models=["alpha", "beta"])
    with open_client(sim) as client:
        assert [model.id for model in client.models.list()] == ["alpha", "beta"]


# --- rate limits -------------------------------------------------------------------


def test_every_answer_carries_ratelimit_headers(make_simulator: Any) -> None:
    sim = make_simulator(requests_per_window=3, tokens_per_window=10_000, window_s=60)
    with open_client(sim) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=[{"role": "user", "content": "Headers please"}]
        )
    completion = raw.parse()

    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert raw.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
    remaining_tokens = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert remaining_tokens == 10_000 - completion.usage.total_tokens
    assert raw.headers["x-ratelimit-reset-tokens"] == "1m0s"


def test_no_token_headers_without_a_token_limit(make_simulator: Any) -> None:
    sim = make_simulator(requests_per_window=3)
    with open_client(sim) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=[{"role": "user", "content": "Headers please"}]
        )
    assert "x-ratelimit-limit-requests" in raw.headers
    assert "x-ratelimit-limit-tokens" not in raw.headers


def test_request_over_the_limit_gets_429_with_retry_after(make_simulator: Any) -> None:
    sim = make_simulator(requests_per_window=2, window_s=60)
    with open_client(sim) as client:
        ask(client, "one")
        ask(client, "two")
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "three")

    error = caught.value
    headers = error.response.headers
    assert headers["retry-after"] == "60"
    assert 59_000 <= int(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_exceeded"
    stats = sim.stats()
    assert (stats["calls"], stats["completed"], stats["rate_limited"]) == (3, 2, 1)
    assert stats["status_counts"] == {"200": 2, "429": 1}


def test_request_over_the_token_limit_gets_429(make_simulator: Any) -> None:
    sim = make_simulator(tokens_per_window=100, window_s=1.0)
    with open_client(sim) as client:
        first = ask(client, "short", max_tokens=50)
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "short", max_tokens=50)

    headers = caught.value.response.headers
    charged = first.usage.prompt_tokens + 50  # max_tokens is charged up front
    assert headers["x-ratelimit-remaining-tokens"] == str(100 - charged)
    assert headers["retry-after"] == "1"
    assert 0 < int(headers["retry-after-ms"]) <= 1000


def test_reset_empties_the_rate_window(make_simulator: Any) -> None:
    sim = make_simulator(requests_per_window=1, window_s=60)
    with open_client(sim) as client:
        ask(client, "first")
        with pytest.raises(openai.RateLimitError):
            ask(client, "second")
        sim.reset()
        ask(client, "after reset")
    assert sim.stats()["completed"] == 1


def test_sliding_window_frees_capacity_as_entries_age_out() -> None:
    limiter = RateLimiter()
    config = SimulatorConfig(requests_per_window=2, window_s=1.0)

    assert limiter.admit(0.0, 1, config).allowed
    assert limiter.admit(0.4, 1, config).allowed
    refused = limiter.admit(0.5, 1, config)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert limiter.admit(1.0, 1, config).allowed  # the entry at 0.0 has left
    assert limiter.admit(1.2, 1, config).retry_after_s == pytest.approx(0.2)


def test_sliding_window_refuses_a_burst_across_a_window_boundary() -> None:
    limiter = RateLimiter()
    config = SimulatorConfig(requests_per_window=2, window_s=1.0)

    assert limiter.admit(0.9, 1, config).allowed
    assert limiter.admit(0.95, 1, config).allowed
    # A fixed window would start afresh at 1.0 and let two more through.
    assert not limiter.admit(1.1, 1, config).allowed


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.0001, "1ms"),
        (0.12, "120ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (0.29, "290ms"),
        (1.1, "1.1s"),
        (59.5, "59.5s"),
        (59.9994, "1m0s"),  # rounded up: a client waiting this long is never early
        (60, "1m0s"),
        (90.25, "1m30.25s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
    ],
)
def test_format_reset_prints_openai_durations(seconds: float, expected: str) -> None:
    assert format_reset(seconds) == expected


# --- auth and faults -----------------------------------------------------------------


def test_wrong_api_key_is_rejected_with_401(make_simulator: Any) -> None:
    sim = make_simulator(api_key="sk-right")
    with open_client(sim, api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            ask(client, "hello")
    with open_client(sim, api_key="sk-right") as client:
        ask(client, "hello")

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    assert sim.stats()["faults"] == {"401": 1}


def test_error_rate_one_answers_server_errors(make_simulator: Any) -> None:
    sim = make_simulator(error_rate=1.0)
    statuses = set()
    with open_client(sim) as client:
        for _ in range(4):
            with pytest.raises(openai.InternalServerError) as caught:
                ask(client, "hello")
            statuses.add(caught.value.status_code)

    assert statuses <= {500, 503}
    faults = sim.stats()["faults"]
    assert faults.get("500", 0) + faults.get("503", 0) == 4


def test_same_seed_gives_the_same_fault_sequence(make_simulator: Any) -> None:
    def outcomes(sim: SimulatorHandle) -> list[int]:
        seen = []
        with open_client(sim) as client:
            for index in range(12):
                try:
                    ask(client, f"prompt {index}")
                    seen.append(200)
                except openai.APIStatusError as error:
                    seen.append(error.status_code)
        return seen

    first = outcomes(make_simulator(seed=7, error_rate=0.5))
    assert outcomes(make_simulator(seed=7, error_rate=0.5)) == first
    assert 200 in first and set(first) - {200}


def test_malformed_body_surfaces_as_an_sdk_error(make_simulator: Any) -> None:
    sim = make_simulator(malformed_rate=1.0)
    with open_client(sim) as client:
        # A 200 whose body is not JSON: the SDK raises json.JSONDecodeError.
        with pytest.raises(ValueError):
            ask(client, "hello")

    stats = sim.stats()
    assert stats["faults"] == {"malformed": 1}
    assert stats["status_counts"] == {"200": 1}
    assert stats["completed"] == 0


def test_drop_rate_one_drops_the_connection(make_simulator: Any) -> None:
    sim = make_simulator(drop_rate=1.0)
    with open_client(sim) as client:
        with pytest.raises(openai.APIConnectionError) as caught:
            ask(client, "hello")

    assert not isinstance(caught.value, openai.APITimeoutError)
    assert sim.stats()["faults"] == {"drop": 1}


def test_hang_longer_than_the_client_timeout_times_out(make_simulator: Any) -> None:
    sim = make_simulator(hang_rate=1.0, hang_s=30)
    with open_client(sim, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            ask(client, "hello")

    assert sim.stats()["faults"] == {"hang": 1}


# --- per-prompt directives -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no markers at all", Directives()),
        ("slow sim:latency=0.35 please", Directives(latency_s=0.35)),
        ("sim:status=400", Directives(status=400)),
        ("sim:status=429 sim:retry_after=0.2", Directives(status=429, retry_after_s=0.2)),
        ("sim:fail_first=2 and sim:bad_json=1", Directives(fail_first=2, bad_json=1)),
        ("sim:verdict=fail", Directives(verdict="FAIL")),
        ("sim:label=intro sim:hold=gate-a", Directives(label="intro", hold="gate-a")),
        ("sim:unknown=3 is ignored", Directives()),
    ],
)
def test_parse_directives_reads_markers(text: str, expected: Directives) -> None:
    assert parse_directives(text) == expected


@pytest.mark.parametrize("text", ["sim:status=200", "sim:latency=soon", "sim:verdict=MAYBE"])
def test_parse_directives_rejects_bad_values(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(text)):
        parse_directives(text)


def test_bad_directive_is_a_400_naming_it(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        with pytest.raises(openai.BadRequestError, match="sim:latency=soon"):
            ask(client, "sim:latency=soon")


def test_latency_directive_holds_the_answer_at_least_that_long(
    simulator: SimulatorHandle,
) -> None:
    with open_client(simulator) as client:
        started = time.perf_counter()
        ask(client, "slow one sim:latency=0.35")
        assert time.perf_counter() - started >= 0.35


def test_status_directive_always_answers_that_status(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, "Bad request sim:status=400")
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                ask(client, "Broken sim:status=500")

    assert caught.value.status_code == 400
    assert "sim:status=400" in caught.value.message
    assert simulator.stats()["faults"] == {"400": 1, "500": 2}


def test_status_429_directive_sends_the_requested_retry_after(
    simulator: SimulatorHandle,
) -> None:
    with open_client(simulator) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "sim:status=429 sim:retry_after=0.25")
    assert caught.value.response.headers["retry-after-ms"] == "250"


def test_fail_first_fails_that_prompt_then_succeeds(simulator: SimulatorHandle) -> None:
    flaky = "Flaky chapter sim:fail_first=2"
    with open_client(simulator) as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as caught:
                ask(client, flaky)
            assert caught.value.status_code == 503
        assert "Flaky chapter" in ask(client, flaky).choices[0].message.content
        # Another prompt with the same directive has its own counter.
        with pytest.raises(openai.InternalServerError):
            ask(client, "Other chapter sim:fail_first=2")


def test_bad_json_directive_spoils_the_first_json_answers(simulator: SimulatorHandle) -> None:
    prompt = "Plan the chapter sim:bad_json=2"
    with open_client(simulator) as client:
        contents = [
            ask(client, prompt, response_format=JSON_OBJECT).choices[0].message.content
            for _ in range(3)
        ]

    assert contents[:2] == ["not json {", "not json {"]
    assert len(json.loads(contents[2])["sections"]) == 3


def test_label_directive_counts_calls_by_label(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        ask(client, "Intro sim:label=intro")
        ask(client, "Intro again sim:label=intro")
        ask(client, "Summary sim:label=summary")
    assert simulator.stats()["calls_by_label"] == {"intro": 2, "summary": 1}


def test_hold_directive_waits_for_its_gate(simulator: SimulatorHandle) -> None:
    finished = threading.Event()

    def call() -> None:
        with open_client(simulator) as client:
            ask(client, "Held sim:hold=gate-a")
        finished.set()

    worker = threading.Thread(target=call)
    worker.start()
    simulator.wait_until_held(1, "gate-a")
    assert not finished.is_set()
    assert simulator.stats()["held"] == {"gate-a": 1}
    simulator.release("gate-a")
    worker.join(10)
    assert finished.is_set()
    assert simulator.stats()["held"] == {}


# --- streamed answers ----------------------------------------------------------------------


def test_a_streamed_answer_sends_its_headers_before_its_text(make_simulator) -> None:  # noqa: F811
    """As OpenAI does: the status and rate-limit headers at once, the events after the latency."""
    sim = make_simulator(requests_per_window=100, window_s=60.0)
    with open_client(sim) as client:
        stream = ask(client, "Streamed sim:hold=text", stream=True, stream_options={"include_usage": True})
        # create() returned: the headers are here while the text is still held at the gate
        assert sim.stats()["held"] == {"text": 1}
        assert stream.response.headers["x-ratelimit-limit-requests"] == "100"
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        sim.release("text")
        chunks = list(stream)
        plain = ask(client, "Streamed sim:hold=text")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    (usage,) = [c.usage for c in chunks if c.usage is not None]
    assert not chunks[-1].choices and usage.model_dump(include={"prompt_tokens", "completion_tokens"}) == (
        plain.usage.model_dump(include={"prompt_tokens", "completion_tokens"}))
    assert sim.stats()["completed"] == 2


def test_a_stream_without_include_usage_sends_no_usage_chunk(simulator: SimulatorHandle) -> None:  # noqa: F811
    with open_client(simulator) as client:
        chunks = list(ask(client, "No usage", stream=True))
    assert chunks and all(c.usage is None and c.choices for c in chunks)


@pytest.mark.parametrize("body, message", [
    ({"stream_options": {"include_usage": True}}, "only allowed when 'stream' is enabled"),
    ({"stream": "yes"}, "must be a boolean"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "must be a boolean"),
])
def test_stream_options_are_checked(simulator: SimulatorHandle, body: dict[str, Any], message: str) -> None:  # noqa: F811
    with open_client(simulator) as client, pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", cast_to=object,
                    body={"model": "sim-small", "messages": [{"role": "user", "content": "x"}], **body})
    assert message in str(caught.value)


def test_a_paced_stream_sends_its_text_while_the_answer_is_still_generating(make_simulator) -> None:  # noqa: F811
    """`stream_paced`: as a real server, the first text before the answer is done (the concurrency limit
    learns from it what the server generates at once); the same text and usage as unpaced."""
    sim = make_simulator(stream_paced=True)
    with open_client(sim) as client:
        stream = iter(ask(client, "Paced sim:latency=2", stream=True, stream_options={"include_usage": True}))
        first = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
        assert sim.stats()["completed"] == 0  # the text began; the answer goes on for 2 s
        chunks = [first, *stream]
        plain = ask(client, "Paced sim:latency=2")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_prompt_time_is_part_of_a_slots_computing(make_simulator) -> None:  # noqa: F811
    """`prompt_s_per_token`: a long prompt keeps a one-slot server busy longer, as llama.cpp on a CPU is."""
    sim = make_simulator(slots=1, latency_s=0.01, prompt_s_per_token=0.0001)
    with open_client(sim) as client:
        answer = ask(client, "word " * 400)
    assert sim.stats()["busy_s"] == pytest.approx(answer.usage.prompt_tokens * 0.0001 + 0.01, abs=1e-3)


@pytest.mark.parametrize("fault", ["drop_rate", "malformed_rate"])
def test_stream_faults_break_the_stream_after_its_headers(make_simulator, fault: str) -> None:  # noqa: F811
    sim = make_simulator(**{fault: 1.0})
    with open_client(sim) as client:
        stream = ask(client, "Broken stream", stream=True)
        with pytest.raises((openai.APIConnectionError, ValueError)):
            list(stream)
    assert sim.stats()["faults"] == {fault.removesuffix("_rate"): 1}


# --- stats and control -------------------------------------------------------------------


def test_stats_count_calls_and_tokens(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        answers = [ask(client, "first"), ask(client, "second, a bit longer")]

    stats = simulator.stats()
    assert stats["calls"] == 2
    assert stats["completed"] == 2
    assert stats["status_counts"] == {"200": 2}
    assert stats["prompt_tokens"] == sum(a.usage.prompt_tokens for a in answers)
    assert stats["completion_tokens"] == sum(a.usage.completion_tokens for a in answers)
    assert (stats["peak_in_flight"], stats["in_flight"]) == (1, 0)


def test_reset_zeroes_the_stats(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        ask(client, "hello sim:label=x")
    simulator.reset()

    stats = simulator.stats()
    assert stats["calls"] == stats["completed"] == stats["prompt_tokens"] == 0
    assert stats["status_counts"] == stats["calls_by_label"] == stats["faults"] == {}


def test_control_endpoints_work_over_http(simulator: SimulatorHandle) -> None:
    status, config = control(simulator, "POST", "/_sim/config", {"requests_per_window": 1})
    assert status == 200
    assert config["requests_per_window"] == 1
    with open_client(simulator) as client:
        ask(client, "one")
        with pytest.raises(openai.RateLimitError):
            ask(client, "two")

    assert control(simulator, "GET", "/_sim/stats")[1]["rate_limited"] == 1
    assert control(simulator, "POST", "/_sim/reset")[1]["calls"] == 0
    assert control(simulator, "GET", "/_sim/config")[1]["requests_per_window"] == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latency": 1}, "unknown simulator config field(s) latency"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_s": "fast"}, "latency_s"),
        ({"requests_per_window": 0}, "requests_per_window"),
    ],
)
def test_config_endpoint_rejects_bad_fields_by_name(
    simulator: SimulatorHandle, changes: dict[str, Any], message: str
) -> None:
    status, body = control(simulator, "POST", "/_sim/config", changes)
    assert status == 400
    assert message in body["error"]["message"]


def test_configure_changes_behaviour_live(simulator: SimulatorHandle) -> None:
    simulator.configure(api_key="sk-live")
    with open_client(simulator, api_key="sk-other") as client:
        with pytest.raises(openai.AuthenticationError):
            ask(client, "hello")
    simulator.configure(api_key=None)
    with open_client(simulator, api_key="sk-other") as client:
        ask(client, "hello")


def test_config_rejects_an_out_of_range_share() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        SimulatorConfig(drop_rate=2)


# --- concurrency and lifecycle --------------------------------------------------------------


def test_holds_a_thousand_slow_requests_at_once(make_simulator: Any) -> None:
    count = 1000
    needed_descriptors = 2 * count + 256  # client and server sockets share this process
    if raise_open_file_limit(needed_descriptors) < needed_descriptors:
        pytest.skip("open-file limit too low for 1,000 connections")
    sim = make_simulator(latency_s=0.05)

    async def crowd() -> list[int]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(index: int) -> int:
                body = {
                    "model": "sim-small",
                    "messages": [{"role": "user", "content": f"request {index} sim:hold=crowd"}],
                }
                async with session.post(f"{sim.base_url}/chat/completions", json=body) as response:
                    await response.read()
                    return response.status

            tasks = [asyncio.create_task(one(index)) for index in range(count)]
            try:
                await asyncio.to_thread(sim.wait_until_held, count, "crowd", 30.0)
            finally:
                await asyncio.to_thread(sim.release, "crowd")
            return await asyncio.gather(*tasks)

    statuses = asyncio.run(crowd())

    assert statuses == [200] * count
    stats = sim.stats()
    assert stats["peak_in_flight"] >= count
    assert stats["completed"] == count


def test_serve_in_thread_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with serve_in_thread(latency_s=0.0) as sim:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
        started = set(threading.enumerate()) - before
        assert [thread.name for thread in started] == ["simulator"]
    assert not any(thread.is_alive() for thread in started)


def test_cli_prints_the_base_url_and_stops_on_sigterm() -> None:
    command = [
        sys.executable, "-m", "report_pipeline.simulator",
        "--port", "0", "--models", "alpha,beta", "--rpm", "5", "--window", "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert re.fullmatch(r"simulator listening on http://127\.0\.0\.1:\d+/v1\n", line)
        base_url = line.split()[-1]
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10) as client:
            assert [model.id for model in client.models.list()] == ["alpha", "beta"]
            raw = client.chat.completions.with_raw_response.create(
                model="alpha", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "5"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_cli_rejects_a_bad_flag_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--error-rate", "2"]) == 2
    assert "error_rate" in capsys.readouterr().err


def test_a_streamed_batch_line_is_answered_400() -> None:
    from report_pipeline.simulator._server import SimulatorServer

    body = {"model": "sim-small", "messages": [{"role": "user", "content": "x"}], "stream": True}
    result = SimulatorServer().answer_batch_request(body, server_error=False)
    assert result.status_code == 400 and "stream is not supported in a batch" in json.dumps(result.body)


# --- today's OpenAI models: reasoning models, usage details, prompt caching -------------


@pytest.mark.parametrize("model", ["gpt-5-mini", "gpt-5.1", "o1", "o3-mini", "o4-mini"])
def test_a_reasoning_model_refuses_max_tokens_as_openai_does(simulator: SimulatorHandle, model: str) -> None:
    with open_client(simulator) as client, pytest.raises(openai.BadRequestError) as caught:
        ask(client, "hello", model=model, max_tokens=50)
    assert caught.value.code == "unsupported_parameter" and caught.value.param == "max_tokens"
    assert "Use 'max_completion_tokens' instead." in caught.value.message


def test_a_reasoning_model_refuses_a_temperature_other_than_one(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        assert ask(client, "hello", model="gpt-5-mini", temperature=1).choices[0].message.content
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, "hello", model="gpt-5-mini", temperature=0.2)
    assert (caught.value.code, caught.value.param) == ("unsupported_value", "temperature")
    assert "Only the default (1) value is supported." in caught.value.message


def test_older_models_still_take_max_tokens_and_temperature(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        answer = ask(client, "hello", model="gpt-4o-mini", max_tokens=50, temperature=0.2)
    assert answer.usage.completion_tokens_details.reasoning_tokens == 0


def test_reasoning_tokens_are_billed_inside_completion_tokens(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        low = ask(client, "Explain the grid", model="gpt-5-mini", max_completion_tokens=400, reasoning_effort="low")
        high = ask(client, "Explain the grid", model="gpt-5-mini", max_completion_tokens=400, reasoning_effort="high")
    for answer in (low, high):
        reasoning = answer.usage.completion_tokens_details.reasoning_tokens
        assert reasoning > 0
        assert answer.usage.completion_tokens == reasoning + estimate_tokens(answer.choices[0].message.content)
    assert high.usage.completion_tokens_details.reasoning_tokens > low.usage.completion_tokens_details.reasoning_tokens


def test_a_reasoning_model_that_spends_its_budget_thinking_answers_nothing(simulator: SimulatorHandle) -> None:
    with open_client(simulator) as client:
        answer = ask(client, "Explain the grid", model="o4-mini", max_completion_tokens=20)
    assert answer.choices[0].message.content == "" and answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == answer.usage.completion_tokens_details.reasoning_tokens == 20


@pytest.mark.parametrize(("model", "effort", "code"), [
    ("gpt-4o-mini", "low", "unsupported_parameter"),
    ("o3-mini", "minimal", "unsupported_value"),
    ("gpt-5-mini", "extreme", "unsupported_value"),
])
def test_reasoning_effort_is_refused_where_the_model_lacks_it(
    simulator: SimulatorHandle, model: str, effort: str, code: str,
) -> None:
    with open_client(simulator) as client, pytest.raises(openai.BadRequestError) as caught:
        ask(client, "hello", model=model, max_completion_tokens=500, reasoning_effort=effort)
    assert (caught.value.code, caught.value.param) == (code, "reasoning_effort")


def test_a_repeated_long_prompt_prefix_is_reported_as_cached(simulator: SimulatorHandle) -> None:
    table = "\n".join(f"| row {i} | {i * 7} | {i * 13} |" for i in range(400))  # ~2,400 tokens
    with open_client(simulator) as client:
        first = ask(client, f"{table}\nSummarise the table.", model="gpt-5-mini")
        again = ask(client, f"{table}\nNow list its largest values.", model="gpt-5-mini")
        short = ask(client, "hello", model="gpt-5-mini")
        short_again = ask(client, "hello", model="gpt-5-mini")
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert 1024 <= cached <= again.usage.prompt_tokens and cached % 128 == 0
    assert short_again.usage.prompt_tokens_details.cached_tokens == 0  # under 1,024 tokens: never cached
    assert short.usage.prompt_tokens_details.cached_tokens == 0


def _drawn(make_simulator: Any, **config: Any) -> float:
    handle = make_simulator(**config)
    with open_client(handle) as client:
        for i in range(30):
            ask(client, f"prompt {i}")
    return handle.stats()["drawn_latency_s"]


def test_latency_sigma_draws_heavy_tailed_latencies_around_the_median_reproducibly(make_simulator: Any) -> None:
    """Real endpoints answer most calls near a median and a few many times slower (lognormal)."""
    plain = _drawn(make_simulator, latency_s=0.002)
    tailed = _drawn(make_simulator, latency_s=0.002, latency_sigma=1.0, seed=3)
    assert plain == pytest.approx(30 * 0.002)
    assert tailed != pytest.approx(plain, rel=0.01)
    assert tailed == _drawn(make_simulator, latency_s=0.002, latency_sigma=1.0, seed=3)  # one seed, one draw
