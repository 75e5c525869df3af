"""The process's start time that run.json's `first_request_s` counts from is the real one."""

from __future__ import annotations

import subprocess
import sys
import time


def test_process_start_is_when_the_process_was_launched():
    # psutil's create_time counts from a boot time in whole seconds: up to a second off
    before = time.time()
    child = subprocess.run(
        [sys.executable, "-c", "from report_pipeline.watch.monitor import process_started_at; print(process_started_at())"],
        capture_output=True, text=True, check=True,
    )
    after = time.time()
    started = float(child.stdout)
    assert before - 0.02 <= started <= min(after, before + 0.25)  # at its launch, not when it read the clock


#: what a run needs only once answers are in, or never for this workbook
_LATER = ("pandas", "rich", "docx", "markdown_it", "report_pipeline.writers.reports", "report_pipeline.batch.waves")

_SCRIPT = """
import io, sys
from pathlib import Path
from report_pipeline.app import prepare_run
from report_pipeline.bench import write_workbook

later = sys.argv[2].split(",")
sheet = write_workbook(Path(sys.argv[1]) / "sheet.xlsx", 2, 2)
pipeline = prepare_run(sheet, config_path=None, overrides={"provider": "offline", "output_dir": sys.argv[1] + "/out"},
                       stream=io.StringIO(), out=io.StringIO())
print(",".join(m for m in later if m in sys.modules))
result = pipeline.run()
print(result.exit_code, ",".join(m for m in later if m in sys.modules))
"""


def test_a_run_ready_to_send_has_not_imported_what_it_needs_only_later(tmp_path):
    # the bench helper writes the workbook with openpyxl only; a sheet without tables needs no pandas,
    # and a run off a terminal no rich, ever
    child = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), ",".join(_LATER)],
                           capture_output=True, text=True, check=True)
    ready, (code, after) = child.stdout.splitlines()[0], child.stdout.splitlines()[1].split(" ", 1)
    assert ready == ""
    assert code == "0"
    assert "pandas" not in after.split(",") and "rich" not in after.split(",")
    assert "report_pipeline.writers.reports" in after.split(",")  # the reports were written
