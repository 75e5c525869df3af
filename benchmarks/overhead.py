"""CPU per LLM call: how much is ours (report_pipeline) and how much the openai SDK's and its
HTTP stack's, on the simulator.

    python benchmarks/overhead.py                        # 10 x 20 tasks x 3 steps = 600 calls
    python benchmarks/overhead.py --objectives 20 --tasks 50 --latency 0.2 --top 20

Two runs of the same workload, the pipeline in this process and the simulator in a child
process (so none of its CPU is counted):

1. unprofiled: the process's CPU time (user + sys) from the first task to the last task's
   result, divided by the calls: the real cost of a call. The report files written after
   the last task are timed apart.
2. profiled: every thread gets its own `cProfile.Profile(time.thread_time)` (a CPU clock,
   so a thread waiting on a socket or a lock costs nothing). The share of each module group
   in that profile splits run 1's figure. cProfile slows Python code more than C code, so
   the shares lean towards pure-Python code; the totals of both runs are printed.

Attribution: a function belongs to report_pipeline, openai, httpx2/httpcore2 (with h11)
or another third-party package by its file. Time in builtins and the standard library
(json, threading, logging, sqlite3, ...) is "charged" up the call graph to the first
caller that is not, split by the call edges' times: `json.dumps` called from the ledger is
the ledger's cost. The "self" column shows where the CPU literally is.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
from _common import (
    add_common_flags,
    command_line,
    header,
    warn_if_loaded,
    write_section,
)

from report_pipeline.bench import (
    STEPS,
    OtherLoad,
    SimulatorProcess,
    Table,
    run_pipeline,
    warm_up,
    write_workbook,
)
from report_pipeline.run.outcome import RunObserver

Func = tuple[str, int, str]

GROUPS = ("report_pipeline", "openai", "httpx2/httpcore2", "other third-party", "stdlib/builtins")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuClock(RunObserver):
    """Reads the process CPU clock when the run starts, when its last task settles, and at the end."""

    def __init__(self, on_last_task=None) -> None:
        self.marks: dict[str, float] = {}
        self._total = 0
        self._settled = 0
        self._on_last_task = on_last_task

    def run_started(self, plan, run_dir) -> None:
        self._total = plan.task_count
        self.marks["start"] = cpu_seconds()

    def task_finished(self, result) -> None:
        self._settled += 1
        if self._settled == self._total:
            if self._on_last_task is not None:
                self._on_last_task()
            self.marks["last_task"] = cpu_seconds()

    def run_finished(self, result) -> None:
        self.marks["end"] = cpu_seconds()


class ThreadProfiles:
    """A CPU-clock cProfile in every thread started while active, plus the calling thread."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._main: cProfile.Profile | None = None

    def _hook(self, frame, event, arg) -> None:
        # Called once as a new thread's first profile event; enabling a profiler replaces the hook.
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def start(self) -> None:
        threading.setprofile(self._hook)
        self._main = cProfile.Profile(time.thread_time)
        self.profiles.append(self._main)
        self._main.enable()

    def stop_main(self) -> None:
        """Stop profiling the calling thread (the scheduler's): the calls are over."""
        if self._main is not None:
            self._main.disable()
        threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        self.stop_main()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        return stats


def group_of(func: Func) -> str | None:
    """The module group a function belongs to; None for builtins and the standard library."""
    path = func[0].replace("\\", "/")
    if path == "~" or path.startswith("<"):
        return None
    if "/report_pipeline/" in path:
        return "report_pipeline"
    if "site-packages/" not in path:
        return None
    package = path.split("site-packages/", 1)[1].split("/", 1)[0]
    if package == "openai":
        return "openai"
    if package in ("httpx2", "httpcore2", "h11"):
        return "httpx2/httpcore2"
    return "other third-party"


class Attribution:
    """Self CPU per function, with builtin and stdlib time charged to the first non-stdlib caller."""

    def __init__(self, stats: pstats.Stats) -> None:
        self.raw = stats.stats  # {func: (cc, nc, tt, ct, callers)}
        self._dist: dict[Func, dict[Func | None, float]] = {}
        self.self_time: dict[Func, float] = {}
        self.charged: dict[Func | None, float] = defaultdict(float)  # None: no owner found
        for func, (_, _, tt, _, callers) in self.raw.items():
            self.self_time[func] = tt
            if group_of(func) is not None:
                self.charged[func] += tt
                continue
            if not callers:
                self.charged[None] += tt
                continue
            for caller, edge in callers.items():
                share = edge[2]  # time in func when called from this caller
                if group_of(caller) is not None:
                    self.charged[caller] += share
                else:
                    for owner, weight in self._owners(caller, set()).items():
                        self.charged[owner] += share * weight

    def _owners(self, func: Func, seen: set[Func]) -> dict[Func | None, float]:
        """Which non-stdlib functions a stdlib function works for, as weights summing to 1."""
        if func in self._dist:
            return self._dist[func]
        entry = self.raw.get(func)
        callers = entry[4] if entry else {}
        if not callers or func in seen:
            return {None: 1.0}
        seen = seen | {func}
        total = sum(edge[3] for edge in callers.values()) or float(len(callers))
        owners: dict[Func | None, float] = defaultdict(float)
        for caller, edge in callers.items():
            weight = (edge[3] or (total / len(callers))) / total
            if group_of(caller) is not None:
                owners[caller] += weight
            else:
                for owner, sub in self._owners(caller, seen).items():
                    owners[owner] += weight * sub
        self._dist[func] = dict(owners)
        return self._dist[func]

    def by_group(self) -> tuple[dict[str, float], dict[str, float]]:
        """(self time, charged time) per group."""
        own: dict[str, float] = defaultdict(float)
        for func, tt in self.self_time.items():
            own[group_of(func) or "stdlib/builtins"] += tt
        charged: dict[str, float] = defaultdict(float)
        for func, tt in self.charged.items():
            charged[(group_of(func) if func is not None else None) or "stdlib/builtins"] += tt
        return own, charged


def where(func: Func) -> str:
    path = func[0].replace("\\", "/")
    for marker in ("/report_pipeline/", "site-packages/"):
        if marker in path:
            path = ("report_pipeline/" if marker == "/report_pipeline/" else "") + path.split(marker, 1)[1]
            break
    return f"{path}:{func[1]} {func[2]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator latency in seconds (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=50, help="max_concurrent_requests (default 50)")
    parser.add_argument("--objective-workers", type=int, default=10)
    parser.add_argument("--task-workers", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="hot spots to list (default 15)")
    parser.add_argument("--dump", type=Path, help="also save the merged profile here (pstats format)")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    settings = {"steps": ",".join(STEPS), "max_objective_workers": args.objective_workers,
                "max_task_workers": args.task_workers, "max_concurrent_requests": args.concurrency}

    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, \
            SimulatorProcess(latency_s=args.latency) as sim:
        folder = Path(tmp)
        sheet = write_workbook(folder / "wb" / "sheet.xlsx", args.objectives, args.tasks)
        warm_up(sim, folder)  # imports and first-use costs (matplotlib, templates) are not per call
        simulator = psutil.Process(sim.pid)
        sim_cpu = sum(simulator.cpu_times()[:2])
        clock = CpuClock()
        plain = run_pipeline(sheet, base_url=sim.base_url, output_dir=folder / "out-plain", sim=sim,
                             observer=clock, **settings)
        sim_cpu = sum(simulator.cpu_times()[:2]) - sim_cpu
        profiles = ThreadProfiles()
        profiled_clock = CpuClock(on_last_task=profiles.stop_main)
        profiles.start()
        try:
            profiled = run_pipeline(sheet, base_url=sim.base_url, output_dir=folder / "out-profiled", sim=sim,
                                    observer=profiled_clock, **settings)
        finally:
            stats = profiles.stats()
    if args.dump:
        stats.dump_stats(args.dump)

    calls = plain.calls
    calls_cpu = clock.marks["last_task"] - clock.marks["start"]
    outputs_cpu = clock.marks["end"] - clock.marks["last_task"]
    per_call_ms = calls_cpu / calls * 1000
    attribution = Attribution(stats)
    own, charged = attribution.by_group()
    profiled_total = sum(own.values())

    summary = Table(
        f"CPU per call ({args.objectives * args.tasks} tasks x {len(STEPS)} steps = {calls} calls, "
        f"L = {args.latency:g} s, max_concurrent_requests {args.concurrency})",
        ["group", "self ms/call", "self share", "charged ms/call", "charged share"],
    )
    for group in GROUPS:
        s_share = own.get(group, 0.0) / profiled_total
        c_share = charged.get(group, 0.0) / profiled_total
        summary.add(group, f"{per_call_ms * s_share:.3f}", f"{s_share:.0%}", f"{per_call_ms * c_share:.3f}",
                    f"{c_share:.0%}")
    summary.add("**total**", f"{per_call_ms:.3f}", "100%", f"{per_call_ms:.3f}", "100%")
    summary.notes += [
        f"Unprofiled run: {calls_cpu:.2f} CPU s from the first task to the last result over {plain.span_s:.2f} s "
        f"of calls ({calls_cpu / plain.span_s:.0%} of one core), wall {plain.wall_s:.2f} s; then "
        f"{outputs_cpu:.2f} CPU s writing the report files (not in the per-call figure).",
        f"The simulator (its own process) used {sim_cpu / calls * 1000:.2f} ms of CPU a call over the same "
        f"run: not counted above.",
        f"The process can give at most 1 core to Python code (the GIL): at {per_call_ms:.2f} ms a call "
        f"it tops out near {1000 / per_call_ms:.0f} calls/s, whatever max_concurrent_requests says.",
        f"Profiled run: {profiled_total:.2f} CPU s in the profile, wall {profiled.wall_s:.2f} s "
        f"(cProfile's own overhead inflates Python-heavy code, so use the shares, not the seconds).",
        "self = CPU in the group's own functions; charged = plus the builtin and standard-library "
        "time they caused (json, logging, threading, sqlite3, socket, ...), split by call-graph edges.",
    ]

    ours = sorted(((tt, f) for f, tt in attribution.charged.items()
                   if f is not None and group_of(f) == "report_pipeline"), reverse=True)[: args.top]
    hot = Table(f"Hot spots in report_pipeline (charged CPU, top {len(ours)})",
                ["function", "ms/call", "share of all CPU", "calls"])
    for tt, func in ours:
        hot.add(f"`{where(func)}`", f"{tt / profiled_total * per_call_ms:.3f}", f"{tt / profiled_total:.1%}",
                attribution.raw[func][1])
    anywhere = sorted(((tt, f) for f, tt in attribution.charged.items() if f is not None),
                      reverse=True)[: args.top]
    top = Table(f"Hot spots anywhere (charged CPU, top {len(anywhere)})",
                ["function", "group", "ms/call", "share of all CPU"])
    for tt, func in anywhere:
        top.add(f"`{where(func)}`", group_of(func), f"{tt / profiled_total * per_call_ms:.3f}",
                f"{tt / profiled_total:.1%}")
    cumulative = sorted(((entry[3], f) for f, entry in attribution.raw.items() if group_of(f) == "report_pipeline"),
                        reverse=True)[: args.top]
    inclusive = Table("report_pipeline functions by inclusive CPU (everything below them, the SDK included)",
                      ["function", "ms/call", "share of all CPU"])
    for ct, func in cumulative:
        inclusive.add(f"`{where(func)}`", f"{ct / profiled_total * per_call_ms:.3f}", f"{ct / profiled_total:.1%}")

    text = "\n".join(t.markdown() for t in (summary, hot, top, inclusive))
    print(text)
    if args.write_results:
        title = f"## CPU per call at max_concurrent_requests {args.concurrency} (overhead.py)"
        write_section(f"overhead-c{args.concurrency}", f"{title}\n\n{header(command_line(), load)}\n{text}")


if __name__ == "__main__":
    main()
