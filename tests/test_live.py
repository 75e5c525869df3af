"""LiveProgress on a recorded console, fed the hooks of a fake run; make_observer's choice."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from report_pipeline.models import CallRecord, Objective, PromptSheet, Task, TaskResult
from report_pipeline.run.outcome import RunResult
from report_pipeline.run.plan import build_plan
from report_pipeline.watch.live import LiveProgress
from report_pipeline.watch.observer import make_observer
from report_pipeline.watch.progress import PlainProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_plan(objectives: dict[str, tuple[str, int]]):
    """objectives: id -> (title, number of tasks T1..Tn), in sheet order."""
    objs = tuple(Objective(objective_id=oid, title=title, index=i) for i, (oid, (title, _)) in enumerate(objectives.items()))
    tasks = tuple(
        Task(objective_id=oid, task_id=f"T{j}", prompt="p", title=f"Part {j}", index=n)
        for n, (oid, j) in enumerate((oid, j) for oid, (_, count) in objectives.items() for j in range(1, count + 1))
    )
    return build_plan(PromptSheet(path=Path("sheet.xlsx"), objectives=objs, tasks=tasks))


def result(task: Task, status: str = "done", tokens: int = 150) -> TaskResult:
    calls = () if status == "skipped" else (
        CallRecord("generate", "m", prompt_tokens=tokens - 50, completion_tokens=50, cost_usd=0.001),
    )
    return TaskResult(task.objective_id, task.task_id, task.title, status, calls=calls,
                      error="" if status == "done" else "boom")


def run_result(tmp_path: Path, results: list[TaskResult], total: int) -> RunResult:
    counts = {s: sum(r.status == s for r in results) for s in ("done", "failed", "skipped")}
    counts["total"] = total
    run_dir = tmp_path / "run-1"
    return RunResult(
        run_id="run-1", run_dir=run_dir, status="failed" if counts["failed"] else "done", exit_code=1,
        counts=counts, prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results), cost_usd=sum(r.cost_usd for r in results),
        duration_s=95.0, results=tuple(results),
        outputs={"report_md": str(run_dir / "report.md"), "run_json": str(run_dir / "run.json")},
    )


def recording_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100, height=40)


def text_of(console: Console) -> str:
    return ANSI.sub("", console.file.getvalue())


def rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_finished_objectives_print_a_line_each_and_the_run_ends_with_a_summary_table(tmp_path):
    plan = make_plan({"MKT": ("Market", 2), "GRID": ("Grid", 2)})
    clock = FakeClock()
    console = recording_console()
    live = LiveProgress(console, clock=clock)
    live.run_started(plan, tmp_path / "run-1")
    results = []
    for key, status in zip(plan.tasks, ("done", "done", "done", "failed")):
        task = plan.tasks[key]
        live.task_started(task)
        clock.now += 20.5
        results.append(result(task, status))
        live.task_finished(results[-1])
        mine = tuple(r for r in results if r.objective_id == task.objective_id)
        if len(mine) == 2:
            live.objective_finished(task.objective_id, mine)
    live.run_finished(run_result(tmp_path, results, plan.task_count))

    out = text_of(console)
    assert "✓ 01 Market: 2/2 done, 41 s; 2 calls, 300 tokens, $0.0020" in out
    assert "✗ 02 Grid: 1/2 done, 1 failed, 41 s; 2 calls, 300 tokens, $0.0020" in out
    summary = out[out.index("run run-1: failed"):]
    assert re.search(r"01 Market\s+│\s+2 │\s+0 │\s+0 │\s+41 s │\s+300 │ \$0\.0020", summary)
    assert re.search(r"02 Grid\s+│\s+1 │\s+1 │\s+0 │", summary)
    assert re.search(r"total \(4 tasks\)\s+│\s+3 │\s+1 │\s+0 │", summary)
    assert str(tmp_path / "run-1" / "report.md") in summary
    assert str(tmp_path / "run-1" / "run.json") in summary


def test_live_area_shows_each_running_objective_with_its_task_count(tmp_path):
    plan = make_plan({"A": ("Alpha", 3), "B": ("Beta", 2), "C": ("Gamma", 1)})
    clock = FakeClock()
    live = LiveProgress(recording_console(), clock=clock)
    live.run_started(plan, tmp_path / "run-1")
    a1, a2, a3, b1 = plan.tasks["A.T1"], plan.tasks["A.T2"], plan.tasks["A.T3"], plan.tasks["B.T1"]
    for task in (a1, a2, a3, b1):
        live.task_started(task)
    clock.now += 12
    live.task_finished(result(a1))
    live.task_finished(result(b1, "failed"))

    picture = rendered(live.render())
    live.close()
    assert re.search(r"2/6 tasks", picture)
    assert "1 done · 2 running · 1 failed · 0 skipped" in picture
    assert re.search(r"01 Alpha .* 1/3\s+2 running\s+12 s\s+\$0\.0010", picture)  # each chapter's cost so far
    assert re.search(r"02 Beta .* 1/2\s+0 running, 1 failed\s+12 s\s+\$0\.0010", picture)
    assert "Gamma" not in picture  # not started: not shown
    assert "300 tokens · $0.0020" in picture


def test_finished_objectives_leave_the_live_area(tmp_path):
    plan = make_plan({"A": ("Alpha", 1), "B": ("Beta", 1)})
    live = LiveProgress(recording_console(), clock=FakeClock())
    live.run_started(plan, tmp_path / "run-1")
    for task in plan.tasks.values():
        live.task_started(task)
    done = result(plan.tasks["A.T1"])
    live.task_finished(done)
    live.objective_finished("A", (done,))
    picture = rendered(live.render())
    live.close()
    assert "Alpha" not in picture
    assert "02 Beta" in picture


def test_at_200_running_objectives_only_a_dozen_rows_are_drawn(tmp_path):
    plan = make_plan({f"O{i}": (f"Objective {i}", 2) for i in range(1, 201)})
    live = LiveProgress(recording_console(), clock=FakeClock())
    live.run_started(plan, tmp_path / "run-1")
    for key, task in plan.tasks.items():
        if key.endswith(".T1"):
            live.task_started(task)
    picture = rendered(live.render())
    live.close()
    rows = [line for line in picture.splitlines() if re.match(r"\s+\d{3} Objective \d+", line)]
    assert len(rows) == 12
    assert rows[0].split()[0:3] == ["001", "Objective", "1"]  # the earliest started come first
    assert "+188 more running" in picture
    assert len(picture.splitlines()) <= 16


def test_rows_shrink_to_fit_a_short_terminal(tmp_path):
    plan = make_plan({f"O{i}": (f"Objective {i}", 1) for i in range(1, 31)})
    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=10)
    live = LiveProgress(console, clock=FakeClock())
    live.run_started(plan, tmp_path / "run-1")
    for task in plan.tasks.values():
        live.task_started(task)
    picture = rendered(live.render())
    live.close()
    assert len(picture.splitlines()) <= 10
    assert "+26 more running" in picture


def test_titles_from_the_sheet_are_shown_literally_not_as_markup(tmp_path):
    plan = make_plan({"A": ("[bold]Grid[/bold] & [red]", 1)})
    console = recording_console()
    live = LiveProgress(console, clock=FakeClock())
    live.run_started(plan, tmp_path / "run-1")
    task = plan.tasks["A.T1"]
    live.task_started(task)
    assert "[bold]Grid[/bold] & [red]" in rendered(live.render())
    done = result(task)
    live.task_finished(done)
    live.objective_finished("A", (done,))
    live.run_finished(run_result(tmp_path, [done], 1))
    assert "✓ 01 [bold]Grid[/bold] & [red]: 1/1 done" in text_of(console)


def test_summary_folds_objectives_that_all_finished_when_there_are_many(tmp_path):
    plan = make_plan({f"O{i}": (f"Objective {i}", 1) for i in range(1, 41)})
    console = recording_console()
    live = LiveProgress(console, clock=FakeClock(), max_summary_rows=30)
    live.run_started(plan, tmp_path / "run-1")
    results = [result(t, "failed" if t.objective_id in ("O7", "O33") else "done") for t in plan.tasks.values()]
    for r in results:
        live.task_finished(r)
    live.run_finished(run_result(tmp_path, results, plan.task_count))
    summary = text_of(console)
    assert "07 Objective 7" in summary and "33 Objective 33" in summary
    assert "01 Objective 1 " not in summary
    assert re.search(r"… 38 more objectives\s+│\s+38 │\s+0 │\s+0 │", summary)


def test_hooks_from_many_threads_add_up(tmp_path):
    plan = make_plan({f"O{i}": (f"Objective {i}", 50) for i in range(1, 9)})
    live = LiveProgress(recording_console(), clock=FakeClock(), refresh_per_second=50)
    live.run_started(plan, tmp_path / "run-1")
    start = threading.Barrier(8)

    def work(objective_id: str) -> None:
        start.wait()
        for key in plan.tasks_by_objective[objective_id]:
            live.task_started(plan.tasks[key])
            live.task_finished(result(plan.tasks[key]))
            live.render()

    threads = [threading.Thread(target=work, args=(o.objective_id,)) for o in plan.objectives]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    picture = rendered(live.render())
    live.close()
    assert "400/400 tasks" in picture
    assert "400 done · 0 running" in picture
    assert "60,000 tokens" in picture


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "interactive", "quiet", "expected"),
    [
        (io.StringIO(), None, False, PlainProgress),  # a pipe or a file: plain lines
        (TtyStream(), None, False, LiveProgress),  # a terminal: live
        (TtyStream(), False, False, PlainProgress),  # progress: off
        (TtyStream(), None, True, PlainProgress),  # --quiet: only the final line
        (io.StringIO(), True, False, LiveProgress),  # progress: on
    ],
)
def test_make_observer_picks_live_only_for_a_terminal(stream, interactive, quiet, expected):
    observer = make_observer(interactive=interactive, quiet=quiet, interval_s=10.0, stream=stream)
    assert type(observer) is expected


def test_plain_progress_for_a_pipe_writes_no_escape_sequences(tmp_path):
    stream = io.StringIO()
    observer = make_observer(interactive=None, quiet=False, interval_s=0.0, stream=stream)
    plan = make_plan({"A": ("Alpha", 2)})
    observer.run_started(plan, tmp_path / "run-1")
    results = []
    for task in plan.tasks.values():
        observer.task_started(task)
        results.append(result(task))
        observer.task_finished(results[-1])
    observer.objective_finished("A", tuple(results))
    observer.run_finished(run_result(tmp_path, results, plan.task_count))
    out = stream.getvalue()
    assert 'objective 1/1 "Alpha" done (1 of 1 finished): 2/2 tasks, 0 s; 2 calls, 300 tokens, $0.0020' in out
    assert "\x1b" not in out


def test_wave_progress_prints_a_plain_line_on_each_status_change_and_then_every_interval(tmp_path):
    from report_pipeline.run.outcome import WaveProgress

    stream, clock = io.StringIO(), FakeClock()
    observer = PlainProgress(stream, interval_s=60.0, clock=clock)
    observer.run_started(make_plan({"A": ("Alpha", 2)}), tmp_path / "run-1")

    def wave(status: str, completed: int, waited: float, eta: float | None):
        return WaveProgress(wave=2, batches=1, statuses={status: 1}, total=40, completed=completed, failed=1,
                            waited_s=waited, eta_s=eta)

    observer.wave_progress(wave("validating", 0, 1.0, None))
    observer.wave_progress(wave("validating", 0, 2.0, None))  # same status, within the interval: quiet
    observer.wave_progress(wave("in_progress", 9, 30.0, 100.0))
    clock.now += 61
    observer.wave_progress(wave("in_progress", 19, 91.0, 60.0))  # the interval passed
    lines = [line[20:] for line in stream.getvalue().splitlines() if line[20:].startswith("wave")]  # past the time
    assert lines == [
        "wave 2: 1 batch(es) 1 validating; requests 0/40 completed, 1 failed; waiting 1 s",
        "wave 2: 1 batch(es) 1 in_progress; requests 9/40 completed, 1 failed; waiting 30 s, wave ETA 2 min",
        "wave 2: 1 batch(es) 1 in_progress; requests 19/40 completed, 1 failed; waiting 2 min, wave ETA 60 s",
    ]


def test_live_area_shows_the_wave_being_waited_for(tmp_path):
    from report_pipeline.run.outcome import WaveProgress

    live = LiveProgress(recording_console(), clock=FakeClock())
    live.run_started(make_plan({"A": ("Alpha", 1)}), tmp_path / "run-1")
    try:
        live.wave_progress(WaveProgress(1, 2, {"in_progress": 2}, 10, 4, 0, 12.0, 18.0))
        assert "wave 1: 2 batch(es) 2 in_progress; requests 4/10 completed" in rendered(live.render())
    finally:
        live.close()


def test_the_live_area_and_the_plain_lines_show_the_calls_in_flight_limit(tmp_path):
    plan = make_plan({"A": ("Alpha", 2)})
    limit = ["4"]
    live = LiveProgress(recording_console(), clock=FakeClock())
    live.watch_concurrency(lambda: limit[0])
    live.run_started(plan, tmp_path / "run-1")
    assert "calls in flight ≤ 4" in rendered(live.render())
    limit[0] = "1"  # read as it is drawn: the adaptive limit moves during the run
    assert "calls in flight ≤ 1" in rendered(live.render())
    stream = io.StringIO()
    plain = PlainProgress(stream, interval_s=0.0, clock=FakeClock())
    plain.watch_concurrency(lambda: "2")
    plain.run_started(plan, tmp_path / "run-1")
    assert plain.overall_line().endswith("; calls in flight at most 2")


def test_plain_objective_lines_number_chapters_by_their_place_in_the_sheet_not_by_when_they_finished(tmp_path):
    stream = io.StringIO()
    plain = PlainProgress(stream, interval_s=60.0, clock=FakeClock(), wall_clock=lambda: 0.0)
    plan = make_plan({"exec": ("Summary", 1), "gen": ("Generation", 1), "grid": ("Grids", 1)})
    plain.run_started(plan, tmp_path / "run-1")
    for key in ("grid", "gen", "exec"):  # the summary, first in the sheet, finishes last
        task = plan.tasks[f"{key}.T1"]
        plain.objective_finished(key, (result(task),))
    lines = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines() if " objective " in line]
    assert [line.split(" done")[0] for line in lines] == [
        'objective 3/3 "Grids"', 'objective 2/3 "Generation"', 'objective 1/3 "Summary"']
    assert "(3 of 3 finished)" in lines[-1]
