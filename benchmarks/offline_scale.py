"""Our own overhead: an offline run (no waiting on a model) of a generated workbook.

    python benchmarks/offline_scale.py --objectives 100 --tasks 20

Prints wall time and peak RSS of `report-pipeline run` as a child process (start-up included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.workbooks import simple_workbook  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objectives", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--sheet", type=Path, help="run this workbook instead of a generated one")
    parser.add_argument("extra", nargs="*", help="extra flags for `report-pipeline run`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sheet = args.sheet or simple_workbook(Path(tmp) / "wb", args.objectives, args.tasks)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--provider", "offline",
               "--output", str(out), "--quiet", *args.extra]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            raise SystemExit(proc.returncode)
        run_json = json.loads(next(out.glob("*/run.json")).read_text())
        print(f"sheet: {sheet if args.sheet else f'{args.objectives} objectives x {args.tasks} tasks'}")
        print(f"tasks done: {run_json['counts']['done']}/{run_json['counts']['total']}")
        print(f"wall time (process, start-up included): {wall:.2f} s")
        print(f"pipeline duration (run.json): {run_json['duration_s']:.2f} s")
        print(f"peak RSS: {peak_kb / 1024:.0f} MB; peak threads: {run_json['resources']['peak_threads']}")


if __name__ == "__main__":
    main()
