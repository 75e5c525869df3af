"""Which endpoints are OpenAI's own (OpenAI, Azure OpenAI): what a first guess may assume of them.

They take `max_completion_tokens` with every current chat model (dialect.py), serve far more
calls at once than any limit we set and pace us with rate-limit headers (concurrency.py), and
answer plain calls quickly enough that streaming buys nothing. Every other host (llama.cpp,
Ollama, vLLM, a router) may be a one-slot server that queues.

Self-hosted endpoints (loopback, private and link-local addresses, `localhost`, a one-label name
such as a compose service `ollama`, and the `.local`, `.internal`, `.lan`, `.home.arpa` names) are
where one-slot servers live and where latency tells a queue from a busy model: one machine, one
model, answers that take about as long as their tokens. A public router (OpenRouter, Groq,
Together) spreads calls over many machines whose latencies vary many-fold, which a latency rule
would take for a queue.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_openai_host", "is_self_hosted"]

_SELF_HOSTED_SUFFIXES = (".local", ".internal", ".lan", ".home.arpa", ".localhost")

_OPENAI_HOSTS = ("api.openai.com", ".openai.azure.com", ".cognitiveservices.azure.com")


def is_openai_host(base_url: str | None) -> bool:
    """True for OpenAI (also when no base_url is given: the SDK's default) and Azure OpenAI."""
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in _OPENAI_HOSTS)


def is_self_hosted(base_url: str | None) -> bool:
    """True for an endpoint on this machine or this network (see the module's docstring)."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".") if base_url else ""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(_SELF_HOSTED_SUFFIXES)
    return address.is_loopback or address.is_private or address.is_link_local
