"""Build the provider a config names; the pipeline only ever sees the `Provider` interface."""

from __future__ import annotations

from ..config import RunConfig
from .base import Provider


def make_provider(config: RunConfig) -> Provider:
    """The one place that maps `provider:` to a class; a missing key fails here, before any work."""
    if config.provider == "offline":
        from .offline import OfflineProvider

        return OfflineProvider(config)
    from .openai.provider import OpenAIProvider

    return OpenAIProvider(config)
