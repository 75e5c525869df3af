"""What every script in benchmarks/ shares: the repo on sys.path, the machine line, the load
check, and `--write-results`, which replaces one benchmark's section of RESULTS.md.

A section is delimited by `<!-- NAME:start -->` / `<!-- NAME:end -->`, so each script
rewrites only its own tables and a rerun of one benchmark leaves the others as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from report_pipeline.bench import BENCH_KEY, OtherLoad, compiler_running, machine_summary  # noqa: E402


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-results", action="store_true",
                        help="replace this benchmark's section of benchmarks/RESULTS.md with the tables")


def header(command: str, load: OtherLoad | None = None) -> str:
    """The lines above a benchmark's tables: when, on what, under what load, by which command."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    during = f"; during the {load.seconds:.0f} s of measuring, {load.describe()}" if load is not None else ""
    return f"Measured {now} on {machine_summary()}{during}.\nCommand: `{command}`\n"


def warn_if_loaded() -> None:
    """Say so when a compiler is running: figures taken meanwhile are too slow."""
    if compiler_running():
        print("warning: a compiler (cc1plus) is running on this machine: these figures are not "
              "representative; rerun when it has finished", file=sys.stderr)


def command_line() -> str:
    return "python " + " ".join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def write_section(name: str, text: str, *, path: Path = RESULTS) -> None:
    """Put `text` between this benchmark's markers in RESULTS.md (appended if they are missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(updated, encoding="utf-8")
    print(f"wrote the {name} section of {path}", file=sys.stderr)


# ---------------------------------------------------------------------------
# The CLI as a child process, when start-up and the process's own peaks count
# ---------------------------------------------------------------------------



def cli_command() -> list[str]:
    """The installed `report-pipeline` script next to this Python, else `python -m report_pipeline`."""
    script = Path(sys.executable).with_name("report-pipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "report_pipeline"]


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class CliRun:
    """One `report-pipeline run` child: its wall time, peaks, and the phases its run.json shows."""

    exit_code: int
    wall_s: float
    peak_rss_mb: float
    peak_threads: int
    run: dict[str, Any] = field(default_factory=dict)
    launched: float = 0.0
    exited: float = 0.0
    stderr: str = ""

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [call for task in self.run.get("tasks", []) for call in task.get("calls", [])]

    def phases(self) -> dict[str, float]:
        """start-up (launch -> run start), set-up (-> first call), calls, reports (-> run end), exit."""
        started = _ts(self.run.get("started_at")) or self.launched
        finished = _ts(self.run.get("finished_at")) or self.exited
        calls = self.calls
        first = min((_ts(c["started_at"]) for c in calls), default=started) or started
        last = max((_ts(c["finished_at"]) for c in calls), default=first) or first
        return {
            "start-up": started - self.launched,
            "set-up": first - started,
            "calls": last - first,
            "reports": finished - last,
            "exit": self.exited - finished,
        }


def run_cli(sheet: Path, settings: dict[str, Any], output_dir: Path, *extra: str, sample_s: float = 0.05) -> CliRun:
    """`report-pipeline run SHEET --config settings.yaml --output DIR --quiet` as a child process.

    Peak RSS is the child's own (wait4), threads are sampled every `sample_s`.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    config = output_dir / "bench-config.yaml"
    config.write_text(yaml.safe_dump({k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()}),
                      encoding="utf-8")
    argv = [*cli_command(), "run", str(sheet), "--config", str(config), "--output", str(output_dir),
            "--quiet", "--no-progress", *extra]
    env = {**os.environ, "OPENAI_API_KEY": BENCH_KEY}
    peak_threads = 0
    stop = threading.Event()
    launched = time.time()
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    def sample() -> None:
        nonlocal peak_threads
        try:
            child = psutil.Process(process.pid)
            while not stop.wait(sample_s):
                peak_threads = max(peak_threads, child.num_threads())
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    exited = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    reader.join()
    # the newest: a run on an output folder that already holds runs (the same ledger) adds a folder
    run_json = max(output_dir.glob("*/run.json"), key=lambda p: p.stat().st_mtime, default=None)
    run = json.loads(run_json.read_text(encoding="utf-8")) if run_json else {}
    return CliRun(process.returncode, wall, usage.ru_maxrss / 1024, peak_threads, run, launched, exited,
                  "".join(stderr_lines[-20:]))


def median_seconds(argv: list[str], repeat: int = 5) -> float:
    """The median wall time of running `argv` `repeat` times (for start-up costs)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]
