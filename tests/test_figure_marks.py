"""How each report format marks the figures check's findings: pure functions over a result's text."""

from __future__ import annotations

import zipfile
from pathlib import Path

from report_pipeline.models import Chapter, FigureMark, Objective, ReportView, TaskResult
from report_pipeline.writers.docx_out import write_docx
from report_pipeline.writers.figure_marks import (
    html_marks,
    markdown_marks,
    marked_text,
    split_flagged,
    strip_marks,
)
from report_pipeline.writers.html_out import render_html
from report_pipeline.writers.markdown import render_markdown

TEXT = "Prices rose from 40 to 44.8 EUR/MWh, up 12%, and will reach 99 by 2030."


def _result(text: str = TEXT, figures=None) -> TaskResult:
    if figures is None:
        figures = (
            FigureMark(17, 19, "40", "s", "cell: prices[2024, price] = 40"),
            FigureMark(23, 27, "44.8", "s", "cell: prices[2030, price] = 44.8"),
            FigureMark(40, 43, "12%", "s", "percent change: prices[2024] = 40; prices[2030] = 44.8 = 12"),
            FigureMark(60, 62, "99", "and will reach 99 by 2030.", ""),
        )
    return TaskResult("o", "t", "Prices", "done", text=text, figures=figures)


def test_the_untraced_figure_is_marked_and_the_text_is_otherwise_unchanged():
    marked = marked_text(_result())
    assert strip_marks(marked) == TEXT
    assert markdown_marks(marked) == TEXT.replace("99", "99 [unverified]")
    assert [piece for piece, flagged in split_flagged(marked) if flagged] == ["99"]


def test_html_marks_the_untraced_figure_and_titles_a_traced_one_with_its_cells_escaped():
    result = _result(figures=(FigureMark(17, 19, "40", "s", 'cell: <b>"x"</b>[1] = 40'),
                              FigureMark(60, 62, "99", "s", "")))
    rendered = html_marks(f"<p>{marked_text(result, traced=True)}</p>", [m.trace for m in result.figures])
    assert '<span class="traced" title="cell: &lt;b&gt;&quot;x&quot;&lt;/b&gt;[1] = 40">40</span>' in rendered
    assert '<mark class="untraced"' in rendered and ">99</mark>" in rendered
    assert "\ue000" not in rendered and "\ue002" not in rendered


def test_a_finding_that_does_not_match_the_text_marks_nothing():
    moved = _result(text="Prices rose to 41.", figures=(FigureMark(15, 17, "99", "s", ""),))
    assert marked_text(moved) == "Prices rose to 41."


def test_no_check_no_marks_and_stray_private_characters_from_a_model_are_dropped():
    assert marked_text(_result(figures=())) == TEXT
    assert marked_text(TaskResult("o", "t", "T", "done", text="a\ue000b")) == "ab"


def _view(result: TaskResult) -> ReportView:
    objective = Objective("o", "Prices")
    return ReportView("P", "run-1", 0.0, "offline", "m", (Chapter(objective, (result,), 1),))


def test_every_format_shows_the_flag(tmp_path: Path):
    view = _view(_result())
    markdown = render_markdown(view)
    assert "reach 99 [unverified] by 2030" in markdown
    # the appendix: the run's line, then each flagged figure with its sentence
    appendix = markdown[markdown.index("## Appendix: figures check"):]
    assert "4 figures, 3 traced, 1 flagged in 1 task:" in appendix
    assert "| Prices (o.t) | 99 | and will reach 99 by 2030. |" in appendix
    page = render_html(view)
    assert '<mark class="untraced"' in page and 'class="traced"' in page
    assert 'id="figures-check"' in page and "4 figures, 3 traced, 1 flagged in 1 task" in page
    path = write_docx(tmp_path / "r.docx", view)
    document = zipfile.ZipFile(path).read("word/document.xml").decode()
    highlighted = document.split('<w:highlight w:val="yellow"/>')
    assert len(highlighted) == 2 and highlighted[1].split("</w:t>")[0].endswith(">99")
    assert "\ue000" not in document
    assert "Figures check" in document and "and will reach 99 by 2030." in document
