"""``SimulatorConfig``: every knob of the simulator, validated once, replaced whole."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODELS: tuple[str, ...] = ("sim-small", "sim-large", "gpt-4o-mini")

# OpenAI's documented Batch API limits: requests per input file, and the
# input file's size (openai-python's ``BatchCreateParams.input_file_id``).
DEFAULT_BATCH_MAX_REQUESTS = 50_000
DEFAULT_BATCH_MAX_BYTES = 200 * 1024 * 1024

_NON_NEGATIVE_FLOATS = ("latency_s", "latency_jitter_s", "latency_sigma", "hang_s", "batch_delay_s",
                        "prompt_s_per_token")
_SHARES = ("error_rate", "hang_rate", "drop_rate", "malformed_rate", "batch_error_rate")
_OPTIONAL_LIMITS = ("requests_per_window", "tokens_per_window")
_POSITIVE_COUNTS = ("batch_steps", "batch_max_requests", "batch_max_bytes")
_FLAGS = ("batch_manual", "batch_fail", "batch_validate_upload", "no_batch_api", "stream_paced")


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes the simulator's behaviour; replaced whole on update.

    Frozen so a request handler can take one snapshot and see a consistent
    config for its whole life even if ``/_sim/config`` changes it meanwhile.
    Fault shares are drawn from one uniform number per request, in the order
    error, hang, drop, malformed: their sum is the share of faulty answers
    (capped at 1, the later kinds losing out).

    Batches (``/v1/batches``) move through their statuses in ``batch_steps``
    processing steps plus validation and finalizing, spread evenly over
    ``batch_delay_s``; with ``batch_manual`` they move only when a test calls
    ``SimulatorHandle.advance_batches``. ``batch_expire`` is the share of a
    batch's requests processed before its completion window "ends" (None:
    never expires); ``batch_fail`` fails every batch at validation, as
    OpenAI's enqueued-token limit does. Input-file problems fail the batch,
    as OpenAI does, unless ``batch_validate_upload`` rejects them at upload.
    """

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    # heavy tails, as real endpoints have: latency_s is the median, each answer's latency is
    # latency_s * exp(latency_sigma * z) for a seeded normal z (lognormal; 0: every answer alike)
    latency_sigma: float = 0.0
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
    batch_delay_s: float = 1.0
    batch_steps: int = 4
    batch_manual: bool = False
    batch_error_rate: float = 0.0
    batch_expire: float | None = None
    batch_fail: bool = False
    batch_max_requests: int = DEFAULT_BATCH_MAX_REQUESTS
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    batch_validate_upload: bool = False
    # Answer /v1/files and /v1/batches with 404, like Ollama or a plain vLLM server.
    no_batch_api: bool = False
    # More model names answered as reasoning models (gpt-5*, o1*, o3*, o4* always are): an Azure
    # deployment or a new family whose name does not give it away.
    reasoning_models: tuple[str, ...] = ()
    # Compute at most this many answers at once and queue the rest without limit, as llama.cpp and
    # Ollama with one slot do (None: every request at once). A request abandoned while queued is
    # skipped; one abandoned while computing is computed to the end all the same.
    slots: int | None = None
    # Seconds of computing per prompt token, before the first token (a real server evaluates the prompt
    # first: on a CPU, 1,100 prompt tokens take ~20 s, so latency follows the prompt's size more than the
    # answer's). Part of a slot's computing time with `slots`.
    prompt_s_per_token: float = 0.0
    # A streamed answer's text in pieces spread over its latency, after the prompt's time, as a real
    # server sends tokens while it generates them (False: every event at once, after the latency).
    stream_paced: bool = False
    # The model's context, in tokens (None: unbounded). A request whose prompt and max_tokens pass it is
    # refused as OpenAI refuses it (400 context_length_exceeded); streamed, with `stream_errors: empty`,
    # as llama.cpp's Python server answers it: 200, an event stream with nothing in it.
    context_tokens: int | None = None
    stream_errors: str = "status"

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE_FLOATS:
            self._set(name, as_float(name, getattr(self, name), minimum=0.0))
        for name in _SHARES:
            share = as_float(name, getattr(self, name), minimum=0.0)
            if share > 1.0:
                raise ValueError(f"{name}: {share} is above 1 (it is a share, 0..1)")
            self._set(name, share)
        window_s = as_float("window_s", self.window_s, minimum=0.0)
        if window_s == 0.0:
            raise ValueError("window_s: must be above 0")
        self._set("window_s", window_s)
        if self.stream_errors not in ("status", "empty"):
            raise ValueError(f"stream_errors: {self.stream_errors!r} must be status or empty")
        if self.context_tokens is not None and (not is_int(self.context_tokens) or self.context_tokens < 1):
            raise ValueError(f"context_tokens: {self.context_tokens!r} must be a whole number >= 1 or null")
        if self.slots is not None and (not is_int(self.slots) or self.slots < 1):
            raise ValueError(f"slots: {self.slots!r} must be a whole number >= 1 or null")
        for name in _OPTIONAL_LIMITS:
            limit = getattr(self, name)
            if limit is not None and (not is_int(limit) or limit < 1):
                raise ValueError(f"{name}: {limit!r} must be a whole number >= 1 or null")
        if not is_int(self.seed):
            raise ValueError(f"seed: {self.seed!r} must be a whole number")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key: must be a non-empty string or null")
        self._set("models", _as_models(self.models))
        self._set("reasoning_models", _as_models(self.reasoning_models, empty_ok=True))
        for name in _POSITIVE_COUNTS:
            count = getattr(self, name)
            if not is_int(count) or count < 1:
                raise ValueError(f"{name}: {count!r} must be a whole number >= 1")
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r} must be true or false")
        if self.batch_expire is not None:
            share = as_float("batch_expire", self.batch_expire, minimum=0.0)
            if share > 1.0:
                raise ValueError(
                    f"batch_expire: {share} is above 1 (the share of requests processed "
                    "before the batch expires, 0..1, or null)"
                )
            self._set("batch_expire", share)

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
        data["reasoning_models"] = list(self.reasoning_models)
        return data

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_float(name: str, value: object, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} must be a number")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}: {value!r} must be a finite number >= {minimum:g}")
    return float(value)


def _as_models(value: object, *, empty_ok: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not (value or empty_ok):
        raise ValueError("models: must be a non-empty list of model names")
    if not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"models: {value!r} must contain only non-empty strings")
    return tuple(value)
