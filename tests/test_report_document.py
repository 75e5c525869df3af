"""The finished report with its data tables and charts: from a real workbook and real CSVs
to a report.docx read back with python-docx and a report.md whose links resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn
from docx.shared import Cm

from report_pipeline.models import Chapter, PromptSheet, ReportView, Task, TaskResult
from report_pipeline.workbook.data import DataStore
from report_pipeline.workbook.reader import load_prompt_sheet
from report_pipeline.writers import render_markdown, write_docx, write_markdown
from report_pipeline.writers.attachments import TaskAttachments, build_attachments
from report_pipeline.writers.figures.charts import ChartRenderer
from tests.workbooks import make_workbook

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
ZERO_WIDTH_SPACE = "\u200b"

GENERATION = "year,region,coal,gas\n2015,EU,650,420\n2016,EU,600,480\n2017,EU,580,530\n"
PRICES = "year,germany_eur_mwh,france_eur_mwh\n2015,31.6,38.5\n2016,29.0,36.7\n"

# (objective, task) -> (status, error); every other task is done
OUTCOMES = {
    ("risk", "t1"): ("failed", "HTTP 400: bad request"),
    ("risk", "t2"): ("skipped", "dependency risk.t1 failed"),
}


@pytest.fixture
def sheet(tmp_path: Path) -> PromptSheet:
    """Three chapters: `gen` attaches a charted table twice (once with include_table),
    `risk` has a failure, its skipped dependent and a charted source, `sum` has no data."""
    folder = tmp_path / "sheet"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "generation.csv").write_text(GENERATION, encoding="utf-8")
    (folder / "data" / "prices.csv").write_text(PRICES, encoding="utf-8")
    path = make_workbook(
        folder / "energy.xlsx",
        objectives=[
            {"objective_id": "gen", "title": "Generation", "lead": "How power is made, 2015-2017."},
            {"objective_id": "risk", "title": "Risks"},
            {"objective_id": "sum", "title": "Summary"},
        ],
        tasks=[
            {"objective_id": "gen", "task_id": "t1", "title": "The mix", "prompt": "Mix {{ data.generation }}",
             "data": "generation", "include_table": True},
            {"objective_id": "gen", "task_id": "t2", "title": "Coal", "prompt": "Coal {{ data.generation }}",
             "data": "generation"},
            {"objective_id": "risk", "task_id": "t1", "title": "Prices", "prompt": "P {{ data.prices }}",
             "data": "prices"},
            {"objective_id": "risk", "task_id": "t2", "title": "After prices", "prompt": "Then",
             "depends_on": "risk.t1"},
            {"objective_id": "risk", "task_id": "t3", "title": "Price outlook", "prompt": "P {{ data.prices }}",
             "data": "prices"},
            {"objective_id": "sum", "task_id": "t1", "title": "Key messages", "prompt": "Sum up"},
        ],
        data=[
            {"name": "generation", "path": "data/generation.csv", "chart": "line", "x": "year", "y": "coal, gas"},
            {"name": "prices", "path": "data/prices.csv", "chart": "bar", "x": "year",
             "y": "germany_eur_mwh, france_eur_mwh"},
        ],
    )
    return load_prompt_sheet(path)


def result_of(task: Task) -> TaskResult:
    status, error = OUTCOMES.get((task.objective_id, task.task_id), ("done", ""))
    return TaskResult(
        objective_id=task.objective_id,
        task_id=task.task_id,
        title=task.title,
        status=status,  # type: ignore[arg-type]
        error=error,
        text=f"Text of {task.key}." if status == "done" else "",
        started_at=T0,
        finished_at=T0 + 1,
    )


def report_view(sheet: PromptSheet) -> ReportView:
    chapters = tuple(
        Chapter(objective, tuple(result_of(t) for t in sheet.tasks_of(objective.objective_id)), number,
                lead=objective.lead)
        for number, objective in enumerate(sheet.objectives, start=1)
    )
    return ReportView("Energy outlook", "20240501-120000-abcd", T0, "offline", "model-x", chapters)


def done_tasks(sheet: PromptSheet) -> list[Task]:
    return [t for t in sheet.tasks if (t.objective_id, t.task_id) not in OUTCOMES]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    return folder


@pytest.fixture
def attachments(sheet: PromptSheet, run_dir: Path) -> dict[str, TaskAttachments]:
    store = DataStore(sheet.data_sources)
    return build_attachments(done_tasks(sheet), store, run_dir, charts=ChartRenderer(run_dir))


@pytest.fixture
def document(sheet: PromptSheet, run_dir: Path, attachments: dict[str, TaskAttachments]) -> docx.document.Document:
    return docx.Document(write_docx(run_dir / "report.docx", report_view(sheet), attachments=attachments))


def texts(document: docx.document.Document) -> list[str]:
    return [p.text for p in document.paragraphs]


def body_paragraphs(document: docx.document.Document) -> list:
    """Paragraphs after the table of contents (whose entries repeat every heading)."""
    paragraphs = document.paragraphs
    first_heading = next(i for i, p in enumerate(paragraphs) if p.style.name == "Heading 1")
    return paragraphs[first_heading:]


def table_rows(table) -> list[list[str]]:
    return [[cell.text.replace(ZERO_WIDTH_SPACE, "") for cell in row.cells] for row in table.rows]


# --- which task shows what ------------------------------------------------------------------


def test_attachments_follow_include_table_and_declared_charts(attachments: dict[str, TaskAttachments]) -> None:
    assert sorted(attachments) == ["gen.t1", "gen.t2", "risk.t3"]
    # gen.t2 uses gen.t1's table too: it refers to the chart placed there, and shows nothing itself
    assert attachments["gen.t2"].images == () and attachments["gen.t2"].tables == ()
    assert [i.relative for i in attachments["gen.t2"].see_also] == ["charts/generation.png"]
    mix = attachments["gen.t1"]
    assert [t.name for t in mix.tables] == ["generation"]
    assert mix.tables[0].caption == "Generation (source: generation.csv)"
    assert mix.tables[0].markdown.startswith("| Year | Region | Coal | Gas |")  # headers a reader reads
    assert [(i.relative, i.caption) for i in mix.images] == [
        ("charts/generation.png", "Generation — coal, gas by year")
    ]
    outlook = attachments["risk.t3"]  # risk.t1 also attaches prices, but failed: the caller left it out
    assert outlook.tables == () and [i.relative for i in outlook.images] == ["charts/prices.png"]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("task", ["gen.t1", "gen.t2", "risk.t3", "sum.t9"]),
        ("objective", ["gen.t1", "risk.t3", "sum.t9"]),
        ("report", ["gen.t1", "risk.t3"]),  # the default: sum.t9 refers to gen.t1's chart instead
    ],
)
def test_chart_scope_decides_how_often_a_shared_chart_appears(
    sheet: PromptSheet, run_dir: Path, scope: str, expected: list[str]
) -> None:
    tasks = [*done_tasks(sheet), Task("sum", "t9", "Generation again", data=("generation",))]
    found = build_attachments(
        tasks, DataStore(sheet.data_sources), run_dir, charts=ChartRenderer(run_dir), chart_scope=scope
    )
    assert [key for key, a in found.items() if a.images] == expected


def test_unknown_chart_scope_is_refused(sheet: PromptSheet, run_dir: Path) -> None:
    with pytest.raises(ValueError, match="chart_scope must be task, objective or report"):
        build_attachments(
            [], DataStore({}), run_dir, charts=ChartRenderer(run_dir), chart_scope="page"  # type: ignore[arg-type]
        )


def test_a_chart_that_cannot_be_drawn_becomes_a_note(sheet: PromptSheet, run_dir: Path) -> None:
    broken = {**sheet.data_sources, "prices": replace(sheet.data_sources["prices"], y=("poland_eur_mwh",))}
    found = build_attachments(done_tasks(sheet), DataStore(broken), run_dir, charts=ChartRenderer(run_dir))
    assert found["risk.t3"].images == ()
    assert found["risk.t3"].notes == (
        "Chart of prices left out: data source 'prices': chart column 'poland_eur_mwh' is not in the table "
        "(it has: year, germany_eur_mwh, france_eur_mwh)",
    )
    markdown = render_markdown(report_view(sheet), attachments=found)
    assert "_Chart of prices left out: data source 'prices'" in markdown
    document = docx.Document(write_docx(run_dir / "r.docx", report_view(sheet), attachments=found))
    assert any(t.startswith("Chart of prices left out") for t in texts(document))


# --- report.docx --------------------------------------------------------------------------------


def test_docx_headings_follow_sheet_order(document: docx.document.Document) -> None:
    headings = [(p.style.name, p.text) for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings == [
        ("Heading 1", "1. Generation"),
        ("Heading 2", "The mix"),
        ("Heading 2", "Coal"),
        ("Heading 1", "2. Risks"),
        ("Heading 2", "Prices"),
        ("Heading 2", "After prices"),
        ("Heading 2", "Price outlook"),
        ("Heading 1", "3. Summary"),
        ("Heading 2", "Key messages"),
        ("Heading 1", "Failed or skipped tasks"),
    ]
    assert document.styles["Heading 1"].paragraph_format.page_break_before  # each chapter on a new page


def test_docx_title_page_has_project_and_date(document: docx.document.Document) -> None:
    first, second = document.paragraphs[:2]
    assert (first.style.name, first.text) == ("Title", "Energy outlook")
    assert (second.style.name, second.text) == ("Subtitle", "1 May 2024")


def test_docx_contents_list_the_headings_before_word_updates_them(document: docx.document.Document) -> None:
    paragraphs = document.paragraphs
    start = next(i for i, p in enumerate(paragraphs) if p.style.name == "TOC Heading")
    end = next(i for i, p in enumerate(paragraphs) if p.style.name == "Heading 1")
    contents = [p.text.rstrip("\t") for p in paragraphs[start + 1 : end] if p.text]
    assert contents[:3] == ["1. Generation", "The mix", "Coal"]
    assert contents[-1] == "Failed or skipped tasks"
    # each entry: its text, a tab to a dot leader, and a page-number field of its own
    for entry in paragraphs[start + 1 : end]:
        kinds = [c.get(qn("w:fldCharType")) for c in entry._p.iter(qn("w:fldChar"))]
        assert kinds == ["begin", "separate", "end"]


def test_docx_chapter_lead_is_the_intro_under_its_heading(document: docx.document.Document) -> None:
    paragraphs = body_paragraphs(document)
    assert paragraphs[0].text == "1. Generation"
    assert paragraphs[1].text == "How power is made, 2015-2017."
    assert all(run.italic for run in paragraphs[1].runs)
    risks = next(i for i, p in enumerate(paragraphs) if p.text == "2. Risks")
    assert paragraphs[risks + 1].style.name == "Heading 2"  # no lead, no intro


def test_docx_has_one_15_cm_picture_per_chart_placed(document: docx.document.Document) -> None:
    shapes = document.inline_shapes
    assert len(shapes) == 2  # generation (once for its chapter) and prices
    for shape in shapes:
        assert abs(shape.width - Cm(15)) < Cm(0.01)
    pictures = [p for p in body_paragraphs(document) if p._p.xpath(".//pic:pic")]
    assert len(pictures) == 2


def test_docx_captions_are_numbered_in_reading_order(document: docx.document.Document) -> None:
    captions = [p.text for p in document.paragraphs if p.style.name == "Caption"]
    assert captions == [
        "Table 1: Generation (source: generation.csv)",
        "Figure 1: Generation — coal, gas by year",
        "Figure 2: Prices — germany EUR MWh, france EUR MWh by year",
    ]
    instructions = [el.text.strip() for el in document.element.body.iter(qn("w:instrText"))]
    assert instructions.count("SEQ Figure \\* ARABIC") == 2
    assert instructions.count("SEQ Table \\* ARABIC") == 1


def test_docx_places_table_and_chart_after_their_task_text(document: docx.document.Document) -> None:
    paragraphs = body_paragraphs(document)
    at = {p.text: i for i, p in enumerate(paragraphs)}
    assert at["Text of gen.t1."] < at["Table 1: Generation (source: generation.csv)"]
    assert at["Table 1: Generation (source: generation.csv)"] < at["Figure 1: Generation — coal, gas by year"]
    assert at["Figure 1: Generation — coal, gas by year"] < at["Coal"]
    prices = at["Figure 2: Prices — germany EUR MWh, france EUR MWh by year"]
    assert at["Text of risk.t3."] < prices < at["3. Summary"]
    assert paragraphs[at["Figure 1: Generation — coal, gas by year"] - 1]._p.xpath(".//pic:pic")


def test_docx_include_table_task_gets_a_real_word_table(document: docx.document.Document) -> None:
    data_table = document.tables[0]
    assert table_rows(data_table) == [
        ["Year", "Region", "Coal", "Gas"],
        ["2015", "EU", "650", "420"],
        ["2016", "EU", "600", "480"],
        ["2017", "EU", "580", "530"],
    ]
    header = data_table.rows[0]
    assert all(run.bold for run in header.cells[0].paragraphs[0].runs)
    assert header._tr.trPr.find(qn("w:tblHeader")) is not None  # repeats on every page
    year_cell = data_table.rows[1].cells[0].paragraphs[0]
    assert year_cell.alignment is not None and year_cell.alignment.name == "RIGHT"  # numbers right-aligned
    caption = next(p for p in document.paragraphs if p.text.startswith("Table 1:"))
    assert caption._p.getnext() is data_table._tbl  # the caption sits right above its table
    widths = [column.width for column in data_table.columns]
    assert sum(widths) <= Cm(15.3)


def test_docx_appendix_lists_failed_and_skipped_tasks(document: docx.document.Document) -> None:
    appendix = document.tables[-1]
    assert table_rows(appendix) == [
        ["Objective", "Task", "Status", "Reason"],
        ["2. Risks", "Prices (risk.t1)", "failed", "HTTP 400: bad request"],
        ["2. Risks", "After prices (risk.t2)", "skipped", "dependency risk.t1 failed"],
    ]


def test_docx_without_attachments_has_no_pictures_or_captions(sheet: PromptSheet, run_dir: Path) -> None:
    document = docx.Document(write_docx(run_dir / "plain.docx", report_view(sheet)))
    assert len(document.inline_shapes) == 0
    assert [p for p in document.paragraphs if p.style.name == "Caption"] == []
    assert len(document.tables) == 1  # the appendix


# --- report.md ----------------------------------------------------------------------------------

IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")


def test_markdown_image_links_point_at_files_that_exist(
    sheet: PromptSheet, run_dir: Path, attachments: dict[str, TaskAttachments]
) -> None:
    path = write_markdown(run_dir / "report.md", report_view(sheet), attachments=attachments)
    links = IMAGE_LINK.findall(path.read_text(encoding="utf-8"))
    assert [target for _, target in links] == ["charts/generation.png", "charts/prices.png"]
    for _, target in links:
        assert (path.parent / target).is_file()
        assert (path.parent / target).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [alt for alt, _ in links] == [
        "Figure 1: Generation — coal, gas by year",
        "Figure 2: Prices — germany EUR MWh, france EUR MWh by year",
    ]


def test_markdown_places_table_under_its_caption_after_the_task_text(
    sheet: PromptSheet, attachments: dict[str, TaskAttachments]
) -> None:
    markdown = render_markdown(report_view(sheet), attachments=attachments)
    task = markdown.index("### The mix\n\nText of gen.t1.")
    caption = markdown.index("**Table 1: Generation (source: generation.csv)**\n\n| Year | Region | Coal | Gas |")
    figure = markdown.index("_Figure 1: Generation — coal, gas by year_")
    assert task < caption < figure < markdown.index("### Coal")


def test_markdown_chapter_lead_is_the_intro_under_its_heading(sheet: PromptSheet) -> None:
    markdown = render_markdown(report_view(sheet))
    assert "## 1. Generation\n\n_How power is made, 2015-2017._\n\n### The mix" in markdown
    assert "## 2. Risks\n\n### Prices" in markdown


def test_a_chart_several_tasks_use_is_placed_once_and_later_uses_say_see_figure_n(
    sheet: PromptSheet, run_dir: Path
) -> None:
    """The example report showed eu_generation six times; a chart is now drawn where its table is first
    used, and a later use refers to it by number."""
    tasks = [*done_tasks(sheet), Task("sum", "t9", "Generation again", data=("generation",))]
    found = build_attachments(tasks, DataStore(sheet.data_sources), run_dir, charts=ChartRenderer(run_dir))
    assert [i.relative for i in found["gen.t1"].images] == ["charts/generation.png"]
    assert found["sum.t9"].images == () and [i.relative for i in found["sum.t9"].see_also] == ["charts/generation.png"]
    chapters = tuple(
        Chapter(o, tuple(result_of(t) for t in tasks if t.objective_id == o.objective_id), n)
        for n, o in enumerate(sheet.objectives, start=1)
    )
    view = ReportView("Energy outlook", "r", T0, "offline", "model-x", chapters)
    document = docx.Document(write_docx(run_dir / "report.docx", view, attachments=found))
    pictures = [shape._inline.graphic.graphicData.pic.blipFill.blip.embed for shape in document.inline_shapes]
    blobs = [document.part.related_parts[rid].blob for rid in pictures]
    assert len(blobs) == len(set(blobs)) == 2  # generation and prices, once each
    notes = [p.text for p in document.paragraphs if p.text.startswith("See Figure")]
    assert notes == ["See Figure 1: Generation — coal, gas by year."] * 2  # gen.t2 and sum.t9
    markdown = write_markdown(run_dir / "report.md", view, attachments=found).read_text(encoding="utf-8")
    assert markdown.count("(charts/generation.png)") == 1 and "_See Figure 1: Generation — coal, gas by year._" in markdown


@pytest.mark.parametrize(("name", "expected"), [
    ("renewable_share_pct", "Renewable share %"), ("eu_generation", "EU generation"),
    ("germany_eur_mwh", "Germany EUR MWh"), ("Year", "Year"), ("GDP growth", "GDP growth"), ("", ""),
])
def test_a_column_or_table_name_reads_as_words_and_wraps_between_them(name: str, expected: str) -> None:
    """Narrow columns broke `renewabl e_share_ pct` mid-word; readable names wrap at their spaces."""
    from report_pipeline.text import readable_name
    from report_pipeline.writers.attachments import readable_header

    assert readable_name(name) == expected
    table = f"| year | {name or 'x'} |\n| ---: | ---: |\n| 2020 | 1 |"
    assert readable_header(table).split("\n")[1:] == table.split("\n")[1:]  # only the header row changes


def test_the_data_sheet_names_tables_and_columns_for_readers(tmp_path: Path) -> None:
    """`title`, `unit` and `columns` entries `name: Label` reach captions, the chart and table headers;
    the prompt still sees the raw column names."""
    from report_pipeline.writers.figures.charts import chart_spec

    folder = tmp_path / "sheet"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "generation.csv").write_text(GENERATION, encoding="utf-8")
    path = make_workbook(
        folder / "energy.xlsx",
        objectives=[{"objective_id": "gen", "title": "Generation"}],
        tasks=[{"objective_id": "gen", "task_id": "t1", "title": "The mix", "prompt": "Mix {{ data.generation }}",
                "data": "generation", "include_table": True}],
        data=[{"name": "generation", "path": "data/generation.csv", "chart": "line", "x": "year", "y": "coal, gas",
               "columns": "year, coal: Coal (TWh), gas: Gas (TWh)", "title": "Power from fossil fuels",
               "unit": "TWh"}],
    )
    sheet = load_prompt_sheet(path)
    store = DataStore(sheet.data_sources)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    found = build_attachments(sheet.tasks, store, run_dir, charts=ChartRenderer(run_dir))["gen.t1"]
    assert found.tables[0].caption.startswith("Power from fossil fuels (source: generation.csv")
    assert found.tables[0].markdown.startswith("| Year | Coal (TWh) | Gas (TWh) |")
    assert found.images[0].caption == "Power from fossil fuels — Coal (TWh), Gas (TWh) by year"
    spec = chart_spec(sheet.data_sources["generation"], store.frame("generation"))
    assert (spec.title, spec.y_label, [name for name, _ in spec.series]) == (
        "Power from fossil fuels", "TWh", ["Coal (TWh)", "Gas (TWh)"])
    assert store.markdown("generation").startswith("| year | coal | gas |")  # what prompts see


@pytest.mark.skipif(not (shutil.which("soffice") and shutil.which("pdftotext")),
                    reason="needs LibreOffice (soffice) and poppler (pdftotext)")
def test_libreoffice_prints_the_contents_with_the_page_each_heading_is_on(document, run_dir: Path) -> None:
    """Read as a new user reads it: the docx converted to PDF by LibreOffice."""
    path = run_dir / "report.docx"
    subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(run_dir), str(path)],
                   check=True, capture_output=True, timeout=180,
                   env={**os.environ, "HOME": str(run_dir)})  # its own profile: no clash with a running one
    pages = subprocess.run(["pdftotext", "-layout", str(run_dir / "report.pdf"), "-"], check=True,
                           capture_output=True, text=True).stdout.split("\f")
    listed = dict(re.findall(r"^\s*(\S.*?)\.{3,}\s*(\d+)\s*$", pages[0] + pages[1], flags=re.MULTILINE))
    assert listed, "no page numbers in the Contents"
    for heading, page in listed.items():
        assert heading.strip() in pages[int(page) - 1], (heading, page)


def test_a_data_table_too_wide_for_the_page_steps_down_a_point_so_no_header_word_breaks(tmp_path: Path) -> None:
    """The example's 12-column table broke `Bioenerg y` at 8 pt; at 7 pt every column gets its longest word."""
    folder = tmp_path / "sheet"
    (folder / "data").mkdir(parents=True)
    columns = ["year", "basis", "coal", "gas", "nuclear", "hydro", "wind", "solar", "bioenergy", "other", "total",
               "renewable_share_pct"]
    rows = [",".join(columns)] + [f"{2015 + i},projection," + ",".join(f"{1000.5 + i}" for _ in columns[2:])
                                  for i in range(3)]
    (folder / "data" / "wide.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "data" / "narrow.csv").write_text("year,coal\n2015,1\n", encoding="utf-8")
    path = make_workbook(
        folder / "w.xlsx",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "p", "data": "wide, narrow", "include_table": True}],
        data=[{"name": "wide", "path": "data/wide.csv"}, {"name": "narrow", "path": "data/narrow.csv"}],
    )
    sheet = load_prompt_sheet(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    found = build_attachments(sheet.tasks, DataStore(sheet.data_sources), run_dir, charts=ChartRenderer(run_dir))
    document = docx.Document(write_docx(run_dir / "r.docx", report_view(sheet), attachments=found))
    wide, narrow = document.tables[0], document.tables[1]
    assert {p.style.name for cell in wide.rows[1].cells for p in cell.paragraphs} == {"Table Data Small"}
    assert {p.style.name for cell in narrow.rows[1].cells for p in cell.paragraphs} == {"Table Data"}
    widths = [int(cell._tc.tcPr.find(qn("w:tcW")).get(qn("w:w"))) for cell in wide.rows[0].cells]
    section = document.sections[0]
    text_width = (section.page_width - section.left_margin - section.right_margin) / 635  # EMU -> twips
    assert sum(widths) <= text_width + 1
    char = 7 * 0.55 * 20  # twips per character at 7 pt
    bio = table_rows(wide)[0].index("Bioenergy")
    assert widths[bio] >= len("Bioenergy") * char  # the word fits on one line


def test_a_table_too_wide_even_at_7_pt_is_split_into_parts_that_each_start_with_its_first_column(tmp_path: Path) -> None:
    folder = tmp_path / "sheet"
    (folder / "data").mkdir(parents=True)
    columns = ["country"] + [f"installed_capacity_{year}_gw" for year in range(2010, 2031)]
    rows = [",".join(columns)] + [f"Country {i}," + ",".join(f"{1000 + i}.5" for _ in columns[1:]) for i in range(3)]
    (folder / "data" / "wide.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = make_workbook(
        folder / "w.xlsx",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "p", "data": "wide", "include_table": True}],
        data=[{"name": "wide", "path": "data/wide.csv"}],
    )
    sheet = load_prompt_sheet(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    found = build_attachments(sheet.tasks, DataStore(sheet.data_sources), run_dir, charts=ChartRenderer(run_dir))
    document = docx.Document(write_docx(run_dir / "r.docx", report_view(sheet), attachments=found))
    parts = document.tables
    assert len(parts) >= 2
    headers = [table_rows(part)[0] for part in parts]
    assert all(header[0] == "Country" for header in headers)  # each part reads on its own
    assert sum(len(header) - 1 for header in headers) == len(columns) - 1  # every column once
    section = document.sections[0]
    text_width = (section.page_width - section.left_margin - section.right_margin) / 635
    for part in parts:
        assert sum(int(c._tc.tcPr.find(qn("w:tcW")).get(qn("w:w"))) for c in part.rows[0].cells) <= text_width + 1
    assert any("continued" in p.text for p in document.paragraphs)
