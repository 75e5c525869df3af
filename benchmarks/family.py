"""A family of reports offline: N entities x a workbook, in one process and as shards in parallel processes.

    python benchmarks/family.py                      # 200 entities x prompt_sheets/energy_transition.xlsx, 4 shards
    python benchmarks/family.py --entities 20 --shards 2

Prints, for one `report-pipeline run --each` process and for the shards (`--shard I/N`, N processes at
once, as a job runner would start them, then `merge-runs`): wall time, peak RSS (the largest process)
and peak threads (run.json); then whether every entity's report.md, report.html and chapter CSVs are
the same byte for byte either way, once run ids and times are masked (report.docx and report.xlsx are
zip files that stamp their own time, so they are not compared).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
_RUN_ID = re.compile(r"20\d{6}-\d{6}-[0-9a-f]{4}")
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?( UTC)?|\b\d+\.\d+\s*s\b")
_TIMING = ("started_at", "finished_at", "duration_s")


def entities(path: Path, count: int) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["country", "region"])
        writer.writerows([f"Country {n:03d}", "North" if n % 2 else "South"] for n in range(count))
    return path


def run(cmds: list[list[str]]) -> tuple[float, float, list[subprocess.CompletedProcess]]:
    """Start every command at once; wall time and the largest peak RSS (MB) of any of them (sampled)."""
    started = time.perf_counter()
    procs = [psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd in cmds]
    peak = 0.0
    while any(p.poll() is None for p in procs):
        for p in procs:
            try:
                peak = max(peak, p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    done = []
    for cmd, p in zip(cmds, procs, strict=True):
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{out}\n{err}")
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return wall, peak, done


def entity_files(run_dir: Path) -> dict[str, str]:
    found = {}
    for path in sorted((run_dir / "entities").rglob("*")):
        key = path.relative_to(run_dir).as_posix()
        if path.suffix in (".md", ".html"):
            found[key] = _TIMES.sub("<time>", _RUN_ID.sub("<run>", path.read_text(encoding="utf-8")))
        elif path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [{k: ("" if k in _TIMING else v) for k, v in row.items()} for row in csv.DictReader(handle)]
            found[key] = json.dumps(rows)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=200)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--sheet", type=Path, default=ROOT / "prompt_sheets" / "energy_transition.xlsx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        each = entities(Path(tmp) / "entities.csv", args.entities)
        base = [sys.executable, "-m", "report_pipeline", "run", str(args.sheet), "--provider", "offline",
                "--each", str(each), "--quiet", "--no-cache"]
        one_wall, one_rss, _ = run([[*base, "--output", f"{tmp}/one"]])
        (one_dir,) = [p for p in Path(f"{tmp}/one").iterdir() if p.is_dir()]
        one = json.loads((one_dir / "run.json").read_text())
        # a run locks its output folder: each shard writes its own (as separate pods or machines would)
        shard_wall, shard_rss, _ = run([[*base, "--shard", f"{i}/{args.shards}", "--output", f"{tmp}/shard-{i}"]
                                        for i in range(1, args.shards + 1)])
        shard_dirs = sorted(p for i in range(1, args.shards + 1) for p in Path(f"{tmp}/shard-{i}").iterdir()
                            if p.is_dir())
        shard_threads = max(json.loads((d / "run.json").read_text())["resources"]["peak_threads"] for d in shard_dirs)
        merged = subprocess.run([sys.executable, "-m", "report_pipeline", "merge-runs", *map(str, shard_dirs),
                                 "--out", f"{tmp}/merged"], capture_output=True, text=True, check=True)
        together: dict[str, str] = {}
        for d in shard_dirs:
            together.update(entity_files(d))
        whole = entity_files(one_dir)
        same = together == whole
        print(f"family: {args.entities} entities x {args.sheet.name} ({one['counts']['total']} tasks), offline")
        print(f"one process:  wall {one_wall:.1f} s (run.json duration {one['duration_s']:.1f} s), "
              f"peak RSS {one_rss:.0f} MB, peak threads {one['resources']['peak_threads']}")
        print(f"{args.shards} shards as {args.shards} processes at once: wall {shard_wall:.1f} s, "
              f"largest peak RSS {shard_rss:.0f} MB, peak threads {shard_threads}")
        print(merged.stdout.strip())
        print(f"entity files compared (report.md, report.html, chapter CSVs): {len(whole)}; "
              f"same byte for byte after masking run ids and times: {same}")
        if not same:
            differing = sorted(k for k in whole.keys() | together.keys() if whole.get(k) != together.get(k))
            print("differ:", ", ".join(differing[:10]))
            raise SystemExit(1)


if __name__ == "__main__":
    main()
