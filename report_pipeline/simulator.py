"""An OpenAI-compatible HTTP server for tests and benchmarks.

Why a real server: the pipeline's concurrency, rate limiting, retry and
cool-down logic only mean something against real sockets, real status codes
and real headers, driven by the real ``openai`` SDK. A mock at the Python level
would test our assumptions about the SDK, not the SDK.

Why aiohttp on one event loop: a benchmark must be able to park 1,000+ slow
requests at once without the simulator becoming the bottleneck. One coroutine
per request costs a few kilobytes; one thread per connection would not scale
and would fight the client for the GIL.

Endpoints::

    POST /v1/chat/completions   OpenAI chat.completion shape, usage estimate
    GET  /v1/models             OpenAI list shape, models from the config
    GET  /v1/models/{id}        one model (404 if unknown)
    GET  /_sim/stats            counters (see ``SimulatorStats``)
    POST /_sim/reset            zero counters, rate windows, directive counters, RNG
    GET  /_sim/config           the live ``SimulatorConfig`` as JSON
    POST /_sim/config           update any config field live (JSON object body)
    POST /_sim/release          open a named gate: {"gate": "NAME"}

Per-prompt directives (anywhere in the concatenated message text) stage
behaviour deterministically, so tests need no sleeps::

    sim:latency=0.35      answer after exactly 0.35 s (instead of latency + jitter)
    sim:status=500        always answer that 4xx/5xx status with an OpenAI error body
    sim:retry_after=0.2   with sim:status=429: send retry-after(-ms) of 0.2 s
    sim:fail_first=2      the first 2 accepted requests with these messages get 503
    sim:bad_json=2        the first 2 json_object answers for these messages are
                          the text "not json {" (a model ignoring the format)
    sim:verdict=FAIL      a VERDICT prompt answers "VERDICT: FAIL" instead of PASS
    sim:label=NAME        count this call under stats["calls_by_label"][NAME]
    sim:hold=NAME         wait (after admission) until gate NAME is released:
                          ``handle.release("NAME")`` or POST /_sim/release

Rate limiting is a *sliding-window log*: every accepted request leaves a
timestamped entry (one for requests, its token cost for tokens) that expires
``window_s`` later, so a burst can never exceed the limit across a window
boundary the way a fixed window allows. The event loop is single-threaded and
the check-and-record step contains no ``await``, so admission is exact under
any concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

__all__ = [
    "Answer",
    "ChatRequest",
    "DEFAULT_MODELS",
    "Directives",
    "Gates",
    "Prompt",
    "RateDecision",
    "RateLimiter",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorServer",
    "SimulatorStats",
    "SlidingWindow",
    "compose_answer",
    "estimate_tokens",
    "format_reset",
    "main",
    "parse_directives",
    "raise_open_file_limit",
    "serve_in_thread",
    "summarize",
]

DEFAULT_MODELS: tuple[str, ...] = ("sim-small", "sim-large", "gpt-4o-mini")

# A listen backlog far above the default 128, so a burst of 1,000+ connects is
# queued by the kernel instead of refused (the kernel caps it at somaxconn).
_BACKLOG = 4096
# Bodies carry whole data tables rendered as Markdown; aiohttp's 1 MiB default
# would reject a big prompt with 413 before we could answer it.
_CLIENT_MAX_SIZE = 64 * 1024 * 1024
# How long shutdown waits for in-flight handlers before cancelling them. Short,
# because a test's teardown must not wait out a 30 s "hang" fault.
_SHUTDOWN_GRACE_S = 1.0
# How long serve_in_thread waits for the loop thread to start or stop.
_THREAD_START_TIMEOUT_S = 10.0
_THREAD_STOP_TIMEOUT_S = 10.0
# Characters per token for the cheap usage estimate (OpenAI's rule of thumb).
_CHARS_PER_TOKEN = 4
# Per-message overhead in the prompt estimate (role and separators).
_TOKENS_PER_MESSAGE = 4
_SUMMARY_CHARS = 80
_BAD_JSON_CONTENT = "not json {"
_MALFORMED_BODY = b'{"id": "chatcmpl-sim-malformed", "object": "chat.completion", "choi'
_DROPPED_BODY_PREFIX = b'{"id": "chatcmpl-sim-dropped", "object": "chat.completion", "cho'
# The dropped response promises more bytes than it sends, so the client sees
# the connection close mid-body rather than a short but complete response.
_DROPPED_CONTENT_LENGTH = 4096

_DIRECTIVE_RE = re.compile(r"sim:([a-z_]+)=([A-Za-z0-9_.\-]+)")
_VERDICT_RE = re.compile(r"\bVERDICT\b")
_WHITESPACE_RE = re.compile(r"\s+")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

_NON_NEGATIVE_FLOATS = ("latency_s", "latency_jitter_s", "hang_s")
_SHARES = ("error_rate", "hang_rate", "drop_rate", "malformed_rate")
_OPTIONAL_LIMITS = ("requests_per_window", "tokens_per_window")


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes the simulator's behaviour; replaced whole on update.

    Frozen so a request handler can take one snapshot and see a consistent
    config for its whole life even if ``/_sim/config`` changes it meanwhile.
    Fault shares are drawn from one uniform number per request, in the order
    error, hang, drop, malformed: their sum is the share of faulty answers
    (capped at 1, the later kinds losing out).
    """

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    seed: int = 0
    requests_per_window: int | None = None
    tokens_per_window: int | None = None
    window_s: float = 60.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 30.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    api_key: str | None = None
    models: tuple[str, ...] = DEFAULT_MODELS

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE_FLOATS:
            self._set(name, _as_float(name, getattr(self, name), minimum=0.0))
        for name in _SHARES:
            share = _as_float(name, getattr(self, name), minimum=0.0)
            if share > 1.0:
                raise ValueError(f"{name}: {share} is above 1 (it is a share, 0..1)")
            self._set(name, share)
        window_s = _as_float("window_s", self.window_s, minimum=0.0)
        if window_s == 0.0:
            raise ValueError("window_s: must be above 0")
        self._set("window_s", window_s)
        for name in _OPTIONAL_LIMITS:
            limit = getattr(self, name)
            if limit is not None and (not _is_int(limit) or limit < 1):
                raise ValueError(f"{name}: {limit!r} must be a whole number >= 1 or null")
        if not _is_int(self.seed):
            raise ValueError(f"seed: {self.seed!r} must be a whole number")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key: must be a non-empty string or null")
        self._set("models", _as_models(self.models))

    def updated(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """A copy with ``changes`` applied; unknown or invalid fields raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown simulator config field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (models as a list), for ``/_sim/config``."""
        data = dataclasses.asdict(self)
        data["models"] = list(self.models)
        return data

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_float(name: str, value: object, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} must be a number")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}: {value!r} must be a finite number >= {minimum:g}")
    return float(value)


def _as_models(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("models: must be a non-empty list of model names")
    if not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"models: {value!r} must contain only non-empty strings")
    return tuple(value)


# ---------------------------------------------------------------------------
# Pure helpers: tokens, durations, directives, answers
# ---------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the chars/4 rule: cheap, deterministic, close enough.

    The simulator must not spend CPU on a real tokenizer; tests only need the
    numbers to be stable and roughly proportional to text length.
    """
    return (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN


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


@dataclass(frozen=True)
class Directives:
    """Per-prompt instructions parsed from ``sim:NAME=VALUE`` markers."""

    latency_s: float | None = None
    status: int | None = None
    retry_after_s: float | None = None
    fail_first: int = 0
    bad_json: int = 0
    verdict: str = "PASS"
    label: str | None = None
    hold: str | None = None


NO_DIRECTIVES = Directives()


def parse_directives(text: str) -> Directives:
    """Read every ``sim:NAME=VALUE`` marker in ``text``; the last of a name wins.

    Unknown names are ignored (prompts may mention "sim:" for other reasons);
    a known name with a bad value raises ValueError, which the server answers
    with 400, because silently ignoring a typo would make a test pass for the
    wrong reason.
    """
    if "sim:" not in text:
        return NO_DIRECTIVES
    values: dict[str, Any] = {}
    for name, raw in _DIRECTIVE_RE.findall(text):
        parser = _DIRECTIVE_PARSERS.get(name)
        if parser is None:
            continue
        try:
            values[name] = parser(raw)
        except ValueError:
            raise ValueError(f"bad simulator directive sim:{name}={raw}") from None
    if not values:
        return NO_DIRECTIVES
    return Directives(
        latency_s=values.get("latency"),
        status=values.get("status"),
        retry_after_s=values.get("retry_after"),
        fail_first=values.get("fail_first", 0),
        bad_json=values.get("bad_json", 0),
        verdict=values.get("verdict", "PASS"),
        label=values.get("label"),
        hold=values.get("hold"),
    )


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError(raw)
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _error_status(raw: str) -> int:
    value = int(raw)
    if not 400 <= value <= 599:
        raise ValueError(raw)
    return value


def _verdict(raw: str) -> str:
    value = raw.upper()
    if value not in ("PASS", "FAIL"):
        raise ValueError(raw)
    return value


_DIRECTIVE_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency": _non_negative_float,
    "status": _error_status,
    "retry_after": _non_negative_float,
    "fail_first": _count,
    "bad_json": _count,
    "verdict": _verdict,
    "label": str,
    "hold": str,
}


@dataclass(frozen=True)
class Prompt:
    """The parts of a chat request the simulator reacts to, extracted once."""

    text: str
    last_user: str
    key: str
    prompt_tokens: int

    @classmethod
    def from_messages(cls, messages: object) -> Prompt:
        """Flatten messages (string or text-part content) into one text and a key.

        The key is a hash of roles and contents: the same conversation, sent
        again as a retry, maps to the same per-prompt directive counters.
        """
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty array")
        parts: list[str] = []
        last_user = ""
        prompt_tokens = 0
        digest = hashlib.blake2b(digest_size=8)
        for message in messages:
            if not isinstance(message, dict):
                raise ValueError("each message must be an object")
            role = str(message.get("role", ""))
            content = _content_text(message.get("content"))
            parts.append(content)
            digest.update(role.encode())
            digest.update(b"\x00")
            digest.update(content.encode())
            digest.update(b"\x01")
            prompt_tokens += estimate_tokens(content) + _TOKENS_PER_MESSAGE
            if role == "user":
                last_user = content
        return cls("\n".join(parts), last_user, digest.hexdigest(), prompt_tokens)


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    raise ValueError("message content must be a string, an array of parts or null")


def summarize(text: str) -> str:
    """The first ~80 characters of ``text`` on one line, so tests can match it."""
    flat = _WHITESPACE_RE.sub(" ", text).strip()
    if len(flat) <= _SUMMARY_CHARS:
        return flat
    return flat[:_SUMMARY_CHARS].rstrip() + "..."


_FINDINGS = (
    "The figures show a steady trend across the period with no sharp breaks.",
    "The largest group accounts for most of the change; the rest move little.",
    "Two segments diverge in the second half, which deserves a closer look.",
    "Growth is concentrated in a few categories while the tail stays flat.",
    "The data is consistent across sources, with minor gaps in recent months.",
    "Seasonal swings dominate the signal; the underlying level is stable.",
    "Outliers are few and do not change the overall picture.",
    "The leading indicators point the same way as the headline numbers.",
)
_IMPLICATIONS = (
    "This suggests keeping the current plan while monitoring the weaker segments.",
    "A targeted follow-up on the diverging groups would reduce the main risk.",
    "Resources could shift toward the categories that are still growing.",
    "The report should flag the data gaps before drawing firm conclusions.",
    "No immediate action is needed, but the trend should be reviewed next quarter.",
    "The result supports the objective as stated, with the caveats noted.",
)
_SECTION_TITLES = (
    "Overview",
    "Key findings",
    "Trends",
    "Risks",
    "Opportunities",
    "Data quality",
    "Recommendations",
    "Next steps",
)


def _answer_digest(model: str, temperature: object, seed: int, prompt: Prompt) -> bytes:
    material = f"{model}\x00{temperature}\x00{seed}\x00{prompt.key}".encode()
    return hashlib.blake2b(material, digest_size=8).digest()


def compose_answer(
    *,
    model: str,
    prompt: Prompt,
    temperature: object,
    seed: int,
    json_mode: bool,
    verdict: str = "PASS",
) -> str:
    """The answer text: deterministic in (model, messages, temperature, seed).

    Readable and openly simulated, echoing the last user message's summary so
    a test can tell which prompt produced which answer. ``json_mode`` gives the
    sections object a planning step expects; a last user message with the word
    VERDICT gives the sense-check format.
    """
    digest = _answer_digest(model, temperature, seed, prompt)
    ref = digest.hex()[:8]
    summary = summarize(prompt.last_user)
    if json_mode:
        titles = _pick_distinct(_SECTION_TITLES, digest, 3)
        sections = [
            {"title": title, "brief": f"Simulated brief on {title.lower()} for: {summary[:40]}"}
            for title in titles
        ]
        return json.dumps({"sections": sections})
    if _VERDICT_RE.search(prompt.last_user):
        outcome = "no problems found" if verdict == "PASS" else "the draft contradicts the data"
        return (
            f"VERDICT: {verdict}\n"
            f"NOTES: simulated sense check ({model}, ref {ref}) of \"{summary}\": {outcome}."
        )
    finding = _FINDINGS[digest[0] % len(_FINDINGS)]
    implication = _IMPLICATIONS[digest[1] % len(_IMPLICATIONS)]
    return (
        f"[Simulated answer from {model}, ref {ref}; no language model was called.]\n"
        f"Prompt: \"{summary}\"\n"
        f"{finding} {implication}"
    )


def _pick_distinct(pool: Sequence[str], digest: bytes, count: int) -> list[str]:
    # The pool has 8 titles: any odd step is coprime with 8, so no repeats.
    start = digest[2] % len(pool)
    step = (digest[3] % len(pool)) | 1
    return [pool[(start + i * step) % len(pool)] for i in range(count)]


class Answer(NamedTuple):
    """The assistant text as sent, its token count, and why it ended."""

    text: str
    completion_tokens: int
    finish_reason: str


def _clip_to_tokens(text: str, max_tokens: int | None) -> Answer:
    """Cut ``text`` to ``max_tokens`` (finish_reason "length"), as a model would stop."""
    tokens = estimate_tokens(text)
    if max_tokens is None or tokens <= max_tokens:
        return Answer(text, tokens, "stop")
    clipped = text[: max_tokens * _CHARS_PER_TOKEN]
    return Answer(clipped, estimate_tokens(clipped), "length")


@dataclass(frozen=True)
class ChatRequest:
    """A parsed ``/v1/chat/completions`` body: only the fields the simulator uses."""

    model: str
    prompt: Prompt
    directives: Directives
    max_tokens: int | None
    json_mode: bool
    temperature: object

    @classmethod
    def parse(cls, raw: bytes) -> ChatRequest:
        """Parse and check a request body; ValueError (answered as 400) says what is wrong."""
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("you must provide a model parameter")
        if body.get("stream"):
            raise ValueError("the simulator does not support stream=true")
        prompt = Prompt.from_messages(body.get("messages"))
        response_format = body.get("response_format")
        return cls(
            model=model,
            prompt=prompt,
            directives=parse_directives(prompt.text),
            max_tokens=_max_tokens(body),
            json_mode=isinstance(response_format, dict)
            and response_format.get("type") == "json_object",
            temperature=body.get("temperature"),
        )

    def token_cost(self, completion_tokens: int) -> int:
        """What the token window is charged: like OpenAI, the prompt plus the
        completion it may produce (max_tokens when given, else the answer)."""
        reserved = self.max_tokens if self.max_tokens is not None else completion_tokens
        return self.prompt.prompt_tokens + reserved


class _Draws(NamedTuple):
    """The seeded random numbers one request uses."""

    jitter: float
    fault: float
    split: float

    @classmethod
    def take(cls, rng: random.Random) -> _Draws:
        # Always three draws, whatever the config or outcome, so one seed
        # gives one reproducible sequence.
        return cls(rng.random(), rng.random(), rng.random())


class _Outcome(NamedTuple):
    """What a request will get: "ok", "error" (with status), "hang", "drop",
    "malformed" or "bad_json"."""

    kind: str
    status: int = 200
    message: str = ""

    @property
    def fault(self) -> str | None:
        """The ``stats["faults"]`` key for this outcome, or None when it is not one."""
        if self.kind == "ok":
            return None
        return str(self.status) if self.kind == "error" else self.kind


_OK = _Outcome("ok")
_SERVER_ERROR_MESSAGE = "The server had an error while processing your request (simulated)."


# ---------------------------------------------------------------------------
# Rate limiting
# ---------------------------------------------------------------------------


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


def _retry_after_headers(seconds: float) -> dict[str, str]:
    return {
        "retry-after": str(max(1, math.ceil(seconds - 1e-9))),
        "retry-after-ms": str(_ceil_millis(seconds)),
    }


# ---------------------------------------------------------------------------
# Stats
# ---------------------------------------------------------------------------


@dataclass
class SimulatorStats:
    """Counters a test or benchmark reads through ``/_sim/stats``.

    ``calls`` is every chat request received (even rejected ones);
    ``completed`` the 200 answers with a valid body; ``faults`` counts by kind
    ("500", "503", "hang", "drop", "malformed", "401", a directive status such
    as "400", "bad_json").
    """

    calls: int = 0
    completed: int = 0
    rate_limited: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    status_counts: Counter[str] = field(default_factory=Counter)
    peak_in_flight: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls_by_label: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "completed": self.completed,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "status_counts": dict(self.status_counts),
            "peak_in_flight": self.peak_in_flight,
            "in_flight": self.in_flight,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls_by_label": dict(self.calls_by_label),
        }

    def reset(self) -> SimulatorStats:
        """Fresh counters that still know about requests in flight right now."""
        return SimulatorStats(peak_in_flight=self.in_flight, in_flight=self.in_flight)


# ---------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------


class Gates:
    """Named gates that hold requests until a test opens them.

    Why: a test that needs "N calls in flight right now" (a concurrency proof,
    Ctrl-C with calls outstanding, finishing order) must not guess with
    latencies and sleeps. A request with ``sim:hold=NAME`` waits at gate NAME;
    ``notify_when_held`` wakes a test thread once enough are waiting;
    ``release`` opens the gate for good (until ``clear``). Event-loop only.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._open: set[str] = set()
        self._held: Counter[str] = Counter()
        self._waiters: list[tuple[str, int, threading.Event]] = []

    async def pass_through(self, name: str) -> None:
        """Return at once if ``name`` is open, else wait until it is released."""
        if name in self._open:
            return
        event = self._events.setdefault(name, asyncio.Event())
        self._held[name] += 1
        self._notify(name)
        try:
            await event.wait()
        finally:
            self._held[name] -= 1
            if self._held[name] <= 0:
                del self._held[name]

    def release(self, name: str) -> None:
        self._open.add(name)
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def notify_when_held(self, name: str, count: int, event: threading.Event) -> None:
        """Set ``event`` (a thread's) once ``count`` requests wait at gate ``name``."""
        if self._held[name] >= count:
            event.set()
        else:
            self._waiters.append((name, count, event))

    def held(self) -> dict[str, int]:
        return {name: count for name, count in self._held.items() if count}

    def clear(self) -> None:
        """Let everything held go, then close all gates again."""
        for event in self._events.values():
            event.set()
        self._events.clear()
        self._open.clear()

    def _notify(self, name: str) -> None:
        if not self._waiters:
            return
        held = self._held[name]
        still_waiting = []
        for waiter in self._waiters:
            if waiter[0] == name and held >= waiter[1]:
                waiter[2].set()
            else:
                still_waiting.append(waiter)
        self._waiters = still_waiting


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

_JSON_HEADERS = {"Content-Type": "application/json"}


def _error_body(status: int, message: str, type_: str, code: str | None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}
    ).encode()


def _error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error" if status < 500 else "server_error"


class SimulatorServer:
    """The aiohttp application and all mutable simulator state.

    All state is touched only on the server's event loop; other threads go
    through ``call_in_loop`` (see ``SimulatorHandle``), so no locks are needed.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config or SimulatorConfig()
        self._clock = clock
        self._rng = random.Random(self._config.seed)
        self._stats = SimulatorStats()
        self._limiter = RateLimiter()
        self._directive_counts: Counter[tuple[str, str]] = Counter()
        self._gates = Gates()
        self._request_serial = 0
        self._models_body = self._render_models(self._config.models)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- state, for the control endpoints and SimulatorHandle ---------------

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    def stats(self) -> dict[str, Any]:
        """Counters plus ``held``: requests waiting at each gate right now."""
        return {**self._stats.as_dict(), "held": self._gates.held()}

    def reset(self) -> None:
        """Zero counters, rate windows and directive counters; reseed the RNG.

        Held requests are let go and gates close again, so a reset never
        leaves a request stuck behind a gate nobody will open.
        """
        self._stats = self._stats.reset()
        self._limiter.clear()
        self._directive_counts.clear()
        self._gates.clear()
        self._rng.seed(self._config.seed)

    def release(self, gate: str) -> None:
        """Open gate ``gate``: requests held there proceed, later ones pass."""
        self._gates.release(gate)

    def notify_when_held(self, gate: str, count: int, event: threading.Event) -> None:
        self._gates.notify_when_held(gate, count, event)

    def configure(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """Apply ``changes`` live; a new seed restarts the fault/jitter sequence."""
        new = self._config.updated(changes)
        if new.seed != self._config.seed:
            self._rng.seed(new.seed)
        if new.models != self._config.models:
            self._models_body = self._render_models(new.models)
        self._config = new
        return new

    def call_in_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the server's loop from another thread and return its result.

        Never call it from the loop's own thread: it would wait on itself.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    # -- lifecycle ------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=_CLIENT_MAX_SIZE)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._retrieve_model)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_post("/_sim/reset", self._post_reset)
        app.router.add_get("/_sim/config", self._get_config)
        app.router.add_post("/_sim/config", self._post_config)
        app.router.add_post("/_sim/release", self._post_release)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False
    ) -> int:
        """Listen on ``host:port`` (0 = a free port) and return the bound port."""
        runner_options: dict[str, Any] = {
            # A client that gives up (timeout, drop) cancels its handler, so a
            # "hang" fault does not keep counting as in flight after the client left.
            "handler_cancellation": True,
            "shutdown_timeout": _SHUTDOWN_GRACE_S,
        }
        if not access_log:
            runner_options["access_log"] = None
        runner = web.AppRunner(self.build_app(), **runner_options)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=_BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._loop = None

    # -- control endpoints -----------------------------------------------------

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._config.as_dict())

    async def _post_config(self, request: web.Request) -> web.Response:
        try:
            changes = json.loads(await request.read() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("config body must be a JSON object")
            config = self.configure(changes)
        except ValueError as error:  # JSONDecodeError is a ValueError
            return self._error(400, str(error), None, {})
        return web.json_response(config.as_dict())

    async def _post_release(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            gate = body.get("gate") if isinstance(body, dict) else None
            if not isinstance(gate, str) or not gate:
                raise ValueError('release body must be {"gate": "NAME"}')
        except ValueError as error:
            return self._error(400, str(error), None, {})
        self.release(gate)
        return web.json_response({"released": gate})

    # -- models ----------------------------------------------------------------

    @staticmethod
    def _render_models(models: Sequence[str]) -> bytes:
        data = [_model_object(name) for name in models]
        return json.dumps({"object": "list", "data": data}).encode()

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.Response(body=self._models_body, headers=_JSON_HEADERS)

    async def _retrieve_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self._config.models:
            return self._error(404, f"The model '{name}' does not exist", "model_not_found", {})
        return web.Response(body=json.dumps(_model_object(name)).encode(), headers=_JSON_HEADERS)

    # -- chat completions --------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        stats.calls += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_in_flight:
            stats.peak_in_flight = stats.in_flight
        try:
            return await self._answer_chat(request)
        finally:
            # ``reset`` may have swapped in new stats; decrement the live ones.
            self._stats.in_flight -= 1

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        """One request down the ladder: auth, parse, rate limit, outcome, wait, answer."""
        config = self._config
        if config.api_key is not None and not self._authorized(request, config.api_key):
            return self._reject_unauthorized(config)
        try:
            chat = ChatRequest.parse(await request.read())
        except ValueError as error:
            return self._error(400, str(error), None, self._limiter.headers(self._clock(), config))
        if chat.directives.label is not None:
            self._stats.calls_by_label[chat.directives.label] += 1
        draws = _Draws.take(self._rng)
        answer = self._compose(chat, config)
        cost = chat.token_cost(answer.completion_tokens)
        decision = self._limiter.admit(self._clock(), cost, config)
        if not decision.allowed:
            return self._reject_rate_limited(chat, decision)
        outcome = self._choose_outcome(chat, draws, config)
        if outcome.fault:
            # Counted when chosen: a client that gives up during a hang has
            # still met the fault.
            self._stats.faults[outcome.fault] += 1
        await self._wait(chat, outcome, draws, config)
        return await self._deliver(request, chat, outcome, answer, decision.headers)

    def _reject_unauthorized(self, config: SimulatorConfig) -> web.Response:
        self._stats.faults["401"] += 1
        return self._error(
            401,
            "Incorrect API key provided. The simulator expects the key it was configured with.",
            "invalid_api_key",
            self._limiter.headers(self._clock(), config),
            type_="invalid_request_error",
        )

    def _reject_rate_limited(self, chat: ChatRequest, decision: RateDecision) -> web.Response:
        self._stats.rate_limited += 1
        headers = {**decision.headers, **_retry_after_headers(decision.retry_after_s)}
        message = (
            f"Rate limit reached for {chat.model} (simulated): "
            f"retry after {decision.retry_after_s:.3f}s."
        )
        return self._error(429, message, "rate_limit_exceeded", headers)

    def _compose(self, chat: ChatRequest, config: SimulatorConfig) -> Answer:
        text = compose_answer(
            model=chat.model,
            prompt=chat.prompt,
            temperature=chat.temperature,
            seed=config.seed,
            json_mode=chat.json_mode,
            verdict=chat.directives.verdict,
        )
        return _clip_to_tokens(text, chat.max_tokens)

    def _choose_outcome(
        self, chat: ChatRequest, draws: _Draws, config: SimulatorConfig
    ) -> _Outcome:
        """Directives first (they are deterministic), then the seeded fault draw."""
        directives = chat.directives
        if directives.status is not None:
            message = (
                f"Simulated error {directives.status} requested by directive "
                f"sim:status={directives.status}."
            )
            return _Outcome("error", directives.status, message)
        if self._take_directive("fail_first", chat.prompt.key, directives.fail_first):
            return _Outcome("error", 503, "Simulated 503 (directive sim:fail_first).")
        threshold = config.error_rate
        if draws.fault < threshold:
            status = 500 if draws.split < 0.5 else 503
            return _Outcome("error", status, _SERVER_ERROR_MESSAGE)
        threshold += config.hang_rate
        if draws.fault < threshold:
            return _Outcome("hang")
        threshold += config.drop_rate
        if draws.fault < threshold:
            return _Outcome("drop")
        threshold += config.malformed_rate
        if draws.fault < threshold:
            return _Outcome("malformed")
        bad_json = directives.bad_json
        if chat.json_mode and self._take_directive("bad_json", chat.prompt.key, bad_json):
            return _Outcome("bad_json")
        return _OK

    async def _wait(
        self, chat: ChatRequest, outcome: _Outcome, draws: _Draws, config: SimulatorConfig
    ) -> None:
        """Wait at the request's gate if it names one, then take its latency (or hang)."""
        if chat.directives.hold is not None:
            await self._gates.pass_through(chat.directives.hold)
        if outcome.kind == "hang":
            delay = config.hang_s
        elif chat.directives.latency_s is not None:
            delay = chat.directives.latency_s
        else:
            delay = config.latency_s + draws.jitter * config.latency_jitter_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def _deliver(
        self,
        request: web.Request,
        chat: ChatRequest,
        outcome: _Outcome,
        answer: Answer,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        kind = outcome.kind
        if kind == "error":
            if outcome.status == 429 and chat.directives.retry_after_s is not None:
                headers.update(_retry_after_headers(chat.directives.retry_after_s))
            return self._error(outcome.status, outcome.message, None, headers)
        if kind == "drop":
            return await self._drop(request, headers)
        if kind == "malformed":
            self._stats.status_counts["200"] += 1
            headers["x-request-id"] = self._next_request_id()
            return web.Response(body=_MALFORMED_BODY, headers={**_JSON_HEADERS, **headers})
        if kind == "bad_json":
            answer = _clip_to_tokens(_BAD_JSON_CONTENT, chat.max_tokens)
        return self._completion(chat, answer, headers)

    def _take_directive(self, kind: str, key: str, limit: int) -> bool:
        """True while this prompt has used fewer than ``limit`` of ``kind``; counts one use."""
        if limit <= 0:
            return False
        counter_key = (kind, key)
        if self._directive_counts[counter_key] >= limit:
            return False
        self._directive_counts[counter_key] += 1
        return True

    def _completion(
        self, chat: ChatRequest, answer: Answer, headers: dict[str, str]
    ) -> web.Response:
        request_id = self._next_request_id()
        prompt_tokens = chat.prompt.prompt_tokens
        completion_tokens = answer.completion_tokens
        payload = {
            "id": f"chatcmpl-sim{self._request_serial:010d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.model,
            "system_fingerprint": "fp_simulator",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        stats = self._stats
        stats.completed += 1
        stats.status_counts["200"] += 1
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        headers["x-request-id"] = request_id
        return web.Response(body=json.dumps(payload).encode(), headers={**_JSON_HEADERS, **headers})

    async def _drop(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        """Send a status line and part of a body, then close the connection.

        The client has already committed to reading a 200 response, so it sees
        a connection that died mid-body: the failure a proxy reset produces.
        """
        response = web.StreamResponse(status=200, headers={**_JSON_HEADERS, **headers})
        response.content_length = _DROPPED_CONTENT_LENGTH
        await response.prepare(request)
        await response.write(_DROPPED_BODY_PREFIX)
        transport = request.transport
        if transport is not None:
            transport.close()
        return response

    def _error(
        self,
        status: int,
        message: str,
        code: str | None,
        headers: Mapping[str, str],
        *,
        type_: str | None = None,
    ) -> web.Response:
        self._stats.status_counts[str(status)] += 1
        body = _error_body(status, message, type_ or _error_type(status), code)
        all_headers = {**_JSON_HEADERS, **headers, "x-request-id": self._next_request_id()}
        return web.Response(status=status, body=body, headers=all_headers)

    def _next_request_id(self) -> str:
        self._request_serial += 1
        return f"req_sim{self._request_serial:010d}"

    @staticmethod
    def _authorized(request: web.Request, api_key: str) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {api_key}"


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "report-pipeline-simulator"}


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"max_tokens: {value!r} must be a whole number >= 1")
    return int(value)


# ---------------------------------------------------------------------------
# Running it: in a thread for tests, or as a process
# ---------------------------------------------------------------------------


class SimulatorHandle:
    """A running simulator as a test sees it: its URL and thread-safe controls."""

    def __init__(self, server: SimulatorServer, port: int, host: str = "127.0.0.1") -> None:
        self._server = server
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}/v1"

    @property
    def config(self) -> SimulatorConfig:
        return self._server.config

    def stats(self) -> dict[str, Any]:
        """Counters, as ``GET /_sim/stats`` returns them."""
        return self._server.call_in_loop(self._server.stats)  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Zero counters and rate windows, as ``POST /_sim/reset``."""
        self._server.call_in_loop(self._server.reset)

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change config fields live, as ``POST /_sim/config``; returns the new config."""
        return self._server.call_in_loop(  # type: ignore[no-any-return]
            lambda: self._server.configure(changes)
        )

    def release(self, gate: str) -> None:
        """Open gate ``gate`` (see ``sim:hold=NAME``), as ``POST /_sim/release``."""
        self._server.call_in_loop(lambda: self._server.release(gate))

    def wait_until_held(self, count: int, gate: str, timeout: float = 10.0) -> None:
        """Block until ``count`` requests wait at ``gate``; TimeoutError if they do not.

        This is how a test knows requests are in flight without sleeping.
        """
        arrived = threading.Event()
        self._server.call_in_loop(lambda: self._server.notify_when_held(gate, count, arrived))
        if not arrived.wait(timeout):
            held = self.stats()["held"].get(gate, 0)
            raise TimeoutError(
                f"{held} of {count} requests held at gate {gate!r} after {timeout}s"
            )

    def __repr__(self) -> str:
        return f"SimulatorHandle(base_url={self.base_url!r})"


class _LoopThread:
    """Runs a ``SimulatorServer`` on its own event loop in a background thread."""

    def __init__(self, server: SimulatorServer, host: str, port: int) -> None:
        self._server = server
        self._host = host
        self._requested_port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    def start(self) -> None:
        """Start and wait until the server listens (or re-raise why it could not)."""
        self._thread.start()
        if not self._ready.wait(_THREAD_START_TIMEOUT_S):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            self._thread.join(_THREAD_STOP_TIMEOUT_S)
            raise RuntimeError("simulator failed to start") from self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(_THREAD_STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("simulator thread did not stop in time")
        if self._error is not None:
            raise RuntimeError("simulator failed while stopping") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.port = await self._server.start(self._host, self._requested_port)
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await self._server.stop()


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatorConfig | None = None, /, **overrides: Any
) -> Iterator[SimulatorHandle]:
    """Serve a simulator on a free 127.0.0.1 port for the ``with`` block.

    The server has its own event loop in a background thread, so synchronous
    code (the pipeline's thread pools, the sync ``openai`` client) can call it;
    readiness is an Event, and the thread is joined on exit.
    """
    config = (config or SimulatorConfig()).updated(overrides)
    server = SimulatorServer(config)
    thread = _LoopThread(server, "127.0.0.1", 0)
    thread.start()
    try:
        yield SimulatorHandle(server, thread.port)
    finally:
        thread.stop()


def raise_open_file_limit(minimum: int) -> int:
    """Lift this process's soft open-file limit toward ``minimum``; return the new limit.

    Holding 1,000+ connections needs 1,000+ descriptors (twice that when the
    client lives in the same process), above the common 1,024 default.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return minimum
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < minimum:
        target = minimum if hard == resource.RLIM_INFINITY else min(minimum, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# (flags, config field, type, default, help) for every SimulatorConfig flag.
_CONFIG_FLAGS: tuple[tuple[tuple[str, ...], str, Callable[[str], Any], Any, str], ...] = (
    (("--latency",), "latency_s", float, 0.0, "seconds before each answer"),
    (("--jitter",), "latency_jitter_s", float, 0.0, "extra uniform 0..N seconds per answer"),
    (("--seed",), "seed", int, 0, "seed for jitter and fault draws"),
    (("--rpm", "--requests-per-window"), "requests_per_window", int, None,
     "requests allowed per --window (default unlimited)"),
    (("--tpm", "--tokens-per-window"), "tokens_per_window", int, None,
     "tokens allowed per --window (default unlimited)"),
    (("--window",), "window_s", float, 60.0, "rate-limit window in seconds (default 60)"),
    (("--error-rate",), "error_rate", float, 0.0, "share of 500/503 answers (0..1)"),
    (("--hang-rate",), "hang_rate", float, 0.0, "share of answers delayed by --hang-s"),
    (("--hang-s",), "hang_s", float, 30.0, "delay of a hanging answer (default 30)"),
    (("--drop-rate",), "drop_rate", float, 0.0, "share of connections dropped mid-body"),
    (("--malformed-rate",), "malformed_rate", float, 0.0, "share of 200s with invalid JSON"),
    (("--api-key",), "api_key", str, None, "require 'Authorization: Bearer KEY'"),
    (("--models",), "models", str, ",".join(DEFAULT_MODELS), "comma-separated model ids"),
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m report_pipeline.simulator",
        description="OpenAI-compatible simulator for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    for flags, dest, kind, default, text in _CONFIG_FLAGS:
        parser.add_argument(*flags, dest=dest, type=kind, default=default, help=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; print the base URL once listening."""
    args = _build_parser().parse_args(argv)
    options = vars(args)
    host, port, access_log = options.pop("host"), options.pop("port"), options.pop("access_log")
    try:
        config = SimulatorConfig(**options)
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    raise_open_file_limit(8192)
    if access_log:
        logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve_until_signalled(SimulatorServer(config), host, port, access_log))
    return 0


async def _serve_until_signalled(
    server: SimulatorServer, host: str, port: int, access_log: bool
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (exit status 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(signum, stop.set)
    bound = await server.start(host, port, access_log=access_log)
    try:
        print(f"simulator listening on http://{host}:{bound}/v1", flush=True)
        await stop.wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    sys.exit(main())
