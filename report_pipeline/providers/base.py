"""The interface every provider implements, so the pipeline never knows which it talks to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. `label` (e.g. `OBJ.TASK.generate`) is for logs only."""

    model: str
    messages: tuple[dict[str, str], ...]
    temperature: float = 0.2
    max_tokens: int = 800
    response_format: dict[str, Any] | None = None
    label: str = ""
    reasoning_effort: str | None = None  # minimal, low, medium, high: for models that reason


    def sampling(self) -> dict[str, Any]:
        """Every parameter that can change the answer (the cache key hashes these)."""
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.response_format is not None:
            params["response_format"] = self.response_format
        if self.reasoning_effort is not None:  # only when set: the hashes of earlier calls stay valid
            params["reasoning_effort"] = self.reasoning_effort
        return params


@dataclass(frozen=True)
class ChatResponse:
    """The text and the bill of one completed call."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    latency_s: float = 0.0
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)
    reasoning_tokens: int = 0  # inside completion_tokens: billed as output
    cached_tokens: int = 0  # of prompt_tokens: billed at the cached-input price
    cache_saving_usd: float = 0.0  # what the endpoint's prompt cache saved on this call


@runtime_checkable
class Provider(Protocol):
    """A chat model endpoint, shared by every worker thread (must be thread-safe)."""

    name: str

    def complete(self, request: ChatRequest) -> ChatResponse:
        """Make one call, with this provider's own retries; raise ProviderError on failure."""
        ...

    def list_models(self) -> list[str]:
        ...

    def close(self) -> None:
        ...


def message_text(content: object) -> str:
    """A chat message's content as text: a string, null (a refusal or an empty answer), or text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise TypeError("unexpected content type")
