"""How many calls a server really serves at once, found as the run goes, per endpoint and model.

llama.cpp and Ollama with one slot compute one answer at a time and queue the rest without
limit: sixteen calls in flight there means fifteen waiting, and those behind the first few
pass `request_timeout_s` in the queue, time out and are sent again while the server is busy
with them (a retry storm that computes answers nobody reads). A cloud API serves hundreds in
parallel. No fixed `max_concurrent_requests` suits both, so the limit moves:

    served     for a self-hosted server (hosts.py), from streamed answers (every call to one is streamed):
               an answer is generating from its first text to its last byte. A server that computes one
               answer at a time never has two generating at once, one with N slots has up to N,
               whatever the prompts' and answers' sizes. `served` is the most seen generating at once
               over a window (an overlap shorter than 0.1 s is a late read, not two at once; run.json's
               `served_at_once` is the most over the run). Latency
               could not tell: on a CPU a call's time is mostly its prompt's (1,100 tokens, ~20 s), and
               when later prompts were shorter the latency per output token fell while four calls
               queued; the latency rule read "no queue" and grew 4 -> 16 on a one-slot llama.cpp
    decide     each window (at least 4 answers, and half the limit's): `served` at three quarters of the
               limit or more (at least 2): grow, four-fold until the first shrink, then by one. Fewer,
               while more calls were in flight than `served` + 1 and a quarter (a call reading its
               prompt is in flight and not yet generating): set to `served` + 1, one queued so the
               server never idles. Otherwise hold: a run with few tasks ready keeps its limit. So a
               one-slot server settles at 2 and a parallel one goes to the maximum; a server with many
               slots whose prompts take most of a call (a CPU) shows fewer generating at once than it
               computes, and gets a lower limit than it could take: slower, never queued into timeouts
    latency    the rule for answers that are not streamed, or whose text came all at once (a window with
               fewer than half its answers generating 0.2 s or more): each answer's latency per output
               token (latency / (tokens + 32)); the baseline is the lowest window median seen (not the
               lowest answer: with latencies that vary by a third, a single lucky answer made every
               later window look queued and the limit fell to 1), or the first window's lowest answer
               when that window already shows a queue (a one-slot server's first answers take 1, 2, 3,
               4 times as long), let rise 0.5% a window held so a server that became slower is learned
               again. Under 1.3x the baseline: grow as above (a hold too ends the four-fold); over 1.8x (a queue: latency climbs,
               throughput does not): shrink to 70%; in between: hold. Only calls sent under the limit in
               force count: those sent before a change still show the old queue.
               A cloud API or a public router spreads calls over many machines, its latencies vary
               many-fold for reasons of their own, and there only the next two rules move the limit
    overload   a 429 or 503 halves the limit (once per window); a timeout halves it at once,
               before the call is sent again
    bounds     between 1 and `max_concurrent_requests`, which still caps every model together

It starts at 4 for a self-hosted server, at `max_concurrent_requests` elsewhere (OpenAI's and
Azure's rate limits are paced apart, ratelimit.py), and at what the ledger kept from the last
run against the endpoint and model. Anchors: Netflix's concurrency-limits (Vegas, Gradient2),
and TCP's slow start. `concurrency: fixed` keeps the limit at `max_concurrent_requests`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from .hosts import is_self_hosted

__all__ = ["Concurrency", "ConcurrencyLimit", "first_limit", "most_at_once"]

Mode = Literal["adaptive", "fixed"]

#: Where a model at an unknown endpoint starts (a local server may serve one at a time).
START_UNKNOWN = 4
_GROW_BELOW = 1.3
_SLOW_START_GROWTH = 4  # per window until the first sign of a queue: 4, 16, 64
_SHRINK_ABOVE = 1.8
_SHRINK_TO = 0.7
_FIRST_WINDOW_QUEUE = 2.5  # a one-slot server at 4: answers after 1, 2, 3, 4 service times, median 3
_TOKEN_PAD = 32
_BASELINE_DRIFT = 1.005
_WINDOW_AT_LEAST = 4  # answers: fewer and one slow answer reads as a queue
# Two answers seen generating at once for less than this were one after the other: the client reads the
# last bytes of one a little after the server sent them, and a one-slot server starts the next at once.
_OVERLAP_SLACK_S = 0.1
_SERVED_GROWS_AT = 0.75  # seen generating at once, as a share of the limit: the server may take more
# A call reading its prompt is in flight and not yet generating: in flight beyond served by more than a
# quarter of served (and one queued) is a queue, less may be prompts being read.
_QUEUE_NOISE = 4


def first_limit(base_url: str | None, maximum: int) -> int:
    """The limit before anything is known: a few for a self-hosted server, the maximum elsewhere."""
    return min(maximum, START_UNKNOWN) if is_self_hosted(base_url) else maximum


def most_at_once(spans: Iterable[tuple[float, float]], *, since: float = -math.inf, slack: float = 0.0) -> int:
    """The most (began, ended) spans that cover one moment at or after `since`. Each loses `slack` at its start,
    so two that touch only for the time a client takes to read one's last bytes count as one after the other."""
    events: list[tuple[float, int]] = []
    for began, ended in spans:
        began = max(began + slack, since)
        if ended > began:
            events += [(began, 1), (ended, -1)]
    most = current = 0
    for _, step in sorted(events):  # at one moment an end (-1) comes before a beginning
        current += step
        most = max(most, current)
    return most


@dataclass
class _Stats:
    lowest: int
    highest: int
    changes: int = 0
    timeouts: int = 0
    overloads: int = 0
    served_at_once: int = 0  # the most answers seen generating at once (streamed calls)
    history: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, limit)


class ConcurrencyLimit:
    """The in-flight limit of one model at one endpoint (thread-safe). `by_latency`: a self-hosted server's,
    moved by its answers (what it generates at once, else latency), not only by 429s, 503s and timeouts."""

    def __init__(self, *, maximum: int, initial: int, adaptive: bool = True, by_latency: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if maximum < 1:
            raise ValueError("maximum must be >= 1")
        self.maximum = maximum
        self.adaptive = adaptive
        self.by_latency = by_latency
        self._limit = max(1, min(maximum, initial)) if adaptive else maximum
        self._clock = clock
        self._started = clock()
        self._condition = threading.Condition()
        self._in_flight = 0
        self._peak = 0
        self._stopped = False
        self._slow_start = True
        self._baseline: float | None = None
        self._epoch = 0  # changes of the limit so far: a call knows the limit it was sent under
        self._window: list[float] = []
        self._overloaded_in_window = False
        # what the server serves at once, seen from streamed answers (tracked for self-hosted servers only)
        self._generating: dict[int, float] = {}  # answers generating now: key -> when their text began
        self._generated: list[tuple[float, float]] = []  # (text began, last byte) of answers ended this window
        self._keys = 0
        self._window_began = self._started
        self._pushed = 0  # the most calls in flight this window
        self._stats = _Stats(lowest=self._limit, highest=self._limit, history=[(0.0, self._limit)])

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def epoch(self) -> int:
        """How many times the limit has changed: pass the value at sending to `record`."""
        return self._epoch

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def peak(self) -> int:
        return self._peak

    @contextmanager
    def slot(self) -> Iterator[int]:
        """Wait until fewer than `limit` calls of this model are in flight, then hold one; yields the epoch."""
        with self._condition:
            while self._in_flight >= self._limit and not self._stopped:
                self._condition.wait()
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._pushed = max(self._pushed, self._in_flight)
            epoch = self._epoch
        try:
            yield epoch
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify()

    @contextmanager
    def generating(self) -> Iterator[Callable[[], None]]:
        """Around reading a streamed answer: call the yielded function at its first text; the answer counts
        as generating from then until the block ends (its last byte, or its failure)."""
        keys: list[int] = []

        def began() -> None:
            if not keys:
                keys.append(self.answer_began())

        try:
            yield began
        finally:
            if keys:
                self.answer_ended(keys[0])

    def answer_began(self) -> int:
        """An answer's first text came: the server is generating it (not queueing it) until `answer_ended`."""
        if not (self.adaptive and self.by_latency):
            return -1
        with self._condition:
            self._keys += 1
            self._generating[self._keys] = self._clock()
            return self._keys

    def answer_ended(self, key: int) -> None:
        """The answer that `answer_began` gave `key` to has ended (its last byte, or a failure)."""
        with self._condition:
            began = self._generating.pop(key, None)
            if began is not None:
                self._generated.append((began, self._clock()))

    def record(self, latency_s: float, tokens: int, epoch: int | None = None) -> None:
        """A good answer: its latency (sending to the last byte), its output tokens, and the epoch it was
        sent in (from `slot()`; None: the current one)."""
        if not (self.adaptive and self.by_latency):
            return
        sample = max(latency_s, 0.0) / (max(tokens, 0) + _TOKEN_PAD)
        with self._condition:
            if epoch is not None and epoch != self._epoch:
                return  # sent under another limit: it says nothing of this one
            self._window.append(sample)
            if len(self._window) >= max(_WINDOW_AT_LEAST, math.ceil(self._limit / 2)):
                self._decide()

    def overloaded(self) -> None:
        """A 429 or 503: the server (or its gateway) says it has too much: halve, once per window."""
        if not self.adaptive:
            return
        with self._condition:
            self._stats.overloads += 1
            if not self._overloaded_in_window:
                self._overloaded_in_window = True
                self._set(max(1, self._limit // 2))

    def timed_out(self) -> None:
        """A call timed out: halve at once, so the retry does not join the same queue."""
        if not self.adaptive:
            return
        with self._condition:
            self._stats.timeouts += 1
            self._set(max(1, self._limit // 2))

    def stop(self) -> None:
        """Let every waiting thread go (the run is stopping: the throttle refuses what they would send)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    def summary(self) -> dict[str, Any]:
        with self._condition:
            stats = self._stats
            return {
                "mode": "adaptive" if self.adaptive else "fixed", "limit": self._limit, "maximum": self.maximum,
                "lowest": stats.lowest, "highest": stats.highest, "changes": stats.changes,
                "timeouts": stats.timeouts, "overloads": stats.overloads, "peak_in_flight": self._peak,
                "served_at_once": stats.served_at_once,
                "history": [[round(t, 2), limit] for t, limit in stats.history[-50:]],
            }

    # -- deciding (under the condition's lock) ------------------------------------

    def _decide(self) -> None:
        window, self._window = sorted(self._window), []
        self._overloaded_in_window = False
        now = self._clock()
        spans = [*self._generated, *((began, now) for began in self._generating.values())]
        served = most_at_once(spans, since=self._window_began, slack=_OVERLAP_SLACK_S)
        streamed = sum(1 for began, ended in self._generated if ended - began >= 2 * _OVERLAP_SLACK_S)
        pushed = self._pushed
        self._generated, self._window_began, self._pushed = [], now, self._in_flight
        if streamed * 2 >= len(window):
            self._stats.served_at_once = max(self._stats.served_at_once, served)
            self._decide_by_parallelism(max(served, 1), pushed)
        else:
            self._decide_by_latency(window)

    def _decide_by_parallelism(self, served: int, pushed: int) -> None:
        """Hold the limit at what the server served at once, plus one queued so it never idles; grow while
        it served about as many as the limit let it."""
        if served >= max(2, math.ceil(self._limit * _SERVED_GROWS_AT)):
            grown = self._limit * _SLOW_START_GROWTH if self._slow_start else self._limit + 1
            self._set(min(self.maximum, max(grown, served + 1)))
        elif served + 1 > self._limit or pushed > served + 1 + served // _QUEUE_NOISE:  # more in flight: a queue
            self._set(min(self.maximum, served + 1))

    def _decide_by_latency(self, window: list[float]) -> None:
        """Unstreamed answers: a window's median latency per output token against the baseline."""
        median = window[len(window) // 2]
        if self._baseline is None:  # the first window: its first answer met an empty queue
            baseline = window[0] if median > window[0] * _FIRST_WINDOW_QUEUE else median
        else:
            baseline = self._baseline
        self._baseline = min(baseline, median)
        ratio = median / baseline if baseline > 0 else 1.0
        if ratio < _GROW_BELOW:
            grown = self._limit * _SLOW_START_GROWTH if self._slow_start else self._limit + 1
            self._set(min(self.maximum, grown))
        elif ratio > _SHRINK_ABOVE:
            self._slow_start = False
            self._set(max(1, int(self._limit * _SHRINK_TO)))
        else:
            self._slow_start = False
            self._baseline = baseline * _BASELINE_DRIFT

    def _set(self, limit: int) -> None:
        if limit == self._limit:
            return
        if limit < self._limit:
            self._slow_start = False
        self._limit = limit
        self._epoch += 1
        self._window = []
        stats = self._stats
        stats.changes += 1
        stats.lowest, stats.highest = min(stats.lowest, limit), max(stats.highest, limit)
        stats.history.append((self._clock() - self._started, limit))
        self._condition.notify_all()


class Concurrency:
    """Every model's limit at one endpoint (each under `max_concurrent_requests`)."""

    def __init__(self, *, maximum: int, base_url: str | None, mode: Mode = "adaptive",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.mode = mode
        self._base_url = base_url
        self._clock = clock
        self._lock = threading.Lock()
        self._limits: dict[str, ConcurrencyLimit] = {}
        self._recalled: dict[str, int] = {}

    def for_model(self, model: str) -> ConcurrencyLimit:
        with self._lock:
            limit = self._limits.get(model)
            if limit is None:
                initial = self._recalled.get(model) or first_limit(self._base_url, self.maximum)
                limit = self._limits[model] = ConcurrencyLimit(
                    maximum=self.maximum, initial=initial, adaptive=self.mode == "adaptive",
                    by_latency=is_self_hosted(self._base_url), clock=self._clock)
            return limit

    def recall(self, limits: Mapping[str, int]) -> None:
        """Limits an earlier run ended at: where each model starts."""
        with self._lock:
            self._recalled.update({model: int(value) for model, value in limits.items() if value >= 1})

    def learned(self) -> dict[str, int]:
        """Each adaptive model's limit at the end of the run, for the ledger."""
        if self.mode != "adaptive":
            return {}
        with self._lock:
            return {model: limit.limit for model, limit in self._limits.items()}

    def stop(self) -> None:
        with self._lock:
            limits = list(self._limits.values())
        for limit in limits:
            limit.stop()

    def summary(self) -> dict[str, Any]:
        """run.json's `concurrency`: the mode and each model's limits over the run."""
        with self._lock:
            limits = dict(self._limits)
        return {"mode": self.mode, "max_concurrent_requests": self.maximum,
                "models": {model: limit.summary() for model, limit in sorted(limits.items())}}

    def current(self) -> str:
        """`4` or `gpt-5-mini 4, o4-mini 2`: the limits now, for a progress line."""
        with self._lock:
            limits = dict(self._limits)
        if len(limits) == 1:
            return str(next(iter(limits.values())).limit)
        return ", ".join(f"{model} {limit.limit}" for model, limit in sorted(limits.items())) or "-"
