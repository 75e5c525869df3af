"""Two runs on one key at once, as cron starts them: do they keep the key's limit together?

    python benchmarks/two_runs.py                 # limit 40 requests/s, shared pacing on and off
    python benchmarks/two_runs.py --limit 20

Workload (issue 24, point 3): two workbooks of 7 objectives x 32 tasks (224 calls each, 448
together), each `report-pipeline run` a process of its own, started together against one
simulator process that allows LIMIT requests in any 1 s window (429 with retry-after beyond
it). Each run sets `requests_per_minute` to the key's limit, as users do. Latency 0.2 s,
max_concurrent_requests 16. Measured: exit codes, the calls answered over the span from the
first send to the last answer (both runs' run.json) as a share of the limit, and the 429s
the simulator sent. Rows: `shared_pacing: true` (the default: the runs book their send times
in one file per endpoint and key) and `false` (each run paces alone at the limit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

from _common import CliRun, add_common_flags, command_line, header, run_cli, warn_if_loaded, write_section

from report_pipeline.bench import BENCH_MODEL, OtherLoad, SimulatorProcess, Table, write_workbook


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def two_at_once(sim: SimulatorProcess, sheets: list[Path], folder: Path, limit: int, shared: bool) -> list[CliRun]:
    runs: list[CliRun | None] = [None, None]

    def one(n: int) -> None:
        settings = {"provider": "openai", "base_url": sim.base_url, "model": BENCH_MODEL,
                    "requests_per_minute": limit * 60, "max_concurrent_requests": 16, "cache": False,
                    "shared_pacing": shared, "shared_pacing_dir": str(folder / "pace")}
        runs[n] = run_cli(sheets[n], settings, folder / f"out-{shared}-{n}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [run for run in runs if run is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="requests per second the key allows")
    parser.add_argument("--latency", type=float, default=0.2)
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    table = Table(f"Two runs at once on one key, server limit {args.limit} requests/s, each run's "
                  f"requests_per_minute {args.limit * 60}",
                  ["shared_pacing", "exits", "calls", "429s", "429s / calls", "together, requests/s",
                   "share of the limit", "wall s (slower run)"])
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, \
            SimulatorProcess(latency_s=args.latency, requests_per_window=args.limit, window_s=1.0) as sim:
        folder = Path(tmp)
        sheets = [write_workbook(folder / f"wb{n}" / "sheet.xlsx", 7, 32) for n in range(2)]
        for shared in (True, False):
            sim.reset()
            runs = two_at_once(sim, sheets, folder, args.limit, shared)
            stats = sim.stats()
            calls = [call for run in runs for call in run.calls]
            span = max(_ts(c["finished_at"]) for c in calls) - min(_ts(c["started_at"]) for c in calls)
            rate = len(calls) / span
            print(f"  shared {shared}: exits {[r.exit_code for r in runs]}, {stats['rate_limited']} 429s, "
                  f"{rate:.1f}/s", file=sys.stderr)
            table.add(str(shared).lower(), ", ".join(str(r.exit_code) for r in runs), str(stats["calls"]),
                      str(stats["rate_limited"]), f"{stats['rate_limited'] / stats['calls']:.1%}", f"{rate:.1f}",
                      f"{rate / args.limit:.0%}", f"{max(r.wall_s for r in runs):.1f}")
    table.notes += [
        "calls = every request the simulator received (429s included); together = answered calls of both runs "
        "over the span from the first send to the last answer.",
        "The issue's bar: together at least 90% of the limit, 429s at most 2% of calls, both exit 0.",
    ]
    text = table.markdown()
    print(text)
    if args.write_results:
        write_section("two-runs", "## Two runs on one key (two_runs.py)\n\n" + header(command_line(), load)
                      + "\n" + text)


if __name__ == "__main__":
    main()
