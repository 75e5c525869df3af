"""timeline.png drawn by a child process: a real PNG, a failure that says why, and the run's fallback."""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

import pytest

import report_pipeline.pipeline as pipeline_module
from report_pipeline.timeline import Bar
from report_pipeline.timeline_process import (
    TimelineProcess,
    TimelineProcessError,
    start_timeline_process,
)
from tests.test_pipeline import run_pipeline
from tests.workbooks import simple_workbook

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# As if this process had never drawn with matplotlib: the run uses a child (see _start_timeline_drawer)
NOT_LOADED = "module.never.loaded"
BARS = [
    Bar("A.T1", "A", "generate", "task_0", 0.0, 1.5),
    Bar("A.T1", "A", "refine", "task_0", 1.5, 2.0, failed=True),
    Bar("B.T1", "B", "", "(skipped)", 2.0, 2.0, skipped=True),
]


def test_the_child_draws_the_png_it_is_sent(tmp_path):
    drawer = start_timeline_process()
    try:
        drawer.send(tmp_path / "timeline.png", BARS, title="run 1", objective_titles={"A": "Intro"})
        drawer.wait()
    finally:
        drawer.close()
    assert (tmp_path / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.png"]  # no temporary file left


def test_a_child_that_cannot_write_says_why(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    drawer = start_timeline_process()
    try:
        drawer.send(tmp_path / "a-file" / "timeline.png", BARS, title="run 1")
        with pytest.raises(TimelineProcessError, match="a-file"):
            drawer.wait()
    finally:
        drawer.close()


def test_a_child_sent_nothing_is_stopped_at_once_and_draws_nothing(tmp_path):
    drawer = start_timeline_process()
    drawer.close()
    assert drawer._process.returncode is not None  # reaped: no child outlives an early exit
    drawer.close()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TimelineProcessError, match="nothing was sent"):
        drawer.wait()


def _dead_child() -> TimelineProcess:
    """A child that exits at once with an error, as a broken interpreter would."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return TimelineProcess(process)


def test_a_dead_child_is_an_error_naming_its_exit_and_stderr():
    drawer = _dead_child()
    try:
        drawer._process.wait()
        try:
            drawer.send(Path("unused.png"), BARS, title="t")
        except TimelineProcessError:
            return  # its stdin was already gone: also an error the run falls back on
        with pytest.raises(TimelineProcessError, match=r"exit 3\): boom"):
            drawer.wait()
    finally:
        drawer.close()


@pytest.mark.parametrize("failure", ["cannot start", "dies"])
def test_the_run_draws_the_timeline_itself_when_the_child_fails(tmp_path, monkeypatch, caplog, failure):
    def broken() -> TimelineProcess:
        if failure == "cannot start":
            raise OSError("no more processes")
        return _dead_child()

    monkeypatch.setattr(pipeline_module, "start_timeline_process", broken)
    monkeypatch.setattr(pipeline_module, "_MATPLOTLIB", NOT_LOADED)
    sheet = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    assert result.exit_code == 0
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    if failure == "dies":
        assert "drawing timeline.png in this process" in caplog.text


def test_a_run_leaves_no_child_process_behind(tmp_path, monkeypatch):
    started: list[TimelineProcess] = []

    def tracked() -> TimelineProcess:
        started.append(start_timeline_process())
        return started[-1]

    monkeypatch.setattr(pipeline_module, "start_timeline_process", tracked)
    monkeypatch.setattr(pipeline_module, "_MATPLOTLIB", NOT_LOADED)
    sheet = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len(started) == 1
    assert started[0]._process.returncode == 0  # reaped, and it drew without error


def test_the_child_says_when_it_is_warm():
    drawer = start_timeline_process()
    try:
        assert select.select([drawer._process.stdout], [], [], 60)[0]  # wait for its first line
        assert drawer.ready
        assert drawer.ready  # and stays so, without reading again
    finally:
        drawer.close()


def test_a_process_that_has_drawn_before_draws_itself_and_starts_no_child(tmp_path, monkeypatch):
    import matplotlib.figure  # noqa: F401 - loaded, as after a first run in this process

    def forbidden() -> TimelineProcess:
        raise AssertionError("no child should be started")

    monkeypatch.setattr(pipeline_module, "start_timeline_process", forbidden)
    sheet = simple_workbook(tmp_path / "wb", n_objectives=1, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_child_not_yet_warm_is_stopped_when_this_process_can_draw_at_once(tmp_path, monkeypatch):
    import matplotlib.figure  # noqa: F401

    cold = _dead_child()  # never says ready
    monkeypatch.setattr(pipeline_module, "start_timeline_process", lambda: cold)
    monkeypatch.setattr(pipeline_module, "_MATPLOTLIB", NOT_LOADED)  # start it...
    original = pipeline_module._use_drawer

    def at_the_end(drawer):
        monkeypatch.setattr(pipeline_module, "_MATPLOTLIB", "matplotlib.figure")  # ...but draw here at the end
        return original(drawer)

    monkeypatch.setattr(pipeline_module, "_use_drawer", at_the_end)
    sheet = simple_workbook(tmp_path / "wb", n_objectives=1, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert cold._process.returncode is not None  # stopped, not left running


def test_a_stuck_child_is_killed_after_the_timeout_and_says_so(tmp_path):
    stuck = subprocess.Popen(  # reads the request, then never answers
        [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); time.sleep(600)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    drawer = TimelineProcess(stuck)
    drawer.send(tmp_path / "timeline.png", BARS, title="t")
    with pytest.raises(TimelineProcessError, match="took more than 0.5 s"):
        drawer.wait(timeout_s=0.5)
    assert stuck.returncode is not None  # killed, not left behind
    assert not (tmp_path / "timeline.png").exists()
