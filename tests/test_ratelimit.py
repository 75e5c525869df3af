"""Pacing pieces on a fake clock: every wait is a number we can assert, none is a real sleep."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from report_pipeline.bench import paced_bound
from report_pipeline.providers.ratelimit import (
    CoolDown,
    Gcra,
    HeaderPacer,
    LearnedLimits,
    RateLimiter,
    Sleeper,
    Stopped,
    Throttle,
    parse_reset,
)


class FakeClock:
    """A clock and a sleeper in one: sleeping moves time forward, instantly.

    `on_sleep` lets a test play "another thread" at the moment this one sleeps.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.interrupted = False
        self.epoch = 0
        self.on_sleep: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, epoch: int | None = None) -> None:
        self.sleeps.append(seconds)
        hook, self.on_sleep = self.on_sleep, None
        if hook is not None:
            hook()
        self.now += max(0.0, seconds)

    def wake_all(self) -> None:
        self.epoch += 1

    def interrupt(self) -> None:
        self.interrupted = True


LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "40",
    "x-ratelimit-remaining-requests": "39",
    "x-ratelimit-reset-requests": "1s",
}


# -- parse_reset ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1s", 1.0),
        ("120ms", 0.12),
        ("6m0s", 360.0),
        ("0.5s", 0.5),
        ("1h2m3.5s", 3723.5),
        ("20ms", 0.02),
        ("0s", 0.0),
        ("2.5", 2.5),  # a bare number is seconds
        (" 1S ", 1.0),
        ("", None),
        ("soon", None),
        ("1s later", None),
        ("-1s", None),
        ("1750000000", None),  # an epoch time is not a window
        (None, None),
    ],
)
def test_parse_reset_table(value: str | None, expected: float | None) -> None:
    result = parse_reset(value)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


# -- Gcra and RateLimiter -----------------------------------------------------------


def _book(gcra: Gcra, now: float, count: int, units: float = 1.0) -> list[float]:
    times = []
    for _ in range(count):
        at = gcra.earliest(now)
        gcra.commit(at, units)
        times.append(at)
    return times


def test_gcra_without_burst_spaces_sends_evenly() -> None:
    assert _book(Gcra(rate=10.0), 0.0, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_gcra_burst_goes_at_once_then_the_rate_holds() -> None:
    assert _book(Gcra(rate=10.0, burst=3), 0.0, 5) == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_gcra_send_larger_than_burst_is_paid_back_by_waiting() -> None:
    gcra = Gcra(rate=100.0)  # 100 tokens/s
    gcra.commit(gcra.earliest(0.0), 300.0)
    assert gcra.earliest(0.0) == pytest.approx(3.0)


def test_rate_limiter_without_limits_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleeper=clock)
    assert not limiter.enabled
    assert [limiter.acquire(1000) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_rate_limiter_60_rpm_sends_one_per_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock, sleeper=clock)
    waits = [limiter.acquire(10) for _ in range(4)]
    assert waits == pytest.approx([0.0, 1.0, 1.0, 1.0])


def test_rate_limiter_tokens_per_minute_waits_for_big_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=6000, clock=clock, sleeper=clock)  # burst: 1 s worth, 100 tokens
    assert limiter.acquire(500) == 0.0  # a full bucket lets one big call through...
    steady_rate = (6000 - 99) / 60  # tokens/s, lowered so burst + a minute stays within 6000
    assert limiter.acquire(10) == pytest.approx((500 - 99) / steady_rate)  # ...and the next pays for it


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=5000),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=300),
)
def test_rate_limiter_never_exceeds_the_limit_in_any_minute(rpm: int, gaps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(requests_per_minute=rpm, clock=clock, sleeper=clock)
    sends = []
    for gap in gaps:  # callers arrive whenever they like, the limiter decides when they go
        clock.now += gap
        sends.append(limiter.reserve(1))
    sends.sort()
    start = 0
    for end, at in enumerate(sends):
        while sends[start] <= at - 60.0 + 1e-9:  # half-open window (at - 60, at], float-tolerant
            start += 1
        assert end - start + 1 <= rpm


# -- CoolDown ---------------------------------------------------------------------


def test_cool_down_makes_every_later_caller_wait_until_it_passes() -> None:
    clock = FakeClock()
    cool_down = CoolDown(clock=clock, sleeper=clock)
    cool_down.trigger(5.0)  # one thread got a 429
    assert cool_down.wait() == pytest.approx(5.0)  # another thread, before its next send
    assert cool_down.wait() == 0.0  # passed


def test_cool_down_is_only_ever_extended() -> None:
    clock = FakeClock()
    cool_down = CoolDown(clock=clock, sleeper=clock)
    cool_down.trigger(5.0)
    cool_down.trigger(1.0)
    assert cool_down.remaining() == pytest.approx(5.0)
    cool_down.trigger(8.0)
    assert cool_down.remaining() == pytest.approx(8.0)
    assert cool_down.triggers == 3


def test_cool_down_wait_sees_an_extension_made_while_sleeping() -> None:
    clock = FakeClock()
    cool_down = CoolDown(clock=clock, sleeper=clock)
    cool_down.trigger(2.0)
    clock.on_sleep = lambda: cool_down.trigger(6.0)  # another 429 arrives meanwhile
    assert cool_down.wait() == pytest.approx(6.0)


def test_cool_down_wait_stops_when_interrupted() -> None:
    clock = FakeClock()
    cool_down = CoolDown(clock=clock, sleeper=clock)
    cool_down.trigger(60.0)
    clock.interrupt()
    with pytest.raises(Stopped):
        cool_down.wait()


# -- HeaderPacer ------------------------------------------------------------------


def test_pacer_learns_limit_and_window_and_paces_just_under_them() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, headroom=0.03, probe_timeout_s=0)
    pacer.observe(LIMIT_HEADERS)
    assert pacer.requests.limit == 40
    assert pacer.requests.window == 1.0
    assert pacer.requests.rate == pytest.approx(38.8)
    times = []
    for _ in range(3):
        at = pacer.earliest(clock.now, 10)
        pacer.commit(at, 10)
        times.append(at - 1000.0)
    assert times == pytest.approx([0.0, 1 / 38.8, 2 / 38.8])


def test_pacer_window_is_the_longest_reset_seen() -> None:
    pacer = HeaderPacer(probe_timeout_s=0)
    for reset in ("250ms", "1s", "40ms"):
        pacer.observe({**LIMIT_HEADERS, "x-ratelimit-reset-requests": reset})
    assert pacer.requests.window == 1.0


def test_pacer_without_limit_header_learns_the_most_ever_free() -> None:
    pacer = HeaderPacer(probe_timeout_s=0)
    pacer.observe({"x-ratelimit-remaining-requests": "9", "x-ratelimit-reset-requests": "1s"})
    pacer.observe({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"})
    assert pacer.requests.limit == 10  # 9 left after this call: at least 10
    # a 429 used nothing: its "remaining" says nothing about the limit
    pacer.observe({"x-ratelimit-remaining-requests": "50", "x-ratelimit-reset-requests": "1s"}, admitted=False)
    assert pacer.requests.limit == 10


def test_pacer_paces_tokens_by_their_own_limit_leaving_room_for_one_call() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, headroom=0.03, probe_timeout_s=0)
    pacer.observe(
        {"x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "9000", "x-ratelimit-reset-tokens": "1s"}
    )
    assert pacer.tokens.rate == pytest.approx(9700)  # small calls so far: the headroom is the margin
    pacer.commit(pacer.earliest(clock.now, 500), 500)
    # calls of 500 fit 20 times in the window; pace 19 of them so one bunched call still fits
    assert pacer.tokens.rate == pytest.approx(9500)
    assert pacer.earliest(clock.now, 500) == pytest.approx(clock.now + 500 / 9500)


def test_pacer_leaves_servers_without_headers_alone() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=0)
    pacer.observe({"content-type": "application/json"})  # llama.cpp sends no x-ratelimit-*
    assert not pacer.pacing
    for _ in range(5):
        assert pacer.earliest(clock.now, 100) == clock.now
        pacer.commit(clock.now, 100)


def test_pacer_paces_requests_at_the_limit_over_the_window_widened_by_the_jitter() -> None:
    pacer = HeaderPacer(headroom=0.01, jitter_s=0.015, probe_timeout_s=0)
    pacer.observe(LIMIT_HEADERS)
    assert pacer.requests.rate == pytest.approx(40 / 1.015)  # 39.4/s: timing, not 1 % headroom, binds
    long_window = HeaderPacer(headroom=0.01, jitter_s=0.015, probe_timeout_s=0)
    long_window.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-reset-requests": "60s"})
    assert long_window.requests.rate == pytest.approx(0.99 * 600 / 60)  # here the headroom does


def test_pacer_reads_rate_limit_headers_whatever_their_case() -> None:
    pacer = HeaderPacer(probe_timeout_s=0)
    pacer.observe({"X-RateLimit-Limit-Requests": "40", "X-RateLimit-Reset-Requests": "1s", "Other": "x"})
    assert (pacer.requests.limit, pacer.requests.window) == (40, 1.0)


def test_probe_holds_the_others_until_its_answer() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=1)
    assert pacer.blocked_until(clock.now) is None
    ticket = pacer.commit(clock.now, 10)  # the probe goes
    assert pacer.blocked_until(clock.now) == pytest.approx(clock.now + 2.0)
    assert pacer.observe(LIMIT_HEADERS, ticket) is True  # its answer ends the probe...
    assert pacer.blocked_until(clock.now) is None
    assert pacer.observe(LIMIT_HEADERS, ticket) is False  # ...once


def test_probe_burst_sends_its_calls_at_once_then_holds_the_rest() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=3)
    for _ in range(3):
        assert pacer.blocked_until(clock.now) is None
        pacer.commit(clock.now, 10)
    assert pacer.blocked_until(clock.now) == pytest.approx(clock.now + 2.0)


def test_probe_burst_is_paid_for_once_the_pace_is_known() -> None:
    """8 calls at t=0, the limit learned at t=0.05: the next waits until 8 paced calls would have gone."""
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, headroom=0.01, jitter_s=0.015, probe_timeout_s=2.0, probe_burst=8)
    start = clock.now
    tickets = [pacer.commit(clock.now, 10) for _ in range(8)]
    clock.now += 0.05  # a fast server: the answer is back long before 8 paced calls' worth
    pacer.observe(LIMIT_HEADERS, tickets[0])
    rate = pacer.requests.rate
    assert pacer.earliest(clock.now, 10) == pytest.approx(start + 8 / rate)


def test_probe_burst_charge_never_holds_the_next_call_beyond_a_window() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=0)
    for _ in range(500):  # a server that sent no limits for a while...
        pacer.commit(clock.now, 10)
    pacer.observe(LIMIT_HEADERS)  # ...then does: 500 calls would take 12 s at 40/s
    assert pacer.earliest(clock.now, 10) == pytest.approx(clock.now + 1.0)


def test_probe_gives_up_waiting_after_its_timeout() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=1)
    pacer.commit(clock.now, 10)
    clock.now += 2.0
    assert pacer.blocked_until(clock.now) is None


def test_a_429_slows_the_pace_once_per_window_and_successes_restore_it() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, headroom=0.03, probe_timeout_s=0)
    pacer.observe(LIMIT_HEADERS)
    pacer.rate_limited()
    slowed = pacer.requests.rate
    assert slowed == pytest.approx(38.8 * 0.9)
    pacer.rate_limited()  # same burst, same window: one signal
    assert pacer.requests.rate == pytest.approx(slowed)
    for _ in range(200):
        pacer.observe(LIMIT_HEADERS)
    assert pacer.requests.rate == pytest.approx(38.8)  # never above the ceiling


# -- Throttle ---------------------------------------------------------------------


def _throttle(clock: FakeClock, **limits: float) -> Throttle:
    return Throttle(
        limiter=RateLimiter(**limits, clock=clock, sleeper=clock),
        pacer=HeaderPacer(clock=clock, probe_timeout_s=0),
        clock=clock,
        sleeper=clock,
    )


def test_throttle_meets_the_stricter_of_configured_and_learned_limits() -> None:
    clock = FakeClock()
    throttle = _throttle(clock, requests_per_minute=60)  # 1/s configured
    throttle.observe(LIMIT_HEADERS)  # 38.8/s learned
    sends = [throttle.acquire(10).at for _ in range(3)]
    assert [at - sends[0] for at in sends] == pytest.approx([0.0, 1.0, 2.0])


def test_throttle_waits_out_a_cool_down_before_booking() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    throttle.rate_limited(3.0)
    ticket = throttle.acquire(10)
    assert ticket.at == pytest.approx(1003.0)


def test_throttle_rebooks_when_a_429_arrives_while_it_waits() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    throttle.observe(LIMIT_HEADERS)
    throttle.acquire(10)  # booked now; the next one must wait 1/38.8 s
    clock.on_sleep = lambda: throttle.rate_limited(5.0)  # another thread's 429, mid-wait
    ticket = throttle.acquire(10)
    assert ticket.at >= 1005.0  # not the stale booking from before the 429


def test_throttle_stop_refuses_every_waiting_and_later_send() -> None:
    clock = FakeClock()
    throttle = _throttle(clock)
    throttle.rate_limited(60.0)
    clock.on_sleep = throttle.stop
    with pytest.raises(Stopped):
        throttle.acquire(10)
    with pytest.raises(Stopped):
        throttle.acquire(10)


def test_probe_answer_wakes_real_waiting_threads() -> None:
    throttle = Throttle(pacer=HeaderPacer(probe_timeout_s=30.0, probe_burst=1))  # real clock and Sleeper
    probe = throttle.acquire(10)
    passed = threading.Semaphore(0)

    def later_call() -> None:
        throttle.acquire(10)
        passed.release()

    threads = [threading.Thread(target=later_call) for _ in range(4)]
    for thread in threads:
        thread.start()
    throttle.observe({}, probe)  # without it they would wait the full 30 s
    for _ in threads:
        assert passed.acquire(timeout=10)
    for thread in threads:
        thread.join(timeout=5)


def test_sleeper_interrupt_ends_a_long_sleep_in_another_thread() -> None:
    sleeper = Sleeper()
    done = threading.Event()

    def sleep_long() -> None:
        sleeper.sleep(60.0)
        done.set()

    thread = threading.Thread(target=sleep_long)
    thread.start()
    sleeper.interrupt()
    assert done.wait(timeout=10)
    thread.join(timeout=5)


# -- the yardstick of benchmarks/ratelimit.py ---------------------------------------


@pytest.mark.parametrize(
    ("calls", "latency_s", "limit", "bound"),
    [
        (300, 0.2, 40, 300 / (299 / 40 + 0.2)),  # 39.1/s: 97.7 % of the limit at best
        (300, 0.2, 80, 300 / (299 / 80 + 0.2)),  # 76.2/s: the last answer weighs more in a short run
        (300, 0.0, 40, 300 / (299 / 40)),  # no latency: only the fence-post call above the limit
        (1, 0.2, 40, 40.0),
    ],
)
def test_paced_bound_is_the_rate_exact_even_pacing_would_show(
    calls: int, latency_s: float, limit: float, bound: float
) -> None:
    assert paced_bound(calls, latency_s, limit) == pytest.approx(bound)


def test_learned_limits_are_none_until_an_answer_and_then_what_the_headers_said() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=1)
    ticket = pacer.commit(clock.now, 10)
    pacer.observe({}, ticket)  # a dropped connection: no answer, nothing learned
    assert pacer.learned() is None
    pacer.observe(LIMIT_HEADERS, ticket)
    learned = pacer.learned()
    assert learned is not None and learned.paced
    assert (learned.requests_limit, learned.requests_window_s) == (40, 1.0)


def test_an_endpoint_without_limit_headers_is_learned_as_such() -> None:
    pacer = HeaderPacer(probe_timeout_s=2.0, probe_burst=1)
    pacer.observe({"content-type": "application/json"}, pacer.commit(0.0, 10))
    learned = pacer.learned()
    assert learned == LearnedLimits() and not learned.paced


def test_recalled_limits_pace_from_the_first_call_with_no_probe() -> None:
    clock = FakeClock()
    learner = HeaderPacer(clock=clock, probe_timeout_s=0)
    learner.observe(LIMIT_HEADERS, learner.commit(clock.now, 10))
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=1)
    pacer.recall(learner.learned())
    assert pacer.requests.rate == pytest.approx(learner.requests.rate)
    tickets = [pacer.commit(pacer.earliest(clock.now, 10), 10) for _ in range(3)]
    assert pacer.blocked_until(clock.now) is None  # no probe to wait for
    gaps = [b.at - a.at for a, b in zip(tickets, tickets[1:])]
    assert gaps == pytest.approx([1 / pacer.requests.rate] * 2)  # paced at once, not a burst


def test_recalling_an_endpoint_without_headers_skips_the_probe_and_paces_nothing() -> None:
    clock = FakeClock()
    pacer = HeaderPacer(clock=clock, probe_timeout_s=2.0, probe_burst=1)
    pacer.recall(LearnedLimits())
    for _ in range(20):
        assert pacer.blocked_until(clock.now) is None
        assert pacer.earliest(clock.now, 10) == clock.now
        pacer.commit(clock.now, 10)
