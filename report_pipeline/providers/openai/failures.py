"""What went wrong with a call, in words a user can act on: retryable failures and the server's own message.

Pure helpers of the provider's failure ladder: what to quote from an error body, where a
redirect points, whether a TLS certificate was the cause, how a body we cannot read is
described. The provider decides what each failure does to the run (retry, fail the task,
stop every call); these only read and describe.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from ..retry import ErrorKind

__all__ = [
    "CHAT_PATH",
    "MAX_MESSAGE_CHARS",
    "Failure",
    "EmptyStream",
    "StreamRefused",
    "cause_text",
    "certificate_rejected",
    "error_code",
    "json_body",
    "malformed",
    "redirect_message",
    "server_message",
    "status_code_of",
]

# The chat endpoint, relative to the client's base URL (AzureOpenAI adds the deployment).
CHAT_PATH = "/chat/completions"
# The server message in an exception is cut here: a 400 may echo a whole prompt.
MAX_MESSAGE_CHARS = 500
# How much of an unreadable body a "malformed" message quotes.
_MAX_EXCERPT_CHARS = 200


@dataclass(eq=False)
class Failure(Exception):
    """One attempt failed in a way worth retrying."""

    kind: ErrorKind
    reason: str  # short, for logs and events: "HTTP 503", "timeout", ...
    message: str  # the server's words (scrubbed)
    status_code: int | None = None
    retry_after: float | None = None

    @property
    def rate_limited(self) -> bool:
        return self.status_code == 429


class StreamRefused(Exception):
    """The endpoint answered a streamed call with 400: send it again, unstreamed."""


class EmptyStream(StreamRefused):
    """A streamed call came back as a stream with no event at all (llama.cpp's Python server fails a
    streamed request so, a prompt past its context among others): ask again unstreamed, where the server
    says why. The endpoint still takes streamed calls."""


def malformed(response: httpx2.Response, what: str, scrub: Callable[[str], str]) -> Failure:
    """A body we cannot read, described by what came back: its content type and its start."""
    content_type = response.headers.get("content-type") or "no content-type"
    body = response.content
    if body:
        excerpt = body[: _MAX_EXCERPT_CHARS * 4].decode(response.charset_encoding or "utf-8", "replace")
        shown = f"body starts {excerpt[:_MAX_EXCERPT_CHARS]!r}"
    else:
        shown = "empty body"
    return Failure("malformed", "malformed response", scrub(f"{what} ({content_type}; {shown})"))


def json_body(response: httpx2.Response) -> Any:
    """The body as JSON, in the charset its content type names.

    `json.loads(bytes)` assumes UTF-8 (or 16/32), so the common case costs no
    header parsing; only a body that is not UTF-8 is decoded by its charset
    (a server answering `application/json; charset=iso-8859-1`).
    """
    content = response.content
    try:
        return json.loads(content)
    except UnicodeDecodeError:
        charset = response.charset_encoding
        if not charset:
            raise
        return json.loads(content.decode(charset))


def status_code_of(code: object) -> int | None:
    """An HTTP-like status from an error object's `code` (502 or "502"), else None."""
    if type(code) is int:
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def redirect_message(response: httpx2.Response) -> str:
    """Where a 3xx points, and the base_url that would reach it directly."""
    location = response.headers.get("location")
    if not location:
        return "the endpoint answered with a redirect but no Location: check base_url"
    target = str(response.url.join(location))
    base = target.split("?", 1)[0]
    for path in (CHAT_PATH, "/models"):
        if base.endswith(path):
            return f"the endpoint redirected to {target}: set base_url to {base[: -len(path)]}"
    return f"the endpoint redirected to {target}: set base_url to it"


def server_message(error: openai.APIStatusError) -> str:
    """The server's own words: `error.message` in the OpenAI shape, `detail` in FastAPI's, else the body."""
    body = error.body
    text: object = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("detail")
        elif isinstance(inner, str):
            text = inner
        text = text or body.get("detail")
    elif isinstance(body, str) and body.strip():
        text = body.strip()
    message = str(text) if text else f"{error.response.reason_phrase or 'error'} (no message from the server)"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return message


def error_code(error: openai.APIStatusError) -> str | None:
    """The `code` of an error body (`insufficient_quota`, `unsupported_parameter`), else the SDK's."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("code") is not None:
            return str(inner.get("code"))
    return error.code


def certificate_rejected(error: BaseException) -> bool:
    """Whether an SSL certificate check is among the causes of `error` (the SDK wraps httpx2's, which wraps ssl's)."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def cause_text(error: openai.APIError) -> str:
    """Why a connection failed, from the transport error the SDK wrapped."""
    cause = error.__cause__
    if cause is None:
        return error.message
    detail = str(cause) or type(cause).__name__
    return f"{type(cause).__name__}: {detail}"
