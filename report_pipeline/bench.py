"""`report-pipeline bench`: sequential against concurrent, and pacing under a server's rate
limit, measured on the simulator, plus the pieces the scripts in `benchmarks/` share.

Why the simulator runs in a child process: on a 2-core machine the pipeline's threads and
an in-process simulator's event loop would share one GIL, so every request the simulator
parses would be time taken from the client being measured. In its own process it has its
own interpreter (and, mostly, its own core), so the figures are the pipeline's.

Why the pipeline runs in this process (`ReportGenerationPipeline.run()`, not the CLI): the
comparison is between scheduling modes, and process start-up is the same for every mode.
`benchmarks/wall_time.py` and `benchmarks/scale.py` run the CLI when start-up must count.

The yardstick for a run of N calls of latency L with C calls allowed in flight is the
ideal bound `max(steps * L, N * L / C, N / rate)`: no schedule can beat the longest step
chain, the pool's throughput, or the server's limit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import select
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "MODES",
    "Measured",
    "OtherLoad",
    "SimulatorProcess",
    "Table",
    "effective_concurrency",
    "ideal_seconds",
    "machine_summary",
    "paced_bound",
    "plan_bench",
    "ratelimit_table",
    "run_bench",
    "run_pipeline",
    "speedup_table",
    "write_workbook",
]

#: What the pipeline sends as its key; the simulator accepts any key unless told one.
BENCH_KEY = "sk-bench-not-a-secret"
BENCH_MODEL = "sim-small"
STEPS = ("generate", "refine", "check")

#: The scheduling modes compared, as (run_objectives_concurrent, run_task_concurrent).
MODES: dict[str, tuple[bool, bool]] = {
    "sequential": (False, False),
    "objectives only": (True, False),
    "tasks only": (False, True),
    "both": (True, True),
}

# The pools every benchmark uses unless told otherwise: 10 objectives x 10 tasks can
# fill the 50 request slots, as the wall-time target assumes.
DEFAULT_OBJECTIVE_WORKERS = 10
DEFAULT_TASK_WORKERS = 10
DEFAULT_CONCURRENCY = 50

# What a run costs beyond its calls (sheet, ledger, report.md/.docx/.xlsx, timeline.png),
# for planning a time budget only; measured at about 1 s on the 2-core reference machine.
_RUN_OVERHEAD_S = 1.0
_SIM_START_TIMEOUT_S = 30.0
_SIM_STOP_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------
# The simulator, in its own process
# ---------------------------------------------------------------------------


class SimulatorProcess:
    """`python -m report_pipeline.simulator` as a child process, controlled over HTTP.

    The same controls as `serve_in_thread`'s handle (`stats`, `reset`, `configure`),
    through the simulator's `/_sim/*` endpoints.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        requests_per_window: int | None = None,
        window_s: float = 60.0,
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._argv = [python, "-m", "report_pipeline.simulator", "--port", "0", "--latency", str(latency_s),
                      "--window", str(window_s), *extra_args]
        if requests_per_window is not None:
            self._argv += ["--rpm", str(requests_per_window)]
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> SimulatorProcess:
        """Start the child and wait for its "listening on URL" line."""
        process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        self._process = process
        assert process.stdout is not None
        # the simulator prints the line once, flushed, when it listens; it may also die first
        ready, _, _ = select.select([process.stdout], [], [], _SIM_START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"the simulator did not start within {_SIM_START_TIMEOUT_S:g} s "
                               f"(said {line.strip()!r})")
        self.base_url = line.rsplit(" ", 1)[-1].strip()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_SIM_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "stats")

    def reset(self) -> dict[str, Any]:
        return self._control("POST", "reset")

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._control("POST", "config", changes)

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _control(self, method: str, name: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        data = json.dumps(dict(body)).encode() if body is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(f"{root}/_sim/{name}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - 127.0.0.1 only
            return json.loads(answer.read())  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# Workbooks and runs
# ---------------------------------------------------------------------------


def write_workbook(path: Path, objectives: int, tasks: int) -> Path:
    """A real .xlsx of `objectives` chapters with `tasks` independent prompts each.

    Every prompt differs (it names its chapter and part), so no call is served from
    the cache of another.
    """
    from openpyxl import Workbook

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    book.remove(book.active)
    sheet = book.create_sheet("objectives")
    sheet.append(["objective_id", "title"])
    for i in range(1, objectives + 1):
        sheet.append([f"O{i}", f"Chapter {i}"])
    sheet = book.create_sheet("tasks")
    sheet.append(["objective_id", "task_id", "prompt", "title"])
    for i in range(1, objectives + 1):
        for j in range(1, tasks + 1):
            sheet.append([f"O{i}", f"T{j}", f"Write part {j} of {{{{ objective.title }}}}.", f"Part {j}"])
    book.save(path)
    return path


@dataclass(frozen=True)
class Measured:
    """One pipeline run as a benchmark sees it."""

    tasks: int
    done: int
    calls: int  # calls that returned an answer (one per step of each done task)
    attempts: int  # sends, retries included
    wall_s: float  # ReportGenerationPipeline.run(), reports included
    span_s: float  # first call sent -> last answer back
    first_call_s: float  # run start -> first call sent (set-up)
    status: str
    peak_threads: int = 0
    peak_rss_mb: float = 0.0
    sim: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.tasks - self.done

    @property
    def rate(self) -> float:
        """Answered calls per second over the span of the calls."""
        return self.calls / self.span_s if self.span_s > 0 else 0.0


def run_pipeline(
    sheet_path: Path,
    *,
    base_url: str,
    output_dir: Path,
    sim: SimulatorProcess | None = None,
    observer: Any = None,
    **settings: Any,
) -> Measured:
    """Run the real pipeline in this process against `base_url` and measure it.

    `settings` are run-config keys (steps, pools, limits); a fresh `output_dir` per run
    keeps the ledger's cache from serving one run's calls to the next. `observer` (a
    `RunObserver`) sees the run's events, e.g. to read the CPU clock when the calls end.
    """
    from .config import load_config
    from .pipeline import ReportGenerationPipeline
    from .workbook.reader import load_prompt_sheet

    overrides = {
        "provider": "openai", "base_url": base_url, "model": BENCH_MODEL, "output_dir": output_dir,
        "progress": "off", "quiet": True, **settings,
    }
    config = load_config(overrides=overrides, environ={"OPENAI_API_KEY": BENCH_KEY})
    sheet = load_prompt_sheet(sheet_path)
    if sim is not None:
        sim.reset()
    with _no_console_log():
        started = time.time()
        result = ReportGenerationPipeline(config, sheet, observer=observer).run()
        wall = time.time() - started
    calls = [call for task in result.results for call in task.calls]
    first = min((c.started_at for c in calls), default=started)
    last = max((c.finished_at for c in calls), default=first)
    resources = _resources(result.run_dir / "run.json")
    return Measured(
        tasks=result.counts["total"],
        done=result.counts["done"],
        calls=len(calls),
        attempts=sum(c.attempts for c in calls),
        wall_s=wall,
        span_s=last - first,
        first_call_s=first - started,
        status=result.status,
        peak_threads=int(resources.get("peak_threads", 0)),
        peak_rss_mb=float(resources.get("peak_rss_mb", 0.0)),
        sim=sim.stats() if sim is not None else {},
    )


def _resources(run_json: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(run_json.read_text(encoding="utf-8")).get("resources") or {})
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _no_console_log() -> Iterator[None]:
    """Keep the run's retry warnings in its run.log, not between the benchmark's lines."""
    logger = logging.getLogger("report_pipeline")
    previous, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.propagate = previous


# ---------------------------------------------------------------------------
# Yardsticks
# ---------------------------------------------------------------------------


def ideal_seconds(calls: int, latency_s: float, concurrency: int, *, steps: int = 3,
                  rate: float | None = None) -> float:
    """The least time any schedule needs: `max(steps * L, N * L / C, N / rate)`."""
    bound = max(steps * latency_s, calls * latency_s / max(1, concurrency))
    if rate:
        bound = max(bound, calls / rate)
    return bound


def paced_bound(calls: int, latency_s: float, limit: float) -> float:
    """The achieved rate (calls / first send to last answer) of evenly sending `calls` at exactly `limit`/s.

    The sends take `(calls - 1) / limit`, then the last answer takes `latency_s`: a
    sliding-window server allows no more without bursts that span its window edges.
    """
    return calls / ((calls - 1) / limit + latency_s) if calls > 1 else float(limit)


def effective_concurrency(
    mode: str, objectives: int, tasks: int, *, objective_workers: int, task_workers: int, concurrency: int
) -> int:
    """C for the ideal bound in `mode`: the calls that can really be in flight at once.

    A sequential level contributes 1; a concurrent one its pool size, but never more than
    there is work for (a 4-task chapter runs at most 4 tasks however big the pool); the
    in-flight limit caps the product.
    """
    by_objective, by_task = MODES[mode]
    active_objectives = min(objective_workers, objectives) if by_objective else 1
    active_tasks = min(task_workers, tasks) if by_task else 1
    return max(1, min(concurrency, active_objectives * active_tasks))


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


@dataclass
class Table:
    """A titled Markdown table with notes below it: what every benchmark prints."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(self.headers, widths)) + " |")
        lines.append("| " + " | ".join("-" * w for w in widths) + " |")
        lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def _s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def _say(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        print(text, file=stream, flush=True)


# ---------------------------------------------------------------------------
# Speed-up: sequential against concurrent
# ---------------------------------------------------------------------------


def speedup_table(
    sim: SimulatorProcess,
    *,
    sizes: Sequence[tuple[int, int]],
    latency_s: float,
    modes: Sequence[str] = tuple(MODES),
    max_seconds: float | None = None,
    objective_workers: int = DEFAULT_OBJECTIVE_WORKERS,
    task_workers: int = DEFAULT_TASK_WORKERS,
    concurrency: int = DEFAULT_CONCURRENCY,
    workdir: Path,
    stream: TextIO | None = None,
) -> Table:
    """Every size in every mode at `latency_s`: calls, wall time, speed-up, efficiency.

    A sequential cell whose calls alone would take longer than `max_seconds` is not run
    but estimated (calls x the seconds per call of the largest sequential run measured,
    else x L) and marked "est.", as are the speed-ups computed from it.
    """
    sim.configure(latency_s=latency_s, requests_per_window=None)
    table = Table(
        f"Speed-up at {latency_s:g} s per call ({len(STEPS)} steps a task; "
        f"pools {objective_workers} objectives x {task_workers} tasks, max_concurrent_requests {concurrency})",
        ["size", "mode", "C", "calls", "wall s", "calls span s", "speed-up", "ideal s", "efficiency"],
    )
    warm_up(sim, workdir)
    per_call: float | None = None  # seconds per call of the largest sequential run so far
    for objectives, tasks in sizes:
        calls = objectives * tasks * len(STEPS)
        sheet = write_workbook(workdir / f"wb-{objectives}x{tasks}" / "sheet.xlsx", objectives, tasks)
        sequential_s: float | None = None
        sequential_est = False
        for mode in modes:
            c = effective_concurrency(mode, objectives, tasks, objective_workers=objective_workers,
                                      task_workers=task_workers, concurrency=concurrency)
            ideal = ideal_seconds(calls, latency_s, c, steps=len(STEPS))
            size = f"{objectives}x{tasks}"
            if mode == "sequential" and max_seconds is not None and calls * latency_s > max_seconds:
                sequential_s = calls * (per_call if per_call is not None else latency_s)
                sequential_est = True
                table.add(size, mode, c, calls, f"{_s(sequential_s)} est.", "-", "1.0x est.", _s(ideal),
                          f"{ideal / sequential_s:.0%} est.")
                _say(stream, f"  {size} {mode}: estimated {sequential_s:.1f} s (not run: over --max-seconds)")
                continue
            by_objective, by_task = MODES[mode]
            run = run_pipeline(
                sheet, base_url=sim.base_url, output_dir=workdir / f"out-{size}-{mode.replace(' ', '-')}",
                sim=sim, steps=",".join(STEPS), run_objectives_concurrent=by_objective,
                run_task_concurrent=by_task, max_objective_workers=objective_workers,
                max_task_workers=task_workers, max_concurrent_requests=concurrency,
            )
            _check_complete(run, f"{size} {mode}")
            if mode == "sequential":
                sequential_s = run.wall_s
                per_call = run.wall_s / max(1, run.calls)
            speedup = "-"
            if sequential_s is not None:
                speedup = f"{sequential_s / run.wall_s:.1f}x" + (" est." if sequential_est else "")
            table.add(size, mode, c, run.calls, _s(run.wall_s), _s(run.span_s), speedup, _s(ideal),
                      f"{ideal / run.wall_s:.0%}")
            _say(stream, f"  {size} {mode}: {run.calls} calls in {run.wall_s:.2f} s (ideal {ideal:.2f} s)")
    table.notes += [
        "C = calls that can be in flight in that mode: min(max_concurrent_requests, "
        "objective slots x task slots), each slot count capped by the work there is "
        "(1 for a sequential level).",
        "ideal = max(3 steps x L, calls x L / C); efficiency = ideal / wall. No server rate limit.",
        "wall = ReportGenerationPipeline.run() in-process, from the start to the last report file "
        "(run.json, report.md/.docx/.xlsx, timeline.png), after a one-task warm-up run; process "
        "start-up is not included. "
        "calls span = first call sent to last answer received.",
    ]
    if any("est." in row[4] for row in table.rows):
        table.notes.append("est. = not run (its calls alone exceed --max-seconds): calls x the seconds per "
                           "call of the largest sequential run measured at this latency.")
    return table


def warm_up(sim: SimulatorProcess, workdir: Path) -> None:
    """One task through the whole pipeline first, so the first measured run does not also
    pay this process's one-off costs (importing Pillow and its fonts for the timeline, compiling
    templates, opening the SDK's connection pool)."""
    sheet = write_workbook(workdir / "wb-warm-up" / "sheet.xlsx", 1, 1)
    run_pipeline(sheet, base_url=sim.base_url, output_dir=workdir / "out-warm-up", sim=sim, steps=",".join(STEPS))


def _check_complete(run: Measured, what: str) -> None:
    if run.lost:
        raise RuntimeError(f"{what}: {run.lost} of {run.tasks} task(s) did not finish ({run.status})")


# ---------------------------------------------------------------------------
# Pacing under a server's rate limit
# ---------------------------------------------------------------------------


def ratelimit_table(
    sim: SimulatorProcess,
    *,
    limits: Sequence[int],
    objectives: int = 10,
    tasks: int = 10,
    latency_s: float = 0.2,
    objective_workers: int = DEFAULT_OBJECTIVE_WORKERS,
    task_workers: int = DEFAULT_TASK_WORKERS,
    concurrency: int = DEFAULT_CONCURRENCY,
    workdir: Path,
    stream: TextIO | None = None,
) -> Table:
    """The pipeline against a server allowing `limit` requests a second (window 1 s)."""
    calls = objectives * tasks * len(STEPS)
    sheet = write_workbook(workdir / f"wb-{objectives}x{tasks}" / "sheet.xlsx", objectives, tasks)
    table = Table(
        f"Under a server rate limit ({objectives * tasks} tasks x {len(STEPS)} steps = {calls} calls, "
        f"L = {latency_s:g} s, max_concurrent_requests {concurrency})",
        ["limit /s", "wall s", "calls span s", "achieved /s", "% of limit", "429s", "429 % of calls",
         "tasks lost", "bound /s", "% of bound", "ideal s", "efficiency"],
    )
    warm_up(sim, workdir)
    for limit in limits:
        sim.configure(latency_s=latency_s, requests_per_window=limit, window_s=1.0)
        run = run_pipeline(
            sheet, base_url=sim.base_url, output_dir=workdir / f"out-limit-{limit}", sim=sim,
            steps=",".join(STEPS), max_objective_workers=objective_workers, max_task_workers=task_workers,
            max_concurrent_requests=concurrency,
        )
        rejected = int(run.sim.get("rate_limited", 0))
        sent = int(run.sim.get("calls", 0))
        ideal = ideal_seconds(calls, latency_s, concurrency, steps=len(STEPS), rate=limit)
        bound = paced_bound(run.calls, latency_s, limit)
        table.add(limit, _s(run.wall_s), _s(run.span_s), f"{run.rate:.1f}", f"{run.rate / limit:.0%}",
                  rejected, f"{rejected / max(1, sent):.1%}", run.lost, f"{bound:.1f}", f"{run.rate / bound:.0%}",
                  _s(ideal), f"{ideal / run.span_s:.0%}")
        _say(stream, f"  limit {limit}/s: {run.rate:.1f} calls/s, {rejected} 429s, {run.lost} tasks lost")
    sim.configure(requests_per_window=None, window_s=60.0)
    table.notes += [
        "Server: the simulator's sliding-window limit, window_s = 1. The pipeline is not told the "
        "limit: it learns it from x-ratelimit-* headers.",
        "achieved = answered calls / calls span (first call sent to last answer); "
        "ideal = max(3 x L, calls x L / C, calls / limit); efficiency = ideal / calls span.",
        ("bound = what a client sending evenly at exactly the limit from its first call would achieve by the "
         "same measure, calls / ((calls - 1) / limit + L): the last answer's latency is inside the span, so "
         "even that client shows under 100 % of the limit, the more so the shorter the run."),
        "429 % of calls = rejected requests / all requests the server received.",
    ]
    return table


# ---------------------------------------------------------------------------
# `report-pipeline bench`
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchPlan:
    """What a bench of a given length runs."""

    sizes: tuple[tuple[int, int], ...]
    modes: tuple[str, ...]
    limits: tuple[int, ...]
    rate_tasks: int  # tasks in the rate-limit workload (x 3 steps)


def plan_bench(minutes: float, latency_s: float) -> BenchPlan:
    """Pick sizes that fit `minutes`: about 3/4 for the speed-up, 1/4 for the rate limit.

    Sizes are added smallest first while their estimated time (every mode, the run
    overhead included) fits; the smallest always runs. The rate-limit part runs at a
    limit of 40/s and, with room, 80/s, on as many 3-step tasks as fit (at most 100).
    """
    budget = max(0.0, minutes) * 60.0
    modes = tuple(MODES)
    sizes: list[tuple[int, int]] = []
    spent = 0.0
    for objectives, tasks in ((3, 2), (5, 3), (10, 4)):
        calls = objectives * tasks * len(STEPS)
        cost = sum(
            calls * latency_s / effective_concurrency(
                mode, objectives, tasks, objective_workers=DEFAULT_OBJECTIVE_WORKERS,
                task_workers=DEFAULT_TASK_WORKERS, concurrency=DEFAULT_CONCURRENCY,
            ) + _RUN_OVERHEAD_S
            for mode in modes
        )
        if sizes and spent + cost > 0.75 * budget:
            break
        sizes.append((objectives, tasks))
        spent += cost
    rate_budget = max(budget - spent, 0.25 * budget)
    limits = (40, 80) if rate_budget >= 20 else (40,)
    seconds_per_limit = max(0.5, rate_budget / len(limits) - _RUN_OVERHEAD_S)
    rate_tasks = int(max(2, min(100, 40 * seconds_per_limit // len(STEPS))))
    return BenchPlan(tuple(sizes), modes, limits, rate_tasks)


def run_bench(*, minutes: float = 1.0, latency_s: float = 0.2, stream: TextIO | None = None) -> str:
    """A short benchmark (about `minutes` long) on the simulator; returns the tables as Markdown.

    Progress lines go to `stream` as each run finishes. The simulator runs in a child
    process (see the module docstring); everything is written to a temporary folder and
    removed afterwards.
    """
    plan = plan_bench(minutes, latency_s)
    started = time.monotonic()
    parts = [f"report-pipeline bench: {machine_summary()}", ""]
    with tempfile.TemporaryDirectory(prefix="report-pipeline-bench-") as tmp, \
            SimulatorProcess(latency_s=latency_s) as sim:
        workdir = Path(tmp)
        _say(stream, f"speed-up at L = {latency_s:g} s, sizes {', '.join(f'{o}x{t}' for o, t in plan.sizes)}")
        parts.append(speedup_table(sim, sizes=plan.sizes, latency_s=latency_s, modes=plan.modes,
                                   workdir=workdir, stream=stream).markdown())
        objectives, tasks = _shape(plan.rate_tasks)
        _say(stream, f"rate limit: {objectives * tasks} tasks at {', '.join(map(str, plan.limits))} requests/s")
        parts.append(ratelimit_table(sim, limits=plan.limits, objectives=objectives, tasks=tasks,
                                     latency_s=latency_s, workdir=workdir, stream=stream).markdown())
    parts.append(f"bench took {time.monotonic() - started:.0f} s "
                 "(the full tables: python benchmarks/speedup.py, python benchmarks/ratelimit.py)")
    return "\n".join(parts) + "\n"


def _shape(tasks: int) -> tuple[int, int]:
    """`tasks` as objectives x tasks, 10 tasks to a chapter where there are enough."""
    per = min(10, tasks)
    return max(1, tasks // per), per


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------


def machine_summary() -> str:
    """One line: cores, memory, Python, load, and whether a compiler was running meanwhile."""
    memory = ""
    with contextlib.suppress(ImportError):
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB memory"
    load = ""
    with contextlib.suppress(OSError, AttributeError):
        load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    busy = ", a compiler (cc1plus) running" if compiler_running() else ""
    others = busy_processes()
    if others:
        busy += ", other processes busy: " + ", ".join(f"{name} {share:.0%}" for name, share in others)
    return (f"{os.cpu_count()} cores{memory}, Python {platform.python_version()} "
            f"({platform.system()} {platform.machine()}){load}{busy}")


class OtherLoad:
    """How much CPU the rest of the machine used while a benchmark ran, in cores.

    System-wide busy CPU time minus this process's and its descendants' (the simulator,
    a CLI run), so a reader of the figures knows whether they shared the machine.
    Descendants are sampled every `interval_s`; a child's last moments before it exits
    may be missed, which errs towards reporting more load, not less.
    """

    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="load-meter", daemon=True)
        self._children: dict[int, float] = {}
        self._children_start: dict[int, float] = {}
        self.cores = 0.0
        self.seconds = 0.0

    def __enter__(self) -> OtherLoad:
        import psutil

        self._me = psutil.Process()
        self._started = time.monotonic()
        self._system = _busy_seconds(psutil.cpu_times())
        self._own = _own_seconds(self._me)
        self._sample()
        self._children_start = dict(self._children)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        import psutil

        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.monotonic() - self._started
        system = _busy_seconds(psutil.cpu_times()) - self._system
        own = _own_seconds(self._me) - self._own
        children = sum(cpu - self._children_start.get(pid, 0.0) for pid, cpu in self._children.items())
        self.cores = max(0.0, system - own - children) / max(self.seconds, 1e-9)

    def describe(self) -> str:
        return f"other processes used {self.cores:.2f} of {os.cpu_count()} cores on average meanwhile"

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in self._me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    times = child.cpu_times()
                    self._children[child.pid] = times.user + times.system


def _busy_seconds(times: Any) -> float:
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    return float(sum(times)) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _own_seconds(process: Any) -> float:
    times = process.cpu_times()  # children's times are counted by the sampler, not here
    return float(times.user + times.system)


def busy_processes(threshold: float = 0.1, sample_s: float = 0.5) -> list[tuple[str, float]]:
    """Other processes using more than `threshold` of a core over `sample_s`: load a benchmark shares."""
    try:
        import psutil
    except ImportError:
        return []
    mine = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    procs = [p for p in psutil.process_iter(["name", "cmdline"]) if p.pid not in mine]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    time.sleep(sample_s)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            share = proc.cpu_percent(None) / 100
            if share > threshold:
                busy.append((_process_label(proc.info), share))
    return sorted(busy, key=lambda item: -item[1])


def _process_label(info: Mapping[str, Any]) -> str:
    """`python -m llama_cpp.server` rather than just `python`."""
    argv = info.get("cmdline") or []
    name = str(info.get("name") or "?")
    for flag, value in zip(argv, argv[1:]):
        if flag == "-m":
            return f"{name} -m {value}"
    script = next((Path(a).name for a in argv[1:2] if not a.startswith("-")), "")
    return f"{name} {script}".strip()


def compiler_running() -> bool:
    """True if a C++ compiler is running on this machine (its figures would be too slow)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    with open(f"/proc/{entry.name}/comm", encoding="utf-8") as comm:
                        if comm.read().strip() == "cc1plus":
                            return True
    return False

