"""10,000 tasks: wall time, peak RSS, peak threads and ledger size; and what the ledger costs.

    python benchmarks/scale.py                           # simulator at 0.2 s, then offline
    python benchmarks/scale.py --skip-offline --skip-ledger
    python benchmarks/scale.py --tasks 2000 --ledger-tasks 500

`report-pipeline run` runs as a child process (peak RSS is its own, from wait4; threads
are sampled every 50 ms), the simulator in another. Workload: 100 objectives x 100 tasks,
one step each (generate), pools of 10 objectives x 20 tasks = 200 task threads, so
max_concurrent_requests 200 can be filled. Ideal: N·L/C = 10,000 x 0.2 / 200 = 10 s.

Targets (the issue's): peak RSS under 400 MB; threads bounded by the config (200 task +
10 objective threads + a handful of our own, whatever the number of tasks); calls within
1.25x of N·L/C; the ledger costs under 10 % on a 2,000-task offline run (ledger: false
against the default). The ledger rows run each case --repeat times (default 3) and show
the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
from _common import CliRun, add_common_flags, command_line, header, run_cli, warn_if_loaded, write_section

from report_pipeline.bench import BENCH_MODEL, OtherLoad, SimulatorProcess, Table, write_workbook

TARGET_RSS_MB = 400
TARGET_RATIO = 1.25
TARGET_LEDGER = 0.10


def ledger_mb(output_dir: Path) -> float:
    return sum(p.stat().st_size for p in output_dir.glob("ledger.sqlite*")) / 2**20


def pools(args: argparse.Namespace) -> dict[str, object]:
    return {"steps": "generate", "max_objective_workers": args.objective_workers,
            "max_task_workers": args.task_workers, "max_concurrent_requests": args.concurrency}


def check(run: CliRun, what: str) -> CliRun:
    if run.exit_code != 0:
        raise SystemExit(f"{what} failed (exit {run.exit_code}):\n{run.stderr}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in all (default 10,000)")
    parser.add_argument("--per-objective", type=int, default=100, help="tasks per objective (default 100)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=200, help="max_concurrent_requests (default 200)")
    parser.add_argument("--objective-workers", type=int, default=10)
    parser.add_argument("--task-workers", type=int, default=20)
    parser.add_argument("--ledger-tasks", type=int, default=2_000, help="tasks in the ledger rows (default 2,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per ledger row (median shown)")
    parser.add_argument("--skip-simulator", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--skip-ledger", action="store_true")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    objectives = max(1, args.tasks // args.per_objective)
    n_tasks = objectives * args.per_objective
    ideal = n_tasks * args.latency / args.concurrency
    thread_bound = args.objective_workers + min(args.objective_workers * args.task_workers,
                                                max(args.concurrency, args.task_workers))
    scale = Table(
        f"{n_tasks:,} tasks ({objectives} objectives x {args.per_objective}, 1 step), pools "
        f"{args.objective_workers} x {args.task_workers}, max_concurrent_requests {args.concurrency}",
        ["provider", "exit", "wall s", "start-up s", "calls s", "reports s", "ideal s", "calls / ideal",
         "wall / ideal", "peak RSS MB", "peak threads", "ledger MB", "sim CPU"],
    )
    ledger = Table(
        f"Ledger overhead: {args.ledger_tasks:,} tasks, median of {args.repeat}",
        ["provider", "ledger", "wall s", "run s (run.json)", "calls s", "overhead (run s)", "overhead (calls s)"],
    )
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sheet = write_workbook(folder / "wb" / "sheet.xlsx", objectives, args.per_objective)
        if not args.skip_simulator:
            with SimulatorProcess(latency_s=args.latency) as sim:
                simulator = psutil.Process(sim.pid)
                cpu_before = sum(simulator.cpu_times()[:2])
                settings = {"provider": "openai", "base_url": sim.base_url, "model": BENCH_MODEL, **pools(args)}
                run = check(run_cli(sheet, settings, folder / "out-sim"), "the simulator run")
                sim_cpu = sum(simulator.cpu_times()[:2]) - cpu_before
                stats = sim.stats()
            phases = run.phases()
            print(f"  simulator: {run.wall_s:.1f} s, peak in flight {stats['peak_in_flight']}", file=sys.stderr)
            scale.add("openai (simulator)", run.exit_code, f"{run.wall_s:.2f}", f"{phases['start-up']:.2f}",
                      f"{phases['calls']:.2f}", f"{phases['reports']:.2f}", f"{ideal:.2f}",
                      f"{phases['calls'] / ideal:.2f}x", f"{run.wall_s / ideal:.2f}x", f"{run.peak_rss_mb:.0f}",
                      run.peak_threads, f"{ledger_mb(folder / 'out-sim'):.1f}",
                      f"{sim_cpu / phases['calls']:.0%} of a core")
            scale.notes.append(f"simulator: {stats['completed']:,} answers, peak {stats['peak_in_flight']} "
                               f"requests in flight, {stats['rate_limited']} 429s.")
        if not args.skip_offline:
            run = check(run_cli(sheet, {"provider": "offline", **pools(args)}, folder / "out-offline"), "offline")
            phases = run.phases()
            print(f"  offline: {run.wall_s:.1f} s", file=sys.stderr)
            scale.add("offline", run.exit_code, f"{run.wall_s:.2f}", f"{phases['start-up']:.2f}",
                      f"{phases['calls']:.2f}", f"{phases['reports']:.2f}", "-", "-", "-", f"{run.peak_rss_mb:.0f}",
                      run.peak_threads, f"{ledger_mb(folder / 'out-offline'):.1f}", "-")
        if not args.skip_ledger:
            small_objectives = max(1, args.ledger_tasks // 100)
            small = write_workbook(folder / "wb-ledger" / "sheet.xlsx", small_objectives, min(100, args.ledger_tasks))
            cases = [("offline", {"provider": "offline"})]
            if not args.skip_simulator:
                cases.append(("openai (simulator)", None))
            for name, base in cases:
                medians = {}
                for with_ledger in (True, False):
                    runs = []
                    for n in range(args.repeat):
                        out = folder / f"ledger-{name[:6]}-{with_ledger}-{n}"
                        if base is None:
                            with SimulatorProcess(latency_s=args.latency) as sim:
                                settings = {"provider": "openai", "base_url": sim.base_url, "model": BENCH_MODEL}
                                runs.append(check(run_cli(small, {**settings, **pools(args), "ledger": with_ledger},
                                                          out), "a ledger run"))
                        else:
                            runs.append(check(run_cli(small, {**base, **pools(args), "ledger": with_ledger}, out),
                                              "a ledger run"))
                    medians[with_ledger] = (
                        statistics.median(r.wall_s for r in runs),
                        statistics.median(float(r.run.get("duration_s", 0.0)) for r in runs),
                        statistics.median(r.phases()["calls"] for r in runs),
                    )
                    print(f"  ledger {with_ledger} {name}: {medians[with_ledger]}", file=sys.stderr)
                base_run, base_calls = medians[False][1], medians[False][2]
                for with_ledger in (True, False):
                    wall, duration, calls = medians[with_ledger]
                    ledger.add(name, "on" if with_ledger else "off (ledger: false)", f"{wall:.2f}", f"{duration:.2f}",
                               f"{calls:.2f}", f"{duration / base_run - 1:+.1%}" if with_ledger else "-",
                               f"{calls / base_calls - 1:+.1%}" if with_ledger else "-")
    scale.notes += [
        f"Targets: peak RSS < {TARGET_RSS_MB} MB; calls within {TARGET_RATIO}x of N x L / C = {ideal:.1f} s; "
        f"threads bounded by the config: at most {thread_bound} pool threads "
        f"({args.objective_workers} objective + min({args.objective_workers} x {args.task_workers}, "
        f"max({args.concurrency}, {args.task_workers})) task) plus the main, monitor, charts, ledger-writer threads.",
        "start-up = launch to run start; calls = first call sent to last answer; reports = last answer to the "
        "run's end (report.md/.docx/.xlsx, timeline.png, run.json). wall includes the process's exit.",
        "peak RSS: the child's own maximum (wait4). peak threads: sampled every 50 ms. ledger MB: "
        "ledger.sqlite with its -wal and -shm files after the run. sim CPU: the simulator process's CPU "
        "time over the calls span (it must stay well under a core not to be the bottleneck).",
    ]
    ledger.notes += [
        f"Target: the ledger costs under {TARGET_LEDGER:.0%}. run s = run.json duration_s (the run itself, "
        "reports included, without process start-up); calls s = first call to last answer.",
        "offline calls are not made durable one by one (the gateway flushes after each paid call only for "
        "real providers), so the openai row is the one that shows the per-call commit.",
    ]
    tables = [scale] if not (args.skip_simulator and args.skip_offline) else []
    if not args.skip_ledger:
        tables.append(ledger)
    text = "\n".join(t.markdown() for t in tables)
    print(text)
    if args.write_results:
        write_section("scale", "## 10,000 tasks (scale.py)\n\n" + header(command_line(), load) + "\n" + text)


if __name__ == "__main__":
    main()
