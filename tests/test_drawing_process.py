"""Charts and timeline.png drawn by a child process: real PNGs, failures that say why, and the run's fallback."""

from __future__ import annotations

import dataclasses
import json
import select
import subprocess
import sys
from pathlib import Path

import pytest

import report_pipeline.writers.figures.drawing as drawing_module
from report_pipeline.writers.figures.chart_drawing import ChartSpec, draw_chart_png
from report_pipeline.writers.figures.drawing_process import (
    DrawingProcess,
    DrawingProcessError,
    start_drawing_process,
)
from report_pipeline.writers.figures.timeline import Bar, draw_timeline_png
from tests.test_pipeline import run_pipeline
from tests.workbooks import make_workbook, simple_workbook

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# As if this process had never drawn with matplotlib: the run uses a child (see drawing.start_drawer)
NOT_LOADED = "module.never.loaded"
BARS = [
    Bar("A.T1", "A", "generate", "task_0", 0.0, 1.5),
    Bar("A.T1", "A", "refine", "task_0", 1.5, 2.0, failed=True),
    Bar("B.T1", "B", "", "(skipped)", 2.0, 2.0, skipped=True),
]


def test_the_child_draws_the_png_it_is_sent(tmp_path):
    drawer = start_drawing_process()
    try:
        drawer.send_timeline(tmp_path / "timeline.png", BARS, title="run 1", objective_titles={"A": "Intro"})
        drawer.wait()
    finally:
        drawer.close()
    assert (tmp_path / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.png"]  # no temporary file left


def test_the_child_s_timeline_is_the_same_png_as_one_drawn_here(tmp_path):
    titles = {"A": "Intro", "B": "Grid"}
    drawer = start_drawing_process()
    try:
        drawer.send_timeline(tmp_path / "child.png", BARS, title="run 1", objective_titles=titles)
        drawer.wait()
    finally:
        drawer.close()
    draw_timeline_png(tmp_path / "here.png", BARS, title="run 1", objective_titles=titles)
    assert (tmp_path / "child.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def test_the_child_warms_up_without_matplotlib_and_imports_it_for_its_first_chart(tmp_path):
    """The warm-up before the child says it is ready is Pillow only; matplotlib comes after (in
    the background in `_serve`), or with the first chart."""
    script = (
        "import json, sys\n"
        "from report_pipeline.writers.figures import drawing_process as child\n"
        "from report_pipeline.writers.figures.timeline import warm_up\n"
        "warm_up()\n"
        "warm = 'matplotlib' in sys.modules\n"
        "child._do({'path': sys.argv[1], 'chart': json.loads(sys.argv[2])})\n"
        "print(warm, 'matplotlib' in sys.modules)\n"
    )
    spec = json.dumps(SPECS["bars"].to_json())
    completed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bars.png"), spec],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "True"]
    assert (tmp_path / "bars.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_child_that_cannot_write_says_why(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    drawer = start_drawing_process()
    try:
        drawer.send_timeline(tmp_path / "a-file" / "timeline.png", BARS, title="run 1")
        with pytest.raises(DrawingProcessError, match="a-file"):
            drawer.wait()
    finally:
        drawer.close()


def test_a_child_sent_nothing_is_stopped_at_once_and_draws_nothing(tmp_path):
    drawer = start_drawing_process()
    drawer.close()
    assert drawer._process.returncode is not None  # reaped: no child outlives an early exit
    drawer.close()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DrawingProcessError, match="nothing was sent"):
        drawer.wait()


def _dead_child(**_: object) -> DrawingProcess:
    """A child that exits at once with an error, as a broken interpreter would."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return DrawingProcess(process)


def test_a_dead_child_is_an_error_naming_its_exit_and_stderr():
    drawer = _dead_child()
    try:
        drawer._process.wait()
        try:
            drawer.send_timeline(Path("unused.png"), BARS, title="t")
        except DrawingProcessError:
            return  # its stdin was already gone: also an error the run falls back on
        with pytest.raises(DrawingProcessError, match=r"exit 3\): boom"):
            drawer.wait()
    finally:
        drawer.close()


@pytest.mark.parametrize("failure", ["cannot start", "dies"])
def test_the_run_draws_the_timeline_itself_when_the_child_fails(tmp_path, monkeypatch, caplog, failure):
    def broken(**_: object) -> DrawingProcess:
        if failure == "cannot start":
            raise OSError("no more processes")
        return _dead_child()

    monkeypatch.setattr(drawing_module, "start_drawing_process", broken)
    monkeypatch.setattr(drawing_module, "MATPLOTLIB_MODULE", NOT_LOADED)
    sheet = chart_workbook(tmp_path / "wb")  # a run with charts starts a child of its own
    result = run_pipeline(sheet, tmp_path)
    assert result.exit_code == 0
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (result.run_dir / "charts" / "gen.png").read_bytes().startswith(PNG_SIGNATURE)
    if failure == "dies":
        assert "in this process" in caplog.text


def test_a_run_without_charts_starts_no_child_of_its_own(tmp_path, monkeypatch):
    """The timeline alone costs less to draw here than a new process costs to start."""
    def forbidden(**_: object) -> DrawingProcess:
        raise AssertionError("no child should be started")

    monkeypatch.setattr(drawing_module, "start_drawing_process", forbidden)
    monkeypatch.setattr(drawing_module, "MATPLOTLIB_MODULE", NOT_LOADED)
    sheet = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_run_leaves_no_child_process_behind(tmp_path, monkeypatch):
    started: list[DrawingProcess] = []

    def tracked(**_: object) -> DrawingProcess:
        started.append(start_drawing_process())
        return started[-1]

    monkeypatch.setattr(drawing_module, "start_drawing_process", tracked)
    monkeypatch.setattr(drawing_module, "MATPLOTLIB_MODULE", NOT_LOADED)
    sheet = chart_workbook(tmp_path / "wb")
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len(started) == 1
    assert started[0]._process.returncode is not None  # reaped: no child outlives the run


def test_the_child_says_when_it_is_warm():
    drawer = start_drawing_process()
    try:
        assert select.select([drawer._process.stdout], [], [], 60)[0]  # wait for its first line
        assert drawer.ready
        assert drawer.ready  # and stays so, without reading again
    finally:
        drawer.close()


def test_a_process_that_has_drawn_before_draws_itself_and_starts_no_child(tmp_path, monkeypatch):
    import matplotlib.figure  # noqa: F401 - loaded, as after a first run in this process

    def forbidden(**_: object) -> DrawingProcess:
        raise AssertionError("no child should be started")

    monkeypatch.setattr(drawing_module, "start_drawing_process", forbidden)
    sheet = chart_workbook(tmp_path / "wb")
    result = run_pipeline(sheet, tmp_path)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (result.run_dir / "charts" / "gen.png").read_bytes().startswith(PNG_SIGNATURE)


def test_at_the_end_a_child_still_warming_up_gets_the_timeline_and_a_broken_one_is_stopped():
    warming = DrawingProcess(subprocess.Popen(  # alive, and has not said it is ready
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ))
    try:
        assert not warming.ready and drawing_module.use_drawer(warming)
        assert warming._process.poll() is None  # not stopped
        warming.broken = "stopped answering"
        assert not drawing_module.use_drawer(warming)
        assert warming._process.returncode is not None  # stopped, not left running
    finally:
        warming.close()


def test_a_stuck_child_is_killed_after_the_timeout_and_says_so(tmp_path):
    stuck = subprocess.Popen(  # reads the request, then never answers
        [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); time.sleep(600)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    drawer = DrawingProcess(stuck)
    drawer.send_timeline(tmp_path / "timeline.png", BARS, title="t")
    with pytest.raises(DrawingProcessError, match="took more than 0.5 s"):
        drawer.wait(timeout_s=0.5)
    assert stuck.returncode is not None  # killed, not left behind
    assert not (tmp_path / "timeline.png").exists()


# --- data charts ------------------------------------------------------------------------------

SPECS = {
    "years": ChartSpec("line", "generation", "year", "TWh", "integer", (2015, 2016, 2018),
                       (), (("coal", (650.0, 600.0, float("nan"))), ("wind", (300.0, 299.0, 371.0)))),
    "dates": ChartSpec("line", "prices", "day", "EUR", "datetime", ("2024-01-01T00:00:00", "2024-01-03T12:00:00"),
                       (), (("gas", (31.5, 29.0)),)),
    "bars": ChartSpec("bar", "capacity", "country", "GW", "category", ("DE", "FR", "ES"), ("DE", "FR", "ES"),
                      (("solar", (80.0, 20.0, 30.0)), ("wind", (60.0, 22.0, 29.0)))),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_chart_drawn_by_the_child_is_the_same_png_as_one_drawn_here(tmp_path, name):
    spec = ChartSpec.from_json(json.loads(json.dumps(SPECS[name].to_json())))  # as it travels
    assert spec == SPECS[name] or name == "years"  # NaN is not equal to itself
    drawer = start_drawing_process()
    try:
        drawer.draw_chart(tmp_path / "child.png", spec)
    finally:
        drawer.close()
    draw_chart_png(tmp_path / "here.png", SPECS[name])
    assert (tmp_path / "child.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "child.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def test_one_child_draws_charts_then_the_timeline_in_order(tmp_path):
    drawer = start_drawing_process()
    try:
        for name, spec in SPECS.items():
            drawer.draw_chart(tmp_path / f"{name}.png", spec)
        drawer.send_timeline(tmp_path / "timeline.png", BARS, title="run 1")
        with pytest.raises(DrawingProcessError, match="busy with the timeline"):
            drawer.draw_chart(tmp_path / "late.png", SPECS["bars"])  # one request at a time: drawn here instead
        drawer.wait()
        assert drawer.ready  # it has drawn, so it is warm
    finally:
        drawer.close()
    assert drawer._process.returncode is not None  # answered everything, then stopped at once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.png", "dates.png", "timeline.png", "years.png"]


def test_a_chart_the_child_cannot_draw_says_why_and_the_child_draws_the_next(tmp_path):
    drawer = start_drawing_process()
    try:
        with pytest.raises(DrawingProcessError, match="chart must be line or bar, not 'pie'"):
            drawer.draw_chart(tmp_path / "pie.png", dataclasses.replace(SPECS["bars"], kind="pie"))
        assert drawer.broken is None
        drawer.draw_chart(tmp_path / "bars.png", SPECS["bars"])
    finally:
        drawer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["bars.png"]  # nothing half-written for the pie


def test_a_child_that_dies_is_broken_and_not_asked_again(tmp_path):
    drawer = _dead_child()
    try:
        drawer._process.wait()
        with pytest.raises(DrawingProcessError):
            drawer.draw_chart(tmp_path / "a.png", SPECS["bars"])
        assert drawer.broken is not None
        with pytest.raises(DrawingProcessError, match="not available"):
            drawer.draw_chart(tmp_path / "b.png", SPECS["bars"])
    finally:
        drawer.close()


def chart_workbook(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gen.csv").write_text("year,coal,wind\n2015,650,300\n2016,600,299\n2017,580,371\n", encoding="utf-8")
    return make_workbook(
        folder / "sheet.xlsx",
        objectives=[{"objective_id": "O1", "title": "Power"}],
        tasks=[{"objective_id": "O1", "task_id": f"T{i}", "prompt": "Describe {{ data.gen }}", "data": "gen"}
               for i in (1, 2)],
        data=[{"name": "gen", "path": "gen.csv", "chart": "line", "x": "year", "y": "coal, wind"}],
        data_columns=["name", "path", "chart", "x", "y"],
    )


def test_a_run_in_a_fresh_process_draws_its_charts_and_timeline_in_the_child_and_never_imports_matplotlib(tmp_path):
    sheet = chart_workbook(tmp_path / "wb")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from report_pipeline.app import prepare_run\n"
        f"sheet, config = Path({str(sheet)!r}), {{'provider': 'offline', 'progress': 'off', 'output_dir': {str(tmp_path / 'out')!r}}}\n"
        "pipeline = prepare_run(sheet, config_path=None, overrides=config)\n"
        "result = pipeline.run()\n"
        "print(result.exit_code, 'matplotlib' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["0", "False"]
    run_dir = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert (run_dir / "charts" / "gen.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "charts/gen.png" in (run_dir / "report.md").read_text(encoding="utf-8")


def test_charts_are_drawn_here_when_the_child_dies(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(drawing_module, "start_drawing_process", _dead_child)
    monkeypatch.setattr(drawing_module, "MATPLOTLIB_MODULE", NOT_LOADED)
    sheet = chart_workbook(tmp_path / "wb")
    result = run_pipeline(sheet, tmp_path)
    assert result.exit_code == 0
    assert (result.run_dir / "charts" / "gen.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "drawing chart gen.png in this process" in caplog.text


def test_ctrl_c_at_the_terminal_does_not_stop_the_child(tmp_path):
    """Ctrl-C signals the whole process group; the run decides what stops, the child keeps drawing."""
    import signal

    drawer = start_drawing_process()
    try:
        assert select.select([drawer._process.stdout], [], [], 60)[0]  # warm: its handlers are set
        drawer._process.send_signal(signal.SIGINT)
        drawer.draw_chart(tmp_path / "bars.png", SPECS["bars"])
    finally:
        drawer.close()
    assert (tmp_path / "bars.png").read_bytes().startswith(PNG_SIGNATURE)
    assert drawer._process.returncode is not None


# --- the end of a run: timeline.png and report.xlsx at once ---------------------------------


def _tables():
    from report_pipeline.writers.xlsx_out import workbook_tables
    from tests.test_writers import make_report, make_result

    results = [make_result("O1", "T1", text="=SUM(A1)"), make_result("O1", "T2", status="failed", error="refused", text="")]
    return workbook_tables(make_report([("O1", "Intro", results)]))


def _cells(path: Path) -> dict[str, list[list[object]]]:
    import openpyxl

    workbook = openpyxl.load_workbook(path)
    return {sheet.title: [[c.value for c in row] for row in sheet.iter_rows()] for sheet in workbook.worksheets}


def test_workbook_tables_travel_as_json_unchanged():
    from report_pipeline.writers.xlsx_out import WorkbookTables

    tables = _tables()
    assert WorkbookTables.from_json(json.loads(json.dumps(tables.to_json()))) == tables


def test_the_child_saves_the_workbook_and_draws_the_timeline_it_is_sent_together(tmp_path):
    from report_pipeline.writers.figures.drawing_process import TimelineJob, WorkbookJob
    from report_pipeline.writers.xlsx_out import save_workbook_tables

    tables = _tables()
    drawer = start_drawing_process()
    try:
        drawer.send_reports(timeline=TimelineJob(tmp_path / "timeline.png", BARS, "run 1"),
                            workbook=WorkbookJob(tmp_path / "report.xlsx", tables))
        drawer.wait()
    finally:
        drawer.close()
    assert (tmp_path / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)
    save_workbook_tables(tmp_path / "here.xlsx", tables)
    assert _cells(tmp_path / "report.xlsx") == _cells(tmp_path / "here.xlsx")
    assert _cells(tmp_path / "report.xlsx")["O1 Intro"][1][5] == "'=SUM(A1)"  # neutralised, as written here


def test_a_child_that_cannot_save_the_workbook_says_so_and_still_draws_the_timeline(tmp_path):
    from report_pipeline.writers.figures.drawing_process import TimelineJob, WorkbookJob

    (tmp_path / "a-file").write_text("not a folder")
    drawer = start_drawing_process()
    try:
        drawer.send_reports(timeline=TimelineJob(tmp_path / "timeline.png", BARS, "run 1"),
                            workbook=WorkbookJob(tmp_path / "a-file" / "report.xlsx", _tables()))
        with pytest.raises(DrawingProcessError, match="xlsx: .*a-file") as caught:
            drawer.wait()
        assert caught.value.failed == {"xlsx"}
        assert drawer.broken is None  # one job failed, not the child
    finally:
        drawer.close()
    assert (tmp_path / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_run_saves_the_workbook_itself_when_the_child_could_not(tmp_path, monkeypatch, caplog):
    from report_pipeline.writers.figures.drawing_process import WorkbookJob

    unwritable = tmp_path / "a-file"
    unwritable.write_text("not a folder")
    to_json = WorkbookJob.to_json
    # the child is told a path it cannot write; this process still has the right one
    monkeypatch.setattr(WorkbookJob, "to_json", lambda job: {**to_json(job), "path": str(unwritable / "report.xlsx")})
    monkeypatch.setattr(drawing_module, "MATPLOTLIB_MODULE", NOT_LOADED)
    sheet = chart_workbook(tmp_path / "wb")
    result = run_pipeline(sheet, tmp_path)
    assert result.exit_code == 0
    assert "writing report.xlsx in this process" in caplog.text
    assert "O1 Power" in _cells(result.run_dir / "report.xlsx")
    assert (result.run_dir / "timeline.png").read_bytes().startswith(PNG_SIGNATURE)  # the child drew it


def test_the_child_yields_only_while_warming_up_and_drawing_charts():
    """Its own priority is the run's: the end-of-run files are the run's critical path."""
    import os

    import psutil

    drawer = start_drawing_process()
    try:
        assert select.select([drawer._process.stdout], [], [], 60)[0]  # warm
        assert drawer.ready
        assert psutil.Process(drawer._process.pid).nice() == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        drawer.close()


def test_the_child_imports_matplotlib_early_only_for_a_workbook_that_draws_charts(tmp_path):
    """The hint is read from the workbook, before the run has parsed it: a chart column filled in."""
    from report_pipeline.writers.figures.drawing_process import _names_a_chart

    with_charts = chart_workbook(tmp_path / "charts")
    without = simple_workbook(tmp_path / "plain", n_objectives=1, n_tasks=1)
    assert _names_a_chart(with_charts) is True
    assert _names_a_chart(without) is False
    assert _names_a_chart(tmp_path / "missing.xlsx") is False  # a hint: never an error

    script = (
        "import sys\n"
        "from report_pipeline.writers.figures import drawing_process as child\n"
        "child._import_the_rest(False, sys.argv[1])\n"
        "print('matplotlib' in sys.modules, 'openpyxl' in sys.modules)\n"
    )
    for sheet, expected in ((with_charts, ["True", "True"]), (without, ["False", "True"])):
        done = subprocess.run([sys.executable, "-c", script, str(sheet)], capture_output=True, text=True, timeout=120)
        assert done.stdout.split() == expected, done.stderr
