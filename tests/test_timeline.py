"""timeline_data: the bars behind the Gantt chart; timeline_layout: where they go; write_timeline:
a real PNG of them, read back with Pillow."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from report_pipeline.models import CallRecord, TaskResult
from report_pipeline.writers.figures import timeline
from report_pipeline.writers.figures.timeline import (
    SKIPPED_ROW,
    Bar,
    natural_key,
    timeline_data,
    timeline_image,
    timeline_layout,
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
    layout = timeline_layout(timeline_data(results), title="run")
    assert layout.rows == ("task_1", "task_2", "task_10", SKIPPED_ROW)
    assert layout.labelled_rows == ((0, "task_1"), (1, "task_2"), (2, "task_10"), (3, SKIPPED_ROW))
    assert layout.row_y(0) < layout.row_y(1) < layout.row_y(3)  # the first row at the top


def test_past_the_label_limit_every_kth_row_is_named_and_the_skipped_row_always():
    results = [done(f"A.T{i}", f"task_{i}", ("generate", i, i + 1.0)) for i in range(130)]
    results.append(TaskResult("A", "T999", "", "skipped", started_at=T0 + 3, finished_at=T0 + 3))
    layout = timeline_layout(timeline_data(results), title="run")
    # 131 rows, at most 60 names: every third row, from the first, and the skipped row (130)
    assert list(layout.labelled_rows) == [(i, f"task_{i}") for i in range(0, 130, 3)] + [(130, SKIPPED_ROW)]


def test_row_names_and_y_label_fit_left_of_the_frame(chain_on_two_threads):
    long_name = "objective_worker_with_a_long_name_7"
    results = [*chain_on_two_threads, done("B.T2", long_name, ("generate", 1.0, 2.0))]
    layout = timeline_layout(timeline_data(results), title="run")
    image = timeline_image(timeline_data(results), title="run")
    left = layout.frame[0]
    row = layout.rows.index(long_name)
    y = round(layout.row_y(row))
    band = [image.getpixel((x, y + dy)) for x in range(left - 2) for dy in (-2, 0, 2)]
    assert any(sum(pixel) < 300 for pixel in band)  # the name is drawn left of the frame
    # the y label's column (the leftmost text) holds no part of any row name: they do not overlap
    label_right = timeline._PAD + timeline._line_height(timeline._font(timeline._LABEL_PT))
    shown = dict(layout.labelled_rows)[row]  # cut to 32 characters
    assert shown == long_name[:31] + "…"
    names_left = left - timeline._TICK - timeline._PAD - timeline._text_width(shown, timeline._font(timeline._SMALL_PT))
    assert label_right <= names_left


def test_two_thousand_bars_keep_the_picture_capped_and_the_steps_explained():
    results = [
        done(f"O{i % 30}.T{i}", f"task_{i % 8}", ("generate", i * 0.1, i * 0.1 + 0.5), ("check", i * 0.1 + 0.5, i * 0.1 + 0.6))
        for i in range(1000)
    ]
    bars = timeline_data(results)
    layout = timeline_layout(bars, title="2,000 bars")
    assert len(bars) == 2000
    assert (layout.width, layout.height) == (1200, 384)  # 1.6 in + 0.28 in a thread, at 100 px an inch
    # 30 objectives are too many to name: the legend still explains the steps
    assert [e.label for e in layout.legend] == ["generate", "check"]
    tall = timeline_layout([Bar("A.T1", "A", "generate", f"task_{i}", 0.0, 1.0) for i in range(500)], title="t")
    assert tall.height == 1800


def test_each_bar_spans_its_call_on_its_threads_row(chain_on_two_threads):
    bars = timeline_data(chain_on_two_threads)
    layout = timeline_layout(bars, title="run")
    image = timeline_image(bars, title="run")
    a, b = layout.colours["A"], layout.colours["B"]
    refine_a = timeline._shade(a, "refine")

    def at(seconds: float, row: int) -> tuple[int, int, int]:
        return image.getpixel((round(layout.x(seconds)), round(layout.row_y(row))))

    assert at(1.0, 0) == a  # A.T1 generate on task_0, the first row, 0 to 2 s
    assert at(3.0, 1) == refine_a  # A.T2 refine on task_1, 1.5 to 4 s
    assert at(4.5, 1) != refine_a and at(4.5, 0) == b  # task_1 is idle after 4 s; B.T1 runs on task_0
    assert a != b and refine_a != a


def test_a_failed_step_is_edged_in_red_with_an_x_at_its_end():
    bars = [Bar("A.T1", "A", "generate", "task_0", 0.0, 1.0), Bar("A.T1", "A", "refine", "task_0", 1.0, 3.0, failed=True)]
    layout = timeline_layout(bars, title="run")
    image = timeline_image(bars, title="run")
    y = round(layout.row_y(0))
    top = round(layout.row_y(0) - layout.row_height * 0.4)
    assert image.getpixel((round(layout.x(2.0)), top)) == timeline._FAILED_EDGE  # the edge, mid-bar
    assert image.getpixel((round(layout.x(2.0)), y)) == timeline._shade(layout.colours["A"], "refine")
    assert image.getpixel((round(layout.x(3.0)), y)) == timeline._FAILED_EDGE  # the centre of the ✕
    assert [e.kind for e in layout.legend][-1] == "failed"


def test_labels_title_subtitle_and_legend_fit_inside_the_picture(chain_on_two_threads):
    results = [*chain_on_two_threads, done("B.T2", "objective_worker_with_a_long_name_7", ("generate", 1.0, 2.0))]
    layout = timeline_layout(timeline_data(results), title="Run 1",
                             objective_titles={"A": "A chapter title long enough to be shortened", "B": "Grid"})
    left, top, right, bottom = layout.frame
    small = timeline._font(timeline._SMALL_PT)
    legend_right = right + 2 * timeline._PAD + timeline._LEGEND_KEY + 2 + max(
        timeline._text_width(e.label, small) for e in layout.legend)
    assert 0 < left < right and legend_right <= layout.width
    assert 0 < top < bottom < layout.height
    assert layout.legend[0].label == "A A chapter title long enough t…"  # cut at 32 characters
    subtitle_bottom = timeline._PAD + timeline._line_height(small)
    title_top = top - timeline._PAD - timeline._line_height(timeline._font(timeline._TITLE_PT))
    assert subtitle_bottom <= title_top  # the subtitle above the title, not over it


def test_legend_names_objectives_when_there_are_few(chain_on_two_threads):
    layout = timeline_layout(timeline_data(chain_on_two_threads), title="run",
                             objective_titles={"A": "Market", "B": "Grid"})
    labels = [e.label for e in layout.legend]
    assert labels[:2] == ["A Market", "B Grid"]
    assert "refine" in labels


def test_x_ticks_are_round_values_across_the_run():
    layout = timeline_layout([Bar("A.T1", "A", "generate", "task_0", 0.0, 1.3)], title="run")
    assert [text for _, text in layout.x_ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "1.2"]
    long_run = timeline_layout([Bar("A.T1", "A", "generate", "task_0", 0.0, 3600.0)], title="run")
    values = [value for value, _ in long_run.x_ticks]
    assert values[0] == 0 and values[-1] <= long_run.x_max and 3 <= len(values) <= 10
    assert all(text.isdigit() for _, text in long_run.x_ticks)  # 500, 1000...: no decimals


def test_texts_from_the_sheet_are_drawn_on_one_line_and_never_run():
    titles = {"A": "Line one\nline two\t{{ 7 * 7 }} ☃ 東京"}
    layout = timeline_layout([Bar("A.T1", "A", "generate", "task\n0", 0.0, 1.0)], title="Run\r\nname",
                             objective_titles=titles)
    assert layout.title == "Run name"
    assert layout.legend[0].label == "A Line one line two {{ 7 * 7 }}…"
    assert layout.labelled_rows == ((0, "task 0"),)
    timeline_image([Bar("A.T1", "A", "generate", "task\n0", 0.0, 1.0)], title="Run", objective_titles=titles)


@pytest.mark.parametrize("separator", ["\r", "\x1c", "\x1e", "\x85", "\u2028", "\u2029"])
def test_line_and_paragraph_separators_from_the_sheet_become_spaces_and_draw(separator):
    """Pillow's text layout fails on a paragraph separator inside a text: none reaches it."""
    bars = [Bar("A.T1", "A", "generate", f"task{separator}0", 0.0, 1.0)]
    titles = {"A": f"Market{separator}outlook"}
    layout = timeline_layout(bars, title=f"Run{separator}1", objective_titles=titles)
    assert (layout.title, layout.legend[0].label, layout.labelled_rows) == ("Run 1", "A Market outlook", ((0, "task 0"),))
    timeline_image(bars, title=f"Run{separator}1", objective_titles=titles)


def test_a_pillow_without_freetype_draws_any_text_with_its_bitmap_font(tmp_path, monkeypatch):
    """Its bitmap font takes Latin-1 only: other characters are drawn as "?", not an error."""
    from PIL import ImageFont

    if not hasattr(ImageFont, "load_default_imagefont"):  # how this test stands in for a Pillow without FreeType
        pytest.skip("this Pillow has no load_default_imagefont to stand in for a build without FreeType")
    monkeypatch.setattr(timeline, "_dejavu_path", lambda: None)
    monkeypatch.setattr(timeline, "_fonts", {})
    monkeypatch.setattr(ImageFont, "load_default", lambda size=None: ImageFont.load_default_imagefont())
    path = tmp_path / "timeline.png"
    failed = TaskResult("A", "T2", "", "failed", error="refused", steps=("generate",), started_at=T0,
                        finished_at=T0 + 1.0, thread="task_1")
    write_timeline(path, [done("A.T1", "task_0", ("generate", 0.0, 1.0)), failed], title="東京 ☃ " + "x" * 300,
                   objective_titles={"A": "Überblick — 東京"})
    with Image.open(path) as image:
        assert image.size[0] == 1200


def test_without_matplotlib_s_font_pillow_s_default_font_draws(tmp_path, monkeypatch):
    monkeypatch.setattr(timeline, "_dejavu_path", lambda: None)
    monkeypatch.setattr(timeline, "_fonts", {})
    path = tmp_path / "timeline.png"
    write_timeline(path, [done("A.T1", "task_0", ("generate", 0.0, 1.0))], title="no DejaVu")
    with Image.open(path) as image:
        assert image.size[0] == 1200


def test_drawing_a_timeline_does_not_import_matplotlib(tmp_path):
    script = (
        "import sys; from pathlib import Path; from report_pipeline.writers.figures.timeline import Bar, draw_timeline_png, warm_up; "
        "warm_up(); draw_timeline_png(Path(sys.argv[1]), [Bar('A.T1', 'A', 'generate', 't', 0.0, 1.0)], title='t'); "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "t.png")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_write_timeline_writes_a_png_and_returns_one_bar_per_step(tmp_path, chain_on_two_threads):
    failed = TaskResult("B", "T2", "", "failed", error="refused", steps=("generate", "refine"),
                        calls=(call("generate", 1.0, 2.0, "task_1"),), started_at=T0 + 1.0, finished_at=T0 + 2.5,
                        thread="task_1")
    skipped = TaskResult("B", "T3", "", "skipped", started_at=T0 + 2.5, finished_at=T0 + 2.5)
    path = tmp_path / "run" / "timeline.png"
    bars = write_timeline(path, [*chain_on_two_threads, failed, skipped], title="Run 1")

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.size[0] == 1200 and image.size[1] >= 300  # 12 in at 100 px an inch
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
