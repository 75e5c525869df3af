"""A streamed answer's `chat.completion.chunk` events joined into one message, as an unstreamed body has it.

The first choice's deltas are joined; the message then goes through the same reader as
an unstreamed answer's (answers.py), so a stream and a plain body make the same answer.
Errors raised by the SDK while iterating (a dropped connection, an `error` event) pass
through to the provider, which classifies them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .failures import EmptyStream, Failure

__all__ = ["join_stream", "on_first_text"]

# Delta fields kept (not joined) because they explain an answer without text.
_KEPT = ("tool_calls", "reasoning_content", "reasoning", "refusal")


def on_first_text(chunks: Iterable[object], began: Callable[[], None]) -> Iterator[object]:
    """The events as they come; `began` is called once, at the first that carries text: from then the server is
    generating the answer, no longer queueing it or reading its prompt (a first chunk with only the role
    may come before, and says neither)."""
    waiting = True
    for chunk in chunks:
        if waiting and _carries_text(chunk):
            waiting = False
            began()
        yield chunk


def _carries_text(chunk: object) -> bool:
    if not isinstance(chunk, dict):
        return False
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(delta.get(name) for name in ("content", *_KEPT)):
            return True
    return False


def join_stream(chunks: Iterable[object]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(data, choice, message) from the events: `data` has the model and the last usage seen.

    A stream with no event at all raises EmptyStream: not an empty answer, a failure the
    server did not say (ask it again unstreamed)."""
    parts: list[str] = []
    message: dict[str, Any] = {}
    choice: dict[str, Any] = {}
    usage: object = None
    model: object = None
    events = 0
    for chunk in chunks:
        events += 1
        if not isinstance(chunk, dict):
            raise Failure("malformed", "malformed response", "a streamed event is not a JSON object")
        model = chunk.get("model") or model
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for event_choice in chunk.get("choices") or ():
            if not isinstance(event_choice, dict) or event_choice.get("index", 0) != 0:
                continue
            delta = event_choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str):
                    parts.append(content)
                for name in _KEPT:
                    if delta.get(name):
                        message[name] = delta[name]
            if event_choice.get("finish_reason"):
                choice["finish_reason"] = event_choice["finish_reason"]
    if events == 0:
        raise EmptyStream("the streamed answer had no event")
    message["content"] = "".join(parts)
    return {"model": model, "usage": usage}, choice, message
