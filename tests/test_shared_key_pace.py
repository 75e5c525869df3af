"""Runs on different machines share a key through the server's headers alone (issue 24, point 3).

A simulated clock drives `HeaderPacer`s against the simulator's own sliding-window limiter: no
threads, no sleeps, the same answer every time. Each run sends as fast as its pacer lets it.
"""

from __future__ import annotations

import heapq
import random

import pytest

from report_pipeline.providers.ratelimit import HeaderPacer, LearnedLimits
from report_pipeline.simulator._config import SimulatorConfig
from report_pipeline.simulator._ratelimit import RateLimiter

LIMIT = 40  # requests per 1 s window
LATENCY_S = 0.2


def _saturated_runs(runs: int, seconds: float = 30.0, *, seed: int = 7, recalled: bool = False) -> tuple[int, int, float]:
    """(calls the server saw, 429s, admitted calls per second over the whole span).

    `recalled`: each run starts from the limit a previous run stored (no probe: it paces from its first call).
    """
    config = SimulatorConfig(requests_per_window=LIMIT, window_s=1.0)
    server = RateLimiter()
    draw = random.Random(seed)
    now = [0.0]
    pacers = [HeaderPacer(clock=lambda: now[0], probe_burst=8) for _ in range(runs)]
    if recalled:
        for pacer in pacers:
            pacer.recall(LearnedLimits(float(LIMIT), 1.0, None, 0.0))
    hold = [0.0] * runs  # a 429's retry-after holds that run
    events: list[tuple[float, int, int, object]] = [(0.01 * n, n, n, None) for n in range(runs)]
    order = runs
    calls = rejected = admitted = 0
    while events:
        at, _, run, answer = heapq.heappop(events)
        now[0] = at
        pacer = pacers[run]
        if answer is not None:  # an answer arrives
            ticket, decision = answer
            if pacer.observe(decision.headers, ticket, admitted=decision.allowed):  # the probe's answer
                order += 1
                heapq.heappush(events, (at, order, run, None))  # wakes the run (`Throttle` wakes its threads)
            if not decision.allowed:
                hold[run] = max(hold[run], at + decision.retry_after_s)
                pacer.rate_limited()
            continue
        if at >= seconds:
            continue
        earliest = max(hold[run], pacer.blocked_until(at) or 0.0, pacer.earliest(at, 0))
        if earliest > at:  # the pace changed since this send was planned: plan again
            order += 1
            heapq.heappush(events, (earliest, order, run, None))
            continue
        ticket = pacer.commit(at, 0)
        arrives = at + draw.uniform(0.0, 0.01)  # threads wake and packets travel late, never early
        decision = server.admit(arrives, 0, config)
        calls += 1
        rejected += not decision.allowed
        admitted += decision.allowed
        order += 1
        heapq.heappush(events, (arrives + LATENCY_S, order, run, (ticket, decision)))
        order += 1
        heapq.heappush(events, (max(at + 1e-6, pacer.earliest(at, 0)), order, run, None))
    return calls, rejected, admitted / seconds


def test_two_runs_pacing_by_the_headers_alone_keep_the_keys_limit_together() -> None:
    calls, rejected, rate = _saturated_runs(2)
    assert rejected <= 0.02 * calls
    assert rate >= 0.90 * LIMIT


def test_three_runs_on_one_key_also_stay_under_it() -> None:
    calls, rejected, rate = _saturated_runs(3)
    assert rejected <= 0.02 * calls
    assert rate >= 0.90 * LIMIT


def test_one_run_alone_keeps_its_full_rate_and_gets_no_429() -> None:
    calls, rejected, rate = _saturated_runs(1)
    assert rejected == 0
    assert rate >= 0.97 * LIMIT


def test_two_runs_that_recall_the_limit_and_skip_the_probe_also_keep_it() -> None:
    calls, rejected, rate = _saturated_runs(2, recalled=True)
    assert rejected <= 0.02 * calls
    assert rate >= 0.90 * LIMIT


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_first_seconds_of_two_runs_started_together_stay_under_the_limit(seed: int) -> None:
    calls, rejected, rate = _saturated_runs(2, seconds=5.0, seed=seed)
    assert rejected <= 0.02 * calls
