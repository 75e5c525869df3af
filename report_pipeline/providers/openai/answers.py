"""A chat completion's body read into an answer: one rule for real-time calls, streamed calls and batch lines.

Read from the JSON rather than the SDK's model, so that thin servers (no `usage`, no
`created`, content as parts) still work. A readable body without text (a content filter,
a refusal, a reasoning model's thoughts only, a tool call, an empty string) or with an
`error` object (OpenRouter) is not an answer: `NotAnAnswer` says why, and the caller fails
the task with it rather than call it "done" with ''. The checks on the usual answer are a
few dict lookups: this path is hot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..base import message_text

__all__ = ["ChatAnswer", "NotAnAnswer", "cut_warning", "read_body", "read_message", "usage", "usage_details"]

# Why a 200 can come back without text, by finish_reason.
_NO_TEXT_WHY = {
    "content_filter": "blocked by the content filter",
    "tool_calls": "the model asked to call a tool, and this pipeline offers none",
    "function_call": "the model asked to call a function, and this pipeline offers none",
}
# A refusal the answer quotes is cut here.
_MAX_REFUSAL_CHARS = 300


@dataclass(frozen=True)
class ChatAnswer:
    """The text of a first choice, and what the body says about it."""

    text: str
    model: str  # as the body names it; '' when it does not
    prompt_tokens: int | None  # None: the body has no usable count
    completion_tokens: int | None
    finish_reason: str = "stop"
    reasoning_tokens: int = 0  # of completion_tokens (`completion_tokens_details`)
    cached_tokens: int = 0  # of prompt_tokens (`prompt_tokens_details`)

    @property
    def cut(self) -> bool:
        """The model stopped at max_tokens: the text is there, but not all of it."""
        return self.finish_reason == "length"


NotAnAnswerKind = Literal["malformed", "error", "no_choices", "no_text"]


class NotAnAnswer(Exception):
    """A body that carries no answer, and why.

    kind: `malformed` (not the JSON expected: worth sending again), `error` (an `error`
    object in a 200, `error` holds it), `no_choices`, `no_text` (the server answered; a
    task failure, not retried).
    """

    def __init__(self, message: str, *, kind: NotAnAnswerKind, error: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.error = error


def read_body(data: object, *, max_tokens: int | None = None) -> ChatAnswer:
    """The answer in a parsed, unstreamed body (a real-time answer, or a batch line's `response.body`)."""
    try:
        choice = data["choices"][0]  # type: ignore[index]
        message = choice["message"]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise _not_an_answer(data) from None
    return read_message(data, choice, message, max_tokens=max_tokens)  # type: ignore[arg-type]


def read_message(
    data: Mapping[str, Any], choice: Mapping[str, Any], message: Mapping[str, Any], *, max_tokens: int | None = None
) -> ChatAnswer:
    """The answer in a first choice's message, from a body or joined from a stream's deltas."""
    try:
        text = message_text(message.get("content"))
    except (TypeError, AttributeError):
        raise _not_an_answer(data) from None
    if not text or text.isspace():
        raise NotAnAnswer(_no_text(choice, message, max_tokens), kind="no_text")
    prompt_tokens, completion_tokens = usage(data)
    reasoning_tokens, cached_tokens = usage_details(data)
    return ChatAnswer(
        text=text,
        model=str(data.get("model") or ""),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        reasoning_tokens=reasoning_tokens,
        cached_tokens=cached_tokens,
    )


def usage(data: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens from a body's `usage`; None for each that is missing or odd."""
    found = data.get("usage")
    if not isinstance(found, dict):
        return None, None
    return _count(found.get("prompt_tokens")), _count(found.get("completion_tokens"))


def usage_details(data: Mapping[str, Any]) -> tuple[int, int]:
    """(reasoning, cached) tokens from `usage`'s details; 0 for each a server does not send."""
    found = data.get("usage")
    if not isinstance(found, dict):
        return 0, 0
    completion, prompt = found.get("completion_tokens_details"), found.get("prompt_tokens_details")
    reasoning = _count(completion.get("reasoning_tokens")) if isinstance(completion, dict) else None
    cached = _count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else None
    return reasoning or 0, cached or 0


def cut_warning(label: str, max_tokens: int) -> str:
    """What the log says of an answer cut at max_tokens, in either mode."""
    return (f"{label}: the answer was cut at max_tokens={max_tokens} (finish_reason length); "
            "raise max_tokens for the whole text")


def _not_an_answer(data: object) -> NotAnAnswer:
    """A JSON body without a first choice's message: an error object, no choices, or junk."""
    if isinstance(data, dict):
        if data.get("error") is not None:
            return NotAnAnswer(_error_text(data["error"]), kind="error", error=data["error"])
        if data.get("choices") == []:
            return NotAnAnswer("the endpoint returned no text (no choices in the answer)", kind="no_choices")
    return NotAnAnswer("the answer is not the JSON expected", kind="malformed")


def _no_text(choice: Mapping[str, Any], message: Mapping[str, Any], max_tokens: int | None) -> str:
    """Why a 200 carries no text, named by its finish_reason."""
    reason = str(choice.get("finish_reason") or "not given")
    limit = "max_tokens" if max_tokens is None else f"max_tokens={max_tokens}"
    why = _NO_TEXT_WHY.get(reason)
    refusal = message.get("refusal")
    if why is None and isinstance(refusal, str) and refusal.strip():
        shown = refusal.strip()
        if len(shown) > _MAX_REFUSAL_CHARS:
            shown = shown[: _MAX_REFUSAL_CHARS - 1] + "…"
        why = f"the model refused: {shown}"
    if why is None and message.get("tool_calls"):
        why = _NO_TEXT_WHY["tool_calls"]
    if why is None and (message.get("reasoning_content") or message.get("reasoning")):
        why = (f"only reasoning_content came back: the reasoning used up {limit}, "
               "or the server's reasoning parser kept the answer")
    if why is None and reason == "length":
        why = f"{limit} ran out before any text; raise max_tokens"
    if why is None and isinstance(message.get("content"), str):
        return f"the model returned an empty answer (finish_reason {reason})"
    detail = f": {why}" if why else ""
    return f"the endpoint returned no text (finish_reason {reason}{detail})"


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or json.dumps(error))
    return str(error)


def _count(value: object) -> int | None:
    """A token count from `usage`: an int, or a float or numeric string some servers send; else None."""
    if type(value) is int:
        return value if value >= 0 else None
    if isinstance(value, (float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if 0 <= number < float("inf") else None
    return None
