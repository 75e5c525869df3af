"""What each model at an endpoint takes: the body a chat request is sent as, learned from the endpoint's own 400s.

OpenAI's current models (the gpt-5 family, the o-series, on OpenAI and on Azure) refuse
`max_tokens` ("Use 'max_completion_tokens' instead") and any temperature but the default;
llama.cpp, older vLLM and Ollama know only `max_tokens` (llama.cpp ignores
`max_completion_tokens` and writes until its context is full). No one body serves both.

So the body is a `Dialect` per model, and names are only the first guess:

    first guess   `max_completion_tokens` to OpenAI and Azure (every current OpenAI chat
                  model takes it) and to a reasoning model by name anywhere; `max_tokens`
                  elsewhere; no temperature for a reasoning model by name
    correction    a 400 whose `param`/`code` names a parameter or value the model does not
                  take is corrected and sent again once (an answered 400 costs nothing), said
                  once per model in the log
    memory        the corrections go to the ledger per endpoint and model, as the learned
                  rate limits do, so the next run sends the right body first; real-time calls
                  and batch lines share one `Dialects`, so what either learns serves both

The logical request (`ChatRequest.sampling()`, which the cache key hashes) does not change:
the same request is the same answer whichever body carried it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ..base import ChatRequest
from ..hosts import is_openai_host

__all__ = ["Dialect", "Dialects", "first_guess", "is_reasoning_model", "refused_parameter"]

log = logging.getLogger("report_pipeline.provider")

TokenLimit = Literal["max_tokens", "max_completion_tokens"]

#: OpenAI's reasoning models, by name: the gpt-5 family and the o-series.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:gpt-5|o1|o3|o4)(?:$|[-.:])", re.IGNORECASE)
#: "Unsupported parameter: 'max_tokens' ..." / "Unsupported value: 'temperature' ...": for a
#: server that says it in words but leaves `param` empty.
_REFUSAL_WORDS = re.compile(r"Unsupported (parameter|value): '(\w+)'")
#: Error codes that mean "this model does not take this parameter, or this value of it".
_REFUSAL_CODES = {"unsupported_parameter": "parameter", "unsupported_value": "value"}


def is_reasoning_model(model: str) -> bool:
    """gpt-5*, o1*, o3*, o4* (also behind a router's `openai/` prefix)."""
    return bool(_REASONING_MODEL.match(model))


@dataclass(frozen=True)
class Dialect:
    """How one model at one endpoint wants a chat request's parameters."""

    token_limit: TokenLimit = "max_tokens"
    temperature: bool = True  # send `temperature` (a reasoning model takes only the default)
    reasoning_effort: bool = True  # send `reasoning_effort` when the request has one

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for `request` (its model, messages and what this dialect sends of the rest)."""
        body: dict[str, Any] = {"model": request.model, "messages": [dict(m) for m in request.messages]}
        if self.temperature:
            body["temperature"] = request.temperature
        # Always sent: llama.cpp without a limit writes until its context is full.
        body[self.token_limit] = request.max_tokens
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.reasoning_effort is not None and self.reasoning_effort:
            body["reasoning_effort"] = request.reasoning_effort
        return body

    def sends(self, param: str) -> bool:
        """Whether a body of this dialect may carry `param` (those we do not choose, always)."""
        if param in ("max_tokens", "max_completion_tokens"):
            return self.token_limit == param
        if param in ("temperature", "reasoning_effort"):
            return bool(getattr(self, param))
        return True

    def without(self, param: str) -> Dialect | None:
        """The dialect that does not send what the endpoint refused; None when it is not ours to change."""
        if param == "max_tokens" and self.token_limit == "max_tokens":
            return replace(self, token_limit="max_completion_tokens")
        if param == "max_completion_tokens" and self.token_limit == "max_completion_tokens":
            return replace(self, token_limit="max_tokens")
        if param == "temperature" and self.temperature:
            return replace(self, temperature=False)
        if param == "reasoning_effort" and self.reasoning_effort:
            return replace(self, reasoning_effort=False)
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dialect | None:
        """A stored dialect, or None for one this version cannot read (it is learned again)."""
        try:
            token_limit = data["token_limit"]
            if token_limit not in ("max_tokens", "max_completion_tokens"):
                return None
            return cls(token_limit=token_limit, temperature=bool(data["temperature"]),
                       reasoning_effort=bool(data["reasoning_effort"]))
        except (KeyError, TypeError):
            return None


def first_guess(base_url: str | None, model: str) -> Dialect:
    """What to send before the endpoint has said anything: by host, then by the model's name."""
    openai_host = is_openai_host(base_url)
    reasoning = is_reasoning_model(model)
    return Dialect(
        token_limit="max_completion_tokens" if openai_host or reasoning else "max_tokens",
        temperature=not reasoning,
    )


def refused_parameter(status: int, body: object, message: str) -> str | None:
    """The parameter a 400 says the model does not take (or not with that value), else None."""
    if status != 400:
        return None
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, param = error.get("code"), error.get("param")
        if code in _REFUSAL_CODES and isinstance(param, str) and param:
            return param
    words = _REFUSAL_WORDS.search(message)
    return words.group(2) if words else None


class Dialects:
    """What each model at one endpoint takes, shared by every thread, chat calls and batch lines alike."""

    def __init__(self, base_url: str | None, *, name: str = "openai") -> None:
        self._base_url = base_url
        self._name = name
        self._lock = threading.Lock()
        self._known: dict[str, Dialect] = {}
        self._learned: set[str] = set()  # models whose dialect came from the endpoint, not a guess

    def get(self, model: str) -> Dialect:
        with self._lock:
            dialect = self._known.get(model)
            if dialect is None:
                dialect = self._known[model] = first_guess(self._base_url, model)
            return dialect

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return self.get(request.model).body(request)

    def learn(self, model: str, param: str, sent: Dialect, why: str) -> Dialect | None:
        """The endpoint refused `param` in a body sent with `sent`: the dialect to send again with.

        None when there is nothing to correct (the parameter is not one we choose to send).
        Another thread may have learned it meanwhile: then its dialect is the answer, and the
        log says it once.
        """
        with self._lock:
            current = self._known.get(model, sent)
            if current != sent:  # corrected meanwhile by another call
                return current
            corrected = sent.without(param)
            if corrected is None:
                return None
            self._known[model] = corrected
            self._learned.add(model)
        log.warning("%s: %s refused %s (%s); sending %s from now on, and the ledger remembers it",
                    self._name, model, param, why, _describe(corrected))
        return corrected

    def resend_after(self, model: str, param: str, why: str) -> bool:
        """A batch line for `model` was refused for `param`: True when a line built now would not
        carry it (corrected now, or by another call meanwhile), so it is worth sending again."""
        current = self.get(model)
        if not current.sends(param):
            return True
        return self.learn(model, param, current, why) is not None

    def learned(self) -> dict[str, Dialect]:
        """The dialects the endpoint taught this run, for the ledger."""
        with self._lock:
            return {model: self._known[model] for model in sorted(self._learned)}

    def recall(self, known: Mapping[str, Dialect]) -> None:
        """Dialects an earlier run learned: sent from the first call."""
        with self._lock:
            for model, dialect in known.items():
                self._known[model] = dialect
                self._learned.add(model)


def _describe(dialect: Dialect) -> str:
    parts = [dialect.token_limit]
    parts.append("temperature" if dialect.temperature else "no temperature")
    if not dialect.reasoning_effort:
        parts.append("no reasoning_effort")
    return ", ".join(parts)
