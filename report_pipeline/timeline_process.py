"""timeline.png drawn in a child process, so matplotlib never shares the run's GIL.

Drawing the timeline is ~0.3 s of pure Python (matplotlib's artists, text layout,
Agg, PNG) and importing matplotlib with its fonts another ~0.5 s. In the run's own
process both take the one core the GIL allows: the import slowed the first calls
when it was warmed up beside them, and the drawing added to the run's end, after
the last answer. In a child started with the run they use the machine's other
core instead: the child imports and warms up while the calls wait on the network,
and draws while the parent writes report.md, .docx and .xlsx.

    start_timeline_process()   at run start: spawn `python -m report_pipeline.timeline_process`
    TimelineProcess.send()     after the last call: the bars (plain tuples, as JSON) on its stdin
    TimelineProcess.wait()     the PNG is written (atomically, by the child), or an error says why

The child reads one request and exits; end of input with no request (the parent
stopped early, or died) makes it exit without drawing. Anything that goes wrong
with the child (it cannot start, dies, says it failed, or takes longer than
`timeout_s`) is a `TimelineProcessError`: the caller draws in-process instead, so a
run's outputs never depend on a second process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .timeline import Bar, draw_timeline_png, warm_up

__all__ = ["TimelineProcess", "TimelineProcessError", "start_timeline_process"]

log = logging.getLogger("report_pipeline.timeline")

# Drawing 10,000 bars takes about a second; far more than this means the child is stuck.
DEFAULT_TIMEOUT_S = 60.0
_NICENESS = 5


class TimelineProcessError(Exception):
    """The child did not draw the timeline (the caller draws it in-process)."""


class TimelineProcess:
    """One child process that draws one timeline; use it once, then `close()`."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._sent = False
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once the child has imported matplotlib and drawn its practice figure (never blocks)."""
        if not self._ready and self._process.stdout is not None and self._process.returncode is None:
            stdout = self._process.stdout
            readable, _, _ = select.select([stdout], [], [], 0)
            if readable:
                # before a request, the only thing the child ever writes is its ready line
                self._ready = b'"ready"' in os.read(stdout.fileno(), 4096)
        return self._ready

    def send(
        self, path: Path, bars: Sequence[Bar], *, title: str, objective_titles: Mapping[str, str] | None = None
    ) -> None:
        """Hand the child what to draw; returns at once, the child draws meanwhile."""
        request = {
            "path": str(path),
            "title": title,
            "objective_titles": dict(objective_titles or {}),
            "bars": [dataclasses.astuple(bar) for bar in bars],
        }
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(request).encode("utf-8"))
            stdin.close()  # end of the request: the child parses and draws
            self._process.stdin = None  # so communicate() does not flush it
        except OSError as error:  # the child died before reading
            raise TimelineProcessError(f"the timeline process is gone: {error}") from None
        self._sent = True

    def wait(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Block until the PNG is written; TimelineProcessError if it was not."""
        if not self._sent:
            raise TimelineProcessError("nothing was sent to draw")
        try:
            out, err = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()  # stuck: no grace period on top of the timeout
            self.close()
            raise TimelineProcessError(f"the timeline process took more than {timeout_s:g} s") from None
        reply = _last_json_line(out)
        if self._process.returncode == 0 and reply.get("ok"):
            log.debug("timeline.png drawn by the timeline process in %s s", reply.get("seconds"))
            return
        why = reply.get("error") or err.decode("utf-8", "replace").strip()[-500:] or "no reason given"
        raise TimelineProcessError(f"the timeline process failed (exit {self._process.returncode}): {why}")

    def close(self) -> None:
        """Make sure the child is gone (idempotent).

        Never sent anything (the run stopped early, or failed validation): killed at
        once, so an error exit does not wait on matplotlib's import. Sent a request:
        a few seconds to finish, then killed.
        """
        process = self._process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.stdin = None
        if not self._sent and process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start_timeline_process() -> TimelineProcess:
    """Spawn the child; it imports matplotlib and warms up at once. OSError if it cannot start."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    # The child must import this same copy of the package, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "report_pipeline.timeline_process"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    return TimelineProcess(process)


def _last_json_line(out: bytes) -> dict[str, Any]:
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        with contextlib.suppress(ValueError):
            reply = json.loads(line)
            if isinstance(reply, dict):
                return reply
    return {}


def _serve() -> int:
    """The child: warm up, say it is ready, read one request from stdin, draw it, say how it went."""
    if hasattr(os, "nice"):
        # Warming up is not urgent: on a busy machine the run (and a local model server) go first.
        with contextlib.suppress(OSError):
            os.nice(_NICENESS)
    import matplotlib.backends.backend_agg  # noqa: F401 - the import is the point: needed either way
    if not select.select([sys.stdin], [], [], 0)[0]:  # a request already waiting: draw it, no practice
        warm_up()
        print(json.dumps({"state": "ready"}), flush=True)
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        return 0  # the parent did not need the timeline after all
    started = time.perf_counter()
    try:
        request = json.loads(raw)
        bars = [Bar(*row) for row in request["bars"]]
        draw_timeline_png(
            Path(request["path"]), bars, title=request["title"], objective_titles=request["objective_titles"]
        )
    except Exception as error:  # noqa: BLE001 - reported to the parent, which draws in-process
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps({"ok": True, "seconds": round(time.perf_counter() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    status = _serve()
    sys.stdout.flush()
    os._exit(status)  # the parent waits for this exit: skip tearing matplotlib down (~0.2 s)
