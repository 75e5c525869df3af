"""Batch mode (`--batch`) on the simulator: waves, batches, cost against real-time prices, our own overhead.

For the example workbook and a generated 1,000-task workbook (3 steps each), the run goes
through the simulator's /v1/files and /v1/batches (a child process) with the real openai
SDK. Every batch takes `--delay` seconds to process on the simulator; what is left of the
run's wall time once the waits are taken out is our own overhead: building the waves'
JSONL, uploading, creating, downloading and reading the results, recording them in the
ledger, running the parked tasks again, and writing the report.

    python benchmarks/batch.py [--delay 1.0] [--tasks 1000] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    add_common_flags,
    command_line,
    header,
    warn_if_loaded,
    write_section,
)

from report_pipeline.bench import BENCH_KEY, OtherLoad, SimulatorProcess, write_workbook
from report_pipeline.config import load_config
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.workbook.reader import load_prompt_sheet

MODEL = "gpt-4o-mini"  # priced in the default table: $0.15 / $0.60 per million tokens, half in batch


def run_one(sheet_path: Path, sim: SimulatorProcess, out: Path, *, poll_s: float, max_requests: int) -> dict:
    config = load_config(
        overrides={
            "provider": "openai", "base_url": sim.base_url, "model": MODEL, "output_dir": out,
            "execution": "batch", "batch_poll_interval_s": poll_s, "batch_max_requests": max_requests,
            "steps": "generate,refine,check", "progress": "off", "quiet": True, "log_level": "WARNING",
        },
        environ={"OPENAI_API_KEY": BENCH_KEY},
    )
    started = time.perf_counter()
    result = ReportGenerationPipeline(config, load_prompt_sheet(sheet_path)).run()
    wall = time.perf_counter() - started
    manifest = json.loads((result.run_dir / "run.json").read_text())
    batch = manifest["batch"]
    waves = batch["waves"]
    waited = sum(w["duration_s"] - w["own_time_s"] for w in waves)
    sizes = [b["requests"] for w in waves for b in w["batches"]]
    stats = sim.stats()
    return {
        "status": result.status, "tasks": manifest["counts"]["total"], "waves": len(waves),
        "batches": len(sizes), "requests": sum(sizes), "per_batch": sizes,
        "batch_cost": batch["cost_usd"], "realtime_cost": batch["realtime_cost_usd"],
        "wall_s": wall, "waited_s": waited, "overhead_s": wall - waited,
        "own_per_wave_s": [w["own_time_s"] for w in waves],
        "repeated": stats["batch_requests_repeated"],
    }


def table(rows: list[tuple[str, dict]], delay: float) -> str:
    lines = [
        "| workbook | tasks | waves | batches | requests | requests per batch | real-time cost | batch cost | "
        "wall s | waiting s | our overhead s | overhead per wave s (median, max) | requests sent twice |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        sizes = r["per_batch"]
        per_batch = f"{min(sizes)}-{max(sizes)}" if len(set(sizes)) > 1 else str(sizes[0])
        own = r["own_per_wave_s"]
        lines.append(
            f"| {name} | {r['tasks']} | {r['waves']} | {r['batches']} | {r['requests']} | {per_batch} | "
            f"${r['realtime_cost']:.4f} | ${r['batch_cost']:.4f} | {r['wall_s']:.2f} | {r['waited_s']:.2f} | "
            f"{r['overhead_s']:.2f} | {statistics.median(own):.3f}, {max(own):.3f} | {r['repeated']} |"
        )
    lines.append("")
    lines.append(
        f"- Each batch takes {delay:g} s on the simulator (its processing delay) plus up to one poll interval "
        "to be seen done: that is *waiting*. Our overhead = wall − waiting: waves built, uploaded, created, "
        "downloaded, read and recorded, parked tasks run again, reports written."
    )
    lines.append("- Overhead per wave = the wave's wall time outside the wait (JSONL, upload, create, download, "
                 "results into the ledger); the passes that run parked tasks again come on top, between waves.")
    lines.append(f"- Costs from the default price table ({MODEL}: $0.15 in / $0.60 out per million tokens; "
                 "batch half) on the simulator's token counts.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the simulator takes per batch")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the generated workbook (x 3 steps)")
    parser.add_argument("--poll", type=float, default=0.1, help="batch_poll_interval_s")
    parser.add_argument("--max-requests", type=int, default=50_000, help="batch_max_requests (split a wave)")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    objectives = max(1, args.tasks // 20)
    rows = []
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp, SimulatorProcess() as sim:
        sim.configure(batch_delay_s=args.delay, batch_steps=4)
        generated = write_workbook(Path(tmp) / "wb.xlsx", objectives, args.tasks // objectives)
        size = f"generated {objectives}x{args.tasks // objectives}"
        split = max(1, args.tasks * 2 // 5)
        runs = (
            ("example (energy_transition.xlsx)", ROOT / "prompt_sheets" / "energy_transition.xlsx", args.max_requests),
            (size, generated, args.max_requests),
            (f"{size}, batch_max_requests {split}", generated, split),  # each wave split in 3
        )
        for number, (name, sheet, max_requests) in enumerate(runs):
            sim.reset()
            result = run_one(sheet, sim, Path(tmp) / f"run{number}", poll_s=args.poll, max_requests=max_requests)
            print(f"{name}: {result['status']}, {result['waves']} waves, {result['batches']} batches, "
                  f"{result['wall_s']:.1f} s", file=sys.stderr)
            rows.append((name, result))
    text = "## Batch mode (batch.py)\n\n" + header(command_line(), load) + "\n" + table(rows, args.delay) + "\n"
    print(text)
    if args.write_results:
        write_section("batch", text)


if __name__ == "__main__":
    main()
