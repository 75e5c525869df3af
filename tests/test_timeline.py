"""timeline_data: the bars behind the Gantt chart; write_timeline: a real PNG of them."""

from __future__ import annotations

import matplotlib.image
import pytest

from report_pipeline.models import CallRecord, TaskResult
from report_pipeline.timeline import (
    ROW_LABEL_GID,
    SKIPPED_ROW,
    Bar,
    natural_key,
    timeline_data,
    timeline_figure,
    warm_up,
    write_timeline,
)

T0 = 1_800_000_000.0  # unix time of the run's first start
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def call(step: str, start: float, end: float, thread: str) -> CallRecord:
    return CallRecord(step, "m", started_at=T0 + start, finished_at=T0 + end, thread=thread)


def done(key: str, thread: str, *spans: tuple[str, float, float]) -> TaskResult:
    objective, task = key.split(".")
    calls = tuple(call(step, a, b, thread) for step, a, b in spans)
    return TaskResult(objective, task, "", "done", steps=tuple(s for s, _, _ in spans), calls=calls,
                      started_at=calls[0].started_at, finished_at=calls[-1].finished_at, thread=thread)


@pytest.fixture
def chain_on_two_threads() -> list[TaskResult]:
    return [
        done("A.T1", "task_0", ("generate", 0.0, 2.0), ("refine", 2.0, 3.5)),
        done("A.T2", "task_1", ("generate", 0.5, 1.5), ("refine", 1.5, 4.0)),
        done("B.T1", "task_0", ("generate", 3.5, 5.0), ("refine", 5.0, 6.0)),
    ]


def test_one_bar_per_call_on_its_thread_in_seconds_since_the_first_start(chain_on_two_threads):
    bars = timeline_data(chain_on_two_threads)
    assert [(b.task, b.step, b.thread, b.start, b.end) for b in bars] == [
        ("A.T1", "generate", "task_0", 0.0, 2.0),
        ("A.T1", "refine", "task_0", 2.0, 3.5),
        ("A.T2", "generate", "task_1", 0.5, 1.5),
        ("A.T2", "refine", "task_1", 1.5, 4.0),
        ("B.T1", "generate", "task_0", 3.5, 5.0),
        ("B.T1", "refine", "task_0", 5.0, 6.0),
    ]
    assert {b.objective_id for b in bars} == {"A", "B"}
    assert not any(b.failed or b.skipped for b in bars)


def test_the_step_a_task_failed_on_runs_from_its_last_call_to_the_failure():
    failed = TaskResult("A", "T1", "", "failed", error="refused", steps=("generate", "refine", "check"),
                        calls=(call("generate", 0.0, 2.0, "task_3"),), started_at=T0, finished_at=T0 + 9.0,
                        thread="task_3")
    bars = timeline_data([failed])
    assert bars == [
        Bar("A.T1", "A", "generate", "task_3", 0.0, 2.0),
        Bar("A.T1", "A", "refine", "task_3", 2.0, 9.0, failed=True),
    ]


def test_a_task_that_failed_before_any_call_is_one_failed_bar_from_its_start():
    failed = TaskResult("A", "T2", "", "failed", error="prompt: bad template", steps=("generate",),
                        started_at=T0 + 1.0, finished_at=T0 + 1.0, thread="task_0")
    other = done("A.T1", "task_1", ("generate", 0.0, 1.0))
    bars = timeline_data([failed, other])
    assert bars[0] == Bar("A.T2", "A", "generate", "task_0", 1.0, 1.0, failed=True)


def test_skipped_tasks_are_zero_width_markers_on_their_own_row_at_the_time_they_were_settled():
    ran = done("A.T1", "task_0", ("generate", 0.0, 4.0))
    skipped = TaskResult("A", "T2", "", "skipped", error="dependency A.T0 failed",
                         started_at=T0 + 4.0, finished_at=T0 + 4.0)
    bars = timeline_data([ran, skipped])
    assert bars[1] == Bar("A.T2", "A", "", SKIPPED_ROW, 4.0, 4.0, skipped=True)


def test_no_results_give_no_bars():
    assert timeline_data([]) == []


def test_threads_sort_naturally():
    names = ["task_10", "task_2", "MainThread", "task_1", "task_0"]
    assert sorted(names, key=natural_key) == ["MainThread", "task_0", "task_1", "task_2", "task_10"]


def test_rows_are_threads_in_natural_order_with_the_skipped_row_last():
    results = [done(f"A.T{i}", f"task_{i}", ("generate", i, i + 1.0)) for i in (10, 2, 1)]
    results.append(TaskResult("A", "T99", "", "skipped", started_at=T0 + 3, finished_at=T0 + 3))
    figure = timeline_figure(timeline_data(results), title="run")
    assert row_labels(figure) == [(0, "task_1"), (1, "task_2"), (2, "task_10"), (3, SKIPPED_ROW)]
    ax = figure.axes[0]
    assert ax.get_ylim() == (3.5, -0.5)  # the first row at the top
    assert list(ax.get_yticks()) == []  # the names are plain texts, not (costly) ticks


def row_labels(figure) -> list[tuple[float, str]]:
    """(row, name) of the texts naming the rows, top to bottom."""
    texts = [t for t in figure.axes[0].texts if t.get_gid() == ROW_LABEL_GID]
    return sorted((t.get_position()[1], t.get_text()) for t in texts)


def test_past_the_label_limit_every_kth_row_is_named_and_the_skipped_row_always():
    results = [done(f"A.T{i}", f"task_{i}", ("generate", i, i + 1.0)) for i in range(130)]
    results.append(TaskResult("A", "T999", "", "skipped", started_at=T0 + 3, finished_at=T0 + 3))
    figure = timeline_figure(timeline_data(results), title="run")
    # 131 rows, at most 60 names: every third row, from the first, and the skipped row (130)
    assert row_labels(figure) == [(i, f"task_{i}") for i in range(0, 130, 3)] + [(130, SKIPPED_ROW)]


def test_row_names_and_y_label_fit_left_of_the_frame_without_overlapping(chain_on_two_threads):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    long_name = "objective_worker_with_a_long_name_7"
    results = [*chain_on_two_threads, done("B.T2", long_name, ("generate", 1.0, 2.0))]
    figure = timeline_figure(timeline_data(results), title="run")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # places the y label, as saving does
    renderer = canvas.get_renderer()
    ax = figure.axes[0]
    frame = ax.get_window_extent(renderer)
    names = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == ROW_LABEL_GID]
    ylabel = ax.yaxis.label.get_window_extent(renderer)
    assert all(0 <= n.x0 and n.x1 < frame.x0 for n in names)  # inside the page, left of the frame
    assert 0 <= ylabel.x0 and ylabel.x1 < min(n.x0 for n in names)  # the y label beyond the longest name


def test_all_bars_are_drawn_as_one_collection_not_one_artist_per_bar():
    results = [
        done(f"O{i % 30}.T{i}", f"task_{i % 8}", ("generate", i * 0.1, i * 0.1 + 0.5), ("check", i * 0.1 + 0.5, i * 0.1 + 0.6))
        for i in range(1000)
    ]
    bars = timeline_data(results)
    figure = timeline_figure(bars, title="2,000 bars")
    assert len(bars) == 2000
    [collection] = figure.axes[0].collections  # no failures, no skips: no markers
    assert len(collection.get_paths()) == 2000
    assert figure.axes[0].get_legend() is not None  # steps are still explained when objectives are not
    width, height = figure.get_size_inches()
    assert width <= 12 and height <= 18


def test_each_bar_spans_its_call_on_its_threads_row(chain_on_two_threads):
    figure = timeline_figure(timeline_data(chain_on_two_threads), title="run")
    [collection] = figure.axes[0].collections
    corners = [(p.vertices[:4, 0].min(), p.vertices[:4, 0].max(), p.vertices[:4, 1].mean())
               for p in collection.get_paths()]
    assert corners[0] == pytest.approx((0.0, 2.0, 0.0))  # A.T1 generate on task_0, the first row
    assert corners[3] == pytest.approx((1.5, 4.0, 1.0))  # A.T2 refine on task_1


def test_labels_title_subtitle_and_legend_fit_inside_the_figure(chain_on_two_threads):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    results = [*chain_on_two_threads, done("B.T2", "objective_worker_with_a_long_name_7", ("generate", 1.0, 2.0))]
    figure = timeline_figure(timeline_data(results), title="Run 1",
                             objective_titles={"A": "A chapter title long enough to be shortened", "B": "Grid"})
    renderer = FigureCanvasAgg(figure).get_renderer()
    ax = figure.axes[0]
    reach, page = ax.get_tightbbox(renderer), figure.bbox
    assert page.x0 <= reach.x0 and reach.x1 <= page.x1 and page.y0 <= reach.y0 and reach.y1 <= page.y1
    [subtitle_text] = figure.texts  # the suptitle: tasks, calls, threads, time
    subtitle = subtitle_text.get_window_extent(renderer)
    assert subtitle.y0 >= ax.title.get_window_extent(renderer).y1  # above the title, not over it
    assert subtitle.y1 <= page.y1


def test_legend_names_objectives_when_there_are_few(chain_on_two_threads):
    figure = timeline_figure(timeline_data(chain_on_two_threads), title="run",
                             objective_titles={"A": "Market", "B": "Grid"})
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert texts[:2] == ["A Market", "B Grid"]
    assert "refine" in texts


def test_write_timeline_writes_a_png_and_returns_one_bar_per_step(tmp_path, chain_on_two_threads):
    failed = TaskResult("B", "T2", "", "failed", error="refused", steps=("generate", "refine"),
                        calls=(call("generate", 1.0, 2.0, "task_1"),), started_at=T0 + 1.0, finished_at=T0 + 2.5,
                        thread="task_1")
    skipped = TaskResult("B", "T3", "", "skipped", started_at=T0 + 2.5, finished_at=T0 + 2.5)
    path = tmp_path / "run" / "timeline.png"
    bars = write_timeline(path, [*chain_on_two_threads, failed, skipped], title="Run 1")

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] == 1200  # 12 in at 100 dpi
    assert [(b.task, b.step) for b in bars if not b.skipped] == [
        ("A.T1", "generate"), ("A.T1", "refine"), ("A.T2", "generate"), ("A.T2", "refine"),
        ("B.T1", "generate"), ("B.T1", "refine"), ("B.T2", "generate"), ("B.T2", "refine"),
    ]
    assert [b.failed for b in bars if b.task == "B.T2"] == [False, True]
    assert [b.task for b in bars if b.skipped] == ["B.T3"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["timeline.png"]  # no temporary file left


def test_write_timeline_of_a_run_where_nothing_ran_still_writes_a_png(tmp_path):
    path = tmp_path / "timeline.png"
    assert write_timeline(path, [], title="empty") == []
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_warm_up_draws_in_memory_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    warm_up()
    assert list(tmp_path.iterdir()) == []
