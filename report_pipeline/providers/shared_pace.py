"""Runs on one machine that share an API key share its rate budget, instead of racing for it.

Two workbooks started together by cron on one key, each pacing at the key's limit (its
`requests_per_minute`, or the limit its headers taught it), sent twice the limit between
them: 48 429s in 448 calls. Each run's own pace cannot know of the other, so the runs book
their send times in one place: a small file per endpoint and key holding a GCRA's
theoretical arrival time for requests and for tokens (`earliest send + 1/rate` per call),
under an exclusive `flock`. A run books the earliest time its own limits allow, and the file
moves it later if other runs have booked the slots before it; every run's sends together
then keep the key's rate.

    file     `<directory>/<sha256(provider, base_url, key)[:24]>.json`: the key itself is
             never written, not even in part; mode 0600
    times    wall-clock seconds (processes do not share a monotonic clock)
    stale    a booking in the past costs nothing: a crashed run leaves no debt
    where    POSIX only (`fcntl`); elsewhere runs pace alone, as before

Runs on other machines share the key too: those are seen only through the server's headers
(ratelimit.HeaderPacer) and its 429s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["SharedPace", "default_directory", "endpoint_file_name"]

log = logging.getLogger("report_pipeline.ratelimit")


def default_directory() -> Path:
    """`$XDG_CACHE_HOME/report-pipeline/pace`, else `~/.cache/report-pipeline/pace`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "report-pipeline" / "pace"


def endpoint_file_name(provider: str, base_url: str | None, api_key: str | None) -> str:
    """A name for the endpoint and key that says nothing of the key."""
    digest = hashlib.sha256("\0".join((provider, base_url or "", api_key or "")).encode("utf-8"))
    return digest.hexdigest()[:24] + ".json"


class SharedPace:
    """One endpoint and key's send times, booked by every run on this machine (thread- and process-safe)."""

    def __init__(self, path: Path, *, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._wall_clock = wall_clock
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.booked = 0  # sends this run booked through the file
        self.moved = 0  # of them, sends another run's bookings made later

    @classmethod
    def open(cls, directory: Path, provider: str, base_url: str | None, api_key: str | None) -> SharedPace | None:
        """The shared file for this endpoint and key, or None where it cannot be (no flock, no folder)."""
        if fcntl is None:
            return None
        try:
            return cls(directory / endpoint_file_name(provider, base_url, api_key))
        except OSError as error:
            log.warning("runs on this key will not share its rate limit: cannot open %s (%s)",
                        directory, error.strerror or error)
            return None

    def book(self, at: float, *, request_rate: float | None, token_rate: float | None, tokens: float) -> float:
        """The send time for a call this run may make at monotonic time `at`, after every send that
        other runs have booked on the key: `at` or later, on this run's monotonic clock."""
        if not request_rate and not token_rate:
            return at
        with self._lock:
            offset = self._wall_clock() - self._clock()
            wall_at = at + offset
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                state = self._read()
                send = max(wall_at, state.get("requests_tat", 0.0) if request_rate else 0.0,
                           state.get("tokens_tat", 0.0) if token_rate else 0.0)
                if request_rate:
                    state["requests_tat"] = max(state.get("requests_tat", 0.0), send) + 1.0 / request_rate
                if token_rate:
                    state["tokens_tat"] = max(state.get("tokens_tat", 0.0), send) + tokens / token_rate
                self._write(state)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.booked += 1
            self.moved += send > wall_at + 1e-6
            return send - offset

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _read(self) -> dict[str, float]:
        os.lseek(self._fd, 0, os.SEEK_SET)
        raw = os.read(self._fd, 4096)
        try:
            state = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}  # a torn or foreign file: start again
        return {k: float(v) for k, v in state.items() if isinstance(v, (int, float))} if isinstance(state, dict) else {}

    def _write(self, state: dict[str, float]) -> None:
        data = json.dumps(state).encode("utf-8")
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data)
        os.ftruncate(self._fd, len(data))
