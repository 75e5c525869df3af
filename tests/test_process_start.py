"""The process's start time that run.json's `first_request_s` counts from is the real one."""

from __future__ import annotations

import subprocess
import sys
import time


def test_process_start_is_when_the_process_was_launched():
    # psutil's create_time counts from a boot time in whole seconds: up to a second off
    before = time.time()
    child = subprocess.run(
        [sys.executable, "-c", "from report_pipeline.pipeline import process_started_at; print(process_started_at())"],
        capture_output=True, text=True, check=True,
    )
    after = time.time()
    started = float(child.stdout)
    assert before - 0.02 <= started <= before + 0.25 < after  # launched, then importing the module took time
