"""Running a simulator in a background thread, and the handle a test holds."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from report_pipeline.simulator._config import SimulatorConfig
from report_pipeline.simulator._server import SimulatorServer

# How long serve_in_thread waits for the loop thread to start or stop.
_THREAD_START_TIMEOUT_S = 10.0
_THREAD_STOP_TIMEOUT_S = 10.0


class SimulatorHandle:
    """A running simulator as a test sees it: its URL and thread-safe controls."""

    def __init__(self, server: SimulatorServer, port: int, host: str = "127.0.0.1") -> None:
        self._server = server
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}/v1"

    @property
    def config(self) -> SimulatorConfig:
        return self._server.config

    def stats(self) -> dict[str, Any]:
        """Counters, as ``GET /_sim/stats`` returns them."""
        return self._server.call_in_loop(self._server.stats)  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Zero counters and rate windows, as ``POST /_sim/reset``."""
        self._server.call_in_loop(self._server.reset)

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change config fields live, as ``POST /_sim/config``; returns the new config."""
        return self._server.call_in_loop(  # type: ignore[no-any-return]
            lambda: self._server.configure(changes)
        )

    def release(self, gate: str) -> None:
        """Open gate ``gate`` (see ``sim:hold=NAME``), as ``POST /_sim/release``."""
        self._server.call_in_loop(lambda: self._server.release(gate))

    def wait_until_held(self, count: int, gate: str, timeout: float = 10.0) -> None:
        """Block until ``count`` requests wait at ``gate``; TimeoutError if they do not.

        This is how a test knows requests are in flight without sleeping.
        """
        arrived = threading.Event()
        self._server.call_in_loop(lambda: self._server.notify_when_held(gate, count, arrived))
        if not arrived.wait(timeout):
            held = self.stats()["held"].get(gate, 0)
            raise TimeoutError(f"{held} of {count} requests held at gate {gate!r} after {timeout}s")

    # -- batches ---------------------------------------------------------------

    def batches(self) -> list[dict[str, Any]]:
        """Every batch (OpenAI ``Batch`` objects as dicts), oldest first."""
        return self._server.call_in_loop(self._server.batches.batches)  # type: ignore[no-any-return]

    def advance_batches(
        self, batch_id: str | None = None, steps: int | None = 1, *, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Move batch ``batch_id`` (default: every unfinished one) ``steps`` steps.

        ``steps=None`` runs them to a terminal status. A step is one of:
        validating → in_progress (or failed); one chunk of requests (the last
        chunk ends in finalizing); finalizing → completed; in progress past
        the ``batch_expire`` share → expired; cancelling → cancelled. With
        ``batch_manual=True`` this is the only way batches move, so a test can
        assert every state without sleeping. Returns the batches afterwards.
        ``timeout`` is generous because a 50,000-request batch takes seconds.
        """
        return self._server.call_in_loop(  # type: ignore[no-any-return]
            lambda: self._server.batches.advance(batch_id, steps), timeout
        )

    def wait_for_batches(self, count: int, timeout: float = 10.0) -> list[str]:
        """Block until ``count`` batches were created since the last reset; their ids.

        How a test learns, without sleeping, that the code under test has
        submitted its batches (e.g. before advancing or cancelling them).
        """
        created = threading.Event()
        batches = self._server.batches
        self._server.call_in_loop(lambda: batches.notify_when_created(count, created))
        if not created.wait(timeout):
            seen = len(self._server.call_in_loop(batches.created_since_reset))
            raise TimeoutError(f"{seen} of {count} batches created after {timeout}s")
        return self._server.call_in_loop(batches.created_since_reset)  # type: ignore[no-any-return]

    def wait_until_batch_done(self, batch_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until batch ``batch_id`` reaches a terminal status; return it."""
        finished = threading.Event()
        batches = self._server.batches
        self._server.call_in_loop(lambda: batches.notify_when_finished(batch_id, finished))
        if not finished.wait(timeout):
            status = self._server.call_in_loop(lambda: batches.batch(batch_id))["status"]
            raise TimeoutError(f"batch {batch_id} still {status!r} after {timeout}s")
        return self._server.call_in_loop(  # type: ignore[no-any-return]
            lambda: batches.batch(batch_id)
        )

    def __repr__(self) -> str:
        return f"SimulatorHandle(base_url={self.base_url!r})"


class _LoopThread:
    """Runs a ``SimulatorServer`` on its own event loop in a background thread."""

    def __init__(self, server: SimulatorServer, host: str, port: int) -> None:
        self._server = server
        self._host = host
        self._requested_port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    def start(self) -> None:
        """Start and wait until the server listens (or re-raise why it could not)."""
        self._thread.start()
        if not self._ready.wait(_THREAD_START_TIMEOUT_S):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            self._thread.join(_THREAD_STOP_TIMEOUT_S)
            raise RuntimeError("simulator failed to start") from self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(_THREAD_STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("simulator thread did not stop in time")
        if self._error is not None:
            raise RuntimeError("simulator failed while stopping") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.port = await self._server.start(self._host, self._requested_port)
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await self._server.stop()


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatorConfig | None = None, /, **overrides: Any
) -> Iterator[SimulatorHandle]:
    """Serve a simulator on a free 127.0.0.1 port for the ``with`` block.

    The server has its own event loop in a background thread, so synchronous
    code (the pipeline's thread pools, the sync ``openai`` client) can call it;
    readiness is an Event, and the thread is joined on exit.
    """
    config = (config or SimulatorConfig()).updated(overrides)
    server = SimulatorServer(config)
    thread = _LoopThread(server, "127.0.0.1", 0)
    thread.start()
    try:
        yield SimulatorHandle(server, thread.port)
    finally:
        thread.stop()


def raise_open_file_limit(minimum: int) -> int:
    """Lift this process's soft open-file limit toward ``minimum``; return the new limit.

    Holding 1,000+ connections needs 1,000+ descriptors (twice that when the
    client lives in the same process), above the common 1,024 default.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return minimum
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < minimum:
        target = minimum if hard == resource.RLIM_INFINITY else min(minimum, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
