"""Shared fixtures: a real simulator on 127.0.0.1, and a clean environment for each test."""

from __future__ import annotations

import pytest

from tests.simulator_support import make_simulator, simulator  # noqa: F401


@pytest.fixture(autouse=True)
def _own_pace_files(monkeypatch, tmp_path_factory):
    """Runs share a key's rate through files in the user's cache: each test gets its own folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    """Tests never see a developer's real key, and never reach a real endpoint by accident."""
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
