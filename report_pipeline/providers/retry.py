"""When to retry a failed call and how long to wait first: pure functions, no clock, no random.

Modelled on openai-python's `_should_retry()`, `_parse_retry_after_header()` and
`_calculate_retry_timeout()`, with two differences that matter for a batch job:

- the wall clock (`now`) and the random source (`rand`) are arguments, so a table
  of inputs pins the behaviour without patching anything;
- a server's `retry-after` above `RetryPolicy.max_retry_after` is *capped*, not
  ignored. The SDK refuses to retry past two minutes and otherwise falls back to
  its 0.5 s backoff; a run of thousands of calls is better served by waiting the
  cap and asking again, and the cap keeps one odd header from parking every
  thread for an hour.

The SDK itself runs with `max_retries=0`: the provider owns retries, so a 429
can slow every thread down (see `ratelimit.CoolDown`), not just the caller.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_RETRY_AFTER",
    "ErrorKind",
    "RetryPolicy",
    "backoff_delay",
    "header",
    "parse_retry_after",
    "should_retry",
]

DEFAULT_INITIAL_DELAY = 0.5
DEFAULT_MAX_DELAY = 20.0
DEFAULT_JITTER = 0.25
DEFAULT_MAX_RETRY_AFTER = 60.0

#: What went wrong with one attempt:
#: - "status": the server answered with an error status (`status_code` says which);
#: - "timeout": no answer within `request_timeout_s`;
#: - "connection": the connection failed or dropped mid-answer;
#: - "malformed": a 2xx whose body is not the JSON we expect.
ErrorKind = Literal["status", "timeout", "connection", "malformed"]

# 408 request timeout, 409 lock conflict, 429 rate limit (as the SDK).
_RETRYABLE_STATUS = frozenset({408, 409, 429})
# The key is wrong or lacks access: retrying cannot help and may lock the account.
_AUTH_STATUS = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts (a value type).

    `max_retries` counts retries, not attempts: 6 means at most 7 sends.
    `jitter` is the fraction trimmed at random from each exponential delay
    (0.25 → each delay is between 75 % and 100 % of `initial_delay * 2**n`),
    so threads that failed together do not come back together.
    """

    max_retries: int = 6
    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: float = DEFAULT_JITTER
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")


def should_retry(status_code: int | None, error_kind: ErrorKind) -> bool:
    """Whether an attempt that failed this way is worth sending again.

    Timeouts, dropped connections and malformed bodies are transient. Of the
    statuses, 408, 409, 429 and every 5xx are; 401/403 never are (the run stops),
    nor is any other 4xx (the request itself is wrong: 400, 404, 422...).
    """
    if error_kind in ("timeout", "connection", "malformed"):
        return True
    if status_code is None:
        return False
    if status_code in _AUTH_STATUS:
        return False
    return status_code in _RETRYABLE_STATUS or status_code >= 500


def header(headers: Mapping[str, str], name: str) -> str | None:
    """`headers[name]`, matched case-insensitively whatever mapping we were given.

    httpx's `Headers` already ignores case; a plain dict (tests, other clients)
    does not, so fall back to a scan.
    """
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait, or None when it gives no usable hint.

    Reads, in order: `retry-after-ms` (milliseconds, OpenAI and Azure), then
    `retry-after` as seconds (fractions allowed), then `retry-after` as an HTTP
    date, measured against `now` (Unix time, i.e. `time.time()`).

    Values that are not positive and finite give None (no hint: use backoff);
    `retry-after: 0` means "now", and backing off a little is the safer reading.
    Large values are returned as they are; `backoff_delay` applies the cap.
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = header(headers, name)
        if raw is None:
            continue
        try:
            seconds = float(raw.strip()) * scale
        except ValueError:
            continue  # not a number: maybe a date, tried below
        return seconds if math.isfinite(seconds) and seconds > 0 else None
    raw = header(headers, "retry-after")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        seconds = float(email.utils.mktime_tz(parsed)) - now
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def backoff_delay(
    attempt: int,
    policy: RetryPolicy,
    retry_after: float | None,
    rand: Callable[[], float],
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 = the first send).

    A server's `retry-after` wins when given, capped at `policy.max_retry_after`:
    it knows when its window frees up, and jitter would only make us early or late.
    Otherwise `initial_delay * 2**(attempt-1)`, capped at `max_delay`, with up to
    `jitter` of it trimmed at random (`rand()` in [0, 1)).
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    exponent = min(attempt - 1, 60)  # 2**60 s is already far past any cap
    base = min(policy.initial_delay * 2.0**exponent, policy.max_delay)
    return max(0.0, base * (1.0 - policy.jitter * rand()))
