"""Which endpoints are OpenAI's own (OpenAI, Azure OpenAI): what a first guess may assume of them.

They take `max_completion_tokens` with every current chat model (dialect.py), serve far more
calls at once than any limit we set and pace us with rate-limit headers (concurrency.py), and
answer plain calls quickly enough that streaming buys nothing. Every other host (llama.cpp,
Ollama, vLLM, a router) may be a one-slot server that queues.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["is_openai_host"]

_OPENAI_HOSTS = ("api.openai.com", ".openai.azure.com", ".cognitiveservices.azure.com")


def is_openai_host(base_url: str | None) -> bool:
    """True for OpenAI (also when no base_url is given: the SDK's default) and Azure OpenAI."""
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in _OPENAI_HOSTS)
