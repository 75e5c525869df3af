"""The in-flight limit finds what a server serves at once: pure decisions with staged samples, then whole runs
against the simulator as a one-slot server (llama.cpp's default) and as a parallel one."""

from __future__ import annotations

import heapq
import json
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from report_pipeline.providers.concurrency import (
    START_UNKNOWN,
    Concurrency,
    ConcurrencyLimit,
    first_limit,
    most_at_once,
)
from tests.test_pipeline_simulator import openai_config, run
from tests.workbooks import make_workbook, simple_workbook

def _simulate(limit: ConcurrencyLimit, *, slots: int | None, calls: int, service_s: float = 1.0,
              draw: Callable[[], float] | None = None) -> tuple[list[float], list[int]]:
    """A server with `slots` parallel slots (None: unbounded) and a queue, driven by `limit` in simulated
    time: the client sends while fewer than `limit` calls are out. (latencies, the limit after each answer)."""
    now, sent, latencies, trace = 0.0, 0, [], []
    free_at = [0.0] * (slots or calls)  # when each slot is next free
    out: list[tuple[float, float, int]] = []  # (done, sent at, epoch) of the calls out
    while len(latencies) < calls:
        while sent < calls and len(out) < limit.limit:
            slot = min(range(len(free_at)), key=free_at.__getitem__)
            done = max(now, free_at[slot]) + (draw() if draw else service_s)
            free_at[slot] = done
            out.append((done, now, limit.epoch))
            sent += 1
        out.sort()
        done, sent_at, epoch = out.pop(0)
        now = done
        latencies.append(done - sent_at)
        limit.record(done - sent_at, 200, epoch)
        trace.append(limit.limit)
    return latencies, trace


def _simulate_streamed(limit: ConcurrencyLimit, clock: list[float], *, slots: int | None,
                       calls: list[tuple[float, float]]) -> tuple[list[float], list[int]]:
    """As `_simulate`, streamed and on the limit's clock: call n takes `calls[n]` = (prompt_s, generate_s) of a
    slot, its text begins after its prompt and ends after its generation (`answer_began`, `answer_ended`).
    (each call's wait in the server's queue, in the order sent; the limit after each answer)."""
    free_at = [0.0] * (slots or len(calls))
    events: list[tuple[float, int, str]] = []  # (when, call, what happens)
    held, epochs, sent_at, keys = {}, {}, {}, {}
    waits, trace = [], []
    while len(trace) < len(calls):
        while len(held) + len(trace) < len(calls) and limit.in_flight < limit.limit:
            number = len(held) + len(trace)
            held[number] = limit.slot()
            epochs[number], sent_at[number] = held[number].__enter__(), clock[0]
            slot = min(range(len(free_at)), key=free_at.__getitem__)
            start = max(clock[0], free_at[slot])
            prompt_s, generate_s = calls[number]
            free_at[slot] = start + prompt_s + generate_s
            waits.append(start - clock[0])
            heapq.heappush(events, (start + prompt_s, number, "began"))
            heapq.heappush(events, (free_at[slot], number, "ended"))
        clock[0], number, what = heapq.heappop(events)
        if what == "began":
            keys[number] = limit.answer_began()
            continue
        limit.answer_ended(keys.pop(number))
        held.pop(number).__exit__(None, None, None)
        limit.record(clock[0] - sent_at[number], 200, epochs[number])
        trace.append(limit.limit)
    return waits, trace


def _limit_on(clock: list[float], *, maximum: int, initial: int = START_UNKNOWN) -> ConcurrencyLimit:
    return ConcurrencyLimit(maximum=maximum, initial=initial, clock=lambda: clock[0])


@pytest.mark.parametrize("seed", range(40))
def test_a_one_slot_server_whose_prompts_shrink_keeps_one_call_queued(seed) -> None:
    """llama.cpp on a CPU: a call's time is mostly its prompt's (1,100 tokens, ~20 s), and the example's prompts
    shrink over a chapter. Latency per output token fell while calls queued, and the latency rule grew the
    limit 4 -> 16 on a server that computes one answer at a time."""
    rng = random.Random(seed)
    calls = [(rng.uniform(0.3, 1.0) * 30.0 * (1 - n / 70), rng.uniform(2.0, 6.0)) for n in range(60)]
    clock = [0.0]
    limit = _limit_on(clock, maximum=16)
    waits, trace = _simulate_streamed(limit, clock, slots=1, calls=calls)
    assert max(trace) <= START_UNKNOWN and max(trace[4:]) <= 2, trace  # after the first window: one queued
    longest = max(prompt_s + generate_s for prompt_s, generate_s in calls)
    assert max(waits[8:]) <= longest + 1e-6  # behind one call at most


@pytest.mark.parametrize("seed", range(40))
def test_a_parallel_server_streaming_answers_of_every_size_gets_the_maximum(seed) -> None:
    """vLLM with more slots than the maximum: prompts are read in a fraction of a second, answers take seconds,
    and both vary from call to call (and shrink over the run); none of it is a queue."""
    rng = random.Random(seed)
    calls = [(rng.uniform(0.05, 0.5) * (1 - n / 500), rng.lognormvariate(1.0, 0.5)) for n in range(400)]
    clock = [0.0]
    limit = _limit_on(clock, maximum=32)
    _, trace = _simulate_streamed(limit, clock, slots=48, calls=calls)
    assert trace[-1] == 32 and min(trace) >= START_UNKNOWN
    assert trace.index(32) < 60


@pytest.mark.parametrize("seed", range(40))
def test_a_four_slot_server_streaming_keeps_about_one_call_queued(seed) -> None:
    rng = random.Random(seed)
    calls = [(rng.uniform(0.1, 1.0), rng.uniform(2.0, 6.0)) for _ in range(300)]
    clock = [0.0]
    limit = _limit_on(clock, maximum=64)
    waits, trace = _simulate_streamed(limit, clock, slots=4, calls=calls)
    assert all(3 <= value <= 6 for value in trace[60:]), trace
    assert max(waits[100:]) <= 7.0  # behind about one call


@pytest.mark.parametrize(("spans", "since", "expected"), [
    ([], 0.0, 0),
    ([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], 0.0, 1),  # one after the other: a one-slot server
    ([(0.0, 1.0), (0.98, 2.0)], 0.0, 1),  # together for less than the slack: the first one's end read late
    ([(0.0, 2.0), (1.0, 3.0), (1.5, 4.0)], 0.0, 3),
    ([(0.0, 2.0), (1.0, 3.0), (2.5, 4.0)], 0.0, 2),
    ([(0.0, 2.0), (1.0, 3.0)], 2.5, 1),  # only the moments since the window began
])
def test_most_at_once_counts_answers_generating_together(spans, since, expected) -> None:
    assert most_at_once(spans, since=since, slack=0.05) == expected


def test_against_a_one_slot_server_the_limit_settles_at_one_or_two() -> None:
    limit = ConcurrencyLimit(maximum=16, initial=4)
    latencies, trace = _simulate(limit, slots=1, calls=60)
    assert max(trace[8:]) <= 2 and min(trace) >= 1
    assert max(latencies[8:]) <= 2.0  # no call waits behind more than one other
    assert limit.summary()["highest"] <= 4  # it never queued more than it started with


def test_against_a_parallel_server_the_limit_grows_to_the_maximum_within_a_few_windows() -> None:
    limit = ConcurrencyLimit(maximum=50, initial=4)
    _, trace = _simulate(limit, slots=None, calls=120)
    assert trace[-1] == 50
    assert trace.index(50) < 30  # four-fold: 4, 16, 50, a window of half the limit each


@pytest.mark.parametrize("seed", range(20))
def test_latency_that_varies_by_a_third_on_a_parallel_server_is_not_taken_for_a_queue(seed) -> None:
    """A local server's answers vary with their prompts, and a loaded client adds its own delays (the CI
    machine did): one lucky answer must not make every later window look queued."""
    rng = random.Random(seed)
    limit = ConcurrencyLimit(maximum=32, initial=4)
    _, trace = _simulate(limit, slots=None, calls=400, draw=lambda: rng.lognormvariate(0.0, 0.25))
    assert limit.summary()["lowest"] >= 4
    assert trace[-1] == 32


@pytest.mark.parametrize("base_url", ["https://openrouter.ai/api/v1", "https://api.groq.com/openai/v1"])
def test_a_public_router_with_heavy_tails_keeps_the_full_limit(base_url) -> None:
    """Latency that varies many-fold (lognormal, log-sd 0.6) is how routers are, not a queue."""
    rng = random.Random(7)
    limit = Concurrency(maximum=32, base_url=base_url).for_model("m")
    _, trace = _simulate(limit, slots=None, calls=400, draw=lambda: rng.lognormvariate(0.0, 0.6))
    assert set(trace) == {32}


def test_against_a_four_slot_server_the_limit_stays_near_four() -> None:
    limit = ConcurrencyLimit(maximum=64, initial=4)
    latencies, trace = _simulate(limit, slots=4, calls=300)
    assert all(3 <= value <= 10 for value in trace[60:])
    assert max(latencies[40:]) <= 3.0


def test_a_timeout_halves_the_limit_at_once_and_an_overload_once_a_window() -> None:
    limit = ConcurrencyLimit(maximum=32, initial=16)
    limit.timed_out()
    assert limit.limit == 8
    limit.overloaded()
    limit.overloaded()  # the same window: the 429s of one burst count once
    assert limit.limit == 4
    assert limit.summary()["timeouts"] == 1 and limit.summary()["overloads"] == 2


def test_fixed_mode_never_moves() -> None:
    limit = ConcurrencyLimit(maximum=16, initial=4, adaptive=False)
    limit.timed_out()
    _simulate(limit, slots=1, calls=20)
    assert limit.limit == 16 and limit.summary()["changes"] == 0


@pytest.mark.parametrize(("base_url", "expected"), [
    (None, 16), ("https://api.openai.com/v1", 16), ("https://x.openai.azure.com", 16),
    ("https://openrouter.ai/api/v1", 16),
    ("http://127.0.0.1:8080/v1", START_UNKNOWN), ("http://localhost:11434/v1", START_UNKNOWN),
    ("http://ollama:11434/v1", START_UNKNOWN), ("http://192.168.1.20:8000/v1", START_UNKNOWN),
    ("http://[::1]:8080/v1", START_UNKNOWN), ("http://gpu-box.lan:8000/v1", START_UNKNOWN),
])
def test_the_first_limit_is_a_few_for_a_self_hosted_server_and_the_maximum_elsewhere(base_url, expected) -> None:
    assert first_limit(base_url, 16) == expected


def test_a_recalled_limit_is_where_a_model_starts() -> None:
    concurrency = Concurrency(maximum=16, base_url="http://127.0.0.1:1/v1")
    concurrency.recall({"local-model": 1})
    assert concurrency.for_model("local-model").limit == 1
    assert concurrency.for_model("other").limit == START_UNKNOWN
    assert concurrency.learned() == {"local-model": 1, "other": START_UNKNOWN}


def test_no_more_threads_than_the_limit_hold_a_slot_whatever_the_order_they_finish() -> None:
    limit = ConcurrencyLimit(maximum=3, initial=3, adaptive=False)
    gates = [threading.Event() for _ in range(12)]
    inside, peak, lock = [0], [0], threading.Lock()

    def call(number: int) -> None:
        with limit.slot():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            assert gates[number].wait(10)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(call, n) for n in range(12)]
        for number in (5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6):  # released out of order
            gates[number].set()
        for future in futures:
            future.result(timeout=10)
    assert peak[0] == 3 and limit.in_flight == 0


def test_stop_lets_waiting_threads_go() -> None:
    limit = ConcurrencyLimit(maximum=1, initial=1)
    release, went = threading.Event(), threading.Event()

    def holder() -> None:
        with limit.slot():
            release.wait(10)

    def waiter() -> None:
        with limit.slot():
            went.set()

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for thread in threads:
        thread.start()
    limit.stop()
    assert went.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)


# -- whole runs against the simulator ---------------------------------------------------------


def _timeouts(result) -> int:
    return len(re.findall(r"failed \(timeout\)", (result.run_dir / "run.log").read_text()))


def test_a_one_slot_server_with_the_defaults_finishes_without_a_timeout_and_computes_each_answer_once(
    tmp_path, make_simulator,
):
    """llama.cpp with one slot, 16 calls in flight: those behind the first few used to time out in its
    queue and be sent again while it computed them (a retry storm)."""
    sim = make_simulator(slots=1, latency_s=0.15)
    sheet = simple_workbook(tmp_path / "wb", 3, 3)
    result = run(sheet, openai_config(sim, tmp_path / "out", request_timeout_s=1.2, steps="generate, refine"))
    assert result.exit_code == 0, [r.error for r in result.results]
    assert _timeouts(result) == 0
    stats = sim.stats()
    assert stats["computed"] == 18 and stats["dropped_in_queue"] == 0  # each answer once
    assert max(r.attempts for r in result.results) == 2  # two steps, one send each


def test_the_same_server_with_yesterdays_settings_times_out_in_its_queue(tmp_path, make_simulator):
    """A fixed limit of 16 and a deadline on the whole exchange (yesterday's only behaviour): the queue
    outlasts the timeout, and the server computes answers for clients that had given up."""
    sim = make_simulator(slots=1, latency_s=0.15)
    sheet = simple_workbook(tmp_path / "wb", 3, 3)
    result = run(sheet, openai_config(sim, tmp_path / "out", request_timeout_s=1.2, concurrency="fixed",
                                      streaming="probes", steps="generate, refine"))
    assert _timeouts(result) > 0
    assert sim.stats()["computed"] > 18  # answers computed for clients that had given up


@pytest.mark.parametrize("paced", [False, True], ids=["latency", "streamed-text"])
def test_a_parallel_server_gets_the_full_limit(tmp_path, make_simulator, paced):
    """The simulator shares this process (and its GIL) with the client: at 0.05 s an answer, sixteen calls'
    own CPU made latency climb as a queue would on a loaded 2-core machine. At 0.3 s it stays noise. With its
    text streamed over the 0.3 s, the limit sees sixteen answers generating at once."""
    sim = make_simulator(latency_s=0.3, stream_paced=paced)
    sheet = simple_workbook(tmp_path / "wb", 6, 10)
    result = run(sheet, openai_config(sim, tmp_path / "out", max_concurrent_requests=16))
    assert result.exit_code == 0
    assert sim.stats()["peak_in_flight"] == 16


def test_the_limit_a_run_ends_at_is_in_run_json_and_where_the_next_run_starts(tmp_path, make_simulator):
    """0.15 s an answer: at 0.05 s a loaded machine's own delays on the first calls hid the queue."""
    sim = make_simulator(slots=1, latency_s=0.15)
    sheet = simple_workbook(tmp_path / "wb", 3, 4)
    out = tmp_path / "out"
    first = run(sheet, openai_config(sim, out))
    concurrency = json.loads((first.run_dir / "run.json").read_text())["concurrency"]
    ended = concurrency["models"]["sim-small"]["limit"]
    assert concurrency["mode"] == "adaptive" and ended <= 2
    again = run(sheet, openai_config(sim, out, cache=False))
    history = json.loads((again.run_dir / "run.json").read_text())["concurrency"]["models"]["sim-small"]["history"]
    assert history[0][1] == ended  # not 4 again: the ledger remembered


def test_run_json_says_the_limit_was_fixed_when_it_was(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = simple_workbook(tmp_path / "wb", 1, 2)
    result = run(sheet, openai_config(sim, tmp_path / "out", concurrency="fixed", max_concurrent_requests=5))
    concurrency = json.loads((result.run_dir / "run.json").read_text())["concurrency"]
    assert concurrency["mode"] == "fixed" and concurrency["models"]["sim-small"]["limit"] == 5


def _shrinking_prompts(path, count: int, longest_words: int):
    """One chapter of `count` prompts, the first the longest and each later one shorter (as the example's gen
    chapter: a 1,600-token prompt first)."""
    tasks = [{"objective_id": "o", "task_id": f"t{n}",
              "prompt": f"Part {n}: " + "word " * max(4, longest_words * (count - 1 - n) // (count - 1))}
             for n in range(count)]
    return make_workbook(path, objectives=[{"objective_id": "o", "title": "O"}], tasks=tasks)


def test_a_one_slot_server_whose_prompts_shrink_is_not_taken_for_one_that_serves_more(tmp_path, make_simulator):
    """The field: llama.cpp on a CPU spends most of a call on its prompt. Later calls had shorter prompts, so
    latency per output token fell while 4 calls queued, and the latency rule read "no queue, grow": 4 -> 16,
    7 in flight on a one-slot server. What the server serves at once says 1 whatever the prompts."""
    sim = make_simulator(slots=1, latency_s=0.3, prompt_s_per_token=0.001, stream_paced=True)
    sheet = _shrinking_prompts(tmp_path / "wb", 12, 480)
    result = run(sheet, openai_config(sim, tmp_path / "out", max_tokens=60))
    assert result.exit_code == 0, [r.error for r in result.results]
    model = json.loads((result.run_dir / "run.json").read_text())["concurrency"]["models"]["sim-small"]
    assert model["highest"] <= START_UNKNOWN and model["limit"] <= 2, model
    assert all(limit <= 2 for _, limit in model["history"][1:]), model  # after the first window: one queued
    assert sim.stats()["peak_in_flight"] <= START_UNKNOWN
