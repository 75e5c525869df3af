"""The figures check's CPU cost: what tracing every figure of a task's text adds to the task.

    python benchmarks/figures_check.py
    python benchmarks/figures_check.py --repeat 50 --write-results

Two tables of CPU time per check (`time.process_time`, best of --repeat, so other load on
the machine counts less):

1. a 50-figure text over a table of 100 rows x 5 value columns (500 cells), and the same
   text over 10 times the rows: the derived steps are taken over the cells each sentence
   names, so the second should cost little more than the first;
2. the offline provider's draft on each CSV of the example workbook, checked against the
   table as its prompt shows it (tables, counts, changes, totals), as a run checks a task;
3. the whole example workbook run offline, in this process, with `figures_check: flag` and
   `off` alternately (--runs each): the wall-time ratio of the medians is what the check adds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pandas as pd
from _common import ROOT, add_common_flags, command_line, header, warn_if_loaded, write_section

from report_pipeline.checks import FigureCheck, SourceTable, Sources, trace_figures
from report_pipeline.config import RunConfig
from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.workbook.data import read_table, to_markdown

DATA = ROOT / "prompt_sheets" / "data"


def sites(rows: int) -> pd.DataFrame:
    numbers = np.arange(rows)
    return pd.DataFrame({"site": [f"s{n:04d}" for n in numbers], "coal": numbers * 1.5 + 0.25,
                         "gas": numbers * 0.7 + 3.0, "wind": numbers * 0.3, "solar": numbers * 0.1})


def fifty_figures(table: pd.DataFrame) -> str:
    """25 sentences, each a cell and a percent change between two named rows."""
    sentences = []
    for n in range(25):
        start, end = n, n + 40
        gas = (table.gas[end] - table.gas[start]) / table.gas[start] * 100
        sentences.append(f"At s{n + 10:04d} coal was {table.coal[n + 10]:,.2f} and gas rose {gas:.1f}% "
                         f"from s{start:04d} to s{end:04d}.")
    return " ".join(sentences)


def best_ms(check: Callable[[], FigureCheck], repeat: int) -> tuple[float, FigureCheck]:
    best, result = float("inf"), check()
    for _ in range(repeat):
        started = time.process_time()
        result = check()
        best = min(best, time.process_time() - started)
    return best * 1000, result


def synthetic(repeat: int) -> str:
    lines = ["| table | cells | figures | traced | derived values tried | CPU ms per check |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    text = fifty_figures(sites(100))
    for rows in (100, 1000):
        sources = Sources(tables=(SourceTable("sites", sites(rows)),))
        ms, check = best_ms(lambda sources=sources: trace_figures(text, sources), repeat)
        lines.append(f"| {rows} rows x 5 columns | {rows * 5:,} | {check.found_count} | {check.traced_count} "
                     f"| {check.work:,} | {ms:.2f} |")
    return "\n".join(lines)


def offline_drafts(repeat: int) -> str:
    provider = OfflineProvider(RunConfig(provider="offline"))
    lines = ["| data | rows x columns | figures | traced | flagged | CPU ms per check |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    total = 0.0
    for path in sorted(DATA.glob("*.csv")):
        frame = read_table(path)
        prompt = f"Write the section on {path.stem}.\n\n{to_markdown(frame)}\n"
        request = ChatRequest(model="offline", messages=({"role": "user", "content": prompt},), max_tokens=2000)
        text = provider.complete(request).text
        sources = Sources(tables=(SourceTable(path.stem, frame),), prompt=prompt)
        ms, check = best_ms(lambda text=text, sources=sources: trace_figures(text, sources), repeat)
        total += ms
        lines.append(f"| {path.name} | {len(frame)} x {len(frame.columns)} | {check.found_count} "
                     f"| {check.traced_count} | {check.untraced_count} | {ms:.2f} |")
    lines.append(f"| **all** | | | | | **{total:.1f}** |")
    return "\n".join(lines)


def whole_runs(runs: int) -> str:
    """The example run offline, check on and off in turn; the ratio of median wall times."""
    import statistics
    import tempfile

    from report_pipeline.config import load_config
    from report_pipeline.pipeline import ReportGenerationPipeline
    from report_pipeline.workbook.reader import load_prompt_sheet

    sheet = load_prompt_sheet(ROOT / "prompt_sheets" / "energy_transition.xlsx")
    walls: dict[str, list[float]] = {"flag": [], "off": []}
    with tempfile.TemporaryDirectory() as folder:
        for n in range(runs * 2 + 1):
            mode = ("off", "flag")[n % 2]  # the first (warm-up) run is not counted
            config = load_config(overrides={"provider": "offline", "output_dir": Path(folder) / str(n),
                                            "figures_check": mode, "progress": "off", "quiet": True})
            started = time.perf_counter()
            result = ReportGenerationPipeline(config, sheet).run()
            assert result.exit_code == 0
            if n:
                walls[mode].append(time.perf_counter() - started)
    flag, off = statistics.median(walls["flag"]), statistics.median(walls["off"])
    return (f"| figures_check | median wall s ({runs} runs) |\n| --- | ---: |\n| off | {off:.3f} |\n"
            f"| flag | {flag:.3f} |\n\nflag / off = {flag / off:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="checks timed per case; the best counts")
    parser.add_argument("--runs", type=int, default=7, help="whole example runs per mode (flag, off)")
    add_common_flags(parser)
    args = parser.parse_args()
    warn_if_loaded()
    text = "\n\n".join([
        header(command_line()),
        "50 figures (a cell and a percent change per sentence), one table:\n\n" + synthetic(args.repeat),
        "The offline draft on each example CSV, checked against its table and prompt:\n\n"
        + offline_drafts(args.repeat),
        "The example workbook, whole run offline (report files included), check on and off:\n\n"
        + whole_runs(args.runs),
    ])
    print(text)
    if args.write_results:
        write_section("figures_check", text)


if __name__ == "__main__":
    main()

