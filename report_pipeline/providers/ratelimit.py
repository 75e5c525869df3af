"""Pacing shared by every worker thread, so the run approaches a server's limits without crossing them.

The pieces, each thread-safe and each taking its clock and sleeper as arguments
(tests drive them with a fake clock, no real sleeps):

    RateLimiter     the run config's requests_per_minute / tokens_per_minute (GCRA)
    CoolDown        after a 429, *every* thread waits out the server's retry-after
    HeaderPacer     learns the server's limit from `x-ratelimit-*` headers and paces at it
    Throttle        the one gate a call passes just before it is sent: all of the above
                    under one lock, so a reserved send time satisfies every limit at once

Why pace on a learned rate rather than on `remaining`: servers disagree on what
`x-ratelimit-reset-*` means. OpenAI reports the time until its bucket is full
again; our simulator (a sliding-window log) the time until its oldest entry
expires. Either way `remaining` is stale by the time the answer arrives, since
the calls in flight have used some of it and the window has meanwhile freed
some. What both agree on is the long-run rate, `limit / window`, with `window`
the longest `reset` seen (the reset of the first call into an empty window, or
of a drained bucket). Sending evenly at that rate keeps every window at or
below its limit whatever the server's bookkeeping; the margin we leave is for
timing, not a share of the limit: sends that leave up to `jitter_s` late or
early can put `rate * (window + jitter_s)` of them in one window, so we pace at
`limit / (window + jitter_s)` (39.4/s for 40 per second), and never above
`1 - headroom` of the limit (for long windows, where a server may enforce the
limit over shorter slices). A 429 that still happens lowers the pace
(multiplicatively, at most once per window) and successes raise it back
slowly.

Other clients on the key (another run, on this machine or another) are seen in
the server's count, not only in 429s: an answer's `limit - remaining` is what
the whole key had used when the server admitted that call, and what *this*
run sent in the window up to that call's send time is known here, so the
difference is the others' use. Smoothed over answers, it is taken off the
limit: we pace at `(limit - others) / (window + jitter_s)`. A run alone sees
others near 0 and keeps its full rate; two runs each see the other and settle
at about half. For a sliding-window log (the simulator) the estimate is the
others' count in the window; for a token bucket (OpenAI) `limit - remaining`
is at most what the key used in the last window, so the estimate is never
more than the others' use and never slows a run alone. Only requests, whose
units (1 a call) the server counts as we book them; our token counts are
estimates, and their error would read as another client.

The first few calls (`probe_burst`, 8) go at once and the rest wait for the
first answer (the *probe*), so the rate is known before the other threads
start: without it, N threads against a limit of L would open the run with
N - L rejections; with it, at most `probe_burst - L`, and only when L is that
small. The burst is booked against the pace learned afterwards (as if those
calls had been paced from the first), so no window holds more than the limit;
it only keeps the probe's round trip from being dead time, which for 300 calls
at 40/s with 0.2 s latency was 2.5 % of the run. The provider streams the probe
burst (`Ticket.probe`): a streamed answer's headers come with its first token,
so the others wait a time to first token, not a whole answer's latency.

The probe is paid once per endpoint, not once per run: a run ends by keeping
what it learned (`learned()`, stored in the ledger's `endpoint_limits`), and the
next run against the same endpoint `recall()`s it and paces from its first call,
or, for an endpoint that sends no limit headers, sends its first calls at once.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CoolDown",
    "Gcra",
    "HeaderPacer",
    "LearnedLimits",
    "RateLimiter",
    "ServerLimit",
    "Sleeper",
    "SleeperLike",
    "Stopped",
    "Throttle",
    "Ticket",
    "parse_reset",
    "sleep_for",
]

Clock = Callable[[], float]

# Never pace above this share of a learned server limit (binds for long windows,
# which servers may enforce over shorter slices).
DEFAULT_HEADROOM = 0.01
# How late or early a send may reach the server against its booked time (thread
# wake-up, GIL hand-over, network reordering): the window is widened by this.
DEFAULT_JITTER_S = 0.015
# Calls sent before the first answer tells us the limit.
DEFAULT_PROBE_BURST = 8
# How long the other threads wait for the probe's answer before going anyway.
DEFAULT_PROBE_TIMEOUT_S = 2.0
# A 429 while pacing multiplies the pace by this (once per window)...
_DECREASE = 0.9
# ...never below this share of the learned limit...
_MIN_FACTOR = 0.3
# ...and each admitted call gives back this much of it.
_RECOVERY = 0.003
# Each admitted answer moves the estimate of the other clients' use this far
# towards what it shows (an EWMA over answers)...
_OTHERS_WEIGHT = 0.3
# ...and they are never taken to leave us less than this share of the limit.
_MIN_SHARE = 0.05
# A reset longer than a day is not a rate window (some servers send epoch times).
_MAX_RESET_S = 86_400.0


class Stopped(Exception):
    """The throttle was stopped (auth failure, close, Ctrl-C): nothing more may be sent."""


class SleeperLike(Protocol):
    """What the waiting code needs from a sleeper; tests pass a fake that advances a clock."""

    @property
    def interrupted(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def sleep(self, seconds: float, epoch: int | None = None) -> None: ...

    def wake_all(self) -> None: ...

    def interrupt(self) -> None: ...


class Sleeper:
    """A sleep every waiting thread shares, which can be cut short.

    `wake_all()` ends the current sleeps early so sleepers re-check what they are
    waiting for (the probe answered); `interrupt()` also makes every later sleep
    return at once, so a stopping run does not sit out a 60 s cool-down.

    To not miss a wake-up that lands between checking a condition and going to
    sleep, read `epoch` before the check and pass it to `sleep`: a wake-up since
    then makes the sleep return at once.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._interrupted = False

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    @property
    def epoch(self) -> int:
        return self._generation

    def sleep(self, seconds: float, epoch: int | None = None) -> None:
        if seconds <= 0:
            return
        with self._condition:
            since = self._generation if epoch is None else epoch
            self._condition.wait_for(
                lambda: self._interrupted or self._generation != since, timeout=seconds
            )

    def wake_all(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def interrupt(self) -> None:
        with self._condition:
            self._interrupted = True
            self._condition.notify_all()


def sleep_for(seconds: float, clock: Clock, sleeper: SleeperLike) -> None:
    """Sleep the whole of `seconds` (a wake-up only re-checks), raising Stopped if interrupted."""
    _sleep_until(clock() + seconds, clock, sleeper)


def _sleep_until(deadline: float, clock: Clock, sleeper: SleeperLike) -> None:
    """Sleep until `clock()` reaches `deadline`, raising Stopped if interrupted."""
    while True:
        if sleeper.interrupted:
            raise Stopped("stopped while waiting to send")
        left = deadline - clock()
        if left <= 0:
            return
        sleeper.sleep(left)


# ---------------------------------------------------------------------------
# In-flight limit
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# GCRA and the configured limits
# ---------------------------------------------------------------------------


class Gcra:
    """Generic cell rate algorithm: `rate` units per second, up to `burst` units at once.

    It keeps one number, the theoretical arrival time (`tat`): when the bucket
    would be empty again. A send of n units may go once `tat - tolerance <= now`
    and moves `tat` on by n / rate, so over any interval T at most
    `burst + rate * T` units go, and a send larger than the burst is allowed
    (when the bucket is full) and paid back by waiting. Not thread-safe: its
    owner holds the lock. Reservations may be in the future: `earliest` says
    when, `commit` books it.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self._tat = -math.inf
        self.burst = max(1.0, burst)
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        self._rate = rate
        self._interval = 1.0 / rate
        self._tolerance = (self.burst - 1.0) * self._interval

    def earliest(self, now: float) -> float:
        """The first time at or after `now` when the next send conforms."""
        return max(now, self._tat - self._tolerance)

    def commit(self, at: float, units: float = 1.0) -> None:
        """Book a send of `units` at time `at` (which `earliest` allowed)."""
        self._tat = max(self._tat, at) + units * self._interval

    def limit_tat(self, latest: float) -> None:
        """Forgive bookings beyond `latest`: the next send may go then at the latest."""
        self._tat = min(self._tat, latest)


def _per_minute(limit: float | None, burst_s: float) -> Gcra | None:
    """A GCRA that never puts more than `limit` units in any 60 s window.

    The burst is `burst_s` worth of the limit (at least 1 unit); the steady rate is
    lowered by the burst so a burst followed by a full minute at the steady rate
    still adds up to `limit`. None or 0 means no limit.
    """
    if limit is None or limit <= 0:
        return None
    burst = max(1.0, math.floor(limit * burst_s / 60.0))
    return Gcra(rate=(limit - (burst - 1.0)) / 60.0, burst=burst)


class RateLimiter:
    """The run config's `requests_per_minute` and `tokens_per_minute`, for every thread.

    Hand-written (a few lines on top of `Gcra`) rather than, say, pyrate-limiter:
    its `Limiter` checks-and-consumes or delays by itself, while the `Throttle`
    must first ask every limit *when* (this one, the learned pace, the cool-down),
    book one time that suits all of them under one lock, and sleep on a sleeper
    that an auth failure can interrupt. That glue would be longer than the GCRA,
    and there is no dependency to add. Short bursts (one second's worth) are
    allowed; the average stays under the limit.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst_s: float = 1.0,
        clock: Clock = time.monotonic,
        sleeper: SleeperLike | None = None,
    ) -> None:
        self._requests = _per_minute(requests_per_minute, burst_s)
        self._tokens = _per_minute(tokens_per_minute, burst_s)
        self._clock = clock
        self._sleeper = sleeper or Sleeper()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._tokens is not None

    @property
    def request_rate(self) -> float | None:
        """Requests per second the config allows (None: no limit)."""
        return self._requests.rate if self._requests is not None else None

    @property
    def token_rate(self) -> float | None:
        """Tokens per second the config allows (None: no limit)."""
        return self._tokens.rate if self._tokens is not None else None

    def earliest(self, now: float, tokens: float) -> float:
        """When a call of `tokens` may go, without booking it."""
        with self._lock:
            return self._earliest(now)

    def commit(self, at: float, tokens: float) -> None:
        with self._lock:
            self._commit(at, tokens)

    def reserve(self, tokens: float) -> float:
        """Book the earliest allowed send time for a call of `tokens` and return it."""
        with self._lock:
            at = self._earliest(self._clock())
            self._commit(at, tokens)
            return at

    def acquire(self, tokens: float) -> float:
        """Block until a call of `tokens` may be sent; return the seconds waited."""
        start = self._clock()
        _sleep_until(self.reserve(tokens), self._clock, self._sleeper)
        return self._clock() - start

    def _earliest(self, now: float) -> float:
        # A token GCRA only asks whether the bucket has room for *a* call; the
        # size of this one is paid for afterwards (see `Gcra`).
        return max([now, *(g.earliest(now) for g in (self._requests, self._tokens) if g is not None)])

    def _commit(self, at: float, tokens: float) -> None:
        if self._requests is not None:
            self._requests.commit(at, 1.0)
        if self._tokens is not None:
            self._tokens.commit(at, tokens)


# ---------------------------------------------------------------------------
# Cool-down
# ---------------------------------------------------------------------------


class CoolDown:
    """After a 429, every thread waits until the server's retry-after has passed.

    A rate limit is shared by all threads, so the thread that got the 429 is not
    the only one that would get the next: `trigger` moves one shared deadline
    (only ever later), and `wait` (called before each send) sleeps until it.
    """

    def __init__(self, *, clock: Clock = time.monotonic, sleeper: SleeperLike | None = None) -> None:
        self._clock = clock
        self._sleeper = sleeper or Sleeper()
        self._lock = threading.Lock()
        self._until = -math.inf
        self.triggers = 0

    @property
    def until(self) -> float:
        return self._until

    def trigger(self, seconds: float) -> float:
        """Hold every sender for `seconds` from now (or longer, if already held); returns the deadline."""
        with self._lock:
            self.triggers += 1
            self._until = max(self._until, self._clock() + max(0.0, seconds))
            return self._until

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    def wait(self) -> float:
        """Sleep until the cool-down has passed (re-checking: it may be extended meanwhile)."""
        start = self._clock()
        while True:
            deadline = self._until
            if deadline <= self._clock():
                return self._clock() - start
            _sleep_until(deadline, self._clock, self._sleeper)


# ---------------------------------------------------------------------------
# Pacing from x-ratelimit-* headers
# ---------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """An `x-ratelimit-reset-*` value in seconds: "1s", "120ms", "6m0s", "0.5s", "1h2m3.5s" or "0.5".

    Those are Go durations (OpenAI prints them); a bare number is seconds. None
    for anything else, negative, or longer than a day (an epoch timestamp is not
    a rate window).
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
        position = 0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                return None
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position == 0 or position != len(text):
            return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > _MAX_RESET_S:
        return None
    return seconds


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _ratelimit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The `x-ratelimit-*` headers, keys lower-cased, in one pass over the answer's headers.

    One pass rather than six look-ups: a look-up in httpx's `Headers` scans
    and decodes every header, and a missing one (servers without a token limit)
    scanned them all again case-insensitively.
    """
    return {
        lowered: value
        for key, value in headers.items()
        if (lowered := key.lower()).startswith("x-ratelimit-")
    }


@dataclass(frozen=True)
class Ticket:
    """One booked send: its order, when it may go and the tokens it was booked for.

    `probe` is True for a send booked before any answer told us the endpoint's
    limits (the probe burst): the provider streams those, because a streamed
    answer's headers arrive before its text, and the other threads wait on them.
    """

    seq: int
    at: float
    tokens: float
    probe: bool = False


@dataclass(frozen=True)
class LearnedLimits:
    """What one run learned of an endpoint's limits, kept in the ledger for the next run.

    A limit of None with answers seen means the endpoint sent no `x-ratelimit-*`
    header for it (local servers): nothing to pace, and nothing to probe for.
    """

    requests_limit: float | None = None
    requests_window_s: float = 0.0
    tokens_limit: float | None = None
    tokens_window_s: float = 0.0

    @property
    def paced(self) -> bool:
        return bool(self.requests_limit and self.requests_window_s) or bool(
            self.tokens_limit and self.tokens_window_s
        )

    def describe(self) -> str:
        parts = [
            f"{limit:g} {name} per {window:g} s"
            for name, limit, window in (
                ("requests", self.requests_limit, self.requests_window_s),
                ("tokens", self.tokens_limit, self.tokens_window_s),
            )
            if limit and window
        ]
        return ", ".join(parts) or "no rate-limit headers"


class ServerLimit:
    """What the server has told us about one of its limits (requests or tokens).

    `limit` is `x-ratelimit-limit-*` when sent, else the most ever seen free
    (remaining + this call). `window` is the longest `x-ratelimit-reset-*` seen:
    the reset of a call into an empty window (sliding log) or of an empty
    bucket (OpenAI); shorter resets only mean part of the window is used.

    The pace, once both are known, is the smaller of two bounds, in units per
    second. The headroom: `factor * limit / window`, with `factor` at most
    `1 - headroom` and lowered by 429s. And the timing: for requests (a call
    is 1 unit), `limit / (window + jitter_s)`, so that sends arriving up to
    `jitter_s` off their booked times still put at most `limit` in a window;
    for tokens, whose calls are large against the limit, whole calls: evenly
    spaced calls can bunch so that one more than the average lands in a
    window, so at most `floor(limit / largest) - 1` calls of the largest size
    booked so far per window.
    """

    def __init__(
        self, name: str, headroom: float, jitter_s: float = DEFAULT_JITTER_S, *, shared_view: bool = False
    ) -> None:
        self.name = name
        self.limit: float | None = None
        self.window = 0.0
        self.ceiling = 1.0 - headroom
        self.factor = self.ceiling
        self.jitter_s = jitter_s
        self.largest = 1.0
        # Other clients' use of the window, from the server's count (see the module
        # docstring); kept only when `shared_view`, from our recent send times.
        self.others = 0.0
        self._ours_seen = 0.0  # ...and, averaged alike, ours in the same windows
        self.follow_others = shared_view
        self._sent: list[tuple[float, int]] = []  # booked (send time, seq), oldest first
        self._gcra: Gcra | None = None
        # Sends booked before the pace was known (the probe burst): the first's
        # time and their units, charged to the pace once it is.
        self._unpaced_at: float | None = None
        self._unpaced_units = 0.0

    @property
    def rate(self) -> float | None:
        """Units per second we pace at, or None while the limit is unknown."""
        return self._rate(self._share())

    @property
    def solo_rate(self) -> float | None:
        """The pace were this run alone on the key (what runs sharing a booking file pace at together)."""
        return self._rate(self.limit or 0.0)

    @property
    def others_ratio(self) -> float:
        """The other clients' use of the key for each call of ours (0 alone)."""
        if not self.follow_others or self._ours_seen <= 0:
            return 0.0
        return self.others / self._ours_seen

    def _share(self) -> float:
        """How many calls of ours a window may hold, the others' use taken off the limit.

        The others' count is projected from when the server last told it: it grows
        and shrinks with ours (they run a pace like ours), so the share is the limit
        split by the ratio of their use to ours, not the limit less a count that
        was true a round trip ago. Sharing, each client's sends can land a call
        more in a window than its average: leave one for it.
        """
        if not self.limit:
            return 0.0
        ratio = self.others_ratio
        spare = min(0.5, self.others) if self.follow_others else 0.0
        return max((self.limit - spare) / (1.0 + ratio), _MIN_SHARE * self.limit)

    def _rate(self, share: float) -> float | None:
        if not self.limit or self.window <= 0:
            return None
        if self.largest > 1.0:
            # Calls large against the limit (tokens): evenly spaced, one more than
            # the average can still land in a window, so leave room for it.
            bound = (math.floor(self.limit / self.largest) - 1) * self.largest / self.window
        else:
            # Unit calls (requests): `share` of them in any window widened by the jitter.
            bound = share / (self.window + self.jitter_s)
        rate = min(self.factor * self.limit / self.window, bound)
        return max(rate, _MIN_FACTOR * share / self.window)

    def learn(
        self,
        limit: float | None,
        remaining: float | None,
        reset: float | None,
        units: float,
        admitted: bool,
        now: float,
        sent: tuple[float, int] | None = None,
    ) -> None:
        if limit is not None and limit > 0:
            self.limit = limit
        elif admitted and remaining is not None:
            self.limit = max(self.limit or 0.0, remaining + units)
        if reset is not None and reset > 0:
            self.window = max(self.window, reset)
        if admitted:
            self.factor = min(self.ceiling, self.factor + _RECOVERY)
        if self.follow_others and sent is not None:
            if not admitted:
                self._unsend(sent)  # the server counted nothing for it...
                self._learn_others(0.0, sent, now)  # ...and had no room left
            elif remaining is not None:
                self._learn_others(remaining, sent, now)
        self._update(now)

    def _learn_others(self, remaining: float, sent: tuple[float, int], now: float) -> None:
        """Move the estimate of the others' use towards what this answer shows.

        The key had used `limit - remaining` (this call included) when the server
        admitted the call; we had sent those of our calls booked in the window up
        to this one's send time. The raw difference is noisy by a call or two
        either way (sends reach the server a little late), so it is averaged, not
        clamped, and only the average is kept at or above 0.
        """
        if not self.limit or self.window <= 0:
            return
        sent_at = sent[0]
        ours = bisect.bisect_right(self._sent, sent) - bisect.bisect_right(self._sent, (sent_at - self.window, math.inf))
        sample = (self.limit - remaining) - ours
        weight = _OTHERS_WEIGHT
        self.others = max(0.0, self.others + weight * (sample - self.others))
        self._ours_seen = max(0.0, self._ours_seen + weight * (ours - self._ours_seen))
        # Forget sends no later answer can ask about (answers come back within a few windows).
        stale = bisect.bisect_left(self._sent, (now - 4.0 * self.window - 60.0, 0))
        if stale:
            del self._sent[:stale]

    def _unsend(self, sent: tuple[float, int]) -> None:
        index = bisect.bisect_left(self._sent, sent)
        if index < len(self._sent) and self._sent[index] == sent:
            del self._sent[index]

    def slow_down(self) -> None:
        self.factor = max(_MIN_FACTOR, self.factor * _DECREASE)
        self._update()

    def recall(self, limit: float | None, window: float, now: float) -> None:
        """Start from a limit a previous run learned (the headers still correct it)."""
        if limit and limit > 0 and window > 0:
            self.limit, self.window = limit, window
            self._update(now)

    def earliest(self, now: float) -> float:
        at = now if self._gcra is None else self._gcra.earliest(now)
        if self.others_ratio > 0 and self.window > 0:
            # The even pace goes down slowly; what we already sent in the window must
            # fit the share now: wait for enough of it to leave the window.
            calls = max(1, math.floor(self._share()))
            if len(self._sent) >= calls:
                at = max(at, self._sent[-calls][0] + self.window + self.jitter_s)
        return at

    def commit(self, at: float, units: float, seq: int = 0) -> None:
        if units > self.largest:
            self.largest = units
            self._update()
        if self.follow_others:
            bisect.insort(self._sent, (at, seq))
        if self._gcra is not None:
            self._gcra.commit(at, units)
        else:
            if self._unpaced_at is None:
                self._unpaced_at = at
            self._unpaced_units += units

    def _update(self, now: float | None = None) -> None:
        rate = self.rate
        if rate is None:
            self._gcra = None
        elif self._gcra is None:
            self._gcra = self._start(rate, now)
        else:
            self._gcra.set_rate(rate)

    def _start(self, rate: float, now: float | None) -> Gcra:
        """A GCRA at `rate` that has already paid for the sends made before it existed.

        As if those sends had been paced from the first of them: the next may go
        once they would all have gone, but never more than a window from now
        (long-unpaced traffic, e.g. headers that appear mid-run, only costs that).
        """
        gcra = Gcra(rate)
        if self._unpaced_at is not None:
            gcra.commit(self._unpaced_at, self._unpaced_units)
            if now is not None:
                gcra.limit_tat(now + self.window)
            self._unpaced_at, self._unpaced_units = None, 0.0
        return gcra


class HeaderPacer:
    """Learns the server's limits from `x-ratelimit-*` headers and spaces sends evenly under them.

    `observe(headers)` after every answer (429s included); `earliest`/`commit`
    under the `Throttle` lock before every send. Servers that send no such
    headers (llama.cpp, most local servers) are never paced.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        headroom: float = DEFAULT_HEADROOM,
        jitter_s: float = DEFAULT_JITTER_S,
        probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        probe_burst: int = DEFAULT_PROBE_BURST,
    ) -> None:
        if not 0 <= headroom < 1:
            raise ValueError("headroom is a fraction in [0, 1)")
        if jitter_s < 0:
            raise ValueError("jitter_s must be >= 0")
        if probe_burst < 1:
            raise ValueError("probe_burst must be >= 1")
        self._clock = clock
        self._lock = threading.Lock()
        self.requests = ServerLimit("requests", headroom, jitter_s, shared_view=True)
        self.tokens = ServerLimit("tokens", headroom, jitter_s)
        self._probe_timeout_s = probe_timeout_s
        self._probe_burst = probe_burst
        self._probe_deadline: float | None = None  # set when the probe is booked
        self._probe_answered = probe_timeout_s <= 0
        self._answers = 0  # answers observed (any headers at all), for learned()
        self._seq = 0
        self._last_slow_down = -math.inf

    @property
    def pacing(self) -> bool:
        return self.requests.rate is not None or self.tokens.rate is not None

    def blocked_until(self, now: float) -> float | None:
        """While the probe is out, when the others may stop waiting for it (else None).

        The first `probe_burst` sends are not held: they are the probe.
        """
        with self._lock:
            if self._probe_answered or self._probe_deadline is None or self._seq < self._probe_burst:
                return None
            if now >= self._probe_deadline:
                self._probe_answered = True
                return None
            return self._probe_deadline

    def earliest(self, now: float, tokens: float) -> float:
        with self._lock:
            return max(self.requests.earliest(now), self.tokens.earliest(now))

    def commit(self, at: float, tokens: float) -> Ticket:
        with self._lock:
            self._seq += 1
            if self._probe_deadline is None:
                self._probe_deadline = at + self._probe_timeout_s
            self.requests.commit(at, 1.0, self._seq)
            self.tokens.commit(at, tokens)
            return Ticket(self._seq, at, tokens, probe=not self._probe_answered)

    def observe(self, headers: Mapping[str, str], ticket: Ticket | None = None, *, admitted: bool = True) -> bool:
        """Learn from one answer's headers; True if this ended the probe (wake the waiters).

        `admitted` is False for a 429: that call used nothing, so its `remaining`
        says nothing about the limit. Call it for every booked send, even one that
        failed without an answer (empty headers), so the probe always ends.
        """
        tokens = ticket.tokens if ticket is not None else 0.0
        # The probe burst's answers tell the limit, not the others' share: ours
        # reach the server all at once, so their count there says little of our pace.
        sent = (ticket.at, ticket.seq) if ticket is not None and not ticket.probe else None
        found = _ratelimit_headers(headers)
        with self._lock:
            if headers:
                self._answers += 1
            ended_probe = not self._probe_answered
            self._probe_answered = True
            now = self._clock()
            for limit, units in ((self.requests, 1.0), (self.tokens, tokens)):
                limit.learn(
                    _number(found.get(f"x-ratelimit-limit-{limit.name}")),
                    _number(found.get(f"x-ratelimit-remaining-{limit.name}")),
                    parse_reset(found.get(f"x-ratelimit-reset-{limit.name}")),
                    units,
                    admitted,
                    now,
                    sent,
                )
            return ended_probe

    def learned(self) -> LearnedLimits | None:
        """The limits learned so far, or None if no answer came back to learn from."""
        with self._lock:
            if not self._answers:
                return None
            return LearnedLimits(
                self.requests.limit, self.requests.window, self.tokens.limit, self.tokens.window
            )

    def recall(self, limits: LearnedLimits) -> None:
        """Start from what a previous run learned: pace at once, and send no probe.

        The probe exists to learn the limit before N threads cross it; a known limit,
        or knowing the endpoint sends no limit headers at all, makes it one round trip
        of 8 calls in flight instead of `max_concurrent_requests`, for nothing. The
        headers of this run's answers keep correcting what was recalled.
        """
        with self._lock:
            now = self._clock()
            self.requests.recall(limits.requests_limit, limits.requests_window_s, now)
            self.tokens.recall(limits.tokens_limit, limits.tokens_window_s, now)
            self._probe_answered = True

    def rate_limited(self) -> None:
        """A 429 arrived: we are pacing too fast for what the server now allows; slow down.

        At most once per window: the 429s of one burst are one signal, not ten.
        """
        with self._lock:
            now = self._clock()
            window = max(self.requests.window, self.tokens.window, 1.0)
            if now - self._last_slow_down < window:
                return
            self._last_slow_down = now
            for limit in (self.requests, self.tokens):
                if limit.rate is not None:
                    limit.slow_down()


# ---------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------


class SharedBooking(Protocol):
    """Send times shared with other runs on the same key (shared_pace.SharedPace)."""

    def book(self, at: float, *, request_rate: float | None, token_rate: float | None,
             tokens: float) -> float: ...


def _lowest(*rates: float | None) -> float | None:
    known = [rate for rate in rates if rate]
    return min(known) if known else None


class Throttle:
    """The one gate every call passes just before it is sent.

    `acquire(tokens)` waits out any cool-down and the probe, then books the
    earliest time that satisfies the configured limiter and the learned pace at
    once (under one lock, so two limits cannot each be met by a different time),
    sleeps until then and returns the `Ticket`. If a 429 started a cool-down
    while it slept, the booking is dropped and it queues again, so threads that
    were paced before the 429 do not all fire the moment it ends.
    """

    def __init__(
        self,
        *,
        limiter: RateLimiter | None = None,
        pacer: HeaderPacer | None = None,
        cool_down: CoolDown | None = None,
        clock: Clock = time.monotonic,
        sleeper: SleeperLike | None = None,
        shared: SharedBooking | None = None,
    ) -> None:
        self._clock = clock
        self._sleeper = sleeper or Sleeper()
        self.limiter = limiter or RateLimiter(clock=clock, sleeper=self._sleeper)
        self.pacer = pacer or HeaderPacer(clock=clock)
        self.cool_down = cool_down or CoolDown(clock=clock, sleeper=self._sleeper)
        self.shared = shared  # other runs on this machine and key (shared_pace.py)
        if shared is not None:  # the booking file already makes room for them
            self.pacer.requests.follow_others = False
        self._lock = threading.Lock()

    @property
    def sleeper(self) -> SleeperLike:
        return self._sleeper

    def acquire(self, tokens: float) -> Ticket:
        while True:
            if self._sleeper.interrupted:
                raise Stopped("stopped before sending")
            ticket: Ticket | None = None
            epoch = self._sleeper.epoch  # before the check: see `Sleeper`
            with self._lock:
                now = self._clock()
                hold = max(self.cool_down.until, self.pacer.blocked_until(now) or -math.inf)
                if hold <= now:
                    at = max(
                        now,
                        self.limiter.earliest(now, tokens),
                        self.pacer.earliest(now, tokens),
                    )
                    if self.shared is not None:  # after what other runs on the key booked
                        # The booking file paces this machine's runs together: at the
                        # rate for all of them, not this run's share of the server's.
                        at = self.shared.book(
                            at, request_rate=_lowest(self.limiter.request_rate, self.pacer.requests.solo_rate),
                            token_rate=_lowest(self.limiter.token_rate, self.pacer.tokens.rate), tokens=tokens)
                    self.limiter.commit(at, tokens)
                    ticket = self.pacer.commit(at, tokens)
            if ticket is None:
                # One sleep, not a loop: a wake-up (the probe answered) means look again.
                self._sleeper.sleep(hold - self._clock(), epoch)
                continue
            _sleep_until(ticket.at, self._clock, self._sleeper)
            if self.cool_down.until <= ticket.at:
                return ticket

    def observe(self, headers: Mapping[str, str], ticket: Ticket | None = None, *, admitted: bool = True) -> None:
        """Learn from an answer (call once per ticket, even with no headers)."""
        if self.pacer.observe(headers, ticket, admitted=admitted):
            self._sleeper.wake_all()

    def rate_limited(self, seconds: float) -> None:
        """A 429: hold every thread for `seconds` and slow the learned pace."""
        self.cool_down.trigger(seconds)
        self.pacer.rate_limited()

    def stop(self) -> None:
        """Wake every waiting thread and refuse further sends (`Stopped`)."""
        self._sleeper.interrupt()
