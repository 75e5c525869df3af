"""Fixtures that serve the OpenAI-compatible simulator on 127.0.0.1.

Import them into a test module or conftest with::

    from tests.simulator_support import simulator, make_simulator  # noqa: F401

Each fixture builds a real server on a free port in a background thread, so
tests drive the real ``openai`` SDK over real HTTP; teardown stops the server
and joins its thread, so nothing leaks into the next test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from report_pipeline.simulator import SimulatorConfig, SimulatorHandle, serve_in_thread

#: The key tests send when a simulator does not require one.
TEST_API_KEY = "sk-sim-test"


@pytest.fixture
def simulator() -> Iterator[SimulatorHandle]:
    """A fresh simulator with the default config (no latency, no limits, no faults)."""
    with serve_in_thread() as handle:
        yield handle


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorHandle]]:
    """A factory: ``make_simulator(latency_s=0.2, requests_per_window=5)``.

    Accepts a ``SimulatorConfig`` and/or field overrides, like
    ``serve_in_thread``; every simulator made is stopped at teardown.
    """
    with contextlib.ExitStack() as stack:

        def make(config: SimulatorConfig | None = None, /, **overrides: Any) -> SimulatorHandle:
            return stack.enter_context(serve_in_thread(config, **overrides))

        yield make


def open_client(
    handle: SimulatorHandle,
    *,
    api_key: str = TEST_API_KEY,
    timeout: float = 10.0,
) -> openai.OpenAI:
    """A real SDK client for ``handle`` with SDK retries off (our client owns retries).

    Use it as a context manager so its connection pool is closed.
    """
    return openai.OpenAI(
        base_url=handle.base_url, api_key=api_key, max_retries=0, timeout=timeout
    )
