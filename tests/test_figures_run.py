"""The figures check in a whole run, through the real openai SDK to the simulator: a planted wrong
figure is flagged everywhere a reader looks, and `figures_check: fix` corrects it with one more call."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.test_pipeline_simulator import openai_config
from tests.workbooks import make_workbook


def _sheet(tmp_path: Path, prompt: str) -> Path:
    folder = tmp_path / "wb"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"year": [2015, 2020, 2030], "coal": [650.0, 340.0, 100.0]}).to_csv(folder / "coal.csv", index=False)
    return make_workbook(
        folder / "sheet.xlsx",
        objectives=[{"objective_id": "c", "title": "Coal"}],
        tasks=[{"objective_id": "c", "task_id": "t", "prompt": prompt, "title": "Coal output", "data": "coal"}],
        data=[{"name": "coal", "path": "coal.csv"}],
    )


def _run(sheet: Path, config):
    return ReportGenerationPipeline(config, load_prompt_sheet(sheet)).run()


def test_a_planted_figure_is_flagged_in_results_run_json_the_reports_and_the_final_line(tmp_path, make_simulator):
    sim = make_simulator()
    result = _run(_sheet(tmp_path, "A paragraph on coal. sim:plant=97.3"), openai_config(sim, tmp_path / "out"))
    assert result.exit_code == 0  # a flag is a warning for the reader, not a failed task
    (task,) = result.results
    assert [m.text for m in task.untraced_figures] == ["97.3"]
    row = next(csv.DictReader(open(result.run_dir / "results.csv", encoding="utf-8")))
    assert row["figures_untraced"] == "1" and row["untraced_figures"].startswith('97.3 ("The headline figure')
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["tasks"][0]["figures"]["untraced_figures"][0]["figure"] == "97.3"
    assert manifest["figures"]["flagged"] == 1 and manifest["figures"]["flagged_tasks"] == 1
    assert "97.3 [unverified]" in (result.run_dir / "report.md").read_text()
    assert '<mark class="untraced"' in (result.run_dir / "report.html").read_text()
    assert "1 flagged in 1 task" in result.figures_text()
    assert sim.stats()["calls"] == 1


def test_fix_sends_one_more_call_and_the_corrected_figure_is_traced(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = _sheet(tmp_path, "A paragraph on coal. sim:plant=97.3 sim:fix=650")
    result = _run(sheet, openai_config(sim, tmp_path / "out", figures_check="fix"))
    (task,) = result.results
    assert [c.step for c in task.calls] == ["generate", "fix"]
    assert "97.3" not in task.text and "650" in task.text
    assert task.untraced_figures == ()
    assert sim.stats()["calls"] == 2
    # a rerun pays nothing: the fix is an ordinary call, answered from the ledger
    again = _run(sheet, openai_config(sim, tmp_path / "out", figures_check="fix"))
    assert sim.stats()["calls"] == 2 and again.results[0].text == task.text


def test_off_checks_nothing_and_adds_no_columns(tmp_path, make_simulator):
    sim = make_simulator()
    result = _run(_sheet(tmp_path, "A paragraph on coal. sim:plant=97.3"),
                  openai_config(sim, tmp_path / "out", figures_check="off"))
    assert result.results[0].figures is None and result.figures_text() == ""
    header = next(csv.reader(open(result.run_dir / "results.csv", encoding="utf-8")))
    assert "figures_found" not in header
    assert "[unverified]" not in (result.run_dir / "report.md").read_text()
