"""The whole CLI run against the ideal, and --sequential against concurrent.

    python benchmarks/wall_time.py
    python benchmarks/wall_time.py --no-sequential       # skip the 60 s sequential run

Workload: 10 objectives x 10 tasks x 3 steps = 300 calls, simulator latency 0.2 s, no rate
limit, max_concurrent_requests 50 (pools 10 objectives x 10 tasks). Ideal: N·L/C =
300 x 0.2 / 50 = 1.2 s. `report-pipeline run` runs as a child process (the simulator in
another), so its wall time includes process start-up, which is also measured on its own:
the median of 5 `report-pipeline --version` (what the issue names) and of 5 imports of
the modules a run loads (a truer start-up for `run`). The run's phases come from its
run.json: start-up (launch to run start), set-up (to the first call), calls (first call
to last answer), reports (to the run's end: report.md/.docx/.xlsx, timeline.png,
run.json), exit.

Then the same workload with `--sequential` (300 x 0.2 = 60 s): the speed-up of the
concurrent run (ideal 50x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import (
    CliRun,
    add_common_flags,
    cli_command,
    command_line,
    header,
    median_seconds,
    run_cli,
    warn_if_loaded,
    write_section,
)

from report_pipeline.bench import (
    BENCH_MODEL,
    STEPS,
    OtherLoad,
    SimulatorProcess,
    Table,
    write_workbook,
)

RUN_IMPORTS = ("import report_pipeline.app, report_pipeline.pipeline, report_pipeline.watch.live, "
               "report_pipeline.providers.openai.provider")


def describe(name: str, run: CliRun, ideal: float) -> list[str]:
    phases = run.phases()
    calls = len(run.calls)
    after_start = run.wall_s - phases["start-up"]
    return [name, str(run.exit_code), str(calls), f"{run.wall_s:.2f}", f"{phases['start-up']:.2f}",
            f"{phases['set-up']:.2f}", f"{phases['calls']:.2f}", f"{phases['reports']:.2f}", f"{phases['exit']:.2f}",
            f"{ideal:.2f}", f"{run.wall_s / ideal:.2f}x", f"{after_start / ideal:.2f}x", f"{phases['calls'] / ideal:.2f}x"]


def measure(args: argparse.Namespace) -> tuple[float, float, list[CliRun], list[CliRun], CliRun | None]:
    """Start-up on its own, the concurrent runs (fastest first), the same again on their ledgers
    (--no-cache), and the --sequential run."""
    version_s = median_seconds([*cli_command(), "--version"])
    imports_s = median_seconds([sys.executable, "-c", RUN_IMPORTS])
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(latency_s=args.latency) as sim:
        folder = Path(tmp)
        sheet = write_workbook(folder / "wb" / "sheet.xlsx", args.objectives, args.tasks)
        settings = {"provider": "openai", "base_url": sim.base_url, "model": BENCH_MODEL, "steps": ",".join(STEPS),
                    "max_objective_workers": 10, "max_task_workers": 10,
                    "max_concurrent_requests": args.concurrency}
        runs = []
        for n in range(args.repeat):
            sim.reset()
            runs.append(run_cli(sheet, settings, folder / f"out-{n}"))
            print(f"  concurrent run {n + 1}: {runs[-1].wall_s:.2f} s (exit {runs[-1].exit_code})", file=sys.stderr)
        again = []
        for n in range(args.repeat):  # a second run on each ledger: the endpoint's limits are known
            sim.reset()
            again.append(run_cli(sheet, settings, folder / f"out-{n}", "--no-cache"))
            print(f"  again on run {n + 1}'s ledger: {again[-1].wall_s:.2f} s (exit {again[-1].exit_code})",
                  file=sys.stderr)
        runs.sort(key=lambda r: r.wall_s)
        again.sort(key=lambda r: r.wall_s)
        sequential = None
        if not args.no_sequential:
            sim.reset()
            sequential = run_cli(sheet, settings, folder / "out-seq", "--sequential")
            print(f"  sequential run: {sequential.wall_s:.2f} s (exit {sequential.exit_code})", file=sys.stderr)
    return version_s, imports_s, runs, again, sequential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="concurrent runs to make; the median is shown")
    parser.add_argument("--no-sequential", action="store_true", help="skip the --sequential run")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    calls = args.objectives * args.tasks * len(STEPS)
    ideal = calls * args.latency / args.concurrency
    ideal_sequential = calls * args.latency
    with OtherLoad() as load:
        version_s, imports_s, runs, again, sequential = measure(args)
        concurrent = runs[len(runs) // 2]
    for run in (*runs, *again, sequential):
        if run is not None and run.exit_code != 0:
            raise SystemExit(f"a run failed (exit {run.exit_code}):\n{run.stderr}")

    table = Table(
        f"Whole run, {calls} calls at L = {args.latency:g} s, max_concurrent_requests {args.concurrency}",
        ["run", "exit", "calls", "wall s", "start-up s", "set-up s", "calls s", "reports s", "exit s",
         "ideal s", "wall / ideal", "(wall - start-up) / ideal", "calls / ideal"],
    )
    table.rows.append(describe(f"concurrent (median of {len(runs)})", concurrent, ideal))
    for run in runs:
        if run is not concurrent:
            table.rows.append(describe("concurrent (other)", run, ideal))
    for n, run in enumerate(again):
        name = f"again, same ledger, --no-cache (median of {len(again)})" if n == len(again) // 2 else "again (other)"
        table.rows.append(describe(name, run, ideal))
    if sequential is not None:
        table.rows.append(describe("--sequential", sequential, ideal_sequential))
    table.notes += [
        f"Process start-up on its own: `report-pipeline --version` {version_s:.2f} s (median of 5); "
        f"importing what `run` loads (`{RUN_IMPORTS}`) {imports_s:.2f} s (median of 5).",
        "Phases from run.json: start-up = launch to run start (imports, reading the workbook, config); "
        "set-up = run start to first call (ledger, run folder); calls = first call sent to last answer; "
        "reports = last answer to run end (report.md/.docx/.xlsx, timeline.png, run.json); exit = run end to exit.",
        f"ideal = N x L / C = {calls} x {args.latency:g} / {args.concurrency} = {ideal:.2f} s "
        f"(sequential: N x L = {ideal_sequential:.0f} s). The issue's target: wall within 1.25x the ideal plus "
        "process start-up, i.e. (wall - start-up) / ideal <= 1.25x.",
        "again = `--no-cache` on the same output folder as a concurrent run: every call is made again, and the "
        "ledger already knows the endpoint's rate limits (here: that it sends none), so the run skips the "
        "probe, which on a fresh ledger holds all but 8 threads until the first streamed answer's headers arrive.",
    ]
    speed = Table("--sequential against concurrent", ["", "wall s", "calls s", "speed-up", "ideal speed-up"])
    if sequential is not None:
        seq_calls, conc_calls = sequential.phases()["calls"], concurrent.phases()["calls"]
        speed.add("whole run", f"{sequential.wall_s:.2f} / {concurrent.wall_s:.2f}", "",
                  f"{sequential.wall_s / concurrent.wall_s:.1f}x", f"{args.concurrency}x")
        speed.add("calls only", "", f"{seq_calls:.2f} / {conc_calls:.2f}", f"{seq_calls / conc_calls:.1f}x",
                  f"{args.concurrency}x")
    text = table.markdown() + ("\n" + speed.markdown() if sequential is not None else "")
    print(text)
    if args.write_results:
        write_section("wall-time", "## Whole run against the ideal (wall_time.py)\n\n" + header(command_line(), load)
                      + "\n" + text)


if __name__ == "__main__":
    main()
