"""Rate limiting as OpenAI reports it: sliding windows and ``x-ratelimit-*`` headers.

Rate limiting is a *sliding-window log*: every accepted request leaves a
timestamped entry (one for requests, its token cost for tokens) that expires
``window_s`` later, so a burst can never exceed the limit across a window
boundary the way a fixed window allows. The event loop is single-threaded and
the check-and-record step contains no ``await``, so admission is exact under
any concurrency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from report_pipeline.simulator._config import SimulatorConfig


def format_reset(seconds: float) -> str:
    """A duration in OpenAI's ``x-ratelimit-reset-*`` format ("120ms", "1.5s", "6m0s").

    OpenAI prints Go durations; clients parse them, so we print the same
    shapes. Sub-second values are whole milliseconds, rounded up so a client
    that waits exactly this long is never early.
    """
    if seconds <= 0:
        return "0s"
    millis = _ceil_millis(seconds)
    if millis < 1000:
        return f"{millis}ms"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _ceil_millis(seconds: float) -> int:
    """Whole milliseconds, rounded up, ignoring float noise (0.29 s is 290 ms, not 291)."""
    return max(1, math.ceil(seconds * 1000 - 1e-6))


class SlidingWindow:
    """A sliding-window log of (time, amount): the amount used in the last window.

    Limits and window length are passed per call, so a live config change
    applies to entries already recorded without losing them.
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[float, int]] = deque()
        self._used = 0

    def used(self, now: float, window_s: float) -> int:
        """Amount recorded within ``window_s`` before ``now``."""
        self._expire(now, window_s)
        return self._used

    def wait_for(self, amount: int, limit: int, now: float, window_s: float) -> float:
        """Seconds until ``amount`` more fits under ``limit``; 0 if it fits now.

        An amount larger than the limit never fits; we answer a full window,
        as a client retrying later is the least surprising advice.
        """
        excess = self.used(now, window_s) + amount - limit
        if excess <= 0:
            return 0.0
        if amount > limit:
            return window_s
        freed = 0
        for stamp, entry in self._entries:
            freed += entry
            if freed >= excess:
                return max(0.0, stamp + window_s - now)
        return window_s  # unreachable when amount <= limit; kept for safety

    def next_expiry(self, now: float, window_s: float) -> float:
        """Seconds until the oldest entry leaves the window (0 if empty)."""
        self._expire(now, window_s)
        if not self._entries:
            return 0.0
        return max(0.0, self._entries[0][0] + window_s - now)

    def add(self, now: float, amount: int) -> None:
        self._entries.append((now, amount))
        self._used += amount

    def clear(self) -> None:
        self._entries.clear()
        self._used = 0

    def _expire(self, now: float, window_s: float) -> None:
        horizon = now - window_s
        entries = self._entries
        while entries and entries[0][0] <= horizon:
            self._used -= entries.popleft()[1]


@dataclass(frozen=True)
class RateDecision:
    """Whether a request was admitted, when to retry if not, and headers to send."""

    allowed: bool
    retry_after_s: float
    headers: dict[str, str]


class RateLimiter:
    """Requests and tokens per window, each a ``SlidingWindow``.

    Not thread-safe by design: it lives on the server's event loop, where
    ``admit`` runs to completion without yielding.
    """

    def __init__(self) -> None:
        self._requests = SlidingWindow()
        self._tokens = SlidingWindow()

    def admit(self, now: float, tokens: int, config: SimulatorConfig) -> RateDecision:
        """Record the request if both limits allow it, else say how long to wait."""
        wait = 0.0
        if config.requests_per_window is not None:
            wait = self._requests.wait_for(1, config.requests_per_window, now, config.window_s)
        if config.tokens_per_window is not None:
            wait = max(
                wait,
                self._tokens.wait_for(tokens, config.tokens_per_window, now, config.window_s),
            )
        allowed = wait == 0.0
        if allowed:
            self._requests.add(now, 1)
            self._tokens.add(now, tokens)
        return RateDecision(allowed, wait, self.headers(now, config))

    def headers(self, now: float, config: SimulatorConfig) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers for the current state.

        ``reset`` is the time until the oldest entry leaves the window, i.e.
        when ``remaining`` next goes up. A trio is sent only for a limit that
        is set: there is no honest number to report for "unlimited".
        """
        headers: dict[str, str] = {}
        window_s = config.window_s
        if config.requests_per_window is not None:
            limit = config.requests_per_window
            used = self._requests.used(now, window_s)
            headers["x-ratelimit-limit-requests"] = str(limit)
            headers["x-ratelimit-remaining-requests"] = str(max(0, limit - used))
            headers["x-ratelimit-reset-requests"] = format_reset(
                self._requests.next_expiry(now, window_s)
            )
        if config.tokens_per_window is not None:
            limit = config.tokens_per_window
            used = self._tokens.used(now, window_s)
            headers["x-ratelimit-limit-tokens"] = str(limit)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - used))
            headers["x-ratelimit-reset-tokens"] = format_reset(
                self._tokens.next_expiry(now, window_s)
            )
        return headers

    def clear(self) -> None:
        self._requests.clear()
        self._tokens.clear()


def retry_after_headers(seconds: float) -> dict[str, str]:
    return {
        "retry-after": str(max(1, math.ceil(seconds - 1e-9))),
        "retry-after-ms": str(_ceil_millis(seconds)),
    }
