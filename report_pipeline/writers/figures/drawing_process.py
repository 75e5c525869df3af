"""The run's charts and timeline.png drawn in a child process, off the run's GIL.

A data chart is matplotlib: its import with the fonts is ~0.5 s of pure Python and
a chart ~0.15 s. The timeline is Pillow, ~0.05 s for 100 tasks, mostly the PNG's
encoding. In the run's own process all of it takes the one core the GIL allows,
beside the threads sending calls: the charts slowed the calls while they ran, and
the timeline added to the run's end. In a child started with the run, the work
uses the machine's other core instead: the child warms up (Pillow, the fonts)
and says it is ready, then imports openpyxl, and matplotlib if the workbook
draws charts, in the background while the run is still starting; it draws the data charts while the calls wait on the
network, and draws the timeline and saves report.xlsx while the parent writes
report.md and .docx (the PNG's encoding releases the GIL, so the child does both
at once as well). Neither process imports matplotlib for a run without data
charts.

    start_drawing_process()       at run start: spawn `python -m report_pipeline.writers.figures.drawing_process`
    DrawingProcess.draw_chart()   a data chart (a ChartSpec, as JSON); returns when the PNG is written
    DrawingProcess.send_reports()  after the last call: the timeline's bars and report.xlsx's
                                  tables; returns at once, the child writes both meanwhile
    DrawingProcess.wait()         both are written, or an error says which was not and why
    DrawingProcess.close()        end of input: the child exits

Requests and replies are JSON lines on the child's stdin and stdout, one reply per
request, in order; before any reply the child may say `{"state": "ready"}` once,
when it is warm. Every file is written atomically by the child.

Anything that goes wrong (the child cannot start, dies, says a drawing failed, or
takes longer than `timeout_s`) is a `DrawingProcessError`: the caller draws that
picture in-process instead, so a run's outputs never depend on a second process.
A child that died or got stuck is `broken` and is not asked again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the run's side only starts the child and sends it jobs: what draws, imports in the child
    from ..xlsx_out import WorkbookTables
    from .chart_drawing import ChartSpec
    from .timeline import Bar

__all__ = ["DrawingProcess", "DrawingProcessError", "TimelineJob", "WorkbookJob", "start_drawing_process"]

log = logging.getLogger("report_pipeline.drawing")
T = TypeVar("T")

# Drawing 10,000 bars takes about a second; far more than this means the child is stuck.
DEFAULT_TIMEOUT_S = 60.0
# The warm-up and the data charts are not urgent: on a busy machine (a local model server
# answering the calls) they yield. The end of a run is: the timeline and the workbook are then
# the run's critical path, so they are done at the process's own priority (see `_serve`).
_NICENESS = 5
_READY = "ready"


class DrawingProcessError(Exception):
    """The child did not draw what it was asked (the caller draws it in-process).

    `failed` names what was not written ("timeline", "xlsx", "chart"); None when the
    child itself failed (died, stuck, gone), so nothing it was asked can be counted on.
    """

    def __init__(self, message: str, failed: frozenset[str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed


@dataclasses.dataclass(frozen=True)
class TimelineJob:
    """timeline.png to draw: where, the bars, and the texts around them."""

    path: Path
    bars: Sequence[Bar]
    title: str
    objective_titles: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "timeline", "path": str(self.path), "timeline": {
            "title": self.title,
            "objective_titles": dict(self.objective_titles),
            "bars": [dataclasses.astuple(bar) for bar in self.bars],
        }}


@dataclasses.dataclass(frozen=True)
class WorkbookJob:
    """report.xlsx to save: where, and its tables."""

    path: Path
    tables: WorkbookTables

    def to_json(self) -> dict[str, Any]:
        return {"kind": "xlsx", "path": str(self.path), "xlsx": self.tables.to_json()}


class DrawingProcess:
    """One child process that draws a run's pictures, one request at a time; `close()` it after."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._lock = threading.Lock()  # one request and its reply at a time (charts thread, main thread)
        self._buffer = b""  # bytes read from stdout that are not a whole line yet
        self._ready = False
        self._sent = 0  # requests sent
        self._answered = 0  # replies read
        self.broken: str | None = None  # why the child cannot be asked any more

    @property
    def ready(self) -> bool:
        """True once the child has loaded Pillow and its fonts and drawn a practice timeline (never blocks)."""
        if self._ready or self.broken is not None or not self._lock.acquire(blocking=False):
            return self._ready  # busy drawing: it has answered, or will, and says ready first
        try:
            if self._sent == self._answered:
                with contextlib.suppress(DrawingProcessError):
                    self._read_lines(timeout_s=0.0)
        finally:
            self._lock.release()
        return self._ready

    def draw_chart(self, path: Path, spec: ChartSpec, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Draw a data chart to `path`; returns once it is written, DrawingProcessError if it was not."""
        with self._lock:
            if self._sent != self._answered:
                raise DrawingProcessError("the drawing process is busy with the timeline")
            self._send({"chart": spec.to_json(), "path": str(path)})
            self._reply(timeout_s)

    def send_timeline(
        self, path: Path, bars: Sequence[Bar], *, title: str, objective_titles: Mapping[str, str] | None = None
    ) -> None:
        """Hand the child the timeline to draw; returns at once, the child draws meanwhile (see `wait`)."""
        self.send_reports(timeline=TimelineJob(path, bars, title, dict(objective_titles or {})))

    def send_reports(self, *, timeline: TimelineJob | None = None, workbook: WorkbookJob | None = None) -> None:
        """Hand the child the run's last pictures and files; returns at once (see `wait`).

        The child saves the workbook and draws the timeline at once, in two threads:
        the workbook is Python (openpyxl), most of the timeline its PNG encoding, which
        runs without the GIL.
        """
        jobs = [job.to_json() for job in (workbook, timeline) if job is not None]
        if not jobs:
            raise ValueError("send_reports needs a timeline or a workbook")
        with self._lock:
            self._send({"jobs": jobs})

    def wait(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Block until the request sent last is done; DrawingProcessError (naming what failed) if not."""
        with self._lock:
            if self._sent == self._answered:
                raise DrawingProcessError("nothing was sent to draw")
            self._reply(timeout_s)

    def close(self) -> None:
        """Make sure the child is gone (idempotent).

        Nothing pending (every request answered, or none sent: the run stopped early,
        or failed validation): killed at once, so no exit waits on its warm-up or its
        teardown. Otherwise its input ends and it exits by itself, after a few seconds
        to finish a request still unanswered; then it is killed.
        """
        process = self._process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.stdin = None
        if self._sent == self._answered and process.poll() is None:
            process.kill()  # nothing asked of it is pending: no need to wait for it to wind down
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self.broken = self.broken or "closed"

    # -- the pipe ---------------------------------------------------------------------------

    def _send(self, request: dict[str, Any]) -> None:
        if self.broken is not None:
            raise DrawingProcessError(f"the drawing process is not available ({self.broken})")
        stdin = self._process.stdin
        if stdin is None:
            raise DrawingProcessError("the drawing process is closed")
        try:
            stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            stdin.flush()
        except OSError as error:  # the child died before reading
            self._break(f"gone: {error}")
            raise DrawingProcessError(f"the drawing process is gone: {error}") from None
        self._sent += 1

    def _reply(self, timeout_s: float) -> None:
        """Read the reply to the oldest unanswered request; raise unless it says the PNG is written."""
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._read_lines(timeout_s=max(0.0, deadline - time.monotonic())):
                self._answered += 1
                if reply.get("ok"):
                    self._ready = True  # it has drawn: as warm as its practice figure would make it
                    log.debug("drawn by the drawing process in %s s", reply.get("seconds"))
                    return
                failed = reply.get("failed")
                raise DrawingProcessError(
                    f"the drawing process failed: {reply.get('error') or 'no reason given'}",
                    frozenset(failed) if isinstance(failed, dict) and failed else None,
                )
            if time.monotonic() >= deadline:
                self._process.kill()  # stuck: no grace period on top of the timeout
                self._process.wait()
                self._break("stuck")
                raise DrawingProcessError(f"the drawing process took more than {timeout_s:g} s")

    def _read_lines(self, *, timeout_s: float) -> list[dict[str, Any]]:
        """The replies that arrive within `timeout_s` (at most one whole read); ready lines are noted, not returned."""
        stdout = self._process.stdout
        if stdout is None:
            raise DrawingProcessError("the drawing process is closed")
        replies: list[dict[str, Any]] = []
        if select.select([stdout], [], [], timeout_s)[0]:
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                raise self._died()
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict) and message.get("state") == _READY:
                        self._ready = True
                    elif isinstance(message, dict):
                        replies.append(message)
        return replies

    def _died(self) -> DrawingProcessError:
        process = self._process
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
        why = b""
        if process.stderr is not None and process.returncode is not None:
            with contextlib.suppress(OSError, ValueError):
                why = process.stderr.read()
        reason = why.decode("utf-8", "replace").strip()[-500:] or "no reason given"
        self._break(f"exit {process.returncode}")
        return DrawingProcessError(f"the drawing process failed (exit {process.returncode}): {reason}")

    def _break(self, why: str) -> None:
        self.broken = why
        self._ready = False


def start_drawing_process(*, sheet: Path | None = None, charts: bool = False) -> DrawingProcess:
    """Spawn the child; it warms up at once (Pillow, the fonts). OSError if it cannot start.

    `charts` (the run has data charts), or a `sheet` whose data sheet names a chart,
    makes it import matplotlib as soon as it is warm, while the run is still starting.
    """
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    # The child must import this same copy of the package, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "report_pipeline.writers.figures.drawing_process",
         *(["--charts"] if charts else []), *(["--sheet", str(sheet)] if sheet is not None else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    return DrawingProcess(process)


def _draw(request: dict[str, Any]) -> dict[str, str]:
    """Do a request's jobs, the first here and the others each in a thread; {kind: error} of
    those that failed. A request without "jobs" is one job (a chart)."""
    jobs = request["jobs"] if "jobs" in request else [request]
    failed: dict[str, str] = {}

    def run(job: dict[str, Any]) -> None:
        try:
            _do(job)
        except Exception as error:  # noqa: BLE001 - reported to the parent, which does it in-process
            failed[str(job.get("kind") or "chart")] = f"{type(error).__name__}: {error}"

    helpers = [threading.Thread(target=run, args=(job,), name=f"draw-{i}") for i, job in enumerate(jobs[1:])]
    for helper in helpers:
        helper.start()
    run(jobs[0])
    for helper in helpers:
        helper.join()
    return failed


def _do(job: dict[str, Any]) -> None:
    from ..xlsx_out import WorkbookTables, save_workbook_tables
    from .chart_drawing import ChartSpec, draw_chart_png
    from .timeline import Bar, draw_timeline_png

    path = Path(job["path"])
    if "chart" in job:
        draw_chart_png(path, ChartSpec.from_json(job["chart"]))
    elif "xlsx" in job:
        save_workbook_tables(path, WorkbookTables.from_json(job["xlsx"]))
    else:
        timeline = job["timeline"]
        bars = [Bar(*row) for row in timeline["bars"]]
        draw_timeline_png(path, bars, title=timeline["title"], objective_titles=timeline["objective_titles"])


def _import_the_rest(charts: bool, sheet: str | None) -> None:
    """After the child says it is ready: openpyxl, for report.xlsx at the run's end, then
    matplotlib if the run will draw data charts. A run without them never pays for it
    (0.6 s of CPU, beside a run still starting). An import that fails here fails again,
    with its message, in the request that needs it."""
    with contextlib.suppress(Exception):
        import openpyxl  # noqa: F401
        if charts or (sheet is not None and _names_a_chart(Path(sheet))):
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401


def _names_a_chart(sheet: Path) -> bool:
    """Whether the workbook's `data` sheet has a `chart` cell filled in, in its first rows' header.

    A hint, read before the run has parsed the workbook: a wrong answer only moves
    matplotlib's import earlier, or to the first chart.
    """
    from openpyxl import load_workbook

    with contextlib.suppress(Exception):
        workbook = load_workbook(sheet, read_only=True, data_only=True)
        try:
            data = next((w for w in workbook.worksheets if w.title.strip().lower() == "data"), None)
            column = None
            for number, row in enumerate(data.iter_rows(values_only=True) if data is not None else ()):
                if column is None:
                    names = [str(v).strip().lower() if v is not None else "" for v in row]
                    column = names.index("chart") if "chart" in names else None
                    if column is None and number >= 4:
                        return False
                elif column < len(row) and row[column] not in (None, ""):
                    return True
        finally:
            workbook.close()
    return False


def _yielding(work: Callable[[], T]) -> T:
    """`work` on a thread at niceness `_NICENESS`, waited for: only that thread yields.

    Linux gives each thread its own nice value, and a thread may raise its own but not
    lower it again, so the low priority stays on a thread that ends with the work
    rather than on the process. Elsewhere (no per-thread priority) it runs as it is.
    """
    outcome: list[Any] = []

    def run() -> None:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)
        try:
            outcome.append((True, work()))
        except BaseException as error:  # noqa: BLE001 - raised again on the waiting thread
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="yielding")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _option(argv: Sequence[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _serve(argv: Sequence[str] = ()) -> int:
    """The child: warm up, say it is ready, then draw each request line from stdin until its end."""
    # Ctrl-C at a terminal reaches the whole process group: the run decides what stops, and
    # this child ends when its input does (the run closes it, or the run is gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not select.select([sys.stdin], [], [], 0)[0]:  # a request already waiting: draw it, no practice
        from .timeline import warm_up

        _yielding(warm_up)  # what every run's end uses: Pillow and the fonts
        _say({"state": _READY})
        # the rest in the background, while the run is still starting, rather than while its
        # charts wait (the calls may take no time at all) or at its end
        rest = functools.partial(_import_the_rest, "--charts" in argv, _option(argv, "--sheet"))
        threading.Thread(target=_yielding, args=(rest,), name="imports", daemon=True).start()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        started = time.perf_counter()
        try:
            request = json.loads(line)
            # a chart while the calls run yields; the run's last files are its critical path
            failed = _draw(request) if "jobs" in request else _yielding(functools.partial(_draw, request))
        except Exception as error:  # noqa: BLE001 - a request it could not read: reported to the parent
            _say({"ok": False, "error": f"{type(error).__name__}: {error}"})
            continue
        if failed:
            _say({"ok": False, "error": "; ".join(f"{kind}: {why}" for kind, why in failed.items()), "failed": failed})
            continue
        _say({"ok": True, "seconds": round(time.perf_counter() - started, 3)})
    return 0  # end of input: the parent needs nothing more


if __name__ == "__main__":
    status = _serve(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)  # the parent may wait for this exit: skip the teardown (~0.2 s once a chart loaded matplotlib)
