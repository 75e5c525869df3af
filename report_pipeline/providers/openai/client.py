"""One endpoint's SDK client and connection pool, built once per run and shared by chat calls and batches.

The composition root opens it (`Endpoint(config)`) and hands it to the provider and, in
`--batch`, to the batch backend: one pool, one key, one place that knows how a config
becomes an `openai.OpenAI` (or `AzureOpenAI`) client. The SDK runs with `max_retries=0`:
the provider owns retries (STYLE.md rule 9).
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from ...config import RunConfig
from ...errors import ConfigError
from ...logs import redact
from .dialect import Dialects
from .transport import make_http_client

__all__ = ["DEFAULT_BASE_URL", "Endpoint"]

#: Where `provider: openai` goes without a base_url (passed explicitly, so the
#: SDK does not read OPENAI_BASE_URL behind config.py's back).
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Connecting should be quick even when answering is not.
_CONNECT_TIMEOUT_S = 10.0


class Endpoint:
    """The `openai` SDK client for a config's endpoint, on a pool of `max_concurrent_requests` connections.

    `reached` turns True at the first HTTP answer of any kind (headers are enough): the
    endpoint is there, so a later connection failure is not a wrong base_url.
    """

    def __init__(self, config: RunConfig) -> None:
        if config.provider not in ("openai", "azure"):
            raise ConfigError(f"provider: an OpenAI-compatible endpoint serves 'openai' and 'azure', not {config.provider!r}")
        self.provider = config.provider
        self._key = _require_key(config)
        _check_azure(config)
        self.reached = False
        self.timeout = httpx2.Timeout(
            config.request_timeout_s, connect=min(_CONNECT_TIMEOUT_S, config.request_timeout_s)
        )
        size = config.max_concurrent_requests
        self._http = make_http_client(
            limits=httpx2.Limits(max_connections=size, max_keepalive_connections=size), timeout=self.timeout,
            on_answer=self.mark_reached,
        )
        try:
            self.sdk = _sdk_client(config, self._key, self.timeout, self._http)
        except (openai.OpenAIError, ValueError) as error:
            self._http.close()
            raise ConfigError(self.scrub(f"provider: {config.provider}: {error}")) from None
        #: The base URL as configured, or OpenAI's (for messages: never with credentials).
        self.base_url = config.base_url or DEFAULT_BASE_URL
        #: What each model here takes (shared by chat calls and batch lines).
        self.dialects = Dialects(self.base_url, name=config.provider)

    def mark_reached(self) -> None:
        """An HTTP answer came back (headers at least, whatever followed)."""
        self.reached = True

    def scrub(self, text: str) -> str:
        """The key's value never leaves in a message."""
        return redact(text, (self._key,))

    def close(self) -> None:
        self.sdk.close()
        self._http.close()

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={str(self.sdk.base_url)!r})"


def _sdk_client(config: RunConfig, key: str, timeout: httpx2.Timeout, http: httpx2.Client) -> openai.OpenAI:
    common: dict[str, Any] = {
        "api_key": key,
        "max_retries": 0,  # we own retries (STYLE.md rule 9)
        "timeout": timeout,
        "http_client": http,
    }
    if config.provider == "azure":
        return openai.AzureOpenAI(azure_endpoint=config.base_url, api_version=config.azure_api_version, **common)
    return openai.OpenAI(base_url=config.base_url or DEFAULT_BASE_URL, **common)


def _require_key(config: RunConfig) -> str:
    key = config.api_key.get_secret_value() if config.api_key is not None else ""
    if key:
        return key
    env = config.api_key_env
    raise ConfigError(
        f"api_key_env: no API key: the environment variable {env} is not set. "
        f"Set it (export {env}=...), or run with --provider offline to try the pipeline without a model. "
        f"For a local server (Ollama, vLLM, llama.cpp) any value works, e.g. export {env}=local"
    )


def _check_azure(config: RunConfig) -> None:
    """Azure needs its endpoint and API version from our config (the SDK would read the environment)."""
    if config.provider != "azure":
        return
    if not config.base_url:
        raise ConfigError(
            "base_url: provider azure needs your resource endpoint, e.g. https://NAME.openai.azure.com"
        )
    if not config.azure_api_version:
        raise ConfigError("azure_api_version: provider azure needs an API version, e.g. 2024-10-21")
