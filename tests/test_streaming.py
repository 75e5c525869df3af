"""A queued call is not a failed call: a streamed call to a server that may queue gets two bounds, a long
one for its first token (the queue) and a short one between chunks (a stalled server), instead of one for
the whole exchange. A raw-socket server scripts the bytes' timing; whole runs use the simulator's one slot."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx2
import pytest

from report_pipeline.providers.openai.streaming import on_first_text
from report_pipeline.providers.openai.transport import PooledTransport, stream_deadlines
from tests.test_pipeline_simulator import openai_config, run
from tests.workbooks import make_workbook, simple_workbook

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@contextmanager
def _scripted(steps: Sequence[tuple[float, bytes]]) -> Iterator[str]:
    """A server that answers one request with `steps`: (seconds to wait, bytes to send) in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for wait, data in steps:
                if done.wait(wait):
                    return
                try:
                    connection.sendall(data)
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions"
    finally:
        done.set()
        thread.join(timeout=10)
        listener.close()


def _read(url: str, *, read_timeout: float) -> bytes:
    with httpx2.Client(transport=PooledTransport()) as client:
        with client.stream("POST", url, json={}, timeout=httpx2.Timeout(read_timeout, connect=5.0)) as response:
            return b"".join(response.iter_raw())


SLOW_START_STEADY_BODY = [(0.6, HEADERS)] + [(0.3, _chunk(b"data: x\n\n")) for _ in range(4)] + [(0.0, b"0\r\n\r\n")]


def test_a_queued_call_whose_answer_keeps_coming_is_read_to_the_end() -> None:
    with _scripted(SLOW_START_STEADY_BODY) as url, stream_deadlines(3.0, 0.6):
        assert _read(url, read_timeout=3.0).count(b"data: x") == 4


def test_the_same_answer_under_a_whole_exchange_deadline_is_cut() -> None:
    """What a call to OpenAI keeps: its answer is bounded as a whole (1.8 s of bytes against 1 s)."""
    with _scripted(SLOW_START_STEADY_BODY) as url, pytest.raises(httpx2.ReadTimeout):
        _read(url, read_timeout=1.0)


def test_a_server_that_stalls_mid_answer_is_cut_by_the_gap_bound() -> None:
    steps = [(0.0, HEADERS), (0.0, _chunk(b"data: first\n\n")), (5.0, _chunk(b"data: late\n\n"))]
    started = time.monotonic()
    with _scripted(steps) as url, stream_deadlines(30.0, 0.4), pytest.raises(httpx2.ReadTimeout):
        _read(url, read_timeout=30.0)
    assert time.monotonic() - started < 4.0  # cut near the gap, not the first-token bound


def test_a_server_that_never_answers_is_cut_by_the_first_token_bound() -> None:
    with _scripted([(5.0, HEADERS)]) as url, stream_deadlines(0.4, 30.0), pytest.raises(httpx2.ReadTimeout):
        _read(url, read_timeout=30.0)


# -- when an answer's text begins ---------------------------------------------------------------


def _delta(**delta) -> dict:
    return {"choices": [{"index": 0, "delta": delta}]}


def test_the_first_text_is_the_first_event_with_text_not_the_role_or_an_empty_piece() -> None:
    """From the first text the server is generating the answer (not queueing it, not reading its prompt): the
    concurrency limit counts answers generating at once from there."""
    events = [_delta(role="assistant", content=""), _delta(content=""), _delta(content="Wind"),
              _delta(content=" power"), {"choices": [], "usage": {"completion_tokens": 2}}]
    seen: list[int] = []
    passed = []
    for number, event in enumerate(on_first_text(events, lambda: seen.append(len(passed)))):
        passed.append(number)
    assert seen == [2] and passed == [0, 1, 2, 3, 4]  # once, as the third event came; every event passed on


def test_reasoning_text_is_text_too() -> None:
    seen: list[bool] = []
    list(on_first_text([_delta(role="assistant"), _delta(reasoning_content="First,")], lambda: seen.append(True)))
    assert seen == [True]


# -- whole runs on the simulator as a one-slot server -------------------------------------------


def _timeouts(result) -> int:
    return len(re.findall(r"failed \(timeout\)", (result.run_dir / "run.log").read_text()))


def test_calls_waiting_in_a_one_slot_servers_queue_wait_rather_than_time_out(tmp_path, make_simulator):
    """Four in flight, a 0.3 s answer each and a 0.5 s timeout: the fourth waits 0.9 s for its first token."""
    sim = make_simulator(slots=1, latency_s=0.3)
    sheet = simple_workbook(tmp_path / "wb", 2, 4)
    result = run(sheet, openai_config(sim, tmp_path / "out", concurrency="fixed", max_concurrent_requests=4,
                                      request_timeout_s=0.5))
    assert result.exit_code == 0 and _timeouts(result) == 0
    assert sim.stats()["computed"] == 8  # each answer computed once


def test_the_same_queue_without_streaming_times_out(tmp_path, make_simulator):
    sim = make_simulator(slots=1, latency_s=0.3)
    sheet = simple_workbook(tmp_path / "wb", 2, 4)
    result = run(sheet, openai_config(sim, tmp_path / "out", concurrency="fixed", max_concurrent_requests=4,
                                      request_timeout_s=0.5, streaming="probes"))
    assert _timeouts(result) > 0


def test_a_hung_server_is_still_cut_by_the_first_token_timeout(tmp_path, make_simulator):
    sim = make_simulator(hang_rate=1.0, hang_s=30.0)
    sheet = simple_workbook(tmp_path / "wb", 1, 1)
    result = run(sheet, openai_config(sim, tmp_path / "out", first_token_timeout_s=0.5, max_retries=0))
    (task,) = result.results
    assert task.status == "failed" and "timeout" in task.error
    assert result.duration_s < 20


def test_a_streamed_call_that_comes_back_empty_is_asked_again_plain_for_the_servers_reason(tmp_path, make_simulator):
    """llama.cpp's Python server answers a streamed prompt too long for its context with an empty 200 stream;
    asked plain, it says why (400 context_length_exceeded). The task used to fail as 'an empty answer'."""
    sim = make_simulator(context_tokens=400, stream_errors="empty")
    sheet = make_workbook(tmp_path / "wb", objectives=[{"objective_id": "o", "title": "O"}],
                          tasks=[{"objective_id": "o", "task_id": "long", "prompt": "word " * 600},
                                 {"objective_id": "o", "task_id": "short", "prompt": "A short one."}])
    result = run(sheet, openai_config(sim, tmp_path / "out", max_tokens=100, max_retries=2))
    by_id = {r.task_id: r for r in result.results}
    assert by_id["short"].status == "done"
    assert by_id["long"].status == "failed" and "maximum context length is 400 tokens" in by_id["long"].error
    assert sim.stats()["calls"] == 3  # the short one, and the long one streamed then plain: not retried
