"""The Batch API's files, as pure functions: requests to JSONL lines, lines to batches, result lines to answers.

Nothing here talks to a server or a ledger, so the rules (one model per batch, the
per-file limits, custom_id uniqueness, how a result line reads) are tested alone.

Shapes (OpenAI's Batch guide): an input line is
`{"custom_id", "method": "POST", "url", "body"}`; a result line is
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`,
in the output file when the status is 200 and in the error file otherwise; a request
that never ran (expired, cancelled) has `"response": null` and `"error": {"code", "message"}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..providers.base import ChatRequest
from ..providers.openai.answers import ChatAnswer, NotAnAnswer, read_body
from ..providers.openai.dialect import refused_parameter

#: OpenAI's per-file limits (requests, bytes); both configurable (batch_max_requests, batch_max_bytes).
DEFAULT_MAX_REQUESTS = 50_000
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
#: OpenAI caps custom_id; a longer label is cut and made unique.
MAX_CUSTOM_ID = 64


@dataclass(frozen=True)
class BatchLine:
    """One request of a wave, ready to go into an input file."""

    custom_id: str
    request_hash: str
    request: ChatRequest
    line: str  # the JSONL line, without its newline

    @property
    def task_key(self) -> str:
        return self.request.label.rpartition(".")[0]

    @property
    def step(self) -> str:
        return self.request.label.rpartition(".")[2]

    @property
    def size(self) -> int:
        return len(self.line.encode("utf-8")) + 1


@dataclass(frozen=True)
class Refusal:
    """A request that failed (its error-file line): the server's status and words."""

    message: str
    status_code: int | None = None
    code: str | None = None  # batch_expired, batch_cancelled, ...
    param: str | None = None  # a parameter the model does not take (a 400 naming it)

    @property
    def never_ran(self) -> bool:
        """Expired or cancelled before it ran: worth sending again, unlike a 400."""
        return self.code in ("batch_expired", "batch_cancelled")


def build_lines(
    wanted: Iterable[tuple[str, ChatRequest]], *, url: str,
    body: Callable[[ChatRequest], dict[str, Any]] = ChatRequest.sampling,
) -> list[BatchLine]:
    """One line per distinct request (by hash), in the order given, each with a unique custom_id.

    `body` writes a request as the endpoint wants it (its dialect: the same body a real-time
    call would carry).

    The custom_id is the call's label, `OBJ.TASK.STEP` (plus the variant's or section's
    suffix), so an error file reads like the ledger; a repeat gets `#2`, `#3`.
    """
    seen_hashes: set[str] = set()
    used: set[str] = set()
    lines: list[BatchLine] = []
    for request_hash, request in wanted:
        if request_hash in seen_hashes:
            continue
        seen_hashes.add(request_hash)
        custom_id = _unique(request.label or request_hash[:16], used)
        used.add(custom_id)
        line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body(request)}
        lines.append(BatchLine(custom_id, request_hash, request, json.dumps(line, ensure_ascii=False)))
    return lines


def _unique(label: str, used: set[str]) -> str:
    base = label[:MAX_CUSTOM_ID]
    if base not in used:
        return base
    number = 2
    while True:
        suffix = f"#{number}"
        candidate = label[: MAX_CUSTOM_ID - len(suffix)] + suffix
        if candidate not in used:
            return candidate
        number += 1


def split_batches(lines: Sequence[BatchLine], *, max_requests: int, max_bytes: int) -> list[list[BatchLine]]:
    """The wave's batches: one model per batch (the Batch API's rule), each within both limits.

    Models in the order they first appear, lines in their order within a model. A
    single line over `max_bytes` still gets a batch of its own (the server will say why).
    """
    by_model: dict[str, list[BatchLine]] = {}
    for line in lines:
        by_model.setdefault(line.request.model, []).append(line)
    batches: list[list[BatchLine]] = []
    for model_lines in by_model.values():
        current: list[BatchLine] = []
        size = 0
        for line in model_lines:
            if current and (len(current) >= max_requests or size + line.size > max_bytes):
                batches.append(current)
                current, size = [], 0
            current.append(line)
            size += line.size
        if current:
            batches.append(current)
    return batches


def jsonl(lines: Sequence[BatchLine]) -> bytes:
    """An input file's bytes: one line per request, each ending with a newline."""
    return "".join(line.line + "\n" for line in lines).encode("utf-8")


def parse_results(content: str) -> dict[str, ChatAnswer | Refusal]:
    """custom_id -> what came back, from an output or error file. Lines we cannot read are skipped."""
    results: dict[str, ChatAnswer | Refusal] = {}
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
            continue
        results[item["custom_id"]] = read_result(item)
    return results


def read_result(item: dict[str, Any]) -> ChatAnswer | Refusal:
    """One result line: the answer of a 200 with a readable body (answers.py, as online), else a Refusal saying why."""
    response = item.get("response")
    error = item.get("error")
    if not isinstance(response, dict):
        if isinstance(error, dict):
            return Refusal(str(error.get("message") or error.get("code") or "the request was not run"),
                           code=str(error.get("code")) if error.get("code") else None)
        return Refusal("the result line has neither a response nor an error")
    status = response.get("status_code")
    status_code = status if isinstance(status, int) else None
    body = response.get("body")
    if status_code != 200:
        message = _error_message(body) or f"HTTP {status_code}"
        return Refusal(message, status_code=status_code, code=_error_code(body),
                       param=refused_parameter(status_code or 0, body, message))
    try:
        return read_body(body)  # the same rule as a real-time answer's
    except NotAnAnswer as why:
        message = f"malformed response: {why.message}" if why.kind == "malformed" else why.message
        return Refusal(message, status_code=status_code)


def _error_message(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner.get("detail") or "")
        if isinstance(inner, str):
            return inner
    return ""


def _error_code(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return str(code) if code else None
    return None
