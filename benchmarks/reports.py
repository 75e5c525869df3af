"""What writing the reports costs at the end of a run: each writer on its own, and the imports.

    python benchmarks/reports.py
    python benchmarks/reports.py --sizes 10x10 100x20 --repeat 7
    python benchmarks/reports.py --text markdown     # model-like answers: headings, lists, a table
    python benchmarks/reports.py --profile /tmp/reports.prof     # cProfile of one pass at the largest size

A finished run is built in memory: the offline provider (no model, no network) runs a
generated workbook (`--sizes`, objectives x tasks, steps generate, refine, check) through
`ReportGenerationPipeline`; then every writer that `ReportGenerationPipeline._finish` calls
is timed on its own against that run's results, into a scratch folder: build_attachments,
write_markdown, write_docx, write_xlsx, write_timeline. Two figures for each:

- first: the writer's first call in a fresh process that has imported what a run imports,
  as at the end of a real run; the median of `--first-repeat` processes. A writer's first
  call also pays for its lazy imports and cold caches (write_timeline imports Pillow and
  reads the font file, which a run's drawing process does while the calls wait: see
  `timeline.warm_up()` in the imports table; python-docx reads its template);
- again: the median of `--repeat` further calls in this process, once everything is warm.
The offline provider's drafts are three short paragraphs; `--text markdown` swaps every
answer for a model-like one (a heading, bold and code, nested bullets, a numbered list,
a five-row table), which is what makes report.docx work hardest.

Imports are measured apart, in fresh processes: what `import report_pipeline.pipeline`
costs (process start-up, not part of a run's time), then what each heavy module the writers
use adds on top of it (a module that loads only when the reports are written counts
against the run's end).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    add_common_flags,
    command_line,
    header,
    warn_if_loaded,
    write_section,
)

from report_pipeline.bench import STEPS, OtherLoad, Table, write_workbook

WRITERS = ("build_attachments", "write_markdown", "write_docx", "write_xlsx", "write_timeline")
BENCHMARKS = Path(__file__).resolve().parent

# What the writers import, each measured on top of `import report_pipeline.pipeline`.
HEAVY_IMPORTS = {
    "matplotlib (data charts)": "import matplotlib.figure, matplotlib.patches, matplotlib.lines, "
                                "matplotlib.backends.backend_agg",
    "Pillow and its fonts: timeline.warm_up()": "from report_pipeline.writers.figures.timeline import warm_up; warm_up()",
    "docx (python-docx)": "import docx",
    "openpyxl": "import openpyxl",
}
IMPORT_PROBE = """
import sys, time
started = time.perf_counter()
{before}
base = time.perf_counter()
{probe}
done = time.perf_counter()
print(base - started, done - base)
"""
# One first call of each writer in a fresh process: argv = inputs pickle, scratch folder.
FIRST_WRITE = """
import json, pickle, sys, time
from pathlib import Path
import report_pipeline.pipeline  # what a run has imported before its first call
sys.path.insert(0, {benchmarks!r})
from reports import writer_calls
inputs = pickle.loads(Path(sys.argv[1]).read_bytes())
clock = getattr(time, sys.argv[3])
times = {{}}
for name, call in writer_calls(inputs, Path(sys.argv[2])).items():
    started = clock()
    call()
    times[name] = clock() - started
print(json.dumps(times))
"""


def finished_run(folder: Path, objectives: int, tasks: int) -> Any:
    """A real pipeline, run offline to the end over a generated workbook: its results are in memory."""
    from report_pipeline.config import load_config
    from report_pipeline.pipeline import ReportGenerationPipeline
    from report_pipeline.workbook.reader import load_prompt_sheet

    sheet = load_prompt_sheet(write_workbook(folder / "sheet.xlsx", objectives, tasks))
    config = load_config(overrides={
        "provider": "offline", "output_dir": folder / "out", "steps": ",".join(STEPS), "progress": "off",
        "quiet": True, "max_objective_workers": 10, "max_task_workers": 10, "max_concurrent_requests": 50,
        "offline_latency_ms": 4,  # spreads the calls over the threads, as a timeline shows a real run
    }, environ={})
    pipeline = ReportGenerationPipeline(config, sheet)
    pipeline.run()
    return pipeline


def markdown_answer(key: str) -> str:
    """A model-like answer of about 200 words, different for every task."""
    n = sum(map(ord, key))
    rows = "\n".join(f"| {2019 + i} | {n % 97 + i * 3.5:.1f} | {n % 13 + i}% | {'up' if (n + i) % 3 else 'flat'} |"
                     for i in range(5))
    return (
        f"## Summary for {key}\n\n"
        f"Demand grew **{n % 9 + 2}%** a year while supply lagged; the `capacity_gw` series shows the gap "
        f"widening after *2021*. The second half of the period matters most.\n"
        f"Prices followed with a lag of about {n % 5 + 1} quarters.\n\n"
        "- Generation shifted from coal to gas and wind\n"
        "  - wind doubled its share\n"
        "  - gas filled the evening peak\n"
        "- Imports covered the winter deficit\n"
        "* Storage stayed marginal\n\n"
        "1. Secure the interconnector upgrade\n"
        "2. Tender flexible capacity\n"
        "3) Review the tariff in **Q3**\n\n"
        "| Year | Capacity (GW) | Share | Trend |\n|---|---:|---:|---|\n"
        f"{rows}\n\n"
        "The figures are consistent across sources, with minor gaps in the latest months; "
        "the recommendations hold under both the low and the high demand case."
    )


def with_markdown_answers(pipeline: Any) -> None:
    """Swap every finished task's text for a model-like Markdown answer (the report's view only)."""
    from dataclasses import replace

    from report_pipeline.run.results import ReportStructureManager

    finished, pipeline.results = pipeline.results.all_results(), ReportStructureManager(pipeline.plan)
    for result in finished:
        pipeline.results.record(replace(result, text=markdown_answer(result.key)) if result.status == "done" else result)


def attachments_call(pipeline: Any) -> Callable[[], Any]:
    """build_attachments as `_finish` calls it (it needs the run's data store and charts: not picklable)."""
    from report_pipeline.writers.attachments import build_attachments

    done = [pipeline.plan.tasks[r.key] for r in pipeline.results.all_results() if r.status == "done"]
    return lambda: build_attachments(done, pipeline.data, pipeline.run_dir, charts=pipeline._charts)


def report_inputs(pipeline: Any) -> dict[str, Any]:
    """What the file writers take, as plain (picklable) data: results, report view, attachments, titles."""
    config = pipeline.config
    view = pipeline.results.report_view(
        project_name=config.project_name, run_id=pipeline.run_id, generated_at=time.time(),
        provider=pipeline.provider.name, model=config.model,
    )
    return {
        "results": pipeline.results.all_results(),
        "view": view,
        "attachments": attachments_call(pipeline)(),
        "title": f"{config.project_name}: run {pipeline.run_id}",
        "objective_titles": {o.objective_id: o.title for o in pipeline.plan.objectives},
    }


def writer_calls(inputs: dict[str, Any], out: Path) -> dict[str, Callable[[], object]]:
    """Each file writer as `_finish` calls it, writing into `out`."""
    from report_pipeline.writers import write_docx, write_markdown, write_xlsx
    from report_pipeline.writers.figures.timeline import write_timeline

    view, attachments = inputs["view"], inputs["attachments"]
    return {
        "write_markdown": lambda: write_markdown(out / "report.md", view, attachments=attachments),
        "write_docx": lambda: write_docx(out / "report.docx", view, attachments=attachments),
        "write_xlsx": lambda: write_xlsx(out / "report.xlsx", view),
        "write_timeline": lambda: write_timeline(
            out / "timeline.png", inputs["results"], title=inputs["title"], objective_titles=inputs["objective_titles"],
        ),
    }


def first_writes(inputs: dict[str, Any], folder: Path, processes: int, clock: str) -> dict[str, float]:
    """Median seconds of each writer's first call in a fresh process (see the module docstring)."""
    data = folder / "inputs.pickle"
    data.write_bytes(pickle.dumps(inputs))
    code = FIRST_WRITE.format(benchmarks=str(BENCHMARKS))
    samples: dict[str, list[float]] = {}
    for number in range(processes):
        out = folder / f"first-{number}"
        done = subprocess.run([sys.executable, "-c", code, str(data), str(out), clock], check=True,
                              capture_output=True, text=True)
        for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            samples.setdefault(name, []).append(seconds)
    return {name: statistics.median(times) for name, times in samples.items()}


def time_writers(calls: dict[str, Callable[[], object]], repeat: int, clock: str) -> dict[str, float]:
    """Median seconds per writer, after one warm-up pass (imports, caches)."""
    now = getattr(time, clock)
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            started = now()
            call()
            samples[name].append(now() - started)
    return {name: statistics.median(times) for name, times in samples.items()}


def import_costs(repeat: int) -> dict[str, float | None]:
    """Median seconds: `report_pipeline.pipeline` from nothing, then each heavy import on top of it
    (None for a probe this version of the code cannot run)."""
    costs: dict[str, list[float]] = {}
    failed: set[str] = set()
    for _ in range(repeat):
        for name, probe in {"report_pipeline.pipeline (start-up)": "pass", **HEAVY_IMPORTS}.items():
            code = IMPORT_PROBE.format(before="import report_pipeline.pipeline", probe=probe)
            done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
            if done.returncode != 0:
                failed.add(name)
                continue
            base, extra = map(float, done.stdout.split())
            costs.setdefault(name, []).append(base if probe == "pass" else extra)
    names = ["report_pipeline.pipeline (start-up)", *HEAVY_IMPORTS]
    return {name: None if name in failed else statistics.median(costs[name]) for name in names}


def already_loaded() -> set[str]:
    """Top-level modules `import report_pipeline.pipeline` loads: they cost nothing at a run's end."""
    code = "import sys, report_pipeline.pipeline; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def parse_size(text: str) -> tuple[int, int]:
    objectives, _, tasks = text.partition("x")
    return int(objectives), int(tasks)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.01 else f"{seconds * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10x10", "100x20"], type=str,
                        help="objectives x tasks of each run (default: 10x10 = 100 tasks, 100x20 = 2,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per writer; the median is shown")
    parser.add_argument("--first-repeat", type=int, default=3,
                        help="fresh processes timing each writer's first call; the median is shown")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time: steadier while other processes load the machine")
    parser.add_argument("--text", choices=("offline", "markdown"), default="offline",
                        help="the answers: the offline provider's drafts, or model-like Markdown")
    parser.add_argument("--import-repeat", type=int, default=5, help="fresh processes per import measured")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one pass at the largest size here")
    add_common_flags(parser)
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes]
    clock = {"wall": "perf_counter", "cpu": "process_time"}[args.clock]
    warn_if_loaded()
    with OtherLoad() as load, tempfile.TemporaryDirectory() as tmp:
        timings, firsts = [], []
        for objectives, tasks in sizes:
            folder = Path(tmp) / f"{objectives}x{tasks}"
            print(f"  running {objectives}x{tasks} offline...", file=sys.stderr)
            pipeline = finished_run(folder, objectives, tasks)
            if args.text == "markdown":
                with_markdown_answers(pipeline)
            inputs = report_inputs(pipeline)
            firsts.append(first_writes(inputs, folder, args.first_repeat, clock))
            calls = {"build_attachments": attachments_call(pipeline), **writer_calls(inputs, folder / "scratch")}
            timings.append(time_writers(calls, args.repeat, clock))
            if args.profile and (objectives, tasks) == sizes[-1]:
                profiler = cProfile.Profile()
                profiler.enable()
                for call in calls.values():
                    call()
                profiler.disable()
                profiler.dump_stats(args.profile)
                print(f"  profile of one pass at {objectives}x{tasks}: {args.profile}", file=sys.stderr)
        imports = import_costs(args.import_repeat)
        loaded = already_loaded()

    labels = [f"ms at {o * t:,} tasks, {kind}" for o, t in sizes for kind in ("first", "again")]
    what = "CPU time" if args.clock == "cpu" else "wall time"
    table = Table(f"Report writers ({what}): first call in a fresh process, and again once warm", ["writer", *labels])
    for name in WRITERS:
        cells = []
        for first, again in zip(firsts, timings):
            cells += [ms(first[name]) if name in first else "-", ms(again[name])]
        table.add(name, *cells)
    totals = []
    for first, again in zip(firsts, timings):
        totals += [f"**{ms(sum(first.values()) + again['build_attachments'])}**", f"**{ms(sum(again.values()))}**"]
    table.add("**all writers**", *totals)
    texts = "model-like Markdown answers (--text markdown)" if args.text == "markdown" else "its own drafts as texts"
    table.notes += [
        f"Sizes (objectives x tasks, 3 steps): {', '.join(args.sizes)}; offline provider, {texts}; no data "
        "sources, so no tables or charts attached.",
        f"first = median of {args.first_repeat} fresh processes that imported report_pipeline.pipeline (not "
        "counted), then called each writer once, its own imports included (write_timeline: Pillow and the font "
        "file, which a run's drawing process loads while the calls wait); build_attachments needs the live run, "
        f"so its figure is the warm one in both columns. again = median of {args.repeat} calls after that.",
    ]

    imported = Table(f"Imports, median of {args.import_repeat} fresh processes", ["import", "ms", "loaded at start-up"])
    for name, seconds in imports.items():
        module = name.split()[0].split(".")[0]
        imported.add(name, "-" if seconds is None else ms(seconds),
                     "yes" if module in loaded or name.endswith("(start-up)") else "**no: paid at the end of a run**")
    imported.notes += [
        "Each heavy import is measured on top of `import report_pipeline.pipeline` (what a run has loaded before "
        "its first call); one not loaded by then is paid when the reports are written, unless something imports "
        "it while the calls run.",
        "timeline.warm_up() imports Pillow, loads the fonts and paints a small timeline in memory (font file, "
        "PNG encoder): the whole first-use cost, which a run's drawing process pays while the calls wait "
        "(- where this version of the code has no warm_up).",
    ]
    text = table.markdown() + "\n" + imported.markdown()
    print(text)
    if args.write_results:
        write_section("reports", "## Report writers (reports.py)\n\n" + header(command_line(), load) + "\n" + text)


if __name__ == "__main__":
    main()
