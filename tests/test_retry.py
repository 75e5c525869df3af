"""The retry policy as tables: which failures retry, what retry-after means, how long to wait."""

from __future__ import annotations

import email.utils

import pytest

from report_pipeline.providers.retry import (
    RetryPolicy,
    backoff_delay,
    header,
    parse_retry_after,
    should_retry,
)

NOW = 1_750_000_000.0  # a fixed "time.time()" for HTTP dates


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (None, "timeout", True),
        (None, "connection", True),
        (200, "malformed", True),
        (None, "malformed", True),
        (408, "status", True),
        (409, "status", True),
        (429, "status", True),
        (500, "status", True),
        (502, "status", True),
        (503, "status", True),
        (504, "status", True),
        (400, "status", False),
        (404, "status", False),
        (422, "status", False),
        (401, "status", False),
        (403, "status", False),
        (None, "status", False),
    ],
)
def test_should_retry_table(status: int | None, kind: str, expected: bool) -> None:
    assert should_retry(status, kind) is expected  # type: ignore[arg-type]


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(NOW + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "20"}, 0.02),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "3"}, 3.0),  # plain dicts keep the server's case
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms wins
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),  # unparseable ms: next header
        ({"retry-after": "0"}, None),  # "now": back off instead
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "whenever"}, None),
        ({"retry-after": "120"}, 120.0),  # returned as is: backoff_delay caps it
        ({"retry-after": _http_date(30)}, 30.0),
        ({"retry-after": _http_date(-30)}, None),  # a date in the past
    ],
)
def test_parse_retry_after_table(headers: dict[str, str], expected: float | None) -> None:
    result = parse_retry_after(headers, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_header_lookup_ignores_case_in_plain_dicts() -> None:
    assert header({"X-RateLimit-Remaining-Requests": "7"}, "x-ratelimit-remaining-requests") == "7"
    assert header({}, "retry-after") is None


POLICY = RetryPolicy(max_retries=6, initial_delay=0.5, max_delay=20.0, jitter=0.25, max_retry_after=60.0)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "rand", "expected"),
    [
        (1, 2.0, 0.9, 2.0),  # the server's word wins, without jitter
        (5, 0.2, 0.0, 0.2),
        (1, 90.0, 0.0, 60.0),  # capped at max_retry_after
        (1, None, 0.0, 0.5),
        (2, None, 0.0, 1.0),
        (3, None, 0.0, 2.0),
        (3, None, 0.5, 2.0 * (1 - 0.25 * 0.5)),
        (4, None, 1.0, 4.0 * 0.75),  # at most a quarter trimmed
        (7, None, 0.0, 20.0),  # 0.5 * 2**6 = 32, capped at max_delay
        (200, None, 0.0, 20.0),  # no overflow on absurd attempt numbers
    ],
)
def test_backoff_delay_table(attempt: int, retry_after: float | None, rand: float, expected: float) -> None:
    assert backoff_delay(attempt, POLICY, retry_after, lambda: rand) == pytest.approx(expected)


def test_backoff_without_jitter_is_exact() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=100.0, jitter=0.0)
    assert [backoff_delay(n, policy, None, lambda: 0.99) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, POLICY, None, lambda: 0.0)


def test_retry_policy_compares_by_value_and_rejects_nonsense() -> None:
    assert RetryPolicy(max_retries=3) == RetryPolicy(max_retries=3)
    assert RetryPolicy(max_retries=3) != RetryPolicy(max_retries=4)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
