"""Writers: real files in tmp_path, read back with csv, python-docx and openpyxl."""

from __future__ import annotations

import csv
import re
import struct
import threading
import zlib
from pathlib import Path

import docx
import openpyxl
import pytest
from docx.oxml.ns import qn
from docx.shared import Cm

from report_pipeline.models import (
    CHECK_COLUMNS,
    RESULT_COLUMNS,
    CallRecord,
    Chapter,
    Objective,
    ReportView,
    TaskResult,
)
from report_pipeline.writers import (
    ResultColumns,
    ResultsCsvAppender,
    atomic_path,
    atomic_write_text,
    neutralise_cell,
    objective_csv_name,
    render_markdown,
    slugify,
    write_docx,
    write_markdown,
    write_objective_csv,
    write_xlsx,
)
from report_pipeline.writers.attachments import TaskAttachments
from report_pipeline.writers.docx_out import PAGE_REFERENCE
from report_pipeline.writers.figures.charts import ChartImage

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC


# --- builders ---------------------------------------------------------------------------


def make_result(
    objective_id: str = "O1",
    task_id: str = "T1",
    *,
    status: str = "done",
    text: str = "Some text.",
    title: str = "",
    error: str = "",
    steps: tuple[str, ...] = ("generate",),
    calls: tuple[CallRecord, ...] | None = None,
    started_at: float = T0,
    finished_at: float = T0 + 2.5,
    **kwargs: object,
) -> TaskResult:
    if calls is None:
        calls = (CallRecord("generate", "model-x", prompt_tokens=100, completion_tokens=50, cost_usd=0.00125),)
    return TaskResult(
        objective_id=objective_id,
        task_id=task_id,
        title=title or f"Task {task_id}",
        status=status,  # type: ignore[arg-type]
        error=error,
        text=text if status == "done" else "",
        model="model-x",
        steps=steps,
        calls=calls,
        started_at=started_at,
        finished_at=finished_at,
        **kwargs,  # type: ignore[arg-type]
    )


def make_report(chapters: list[tuple[str, str, list[TaskResult]]], project: str = "Acme review") -> ReportView:
    return ReportView(
        project_name=project,
        run_id="20240501-120000-abcd",
        generated_at=T0,
        provider="offline",
        model="model-x",
        chapters=tuple(
            Chapter(objective=Objective(oid, title, index=i), results=tuple(results), number=i + 1)
            for i, (oid, title, results) in enumerate(chapters)
        ),
    )


@pytest.fixture
def report_with_failures() -> ReportView:
    """Three chapters: one clean, one with a failure and its skipped dependent, one mixed."""
    return make_report(
        [
            ("O1", "Market size", [make_result("O1", "T1", title="Overview"), make_result("O1", "T2", title="Trends")]),
            (
                "O2",
                "Risks",
                [
                    make_result("O2", "T1", status="failed", error="HTTP 400: bad request"),
                    make_result("O2", "T2", status="skipped", error="dependency O2.T1 failed"),
                ],
            ),
            ("O3", "Summary", [make_result("O3", "T1", title="Executive summary")]),
        ]
    )


def write_png(path: Path, width: int = 4, height: int = 3) -> Path:
    """A real (tiny, red) PNG without needing Pillow."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- safety: slugs and cell neutralisation ----------------------------------------------

SLUG_SHAPE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Market Size 2024", "market-size-2024"),
        ("../../etc/x", "etc-x"),
        ("..\\..\\windows\\system32", "windows-system32"),
        ("/absolute/path", "absolute-path"),
        ("CON", "con-x"),
        ("nul", "nul-x"),
        ("com1", "com1-x"),
        ("LPT9", "lpt9-x"),
        ("console", "console"),
        ("", "untitled"),
        ("   ", "untitled"),
        (".", "untitled"),
        ("..", "untitled"),
        ("市场规模", "untitled"),
        ("Café Überblick", "cafe-uberblick"),
        ("Straße & Øresund", "strasse-oresund"),
        ("a\x00b\nc", "a-b-c"),
    ],
)
def test_slugify_cases(title: str, expected: str) -> None:
    assert slugify(title) == expected


def test_slugify_truncates_long_titles_without_trailing_dash() -> None:
    slug = slugify("word " * 100)
    assert len(slug) <= 60
    assert SLUG_SHAPE.match(slug)
    assert len(slugify("x" * 500, max_len=20)) == 20


@pytest.mark.parametrize("title", ["../../etc/x", "CON", "", "a/b\\c:d*e?f", "..", "\u202e\u0000évil", "x" * 300])
def test_slugify_result_is_always_a_plain_file_name(title: str) -> None:
    slug = slugify(title)
    assert SLUG_SHAPE.match(slug)
    assert slug not in {".", ".."}
    assert "/" not in slug and "\\" not in slug


def test_objective_csv_name_is_numbered_and_slugged() -> None:
    assert objective_csv_name(3, "Market size") == "03_market-size.csv"
    assert objective_csv_name(12, "../../etc/passwd") == "12_etc-passwd.csv"
    assert objective_csv_name(123, "CON") == "123_con-x.csv"
    # padded to the last chapter's width, so a listing of 120 chapters is in sheet order
    names = [objective_csv_name(n, "Part", of=120) for n in (9, 10, 100, 120)]
    assert names == ["009_part.csv", "010_part.csv", "100_part.csv", "120_part.csv"] == sorted(names)
    with pytest.raises(ValueError):
        objective_csv_name(-1, "x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("'already quoted", "'already quoted"),
        ("", ""),
        (42, 42),
        (-5, -5),
        (-0.25, -0.25),
        (None, None),
        (True, True),
    ],
)
def test_neutralise_cell(value: object, expected: object) -> None:
    result = neutralise_cell(value)
    assert result == expected
    assert type(result) is type(expected)


# --- rows --------------------------------------------------------------------------------


def test_result_row_has_contract_columns_in_order_without_check() -> None:
    assert tuple(ResultColumns(check=False).row(make_result())) == RESULT_COLUMNS


def test_result_row_appends_check_columns_when_asked() -> None:
    row = ResultColumns(check=True).row(make_result(check_verdict="pass", check_notes="fine"))
    assert tuple(row) == RESULT_COLUMNS + CHECK_COLUMNS
    assert (row["check_verdict"], row["check_notes"]) == ("pass", "fine")


def test_result_row_formats_values() -> None:
    calls = (
        CallRecord("generate", "m", prompt_tokens=10, completion_tokens=5, cost_usd=0.1234567891, attempts=2, cached=True),
        CallRecord("refine", "m", prompt_tokens=1, completion_tokens=2, cost_usd=0.0000001, attempts=1, cached=True),
    )
    result = make_result(steps=("generate", "refine"), calls=calls, started_at=T0 + 0.1234, finished_at=T0 + 3.45678)
    row = ResultColumns(check=False).row(result)
    assert row["steps"] == "generate,refine"
    assert row["prompt_tokens"] == 11 and row["completion_tokens"] == 7 and row["attempts"] == 3
    assert row["cost_usd"] == 0.123457
    assert row["cached"] == "true"
    assert row["started_at"] == "2024-05-01T12:00:00.123Z"
    assert row["finished_at"] == "2024-05-01T12:00:03.456Z"  # truncated, as isoformat does
    assert row["duration_s"] == 3.333


def test_result_row_leaves_times_empty_when_never_started() -> None:
    row = ResultColumns(check=False).row(make_result(status="skipped", started_at=0.0, finished_at=0.0, calls=()))
    assert (row["started_at"], row["finished_at"], row["duration_s"], row["cached"]) == ("", "", 0.0, "false")


def test_result_row_neutralises_every_string_cell() -> None:
    result = make_result(title="=cmd|' /C calc'!A0", text="-bullet first", check_notes="@evil")
    row = ResultColumns(check=True).row(result)
    assert row["title"] == "'=cmd|' /C calc'!A0"
    assert row["text"] == "'-bullet first"
    assert row["check_notes"] == "'@evil"


# --- atomic writes -----------------------------------------------------------------------


def test_atomic_write_text_leaves_no_temp_file(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "out" / "report.md", "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert leftovers(tmp_path / "out") == []


def test_atomic_path_yields_hidden_tmp_name_in_same_folder(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "report.docx") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")
    assert (tmp_path / "report.docx").read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_atomic_path_keeps_old_file_when_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "report.docx"
    target.write_bytes(b"old report")
    with pytest.raises(RuntimeError, match="renderer broke"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a rep")
            raise RuntimeError("renderer broke")
    assert target.read_bytes() == b"old report"
    assert leftovers(tmp_path) == []


def test_atomic_replace_keeps_existing_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_text(target, "{\"a\": 1}")
    assert target.stat().st_mode & 0o777 == 0o640


# --- CSV ---------------------------------------------------------------------------------


def test_objective_csv_round_trips_multiline_text(tmp_path: Path) -> None:
    text = 'Line one, with a comma\nLine "two"\n\nLast line'
    path = write_objective_csv(tmp_path / "objectives" / "01_x.csv", [make_result(text=text)], columns=ResultColumns(check=False))
    rows = read_csv(path)
    assert rows[0] == list(RESULT_COLUMNS)
    assert len(rows) == 2
    assert rows[1][RESULT_COLUMNS.index("text")] == text
    assert leftovers(path.parent) == []


def test_objective_csv_has_check_columns_when_asked(tmp_path: Path) -> None:
    path = write_objective_csv(tmp_path / "a.csv", [make_result(check_verdict="pass")], columns=ResultColumns(check=True))
    header, row = read_csv(path)
    assert header == list(RESULT_COLUMNS + CHECK_COLUMNS)
    assert row[-2] == "pass"


def test_objective_csv_writes_plain_decimals(tmp_path: Path) -> None:
    calls = (CallRecord("generate", "m", cost_usd=0.000002),)
    path = write_objective_csv(tmp_path / "a.csv", [make_result(calls=calls)], columns=ResultColumns(check=False))
    assert read_csv(path)[1][RESULT_COLUMNS.index("cost_usd")] == "0.000002"


def test_objective_csv_neutralises_cells(tmp_path: Path) -> None:
    path = write_objective_csv(tmp_path / "a.csv", [make_result(title="=1+1")], columns=ResultColumns(check=False))
    assert read_csv(path)[1][RESULT_COLUMNS.index("title")] == "'=1+1"


def test_appender_flushes_each_row_before_close(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    appender = ResultsCsvAppender(path, columns=ResultColumns(check=False))
    try:
        assert read_csv(path) == [list(RESULT_COLUMNS)]
        for n in range(1, 4):
            appender.append(make_result(task_id=f"T{n}", text=f"text {n}\nsecond line"))
            rows = read_csv(path)
            assert len(rows) == 1 + n
            assert rows[-1][1] == f"T{n}"
            assert rows[-1][RESULT_COLUMNS.index("text")] == f"text {n}\nsecond line"
    finally:
        appender.close()
    assert appender.closed


def test_appender_refuses_rows_after_close(tmp_path: Path) -> None:
    with ResultsCsvAppender(tmp_path / "results.csv", columns=ResultColumns(check=False)) as appender:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        appender.append(make_result())
    appender.close()  # a second close is harmless


def test_appender_keeps_rows_whole_under_concurrent_appends(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    threads_count, per_thread = 8, 25
    start = threading.Barrier(threads_count)
    with ResultsCsvAppender(path, columns=ResultColumns(check=True)) as appender:

        def work(worker: int) -> None:
            start.wait()
            for n in range(per_thread):
                appender.append(make_result(f"O{worker}", f"T{n}", text="x, y\n" * 50, check_verdict="ok"))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    rows = read_csv(path)
    assert rows[0] == list(RESULT_COLUMNS + CHECK_COLUMNS)
    assert len(rows) == 1 + threads_count * per_thread
    assert all(len(row) == len(rows[0]) for row in rows)
    assert len({(r[0], r[1]) for r in rows[1:]}) == threads_count * per_thread


def test_resumed_appender_does_not_repeat_the_header(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as first:
        first.append(make_result(task_id="T1"))
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as resumed:
        resumed.append(make_result(task_id="T2"))
    rows = read_csv(path)
    assert rows[0] == list(RESULT_COLUMNS)
    assert [r[1] for r in rows[1:]] == ["T1", "T2"]


def test_resumed_appender_cuts_a_row_torn_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as first:
        first.append(make_result(task_id="T1"))
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write('O1,T2,Task T2,done,,"half a multi-line\ntext')  # the crash hit mid-row
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as resumed:
        resumed.append(make_result(task_id="T2"))
    rows = read_csv(path)
    assert [r[1] for r in rows[1:]] == ["T1", "T2"]
    assert all(len(r) == len(RESULT_COLUMNS) for r in rows)


def test_resumed_appender_rewrites_a_header_torn_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(b"objective_id,task_id,ti")
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as appender:
        appender.append(make_result())
    rows = read_csv(path)
    assert rows[0] == list(RESULT_COLUMNS)
    assert len(rows) == 2


def test_resumed_appender_follows_the_files_check_columns(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    ResultsCsvAppender(path, columns=ResultColumns(check=True)).close()
    with ResultsCsvAppender(path, columns=ResultColumns(check=False)) as resumed:
        assert resumed.with_check
        resumed.append(make_result())
    assert all(len(r) == len(RESULT_COLUMNS + CHECK_COLUMNS) for r in read_csv(path))


def test_resumed_appender_rejects_a_foreign_header(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(b"name,value\r\na,1\r\n")
    with pytest.raises(ValueError, match="not a results.csv"):
        ResultsCsvAppender(path, columns=ResultColumns(check=False))
    assert path.read_bytes() == b"name,value\r\na,1\r\n"


# --- Markdown ----------------------------------------------------------------------------


def test_markdown_chapters_and_tasks_follow_report_order(report_with_failures: ReportView) -> None:
    markdown = render_markdown(report_with_failures)
    headings = [line for line in markdown.splitlines() if line.startswith(("## ", "### "))]
    assert headings == [
        "## Contents",
        "## 1. Market size",
        "### Overview",
        "### Trends",
        "## 2. Risks",
        "### Task T1",
        "### Task T2",
        "## 3. Summary",
        "### Executive summary",
        "## Appendix: failed or skipped tasks",
    ]
    assert markdown.startswith("# Acme review\n")
    assert "20240501-120000-abcd" in markdown and "2024-05-01 12:00 UTC" in markdown


def test_markdown_marks_failed_and_skipped_tasks(report_with_failures: ReportView) -> None:
    markdown = render_markdown(report_with_failures)
    assert "> **Failed:** HTTP 400: bad request" in markdown
    assert "> **Skipped:** dependency O2.T1 failed" in markdown
    appendix = markdown.split("## Appendix: failed or skipped tasks", 1)[1]
    assert "| 2. Risks | Task T1 (O2.T1) | failed | HTTP 400: bad request |" in appendix
    assert "| 2. Risks | Task T2 (O2.T2) | skipped | dependency O2.T1 failed |" in appendix


def test_markdown_has_no_appendix_when_everything_succeeded() -> None:
    report = make_report([("O1", "Only", [make_result()])])
    assert "Appendix" not in render_markdown(report)


def test_markdown_nests_headings_from_task_text_below_the_task() -> None:
    text = "# Summary\n\nIntro\n\n## Detail\n\n```\n# not a heading\n```"
    markdown = render_markdown(make_report([("O1", "Only", [make_result(text=text)])]))
    assert "\n#### Summary\n" in markdown
    assert "\n##### Detail\n" in markdown
    assert "\n# not a heading\n" in markdown


def test_write_markdown_is_atomic_utf8(tmp_path: Path, report_with_failures: ReportView) -> None:
    path = write_markdown(tmp_path / "report.md", report_with_failures)
    assert path.read_text(encoding="utf-8") == render_markdown(report_with_failures)
    assert leftovers(tmp_path) == []


# --- Word --------------------------------------------------------------------------------


def headings(document: docx.document.Document) -> list[tuple[str, str]]:
    return [(p.style.name, p.text) for p in document.paragraphs if p.style.name.startswith("Heading")]


def test_docx_headings_follow_report_order(tmp_path: Path, report_with_failures: ReportView) -> None:
    document = docx.Document(write_docx(tmp_path / "report.docx", report_with_failures))
    assert headings(document) == [
        ("Heading 1", "1. Market size"),
        ("Heading 2", "Overview"),
        ("Heading 2", "Trends"),
        ("Heading 1", "2. Risks"),
        ("Heading 2", "Task T1"),
        ("Heading 2", "Task T2"),
        ("Heading 1", "3. Summary"),
        ("Heading 2", "Executive summary"),
        ("Heading 1", "Failed or skipped tasks"),
    ]
    assert document.paragraphs[0].style.name == "Title"
    assert document.paragraphs[0].text == "Acme review"
    assert leftovers(tmp_path) == []


def test_docx_contents_entries_are_page_references_to_bookmarks_on_their_headings(
    tmp_path: Path, report_with_failures: ReportView
) -> None:
    """LibreOffice keeps a TOC field's stored text (no page numbers in its PDF) but computes PAGEREF
    fields; Word fills both on open."""
    document = docx.Document(write_docx(tmp_path / "report.docx", report_with_failures))
    body = document.element.body
    instructions = [el.text.strip() for el in body.iter(qn("w:instrText"))]
    marks = {el.get(qn("w:name")): el for el in body.iter(qn("w:bookmarkStart"))}
    headings = [p for p in document.paragraphs if p.style.name in ("Heading 1", "Heading 2")]
    assert len(instructions) == len(headings) == len(marks) > 2
    for instruction, heading in zip(instructions, headings):
        kind, mark, switch = instruction.split()
        assert (kind, switch) == (PAGE_REFERENCE, "\\h")
        assert marks[mark].getparent() is heading._p  # each entry points at its own heading
    assert not any("TOC" in text for text in instructions)
    update = document.settings.element.find(qn("w:updateFields"))
    assert update is not None and update.get(qn("w:val")) == "true"


def test_docx_lists_failed_and_skipped_tasks_in_an_appendix_table(
    tmp_path: Path, report_with_failures: ReportView
) -> None:
    document = docx.Document(write_docx(tmp_path / "report.docx", report_with_failures))
    appendix = document.tables[-1]
    rows = [[cell.text for cell in row.cells] for row in appendix.rows]
    assert rows == [
        ["Objective", "Task", "Status", "Reason"],
        ["2. Risks", "Task T1 (O2.T1)", "failed", "HTTP 400: bad request"],
        ["2. Risks", "Task T2 (O2.T2)", "skipped", "dependency O2.T1 failed"],
    ]
    texts = [p.text for p in document.paragraphs]
    assert "Failed: HTTP 400: bad request" in texts


def test_docx_renders_markdown_text(tmp_path: Path) -> None:
    text = (
        "# Key points\n\nRevenue grew **fast** this year.\nSecond line.\n\n"
        "- first\n* second\n  - nested\n\n| Region | Sales |\n|---|---:|\n| North | 10 |\n| South | =5 |"
    )
    report = make_report([("O1", "Only", [make_result(text=text)])])
    document = docx.Document(write_docx(tmp_path / "report.docx", report))
    paragraphs = document.paragraphs
    heading = next(p for p in paragraphs if p.text == "Key points")
    assert heading.style.name == "Normal" and all(run.bold for run in heading.runs)
    body = next(p for p in paragraphs if p.text.startswith("Revenue"))
    assert [(run.text, bool(run.bold)) for run in body.runs if run.text][:3] == [
        ("Revenue grew ", False),
        ("fast", True),
        (" this year.", False),
    ]
    assert body.text == "Revenue grew fast this year.\nSecond line."
    bullets = [(p.style.name, p.text) for p in paragraphs if p.style.name.startswith("List Bullet")]
    assert bullets == [("List Bullet", "first"), ("List Bullet", "second"), ("List Bullet 2", "nested")]
    table = document.tables[0]
    assert [[c.text for c in row.cells] for row in table.rows] == [
        ["Region", "Sales"],
        ["North", "10"],
        ["South", "=5"],
    ]
    assert all(run.bold for run in table.rows[0].cells[0].paragraphs[0].runs)


def test_docx_places_images_after_their_task_text(tmp_path: Path) -> None:
    png = write_png(tmp_path / "chart.png")
    report = make_report([("O1", "Only", [make_result(task_id="T1", text="Chart below."), make_result(task_id="T2")])])
    image = ChartImage(png, "sales by region", "chart.png")
    path = write_docx(tmp_path / "report.docx", report, attachments={"O1.T1": TaskAttachments(images=(image,))})
    document = docx.Document(path)
    assert len(document.inline_shapes) == 1
    assert abs(document.inline_shapes[0].width - Cm(15)) < Cm(0.01)
    texts = [p.text for p in document.paragraphs]
    caption_at = texts.index("Figure 1: sales by region")
    assert document.paragraphs[caption_at].style.name == "Caption"
    next_heading = next(
        i for i, p in enumerate(document.paragraphs) if p.style.name == "Heading 2" and p.text == "Task T2"
    )
    assert texts.index("Chart below.") < caption_at < next_heading
    image_paragraph = document.paragraphs[caption_at - 1]
    assert image_paragraph._p.xpath(".//pic:pic")


def test_docx_notes_a_missing_image_instead_of_failing(tmp_path: Path) -> None:
    report = make_report([("O1", "Only", [make_result()])])
    image = ChartImage(tmp_path / "gone.png", "Lost chart", "gone.png")
    path = write_docx(tmp_path / "report.docx", report, attachments={"O1.T1": TaskAttachments(images=(image,))})
    texts = [p.text for p in docx.Document(path).paragraphs]
    assert "[image not available: gone.png]" in texts
    assert not any("Lost chart" in text for text in texts)


def test_docx_strips_characters_xml_cannot_hold(tmp_path: Path) -> None:
    report = make_report([("O1", "Only", [make_result(text="bell\x07 and nul\x00 inside")])])
    texts = [p.text for p in docx.Document(write_docx(tmp_path / "r.docx", report)).paragraphs]
    assert "bell and nul inside" in texts


# --- Excel -------------------------------------------------------------------------------


def test_xlsx_has_summary_then_one_sheet_per_objective(tmp_path: Path, report_with_failures: ReportView) -> None:
    workbook = openpyxl.load_workbook(write_xlsx(tmp_path / "report.xlsx", report_with_failures))
    assert workbook.sheetnames == ["Summary", "O1 Market size", "O2 Risks", "O3 Summary"]
    summary = [list(row) for row in workbook["Summary"].iter_rows(min_row=1, max_row=5, values_only=True)]
    assert summary[0] == [
        "objective_id", "title", "tasks", "done", "failed", "skipped",
        "prompt_tokens", "completion_tokens", "cost_usd", "duration_s",
    ]
    assert summary[2] == ["O2", "Risks", 2, 0, 1, 1, 200, 100, 0.0025, 2.5]
    assert summary[4][:6] == ["Total", None, 5, 3, 1, 1]
    risks = list(workbook["O2 Risks"].iter_rows(values_only=True))
    assert list(risks[0]) == list(RESULT_COLUMNS)
    assert [row[1] for row in risks[1:]] == ["T1", "T2"]
    assert leftovers(tmp_path) == []


def test_xlsx_cells_are_neutralised_wrapped_and_header_frozen(tmp_path: Path) -> None:
    result = make_result(title="=HYPERLINK(\"http://evil\")", text="+1 line\nnext line")
    workbook = openpyxl.load_workbook(write_xlsx(tmp_path / "r.xlsx", make_report([("O1", "=x", [result])])))
    sheet = workbook.worksheets[1]
    title = sheet.cell(row=2, column=RESULT_COLUMNS.index("title") + 1)
    text = sheet.cell(row=2, column=RESULT_COLUMNS.index("text") + 1)
    assert title.value == "'=HYPERLINK(\"http://evil\")" and title.data_type == "s"
    assert text.value == "'+1 line\nnext line"
    assert text.alignment.wrap_text
    assert sheet.freeze_panes == "A2"
    assert sheet.cell(row=1, column=1).font.b
    assert sheet.column_dimensions["F"].width == 80  # the text column
    assert workbook["Summary"].cell(row=2, column=2).value == "'=x"


def test_xlsx_sheet_names_are_valid_and_unique(tmp_path: Path) -> None:
    long_title = "A very long objective title that goes on and on"
    report = make_report(
        [
            ("O1", "What? [draft]: a/b\\c*", [make_result("O1")]),
            ("O2", long_title, [make_result("O2")]),
            ("O2", long_title, [make_result("O2")]),
            ("Summary", "", [make_result("Summary")]),
            ("'quoted'", "", [make_result("x")]),
        ]
    )
    workbook = openpyxl.load_workbook(write_xlsx(tmp_path / "r.xlsx", report))
    names = workbook.sheetnames
    assert len(names) == 6
    assert len({n.lower() for n in names}) == 6
    for name in names:
        assert 0 < len(name) <= 31
        assert not set(name) & set("[]:*?/\\")
        assert not name.startswith("'") and not name.endswith("'")
    assert names[1] == "O1 What draft a b c"


def test_the_front_page_names_every_model_that_wrote_a_section_and_says_offline_drafts_are_drafts() -> None:
    from report_pipeline.models import Chapter, Objective, ReportView, TaskResult
    from report_pipeline.writers._text import written_by_line

    results = (
        TaskResult("o", "a", "A", "done", text="x", model="gpt-5-mini"),
        TaskResult("o", "b", "B", "done", text="y", model="gpt-5-mini"),
        TaskResult("o", "c", "C", "done", text="z", model="o4-mini,gpt-5-mini"),
        TaskResult("o", "d", "D", "failed", model="o4-mini"),
    )
    chapter = Chapter(objective=Objective(objective_id="o", title="O"), results=results, number=1)
    online = ReportView("P", "r1", 0.0, "openai", "gpt-5-mini", (chapter,))
    assert written_by_line(online) == "Written by: openai gpt-5-mini (3 sections); openai o4-mini (1 section)"
    offline = ReportView("P", "r1", 0.0, "offline", "gpt-5-mini", (chapter,))
    assert written_by_line(offline).startswith("Written by: offline drafts, no model was called (3 sections)")
