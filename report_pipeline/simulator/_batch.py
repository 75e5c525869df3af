"""The Batch API's rules: input lines and their problems, a batch's lifecycle,
result lines.

Pure and synchronous, so the rules read (and test) without a server:
``BatchService`` owns the clock, the stored files, the pacing and the HTTP.

Shapes follow OpenAI (openai-python's ``Batch``, ``BatchError``,
``BatchRequestCounts``, ``BatchUsage``; the Batch guide for the lines):

* an input line is ``{"custom_id", "method": "POST", "url", "body"}``;
* a request that ran is a result line ``{"id", "custom_id", "response":
  {"status_code", "request_id", "body"}, "error": null}``, in the output file
  when the status is 200 and in the error file otherwise (the body is then
  OpenAI's ``{"error": {...}}``);
* a request that never ran (the batch expired or was cancelled first) is an
  error-file line with ``"response": null`` and ``"error": {"code",
  "message"}``, code ``batch_expired`` or ``batch_cancelled``;
* problems with the input file itself fail the whole batch at validation,
  listed in ``errors.data`` as ``{"code", "message", "param", "line"}``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: Endpoints the simulator runs batches for (OpenAI has more; we simulate chat).
BATCH_ENDPOINTS = ("/v1/chat/completions",)
#: OpenAI accepts only a 24-hour completion window.
COMPLETION_WINDOWS = ("24h",)
COMPLETION_WINDOW_S = 24 * 3600
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# A broken 50,000-line file must not make every poll carry 50,000 errors.
MAX_REPORTED_PROBLEMS = 100

_UNEXECUTED = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": (
        "batch_cancelled",
        "This request was not executed because the batch was cancelled.",
    ),
}


class BatchProblem(NamedTuple):
    """One reason an input file fails validation: OpenAI's ``BatchError``."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


class BatchInput(NamedTuple):
    """One valid input line: its 1-based line number, custom_id and request body."""

    line: int
    custom_id: str
    body: dict[str, Any]


class RequestResult(NamedTuple):
    """How one batch request was answered, as the server's chat logic decided."""

    status_code: int
    request_id: str
    body: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    label: str | None = None


def parse_batch_input(
    data: bytes, *, endpoint: str, max_requests: int
) -> tuple[list[BatchInput], list[BatchProblem]]:
    """Every request in a JSONL input file, and every problem that fails it.

    Checks what OpenAI checks before running anything: each line a JSON object
    with a string ``custom_id`` (unique in the file), ``method`` POST, ``url``
    equal to the batch's endpoint and an object ``body``; one model for the
    whole file; at least one and at most ``max_requests`` requests. What the
    body asks (messages, max_tokens) is checked when the request runs, and a
    bad body is that request's 400, not the batch's failure.
    """
    if not data.strip():
        return [], [BatchProblem("empty_file", "The batch input file is empty.")]
    lines = data.split(b"\n")
    if not lines[-1].strip():
        lines.pop()  # the newline ending the last line
    requests: list[BatchInput] = []
    problems: list[BatchProblem] = []
    seen: dict[str, int] = {}
    model: tuple[str, int] | None = None
    for number, raw in enumerate(lines, start=1):
        checked = _check_line(number, raw, endpoint)
        if isinstance(checked, BatchProblem):
            problems.append(checked)
            continue
        first = seen.setdefault(checked.custom_id, number)
        if first != number:
            problems.append(_duplicate(checked, first))
            continue
        line_model = checked.body.get("model")
        if isinstance(line_model, str):
            if model is None:
                model = (line_model, number)
            elif line_model != model[0]:
                problems.append(_model_mismatch(number, line_model, model))
                continue
        requests.append(checked)
    if len(lines) > max_requests:
        problems.append(
            BatchProblem(
                "too_many_tasks",
                f"The batch input file has {len(lines)} requests; "
                f"a batch may have at most {max_requests}.",
            )
        )
    return requests, problems[:MAX_REPORTED_PROBLEMS]


def _check_line(number: int, raw: bytes, endpoint: str) -> BatchInput | BatchProblem:
    try:
        line = json.loads(raw)
    except ValueError:  # bad UTF-8 or bad JSON
        message = "This line is not parseable as valid JSON."
        return BatchProblem("invalid_json_line", message, number)
    if not isinstance(line, dict):
        return BatchProblem("invalid_json_line", "This line is not a JSON object.", number)
    for name in ("custom_id", "method", "url", "body"):
        if name not in line:
            return BatchProblem(
                "missing_required_parameter",
                f"Missing required parameter: '{name}'.",
                number,
                name,
            )
    custom_id, method, url, body = line["custom_id"], line["method"], line["url"], line["body"]
    if not isinstance(custom_id, str) or not custom_id:
        return _invalid(number, "custom_id", f"{custom_id!r}; expected a non-empty string")
    if method != "POST":
        return _invalid(number, "method", f"{method!r}; only 'POST' is supported")
    if url != endpoint:
        return BatchProblem(
            "url_mismatch",
            f"The URL {url!r} on this line does not match the batch's endpoint {endpoint!r}.",
            number,
            "url",
        )
    if not isinstance(body, dict):
        return _invalid(number, "body", "expected a JSON object")
    return BatchInput(number, custom_id, body)


def _invalid(number: int, param: str, detail: str) -> BatchProblem:
    return BatchProblem("invalid_value", f"Invalid value for '{param}': {detail}.", number, param)


def _duplicate(request: BatchInput, first: int) -> BatchProblem:
    return BatchProblem(
        "duplicate_custom_id",
        f"The custom_id {request.custom_id!r} is a duplicate of line {first}; "
        "each request in a batch needs its own custom_id.",
        request.line,
        "custom_id",
    )


def _model_mismatch(number: int, model: str, first: tuple[str, int]) -> BatchProblem:
    return BatchProblem(
        "model_mismatch",
        f"The model {model!r} does not match {first[0]!r} on line {first[1]}; "
        "every request in a batch must use the same model.",
        number,
        "body.model",
    )


def enqueued_token_limit(model: str | None) -> BatchProblem:
    """The failure ``batch_fail`` simulates: OpenAI's most common batch failure."""
    return BatchProblem(
        "token_limit_exceeded",
        f"Enqueued token limit reached for {model or 'the model'} in organization "
        "org-simulator (simulated: batch_fail is set). Please try again once some "
        "in_progress batches have been completed.",
    )


def unit_draw(seed: int, batch_id: str, custom_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, batch, request).

    Hashed rather than drawn from the server's RNG, so which requests fail
    does not depend on how batches and real-time calls interleave, and a
    request resubmitted in a new batch draws again.
    """
    material = f"{seed}\x00{batch_id}\x00{custom_id}".encode()
    digest = hashlib.blake2b(material, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class BatchJob:
    """One batch: its request, its progress and its result lines.

    The service moves it one step at a time: ``start`` (validating →
    in_progress) or ``fail``; ``next_chunk`` and ``record`` while in
    progress; ``finish`` into a terminal status.
    """

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    model: str | None = None
    requests: list[BatchInput] = field(default_factory=list)
    processed: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    output_lines: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)
    errors: list[BatchProblem] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)
    # Requests processed before the completion window "ends"; all by default.
    cutoff: int = 0
    chunk_size: int = 1

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total(self) -> int:
        return len(self.requests)

    def start(
        self, requests: list[BatchInput], *, now: int, steps: int, expire: float | None
    ) -> None:
        """Validated: in progress, to run in ``steps`` chunks, expiring after the
        first ``expire`` share of requests when ``expire`` is set."""
        self.requests = requests
        model = requests[0].body.get("model")
        self.model = model if isinstance(model, str) else None
        self.cutoff = len(requests) if expire is None else math.floor(expire * len(requests))
        self.chunk_size = max(1, math.ceil(len(requests) / steps))
        self._set_status("in_progress", now)

    def fail(self, problems: list[BatchProblem], now: int) -> None:
        self.errors = problems
        self._set_status("failed", now)

    def request_cancel(self, now: int) -> None:
        self._set_status("cancelling", now)

    def next_chunk(self) -> list[BatchInput] | None:
        """The next requests to run, or None when the window has "ended" first."""
        if self.processed >= self.cutoff and self.cutoff < self.total:
            return None
        end = min(self.processed + self.chunk_size, self.cutoff)
        return self.requests[self.processed : end]

    def record(self, request: BatchInput, result: RequestResult) -> None:
        """File one answered request under output (200) or errors (any other status)."""
        line = self._line(
            request,
            response={
                "status_code": result.status_code,
                "request_id": result.request_id,
                "body": result.body,
            },
        )
        self.processed += 1
        if result.status_code == 200:
            self.completed += 1
            self.input_tokens += result.prompt_tokens
            self.output_tokens += result.completion_tokens
            self.output_lines.append(line)
        else:
            self.failed += 1
            self.error_lines.append(line)

    def mark_finalizing_if_done(self, now: int) -> None:
        if self.processed == self.total:
            self._set_status("finalizing", now)

    def finish(self, status: str, now: int) -> None:
        """End in ``status``; requests that never ran go to the error file."""
        if status in _UNEXECUTED:
            code, message = _UNEXECUTED[status]
            for request in self.requests[self.processed :]:
                self.error_lines.append(
                    self._line(request, error={"code": code, "message": message})
                )
        self._set_status(status, now)

    def as_dict(self) -> dict[str, Any]:
        """The batch as OpenAI's ``Batch`` object."""
        stamp = self.stamps.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": (
                {"object": "list", "data": [problem.as_dict() for problem in self.errors]}
                if self.errors
                else None
            ),
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress"),
            "expires_at": self.created_at + COMPLETION_WINDOW_S,
            "finalizing_at": stamp("finalizing"),
            "completed_at": stamp("completed"),
            "failed_at": stamp("failed"),
            "expired_at": stamp("expired"),
            "cancelling_at": stamp("cancelling"),
            "cancelled_at": stamp("cancelled"),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }

    def _set_status(self, status: str, now: int) -> None:
        self.status = status
        self.stamps[status] = now

    def _line(
        self,
        request: BatchInput,
        *,
        response: dict[str, Any] | None = None,
        error: dict[str, str] | None = None,
    ) -> str:
        line_id = f"batch_req_{self.id.removeprefix('batch_')}_{request.line}"
        return json.dumps(
            {"id": line_id, "custom_id": request.custom_id, "response": response, "error": error}
        )


def jsonl(lines: list[str]) -> bytes:
    """Lines joined as a JSONL file (each line ends with a newline)."""
    return "".join(line + "\n" for line in lines).encode()
