"""Build the provider a config names; the pipeline only ever sees the `Provider` interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import RunConfig
from .base import Provider
from .controls import CallControls

if TYPE_CHECKING:
    from .openai.client import Endpoint


def make_provider(
    config: RunConfig, *, controls: CallControls | None = None, endpoint: Endpoint | None = None
) -> Provider:
    """The one place that maps `provider:` to a class; a missing key fails here, before any work.

    `controls` and `endpoint` are the run's shared machinery, built by the composition root;
    without them (`report-pipeline models`, tests) the provider builds its own."""
    if config.provider == "offline":
        from .offline import OfflineProvider

        return OfflineProvider(config)
    from .openai.provider import OpenAIProvider

    return OpenAIProvider(config, controls=controls, endpoint=endpoint)


def open_endpoint(config: RunConfig) -> Endpoint | None:
    """The SDK client and connection pool for a config's endpoint; None for the offline provider."""
    if config.provider == "offline":
        return None
    from .openai.client import Endpoint

    return Endpoint(config)
