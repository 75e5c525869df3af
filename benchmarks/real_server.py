"""A run against a real OpenAI-compatible server with the default settings: does it finish, does it time
out into retries, and how busy was the server?

    ../shared/tools/real_llm.sh start 18941          # llama.cpp + Gemma 3 270M, one request at a time
    python benchmarks/real_server.py --base-url http://127.0.0.1:18941/v1 \\
        --server-log $TMPDIR/realllm/server-18941.log

The workbook is 3 objectives x 3 tasks x 2 steps (generate, refine) at max_tokens 200 unless told
otherwise, with prompts that differ (llama.cpp reuses the last prompt's cache). The run is
`report-pipeline run` as a process with the defaults otherwise. It prints: tasks done, the
timeouts and retries the run logged, the answers the server computed (llama.cpp logs
`total time = ... ms` per answer) against the calls the run needed, and the server's summed
compute time as a share of the run's wall time (the issue's bar: at least 80%).

Not part of CI: it needs the server, and takes minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.workbooks import make_workbook  # noqa: E402

_TOTAL_TIME = re.compile(r"total time =\s*([\d.]+) ms")
_SKIPPED = re.compile(r"Disconnected .* before llm invoked|before llm invoked")
_TOPICS = ("wind power", "solar farms", "grid batteries", "heat pumps", "electric cars", "hydrogen",
           "nuclear plants", "power prices", "carbon markets", "interconnectors", "offshore wind", "rooftop solar")


def workbook(folder: Path, objectives: int, tasks: int, steps: str) -> Path:
    chapters = [{"objective_id": f"o{i}", "title": f"Chapter {i}"} for i in range(1, objectives + 1)]
    rows = []
    for i in range(1, objectives + 1):
        for j in range(1, tasks + 1):
            topic = _TOPICS[((i - 1) * tasks + j - 1) % len(_TOPICS)]
            rows.append({"objective_id": f"o{i}", "task_id": f"t{j}", "steps": steps,
                         "prompt": f"Chapter {i}, part {j}: write two short paragraphs about {topic} in Europe."})
    return make_workbook(folder, objectives=chapters, tasks=rows)


def server_answers(log: Path | None, since: int) -> tuple[int, float, int]:
    """(answers computed, their summed seconds, requests dropped before computing) after byte `since`."""
    if log is None or not log.exists():
        return 0, 0.0, 0
    with open(log, "rb") as handle:
        handle.seek(since)
        text = handle.read().decode("utf-8", "replace")
    times = [float(ms) / 1000 for ms in _TOTAL_TIME.findall(text)]
    return len(times), sum(times), len(_SKIPPED.findall(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--server-log", type=Path, help="the server's log, to count the answers it computed")
    parser.add_argument("--objectives", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--steps", default="generate, refine")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to `report-pipeline run --set` (repeatable)")
    parser.add_argument("--keep", type=Path, help="write the workbook and the run here, and keep them")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="real-server-") as scratch:
        folder = args.keep or Path(scratch)
        sheet = workbook(folder / "wb", args.objectives, args.tasks, args.steps)
        out = folder / "out"
        since = args.server_log.stat().st_size if args.server_log and args.server_log.exists() else 0
        command = [sys.executable, "-m", "report_pipeline", "run", str(sheet), "--provider", "openai",
                   "--base-url", args.base_url, "--model", args.model, "--output", str(out), "--no-progress",
                   "--set", f"max_tokens={args.max_tokens}", *[f"--set={s}" for s in args.settings]]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "local"},
                              cwd=ROOT)
        wall = time.monotonic() - started
        run_dir = next((p for p in out.iterdir() if p.is_dir()), None) if out.exists() else None
        if run_dir is None:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 2
        manifest = json.loads((run_dir / "run.json").read_text())
        log = (run_dir / "run.log").read_text()
        timeouts = len(re.findall(r"failed \(timeout\)", log))
        retries = len(re.findall(r"retrying in", log))
        calls = sum(len(t["calls"]) for t in manifest["tasks"])
        answers, compute_s, dropped = server_answers(args.server_log, since)
        counts = manifest["counts"]
        models = (manifest.get("concurrency") or {}).get("models", {})
        limit = "; ".join(f"{m}: {v['limit']} (from {v['history'][0][1]}, at most {v['highest']})"
                          for m, v in models.items())
        print(f"| tasks done | timeouts logged | retries | calls needed | server answers | requests dropped "
              f"unanswered | server compute / wall | wall | exit | in-flight limit |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {counts['done']}/{counts['total']} | {timeouts} | {retries} | {calls} | {answers or '-'} | "
              f"{dropped if args.server_log else '-'} | "
              f"{(compute_s / wall * 100):.0f}% | {wall:.0f} s | {done.returncode} | {limit or '-'} |"
              if args.server_log else
              f"| {counts['done']}/{counts['total']} | {timeouts} | {retries} | {calls} | - | - | - | {wall:.0f} s | "
              f"{done.returncode} | {limit or '-'} |")
        return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
