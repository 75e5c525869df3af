"""Specification of the simulator's Files and Batch APIs, as OpenAI shapes them.

Every HTTP test drives the real ``openai`` SDK (``max_retries=0``) against a
real server on 127.0.0.1. Batches run with ``batch_manual=True`` unless a
test is about pacing: the test moves them with ``advance_batches`` and
asserts each state in between, so nothing here sleeps or races a clock.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import openai
import pytest

from report_pipeline.simulator import (
    SimulatorConfig,
    SimulatorHandle,
    main,
    parse_batch_input,
)
from tests.simulator_support import (
    make_simulator,  # noqa: F401
    open_client,
)

MODEL = "sim-small"
ENDPOINT = "/v1/chat/completions"
MakeSimulator = Callable[..., SimulatorHandle]


def request_line(
    custom_id: str, content: str, *, model: str = MODEL, **body: Any
) -> dict[str, Any]:
    """One batch input line: a chat request with a single user message."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def jsonl(lines: Iterable[object]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, data: bytes, filename: str = "requests.jsonl") -> Any:
    return client.files.create(file=(filename, data), purpose="batch")


def start_batch(client: openai.OpenAI, lines: list[dict[str, Any]], **options: Any) -> Any:
    """Upload ``lines`` and create a batch over them."""
    stored = upload(client, jsonl(lines))
    return client.batches.create(
        input_file_id=stored.id, endpoint=ENDPOINT, completion_window="24h", **options
    )


def read_lines(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    """A result file's lines by custom_id (empty when there is no file)."""
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    lines = [json.loads(line) for line in text.splitlines()]
    return {line["custom_id"]: line for line in lines}


def requests(count: int, prefix: str = "task") -> list[dict[str, Any]]:
    return [request_line(f"{prefix}-{i}", f"Write section {i} of the report") for i in range(count)]


@pytest.fixture
def make_sim(make_simulator: MakeSimulator) -> MakeSimulator:  # noqa: F811
    """``make_simulator`` with ``batch_manual=True`` unless a test overrides it."""

    def make(**overrides: Any) -> SimulatorHandle:
        return make_simulator(**{"batch_manual": True, **overrides})

    return make


@pytest.fixture
def sim(make_sim: MakeSimulator) -> SimulatorHandle:
    """A simulator whose batches move only when the test advances them."""
    return make_sim()


# --- files ---------------------------------------------------------------------------


def test_upload_returns_a_file_object_and_serves_the_bytes_back(sim: SimulatorHandle) -> None:
    data = jsonl(requests(2))
    with open_client(sim) as client:
        stored = upload(client, data)
        assert client.files.retrieve(stored.id) == stored
        assert client.files.content(stored.id).content == data

    assert stored.id.startswith("file-")
    assert (stored.object, stored.purpose, stored.status) == ("file", "batch", "processed")
    assert (stored.bytes, stored.filename) == (len(data), "requests.jsonl")
    assert stored.expires_at == stored.created_at + 30 * 24 * 3600


def test_upload_refuses_a_batch_file_that_is_not_jsonl(sim: SimulatorHandle) -> None:
    with open_client(sim) as client, pytest.raises(openai.BadRequestError) as caught:
        upload(client, jsonl(requests(1)), filename="requests.txt")
    assert "Must be .jsonl" in caught.value.message


def test_upload_refuses_a_file_above_batch_max_bytes(make_sim: MakeSimulator) -> None:
    sim = make_sim(batch_max_bytes=1000)
    with open_client(sim) as client:
        upload(client, b" " * 999 + b"\n")
        with pytest.raises(openai.BadRequestError) as caught:
            upload(client, b" " * 1000 + b"\n")

    assert "1001 bytes" in caught.value.message
    assert caught.value.param == "file"
    assert sim.stats()["files_uploaded"] == 1


def test_a_deleted_file_is_gone(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        stored = upload(client, jsonl(requests(1)))
        assert client.files.delete(stored.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(stored.id)


def test_files_and_batches_need_the_api_key_when_one_is_set(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(api_key="sk-right")
    with open_client(sim, api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            upload(client, jsonl(requests(1)))
        with pytest.raises(openai.AuthenticationError):
            client.batches.list()


# --- the lifecycle ---------------------------------------------------------------------


def test_polling_sees_each_status_and_the_counts_grow_step_by_step(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(batch_steps=4)
    with open_client(sim) as client:
        batch = start_batch(client, requests(8), metadata={"wave": "1"})
        seen = [(batch.status, batch.request_counts.completed, batch.request_counts.total)]
        while batch.status != "completed":
            sim.advance_batches(batch.id)
            batch = client.batches.retrieve(batch.id)
            seen.append((batch.status, batch.request_counts.completed, batch.request_counts.total))

    assert seen == [
        ("validating", 0, 0),
        ("in_progress", 0, 8),
        ("in_progress", 2, 8),
        ("in_progress", 4, 8),
        ("in_progress", 6, 8),
        ("finalizing", 8, 8),
        ("completed", 8, 8),
    ]
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.expires_at == batch.created_at + 24 * 3600
    assert (batch.metadata, batch.model, batch.errors) == ({"wave": "1"}, MODEL, None)


def test_output_file_has_one_line_per_request_matched_by_custom_id(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        batch = start_batch(client, requests(3))
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        output = read_lines(client, batch.output_file_id)

    assert batch.status == "completed"
    assert batch.error_file_id is None
    assert sorted(output) == ["task-0", "task-1", "task-2"]
    line = output["task-1"]
    assert line["id"].startswith("batch_req_")
    assert line["error"] is None
    assert line["response"]["status_code"] == 200
    assert line["response"]["request_id"].startswith("req_")
    assert line["response"]["body"]["object"] == "chat.completion"
    assert (
        "Write section 1 of the report"
        in (line["response"]["body"]["choices"][0]["message"]["content"])
    )


def test_a_batch_answers_as_the_real_time_endpoint_does(sim: SimulatorHandle) -> None:
    line = request_line(
        "plan", "Plan the chapter on costs", response_format={"type": "json_object"}
    )
    with open_client(sim) as client:
        batch = start_batch(client, [line])
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        body = read_lines(client, batch.output_file_id)["plan"]["response"]["body"]
        live = client.chat.completions.create(**line["body"])

    assert body["choices"][0]["message"]["content"] == live.choices[0].message.content
    totals = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert {k: body["usage"][k] for k in totals} == live.usage.model_dump(include=set(totals))
    assert body["usage"]["completion_tokens_details"] == live.usage.completion_tokens_details.model_dump(exclude_none=True)
    assert batch.usage.input_tokens == live.usage.prompt_tokens
    assert batch.usage.output_tokens == live.usage.completion_tokens


def test_batches_move_on_their_own_over_batch_delay(make_sim: MakeSimulator) -> None:
    sim = make_sim(batch_manual=False, batch_delay_s=0.0)
    with open_client(sim) as client:
        batch = start_batch(client, requests(5))
        done = sim.wait_until_batch_done(batch.id)

    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}


def test_switching_batch_manual_off_lets_held_batches_finish(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        batch = start_batch(client, requests(2))
        sim.configure(batch_delay_s=0.0, batch_manual=False)
        assert sim.wait_until_batch_done(batch.id)["status"] == "completed"


def test_failing_requests_land_in_the_error_file_with_their_response(
    sim: SimulatorHandle,
) -> None:
    lines = [
        request_line("good", "Summarise the costs"),
        request_line("refused", "Summarise the risks sim:status=400"),
        {**request_line("no-messages", ""), "body": {"model": MODEL}},
    ]
    with open_client(sim) as client:
        batch = start_batch(client, lines)
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        output = read_lines(client, batch.output_file_id)
        errors = read_lines(client, batch.error_file_id)

    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    assert sorted(output) == ["good"]
    assert sorted(errors) == ["no-messages", "refused"]
    refused = errors["refused"]
    assert refused["error"] is None
    assert refused["response"]["status_code"] == 400
    assert "sim:status=400" in refused["response"]["body"]["error"]["message"]
    assert "messages" in errors["no-messages"]["response"]["body"]["error"]["message"]


def test_fail_first_and_bad_json_directives_apply_inside_batches(sim: SimulatorHandle) -> None:
    lines = [
        request_line("flaky", "Flaky chapter sim:fail_first=1"),
        request_line("plan", "Plan sim:bad_json=1", response_format={"type": "json_object"}),
    ]
    with open_client(sim) as client:
        batch = start_batch(client, lines)
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        output = read_lines(client, batch.output_file_id)
        errors = read_lines(client, batch.error_file_id)

    assert errors["flaky"]["response"]["status_code"] == 503
    assert output["plan"]["response"]["body"]["choices"][0]["message"]["content"] == "not json {"


def test_batch_error_rate_sends_the_same_seeded_share_to_the_error_file(
    make_sim: MakeSimulator,
) -> None:
    def failed_ids(handle: SimulatorHandle) -> set[str]:
        with open_client(handle) as client:
            batch = start_batch(client, requests(20))
            handle.advance_batches(batch.id, steps=None)
            batch = client.batches.retrieve(batch.id)
            errors = read_lines(client, batch.error_file_id)
        assert batch.request_counts.failed == len(errors)
        assert {line["response"]["status_code"] for line in errors.values()} == {500}
        return set(errors)

    first = failed_ids(make_sim(batch_error_rate=0.5, seed=7))
    again = failed_ids(make_sim(batch_error_rate=0.5, seed=7))

    assert first == again
    assert 0 < len(first) < 20


def test_expired_batch_keeps_completed_requests_and_lists_the_rest_as_batch_expired(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(batch_expire=0.5, batch_steps=4)
    with open_client(sim) as client:
        batch = start_batch(client, requests(4))
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        output = read_lines(client, batch.output_file_id)
        errors = read_lines(client, batch.error_file_id)

    assert batch.status == "expired"
    assert batch.expired_at is not None and batch.completed_at is None
    assert batch.request_counts.completed == 2
    assert sorted(output) == ["task-0", "task-1"]
    assert sorted(errors) == ["task-2", "task-3"]
    assert errors["task-2"]["response"] is None
    assert errors["task-2"]["error"]["code"] == "batch_expired"


def test_batch_fail_fails_validation_with_the_enqueued_token_limit(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(batch_fail=True)
    with open_client(sim) as client:
        batch = start_batch(client, requests(2))
        sim.advance_batches(batch.id)
        batch = client.batches.retrieve(batch.id)

    assert batch.status == "failed"
    assert batch.failed_at is not None
    [error] = batch.errors.data
    assert error.code == "token_limit_exceeded"
    assert "Enqueued token limit" in error.message
    assert (batch.output_file_id, batch.error_file_id) == (None, None)
    assert batch.request_counts.total == 0


def test_bad_input_lines_fail_the_batch_naming_each_line(sim: SimulatorHandle) -> None:
    data = (
        jsonl(
            [
                request_line("a", "first"),
                request_line("a", "same custom_id"),
                {**request_line("b", "wrong url"), "url": "/v1/embeddings"},
                {**request_line("c", "wrong method"), "method": "GET"},
                request_line("d", "other model", model="sim-large"),
            ]
        )
        + b"{not json\n"
    )
    with open_client(sim) as client:
        stored = upload(client, data)
        batch = client.batches.create(
            input_file_id=stored.id, endpoint=ENDPOINT, completion_window="24h"
        )
        sim.advance_batches(batch.id)
        batch = client.batches.retrieve(batch.id)

    assert batch.status == "failed"
    assert [(error.code, error.line) for error in batch.errors.data] == [
        ("duplicate_custom_id", 2),
        ("url_mismatch", 3),
        ("invalid_value", 4),
        ("model_mismatch", 5),
        ("invalid_json_line", 6),
    ]


def test_validate_upload_refuses_bad_lines_with_a_400(make_sim: MakeSimulator) -> None:
    sim = make_sim(batch_validate_upload=True)
    data = jsonl([request_line("a", "first"), request_line("a", "again")])
    with open_client(sim) as client, pytest.raises(openai.BadRequestError) as caught:
        upload(client, data)

    assert caught.value.code == "duplicate_custom_id"
    assert "Line 2: The custom_id 'a' is a duplicate of line 1" in caught.value.message


def test_a_batch_over_batch_max_requests_fails_with_too_many_tasks(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(batch_max_requests=2)
    with open_client(sim) as client:
        batch = start_batch(client, requests(3))
        [batch_after] = sim.advance_batches(batch.id)

    assert batch_after["status"] == "failed"
    assert [error["code"] for error in batch_after["errors"]["data"]] == ["too_many_tasks"]


@pytest.mark.parametrize(
    ("data", "codes"),
    [
        (b"", ["empty_file"]),
        (b"\n", ["empty_file"]),
        (jsonl([request_line("a", "x")]), []),
        (jsonl([request_line("a", "x")]).rstrip(b"\n"), []),
        (b"\n" + jsonl([request_line("a", "x")]), ["invalid_json_line"]),
        (jsonl([[1, 2]]), ["invalid_json_line"]),
        (jsonl([{"method": "POST", "url": ENDPOINT, "body": {}}]), ["missing_required_parameter"]),
        (jsonl([{**request_line("a", "x"), "custom_id": 7}]), ["invalid_value"]),
        (jsonl([{**request_line("a", "x"), "body": "text"}]), ["invalid_value"]),
    ],
)
def test_parse_batch_input_reports_problems_by_code(data: bytes, codes: list[str]) -> None:
    _, problems = parse_batch_input(data, endpoint=ENDPOINT, max_requests=10)
    assert [problem.code for problem in problems] == codes


# --- cancel ------------------------------------------------------------------------------


def test_cancel_keeps_finished_requests_and_lists_the_rest_as_batch_cancelled(
    make_sim: MakeSimulator,
) -> None:
    sim = make_sim(batch_steps=4)
    with open_client(sim) as client:
        batch = start_batch(client, requests(4))
        sim.advance_batches(batch.id, steps=2)  # validated, then one request run
        cancelling = client.batches.cancel(batch.id)
        sim.advance_batches(batch.id)
        batch = client.batches.retrieve(batch.id)
        output = read_lines(client, batch.output_file_id)
        errors = read_lines(client, batch.error_file_id)

    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None
    assert batch.request_counts.completed == 1
    assert sorted(output) == ["task-0"]
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
    assert sorted(errors) == ["task-1", "task-2", "task-3"]


def test_cancelling_a_finished_batch_is_a_400(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        batch = start_batch(client, requests(1))
        sim.advance_batches(batch.id, steps=None)
        with pytest.raises(openai.BadRequestError, match="completed"):
            client.batches.cancel(batch.id)


# --- creating and listing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "param"),
    [
        ({"input_file_id": "file-missing"}, openai.NotFoundError, "input_file_id"),
        ({"completion_window": "1h"}, openai.BadRequestError, "completion_window"),
        ({"endpoint": "/v1/embeddings"}, openai.BadRequestError, "endpoint"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, openai.BadRequestError, "metadata"),
        ({"metadata": {"k": "v" * 513}}, openai.BadRequestError, "metadata"),
    ],
)
def test_create_refuses_bad_parameters_naming_them(
    sim: SimulatorHandle, changes: dict[str, Any], error: type[Exception], param: str
) -> None:
    with open_client(sim) as client:
        stored = upload(client, jsonl(requests(1)))
        options = {
            "input_file_id": stored.id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            **changes,
        }
        with pytest.raises(error) as caught:
            client.batches.create(**options)

    assert caught.value.param == param  # type: ignore[attr-defined]
    assert sim.stats()["batches_created"] == 0


def test_create_refuses_a_file_not_uploaded_for_batch(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        stored = client.files.create(file=("notes.jsonl", b"{}\n"), purpose="user_data")
        with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
            client.batches.create(
                input_file_id=stored.id, endpoint=ENDPOINT, completion_window="24h"
            )


def test_list_pages_batches_newest_first(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        created = [start_batch(client, requests(1)).id for _ in range(3)]
        page = client.batches.list(limit=2)
        everything = [batch.id for batch in client.batches.list(limit=2)]  # follows `after`

    assert [batch.id for batch in page.data] == created[::-1][:2]
    assert page.has_more is True
    assert everything == created[::-1]


# --- stats and control ------------------------------------------------------------------------


def test_stats_count_files_batches_and_requests(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        first = start_batch(client, [request_line("intro", "Intro sim:label=intro")])
        start_batch(client, requests(4, prefix="wave2"))
        sim.advance_batches(first.id, steps=None)
        sim.advance_batches(steps=1)  # the second batch passes validation

    stats = sim.stats()
    assert stats["files_uploaded"] == 2
    assert stats["batches_created"] == 2
    assert stats["batches_by_status"] == {"completed": 1, "in_progress": 1}
    assert stats["batch_requests"] == 5
    assert stats["batch_requests_repeated"] == 0
    assert stats["batch_requests_by_label"] == {"intro": 1}
    assert stats["calls"] == stats["completed"] == 0  # batches are not real-time calls


def test_stats_count_requests_submitted_again_in_a_later_batch(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        start_batch(client, requests(3))
        start_batch(client, requests(2))  # task-0 and task-1 again
        sim.advance_batches(steps=1)

    assert sim.stats()["batch_requests_repeated"] == 2


def test_reset_zeroes_batch_counters_but_keeps_batches_readable(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        batch = start_batch(client, requests(1))
        sim.advance_batches(batch.id, steps=None)
        sim.reset()
        assert client.batches.retrieve(batch.id).status == "completed"

    stats = sim.stats()
    assert (stats["files_uploaded"], stats["batches_created"], stats["batch_requests"]) == (0, 0, 0)
    assert stats["batches_by_status"] == {}


def test_wait_for_batches_returns_the_ids_another_thread_created(sim: SimulatorHandle) -> None:
    created: list[str] = []

    def submit() -> None:
        with open_client(sim) as client:
            created.extend(
                start_batch(client, requests(1), metadata={"n": str(i)}).id for i in range(2)
            )

    worker = threading.Thread(target=submit)
    worker.start()
    ids = sim.wait_for_batches(2)
    worker.join(10)

    assert ids == created
    assert [batch["status"] for batch in sim.advance_batches(steps=None)] == ["completed"] * 2


def test_advance_endpoint_moves_batches_over_http(sim: SimulatorHandle) -> None:
    with open_client(sim) as client:
        batch = start_batch(client, requests(2))
    root = sim.base_url.removesuffix("/v1")
    request = urllib.request.Request(
        f"{root}/_sim/batches/advance",
        data=json.dumps({"batch_id": batch.id, "steps": None}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        [advanced] = json.loads(response.read())["batches"]
    assert advanced["status"] == "completed"


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"batch_expire": 1.5}, "batch_expire"),
        ({"batch_error_rate": -0.1}, "batch_error_rate"),
        ({"batch_steps": 0}, "batch_steps"),
        ({"batch_max_requests": 0}, "batch_max_requests"),
        ({"batch_manual": "yes"}, "batch_manual"),
        ({"batch_delay_s": -1}, "batch_delay_s"),
    ],
)
def test_batch_config_rejects_bad_values_by_name(changes: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SimulatorConfig().updated(changes)


def test_cli_takes_batch_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--batch-expire", "2", "--batch-manual"]) == 2
    assert "batch_expire" in capsys.readouterr().err


def test_a_batch_line_for_a_reasoning_model_with_max_tokens_fails_as_a_real_time_call_does(
    sim: SimulatorHandle,
) -> None:
    lines = [request_line("old", "hello", model="gpt-5-mini", max_tokens=50),
             request_line("new", "hello", model="gpt-5-mini", max_completion_tokens=500)]
    with open_client(sim) as client:
        batch = start_batch(client, lines)
        sim.advance_batches(batch.id, steps=None)
        batch = client.batches.retrieve(batch.id)
        errors = read_lines(client, batch.error_file_id)
        done = read_lines(client, batch.output_file_id)
    error = errors["old"]["response"]["body"]["error"]
    assert (errors["old"]["response"]["status_code"], error["code"], error["param"]) == (400, "unsupported_parameter", "max_tokens")
    assert done["new"]["response"]["body"]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
