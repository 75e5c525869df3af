"""The whole process against a plain pool process: 10 x 10 tasks x 3 steps at 0.2 s, 50 in flight.

    python benchmarks/startup.py                 # 5 interleaved trials, medians shown
    python benchmarks/startup.py --trials 9
    python benchmarks/startup.py --before 5cc71da   # also that commit's report-pipeline, same trials

Both are child processes timed from launch to exit, against the same simulator, one after
the other in each trial (so a slow moment of the machine hits both):

    report-pipeline   `report-pipeline run` on a 10 x 10 workbook with steps generate, refine,
                      check; `max_concurrent_requests` 50, `concurrency: fixed` (the simulator
                      stands for a cloud endpoint; on 127.0.0.1 the adaptive limit would treat it
                      as a self-hosted server), no cache, everything else the defaults: it writes
                      run.json, the chapter CSVs, report.md/.docx/.xlsx/.html and the timeline
    plain pool        `python -c` with a ThreadPoolExecutor(50) around the `openai` SDK: each task
                      its three calls one after the other (each step is sent the previous answer),
                      the answers written to one CSV

Then the README's first command (the example workbook, `--provider offline`): wall and time to
first request, for each revision.

time to first request = launch (as the parent saw it) to the first call sent (report-pipeline's
run.json; the pool prints its own). A run also says it as `resources.first_request_s`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import _ts, add_common_flags, command_line, header, run_cli, warn_if_loaded, write_section

from report_pipeline.bench import BENCH_KEY, BENCH_MODEL, OtherLoad, SimulatorProcess, Table, write_workbook

STEPS = ("generate", "refine", "check")
EXAMPLE = Path(__file__).resolve().parent.parent / "prompt_sheets" / "energy_transition.xlsx"

#: the twenty-line pool the issue measures the whole process against
PLAIN_POOL = r"""
import csv, sys, time
launched = float(sys.argv[1])
import openai
from concurrent.futures import ThreadPoolExecutor
base_url, key, model, objectives, tasks, concurrency, out = sys.argv[2:9]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=2, timeout=120)
first = []
def task(o, t):
    text = f"Write part {t} of Chapter {o}."
    for step in ("generate", "refine", "check"):
        first.append(time.time())
        reply = client.chat.completions.create(model=model, max_tokens=300,
                                               messages=[{"role": "user", "content": f"{step}: {text}"}])
        text = reply.choices[0].message.content or ""
    return o, t, text
with ThreadPoolExecutor(int(concurrency)) as pool:
    futures = [pool.submit(task, o, t) for o in range(1, int(objectives) + 1) for t in range(1, int(tasks) + 1)]
    rows = [f.result() for f in futures]
with open(out, "w", newline="", encoding="utf-8") as handle:
    csv.writer(handle).writerows(rows)
print(min(first) - launched)
"""


def plain_pool(sim: SimulatorProcess, objectives: int, tasks: int, concurrency: int, out: Path) -> tuple[float, float]:
    """(wall s, time to first request s) of the plain pool as its own process."""
    launched = time.time()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PLAIN_POOL, repr(launched), sim.base_url, BENCH_KEY, BENCH_MODEL,
                           str(objectives), str(tasks), str(concurrency), str(out)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the plain pool failed:\n{done.stderr}")
    return wall, float(done.stdout.strip().splitlines()[-1])


def ours(sheet: Path, settings: dict, out: Path, package: Path | None = None) -> dict[str, float]:
    """Wall, time to first request, calls span and the tail of one `report-pipeline run` child
    (`package`: a checkout whose report_pipeline the child imports instead)."""
    saved = os.environ.get("PYTHONPATH")
    if package is not None:
        os.environ["PYTHONPATH"] = str(package)
    try:
        run = run_cli(sheet, settings, out)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    if run.exit_code != 0:
        raise SystemExit(f"report-pipeline run failed (exit {run.exit_code}):\n{run.stderr}")
    phases = run.phases()
    first = min(_ts(c["started_at"]) for c in run.calls)
    return {"wall": run.wall_s, "first": first - run.launched,
            "calls": phases["calls"], "after": phases["reports"] + phases["exit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also run report-pipeline of this git revision (a worktree)")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    runs: dict[str, list[dict[str, float]]] = {"report-pipeline": []}
    if args.before:
        runs[args.before] = []
    pool: list[tuple[float, float]] = []
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, \
            SimulatorProcess(latency_s=args.latency) as sim:
        folder = Path(tmp)
        sheet = write_workbook(folder / "wb" / "sheet.xlsx", args.objectives, args.tasks)
        before = None
        if args.before:  # the child imports that commit's package (its first run on PYTHONPATH)
            before = folder / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], check=True,
                           capture_output=True, cwd=Path(__file__).resolve().parent)
        settings = {"provider": "openai", "base_url": sim.base_url, "model": BENCH_MODEL, "steps": ",".join(STEPS),
                    "max_concurrent_requests": args.concurrency, "concurrency": "fixed", "cache": False}
        example: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
        for n in range(args.trials):
            for name in runs:
                example[name].append(ours(EXAMPLE, {"provider": "offline"}, folder / f"example-{name}-{n}",
                                          None if name == "report-pipeline" else before))
                sim.reset()
                runs[name].append(ours(sheet, settings, folder / f"out-{name}-{n}",
                                       None if name == "report-pipeline" else before))
            sim.reset()
            pool.append(plain_pool(sim, args.objectives, args.tasks, args.concurrency, folder / f"pool-{n}.csv"))
            print(f"  trial {n + 1}: " + ", ".join(f"{k} {v[-1]['wall']:.2f} s" for k, v in runs.items())
                  + f", plain pool {pool[-1][0]:.2f} s", file=sys.stderr)
        if before is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], check=False, capture_output=True,
                           cwd=Path(__file__).resolve().parent)
    pool_wall = statistics.median(w for w, _ in pool)
    pool_first = statistics.median(f for _, f in pool)
    calls = args.objectives * args.tasks * len(STEPS)
    table = Table(f"Whole process, {args.objectives} x {args.tasks} tasks x {len(STEPS)} steps = {calls} calls at "
                  f"{args.latency:g} s, {args.concurrency} in flight",
                  ["process", "wall s", "time to first request s", "calls span s", "last answer to exit s",
                   "/ plain pool (same trial)"])
    for name, trials in runs.items():
        med = {key: statistics.median(r[key] for r in trials) for key in trials[0]}
        ratios = sorted(r["wall"] / p[0] for r, p in zip(trials, pool))
        table.add(name, f"{med['wall']:.2f}", f"{med['first']:.2f}", f"{med['calls']:.2f}", f"{med['after']:.2f}",
                  f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}x-{ratios[-1]:.2f}x)")
    table.add("plain pool", f"{pool_wall:.2f}", f"{pool_first:.2f}", "", "", "1.00x")
    table.notes += [
        f"Medians of {args.trials} trials (the ratio's range in brackets); in each trial every process ran once, "
        "one after the other, on the same simulator.",
        "calls span = first call sent to last answer; last answer to exit = the reports, run.json and the "
        "process's exit (report-pipeline's phases from its run.json).",
    ]
    first = Table("The README's first command: the example workbook, offline (28 tasks, 7 data charts)",
                  ["process", "wall s", "time to first request s"])
    for name, trials in example.items():
        first.add(name, f"{statistics.median(r['wall'] for r in trials):.2f}",
                  f"{statistics.median(r['first'] for r in trials):.2f}")
    first.notes.append(f"Medians of {args.trials} runs each, interleaved with the trials above.")
    text = table.markdown() + "\n" + first.markdown()
    print(text)
    if args.write_results:
        write_section("startup", "## The whole process against a plain pool (startup.py)\n\n"
                      + header(command_line(), load) + "\n" + text)


if __name__ == "__main__":
    main()
