"""Pacing under a server's rate limit, and the same workload with the plain openai SDK.

    python benchmarks/ratelimit.py                       # limits 20, 40, 80 requests/s
    python benchmarks/ratelimit.py --limits 40 --no-sdk

Workload: 100 tasks (10 objectives x 10) x 3 steps = 300 calls, simulator latency 0.2 s,
max_concurrent_requests 50; the simulator allows LIMIT requests in any 1 s window
(requests_per_window=LIMIT, window_s=1) and answers 429 with retry-after beyond it. The
pipeline is not told the limit: it learns it from the x-ratelimit-* headers.

Per limit: achieved rate (answered calls / span of the calls), % of the limit, 429s and
their share of all requests, tasks lost (must be 0). Then the comparison the issue asks
for: a plain `ThreadPoolExecutor(50)` running the same 100 three-call tasks through one
`openai.OpenAI(max_retries=6)` client (the SDK's own retries, honouring retry-after, no
shared pacing): tasks that succeeded, tasks that failed, 429s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
from _common import add_common_flags, command_line, header, warn_if_loaded, write_section

from report_pipeline.bench import (
    BENCH_KEY,
    BENCH_MODEL,
    STEPS,
    OtherLoad,
    SimulatorProcess,
    Table,
    ratelimit_table,
)

SYSTEM = "You are an experienced analyst writing one section of a professional report."


def sdk_task(client: openai.OpenAI, objective: int, task: int) -> None:
    """One task as a plain script would write it: generate, refine, check, one after another."""
    draft = ""
    for step in STEPS:
        prompt = f"Write part {task} of Chapter {objective}."
        if step != "generate":
            prompt = f"{step.title()} the draft below.\n\n{prompt}\n\n<draft>\n{draft}\n</draft>"
        answer = client.chat.completions.create(
            model=BENCH_MODEL, temperature=0.2, max_tokens=800,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        )
        if step != "check":
            draft = answer.choices[0].message.content or ""


def sdk_row(sim: SimulatorProcess, limit: int, objectives: int, tasks: int, workers: int, retries: int) -> list[str]:
    sim.configure(requests_per_window=limit, window_s=1.0)
    sim.reset()
    client = openai.OpenAI(base_url=sim.base_url, api_key=BENCH_KEY, max_retries=retries, timeout=60)
    failures: list[str] = []
    started = time.perf_counter()
    with client, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(sdk_task, client, o, t) for o in range(1, objectives + 1) for t in range(1, tasks + 1)]
        for future in futures:
            error = future.exception()
            if error is not None:
                failures.append(type(error).__name__)
    wall = time.perf_counter() - started
    stats = sim.stats()
    total = objectives * tasks
    answered = int(stats["completed"])
    rejected = int(stats["rate_limited"])
    kinds = ", ".join(f"{failures.count(k)} {k}" for k in sorted(set(failures))) or "-"
    return [str(limit), f"{wall:.2f}", f"{answered / wall:.1f}", f"{answered / wall / limit:.0%}",
            str(total - len(failures)), str(len(failures)), kinds, str(rejected),
            f"{rejected / max(1, int(stats['calls'])):.1%}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limits", default="20,40,80", help="server limits, requests/s (default 20,40,80)")
    parser.add_argument("--objectives", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10, help="tasks per objective (default 10)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50, help="max_concurrent_requests and SDK threads")
    parser.add_argument("--no-sdk", action="store_true", help="skip the plain-SDK comparison")
    parser.add_argument("--sdk-retries", type=int, default=6, help="the SDK's max_retries (default 6)")
    add_common_flags(parser)
    args = parser.parse_args()
    limits = [int(x) for x in args.limits.split(",") if x.strip()]
    warn_if_loaded()
    tables: list[Table] = []
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, \
            SimulatorProcess(latency_s=args.latency) as sim:
        tables.append(ratelimit_table(sim, limits=limits, objectives=args.objectives, tasks=args.tasks,
                                      latency_s=args.latency, concurrency=args.concurrency,
                                      workdir=Path(tmp), stream=sys.stderr))
        if not args.no_sdk:
            sdk = Table(
                f"The same workload with a plain ThreadPoolExecutor({args.concurrency}) around the openai SDK "
                f"(max_retries={args.sdk_retries})",
                ["limit /s", "wall s", "achieved /s", "% of limit", "tasks ok", "tasks failed", "errors",
                 "429s", "429 % of requests"],
            )
            for limit in limits:
                print(f"  plain SDK at {limit}/s ...", file=sys.stderr, flush=True)
                sdk.rows.append(sdk_row(sim, limit, args.objectives, args.tasks, args.concurrency, args.sdk_retries))
            sdk.notes += [
                "achieved = answered calls / wall time of the pool (no report files: a lower bound on its wall).",
                "A failed task is one whose call still got 429 after the SDK's retries (its later steps never ran).",
            ]
            tables.append(sdk)
    text = "\n".join(t.markdown() for t in tables)
    print(text)
    if args.write_results:
        write_section("ratelimit", "## Under a server rate limit (ratelimit.py)\n\n" + header(command_line(), load)
                      + "\n" + text)


if __name__ == "__main__":
    main()
