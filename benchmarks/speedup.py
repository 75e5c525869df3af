"""Sequential against concurrent: every report size in every scheduling mode, on the simulator.

    python benchmarks/speedup.py                         # L = 1 s, sizes 3x2 5x3 10x4 40x10
    python benchmarks/speedup.py --latency 0.2
    python benchmarks/speedup.py --latency 0.2 --sizes 3x2,10x4 --modes sequential,both

Each task runs 3 steps (generate, refine, check), so a size of O x T makes 3·O·T calls.
Modes: sequential, objectives only, tasks only, both (run_objectives_concurrent /
run_task_concurrent). Pools: --objective-workers 10, --task-workers 10, --concurrency 50
(max_concurrent_requests). The pipeline runs in this process (`ReportGenerationPipeline`),
the simulator in a child process; every run gets a fresh output folder (no cache hits).

A sequential cell whose calls alone would take longer than --max-seconds (default 150:
40x10 at 1 s is 1,200 s) is not run but estimated from the seconds per call of the largest
sequential run measured, and marked "est.". Columns: calls, wall time, speed-up against
sequential, and efficiency against the ideal bound max(3·L, N·L/C).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import add_common_flags, command_line, header, warn_if_loaded, write_section

from report_pipeline.bench import (
    DEFAULT_CONCURRENCY,
    DEFAULT_OBJECTIVE_WORKERS,
    DEFAULT_TASK_WORKERS,
    MODES,
    OtherLoad,
    SimulatorProcess,
    speedup_table,
)


def sizes(text: str) -> list[tuple[int, int]]:
    pairs = []
    for part in text.split(","):
        objectives, _, tasks = part.strip().lower().partition("x")
        pairs.append((int(objectives), int(tasks)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=1.0, help="simulator latency per call, s (default 1)")
    parser.add_argument("--sizes", type=sizes, default=sizes("3x2,5x3,10x4,40x10"),
                        help="objectives x tasks, comma-separated (default 3x2,5x3,10x4,40x10)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--max-seconds", type=float, default=150.0,
                        help="estimate a sequential cell instead of running it past this (default 150)")
    parser.add_argument("--objective-workers", type=int, default=DEFAULT_OBJECTIVE_WORKERS)
    parser.add_argument("--task-workers", type=int, default=DEFAULT_TASK_WORKERS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="max_concurrent_requests")
    add_common_flags(parser)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}: choose from {', '.join(MODES)}")
    warn_if_loaded()
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, \
            SimulatorProcess(latency_s=args.latency) as sim:
        table = speedup_table(
            sim, sizes=args.sizes, latency_s=args.latency, modes=modes, max_seconds=args.max_seconds,
            objective_workers=args.objective_workers, task_workers=args.task_workers,
            concurrency=args.concurrency, workdir=Path(tmp), stream=sys.stderr,
        )
    text = table.markdown()
    print(text)
    if args.write_results:
        write_section(f"speedup-{args.latency:g}s", f"## Speed-up at L = {args.latency:g} s (speedup.py)\n\n"
                      + header(command_line(), load) + "\n" + text)


if __name__ == "__main__":
    main()
