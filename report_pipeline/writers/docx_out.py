"""report.docx: a Word report with a title page, a real table of contents,
one Heading 1 per objective and one Heading 2 per task, in sheet order.

Task texts are Markdown from an LLM; a small renderer turns the common parts
into Word structure (bullets, tables, bold) instead of showing raw asterisks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.image.exceptions import UnrecognizedImageError
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph

from report_pipeline.models import ReportView, TaskResult
from report_pipeline.writers._text import (
    chapter_heading,
    display_datetime,
    problem_note,
    problems,
    task_heading,
    xml_safe,
)
from report_pipeline.writers.atomic import atomic_path

__all__ = ["APPENDIX_TITLE", "TOC_INSTRUCTION", "ImageMap", "write_docx"]

logger = logging.getLogger(__name__)

#: Task key `OBJ.TASK` -> images to place after that task's text: (png path, caption).
ImageMap = Mapping[str, Sequence[tuple[Path, str]]]

APPENDIX_TITLE = "Failed or skipped tasks"
#: Word's own "Insert > Table of Contents": headings 1-3, hyperlinked, no page
#: numbers in web view, keep outline levels.
TOC_INSTRUCTION = 'TOC \\o "1-3" \\h \\z \\u'
TOC_PLACEHOLDER = "Right-click here and choose Update Field to build the table of contents."
IMAGE_WIDTH = Cm(15)
PROBLEM_COLOUR = RGBColor(0xA0, 0x1C, 0x1C)
CODE_FONT = "Consolas"
APPENDIX_COLUMNS = ("Objective", "Task", "Status", "Reason")

# settings.xml children that must come after <w:updateFields> (ECMA-376 CT_Settings order).
_AFTER_UPDATE_FIELDS = (
    "hdrShapeDefaults", "footnotePr", "endnotePr", "compat", "docVars", "rsids",
    "attachedSchema", "themeFontLang", "clrSchemeMapping", "doNotIncludeSubdocsInStats",
    "doNotAutoCompressPictures", "forceUpgrade", "captions", "readModeInkLockDown",
    "smartTagType", "shapeDefaults", "doNotEmbedSmartTags", "decimalSymbol", "listSeparator",
)
_MATH_PR = "{http://schemas.openxmlformats.org/officeDocument/2006/math}mathPr"


def write_docx(
    path: str | os.PathLike[str], report: ReportView, *, images: ImageMap | None = None
) -> Path:
    """Build the Word report and save it to `path` atomically; return the path.

    `images` places pictures (15 cm wide, captioned) after a task's text; a
    missing or unreadable image becomes a visible note, not a failed report.
    """
    document = _build(report, images or {})
    target = Path(path)
    with atomic_path(target) as tmp:
        document.save(str(tmp))
    return target


class _FastDocument:
    """A python-docx Document whose paragraphs append in O(1).

    python-docx inserts each paragraph by scanning the body for `w:sectPr` and
    resolves the style by name each time: quadratic in the report's length (a
    2,000-task report took 12 s of a 14 s run). Here new paragraphs go just
    before the remembered `w:sectPr` and style ids are looked up once. The XML
    is the same; everything else is delegated to the real document.
    """

    def __init__(self, document: DocxDocument) -> None:
        self._document = document
        self._body_element = document.element.body
        self._sect_pr = self._body_element.sectPr  # found once: a lookup scans every child
        self._style_ids: dict[str, str] = {}

    def __getattr__(self, name: str):
        return getattr(self._document, name)

    def _style_id(self, name: str) -> str:
        if name not in self._style_ids:
            self._style_ids[name] = self._document.styles[name].style_id
        return self._style_ids[name]

    def add_paragraph(self, text: str = "", style: str | None = None) -> Paragraph:
        element = OxmlElement("w:p")
        if self._sect_pr is not None:
            self._sect_pr.addprevious(element)
        else:
            self._body_element.append(element)
        paragraph = Paragraph(element, self._document._body)
        if style is not None:
            element.style = self._style_id(style)
        if text:
            paragraph.add_run(text)
        return paragraph

    def add_heading(self, text: str = "", level: int = 1) -> Paragraph:
        return self.add_paragraph(text, "Title" if level == 0 else f"Heading {level}")


def _build(report: ReportView, images: ImageMap) -> DocxDocument:
    document = _FastDocument(Document())
    _set_properties(document, report)
    _add_title_page(document, report)
    _add_table_of_contents(document)
    for chapter in report.chapters:
        document.add_heading(xml_safe(chapter_heading(chapter)), level=1)
        for result in chapter.results:
            document.add_heading(xml_safe(task_heading(result)), level=2)
            _add_task_body(document, result)
            for image_path, caption in images.get(result.key, ()):
                _add_image(document, Path(image_path), caption)
    if problems(report):
        _add_appendix(document, report)
    return document


def _set_properties(document: DocxDocument, report: ReportView) -> None:
    props = document.core_properties
    props.title = xml_safe(report.project_name)
    props.subject = f"run {report.run_id}"
    props.author = "report-pipeline"
    props.created = datetime.fromtimestamp(report.generated_at, tz=timezone.utc).replace(tzinfo=None)


def _add_title_page(document: DocxDocument, report: ReportView) -> None:
    document.add_heading(xml_safe(report.project_name) or "Report", level=0)
    document.add_paragraph(f"Generated {display_datetime(report.generated_at)}")
    document.add_paragraph(xml_safe(f"Run {report.run_id}"))
    document.add_paragraph(xml_safe(f"Provider: {report.provider}, model: {report.model}"))
    document.add_page_break()


def _add_table_of_contents(document: DocxDocument) -> None:
    """A real TOC field that Word fills in when the file is opened.

    python-docx cannot lay out pages, so the field holds a placeholder; the
    field is marked dirty and the document asks Word to update fields on open.
    """
    document.add_paragraph("Contents", style="TOC Heading")
    _add_field(document.add_paragraph(), TOC_INSTRUCTION, TOC_PLACEHOLDER)
    _update_fields_on_open(document)
    document.add_page_break()


def _add_field(paragraph: Paragraph, instruction: str, placeholder: str) -> None:
    """Append a complex field (begin / instrText / separate / result / end runs)."""

    def field_char(kind: str) -> None:
        char = OxmlElement("w:fldChar")
        char.set(qn("w:fldCharType"), kind)
        if kind == "begin":
            char.set(qn("w:dirty"), "true")
        paragraph.add_run()._r.append(char)

    field_char("begin")
    instr = OxmlElement("w:instrText")
    instr.set(qn("xml:space"), "preserve")
    instr.text = f" {instruction} "
    paragraph.add_run()._r.append(instr)
    field_char("separate")
    paragraph.add_run(placeholder).italic = True
    field_char("end")


def _update_fields_on_open(document: DocxDocument) -> None:
    """Set <w:updateFields w:val="true"/>, in schema order: Word rejects misplaced settings."""
    settings = document.settings.element
    if settings.find(qn("w:updateFields")) is not None:
        return
    element = OxmlElement("w:updateFields")
    element.set(qn("w:val"), "true")
    later = {qn(f"w:{name}") for name in _AFTER_UPDATE_FIELDS} | {_MATH_PR}
    for child in settings:
        if child.tag in later:
            child.addprevious(element)
            return
    settings.append(element)


def _add_task_body(document: DocxDocument, result: TaskResult) -> None:
    if result.status != "done":
        label, reason = problem_note(result)
        paragraph = document.add_paragraph()
        run = paragraph.add_run(f"{label}: ")
        run.bold = True
        run.font.color.rgb = PROBLEM_COLOUR
        paragraph.add_run(xml_safe(reason))
        return
    text = xml_safe(result.text).strip()
    if not text:
        document.add_paragraph().add_run("(The model returned no text.)").italic = True
        return
    for block in parse_blocks(text):
        _add_block(document, block)


def _add_image(document: DocxDocument, image_path: Path, caption: str) -> None:
    paragraph = document.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    try:
        paragraph.add_run().add_picture(str(image_path), width=IMAGE_WIDTH)
    except (OSError, UnrecognizedImageError) as exc:
        logger.warning("image %s left out of the report: %s", image_path, exc)
        paragraph.add_run(f"[image not available: {image_path.name}]").italic = True
    if caption:
        document.add_paragraph(xml_safe(caption), style="Caption")


def _add_appendix(document: DocxDocument, report: ReportView) -> None:
    document.add_heading(APPENDIX_TITLE, level=1)
    rows = problems(report)
    table = document.add_table(rows=1 + len(rows), cols=len(APPENDIX_COLUMNS))
    table.style = "Table Grid"
    for cell, name in zip(table.rows[0].cells, APPENDIX_COLUMNS):
        cell.paragraphs[0].add_run(name).bold = True
    for row, (chapter, result) in zip(table.rows[1:], rows):
        _, reason = problem_note(result)
        values = (chapter_heading(chapter), f"{task_heading(result)} ({result.key})", result.status, reason)
        for cell, value in zip(row.cells, values):
            cell.text = xml_safe(value)


# --- a small Markdown reader for task texts -------------------------------------------


@dataclass
class Block:
    """One piece of a task text: kind is para, heading, bullet, numbered, table or code."""

    kind: str
    lines: list[str] = field(default_factory=list)  # para/code: lines; others: one line
    level: int = 0  # bullet nesting depth
    rows: list[list[str]] = field(default_factory=list)  # table rows, header first
    header: bool = False  # table: whether the first row is a header


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d{1,9}[.)])\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_TABLE_SEPARATOR_CELL = re.compile(r"^:?-{1,}:?$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_INLINE = re.compile(
    r"(\*\*|__)(?P<bold>.+?)\1"
    r"|`(?P<code>[^`]+)`"
    r"|(?<![\w*])\*(?P<italic>[^*\s](?:[^*]*?[^*\s])?)\*(?![\w*])"
)
_MAX_BULLET_LEVEL = 2
_INDENT_PER_LEVEL = 2


def parse_blocks(text: str) -> Iterator[Block]:
    """Split Markdown into blocks, line by line.

    Paragraphs end at blank lines or where a list, heading, table or code
    fence starts; lines inside a paragraph keep their line breaks.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    paragraph: list[str] = []
    index = 0

    def flush() -> Iterator[Block]:
        if paragraph:
            yield Block("para", lines=paragraph.copy())
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            yield from flush()
            marker = fence.group(1)[0] * 3
            code: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(marker):
                code.append(lines[index])
                index += 1
            yield Block("code", lines=code)
        elif not stripped or _RULE.match(line):
            yield from flush()
        elif stripped.startswith("|"):
            yield from flush()
            table_lines = []
            while index < len(lines) and lines[index].strip().startswith("|"):
                table_lines.append(lines[index].strip())
                index += 1
            yield _table_block(table_lines)
            continue
        elif match := _HEADING.match(line):
            yield from flush()
            yield Block("heading", lines=[match.group(1)])
        elif match := _BULLET.match(line):
            yield from flush()
            level = min(len(match.group(1).expandtabs(4)) // _INDENT_PER_LEVEL, _MAX_BULLET_LEVEL)
            yield Block("bullet", lines=[match.group(2)], level=level)
        elif match := _NUMBERED.match(line):
            yield from flush()
            yield Block("numbered", lines=[f"{match.group(2)} {match.group(3)}"])
        else:
            paragraph.append(stripped)
        index += 1
    yield from flush()


def _table_block(lines: list[str]) -> Block:
    rows = [_table_cells(line) for line in lines]
    header = len(rows) > 1 and _is_separator(rows[1])
    if header:
        del rows[1]
    rows = [row for row in rows if not _is_separator(row)]
    return Block("table", rows=rows, header=header)


def _table_cells(line: str) -> list[str]:
    inner = line.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def _is_separator(cells: list[str]) -> bool:
    return bool(cells) and all(_TABLE_SEPARATOR_CELL.match(cell.replace(" ", "")) for cell in cells)


def _add_block(document: DocxDocument, block: Block) -> None:
    if block.kind == "para":
        paragraph = document.add_paragraph()
        for number, line in enumerate(block.lines):
            if number:
                paragraph.add_run().add_break()
            _add_inline(paragraph, line)
    elif block.kind == "heading":
        # Word headings would enter the TOC and the outline; a bold line keeps the chapter structure.
        paragraph = document.add_paragraph()
        paragraph.paragraph_format.keep_with_next = True
        _add_inline(paragraph, block.lines[0], bold=True)
    elif block.kind == "bullet":
        style = "List Bullet" if block.level == 0 else f"List Bullet {block.level + 1}"
        _add_inline(document.add_paragraph(style=style), block.lines[0])
    elif block.kind == "numbered":
        # The number is kept as written: Word's List Number would continue counting across tasks.
        _add_inline(document.add_paragraph(style="List Paragraph"), block.lines[0])
    elif block.kind == "code":
        paragraph = document.add_paragraph()
        run = paragraph.add_run("\n".join(block.lines))
        run.font.name = CODE_FONT
        run.font.size = Pt(9)
    elif block.kind == "table":
        _add_table(document, block)


def _add_table(document: DocxDocument, block: Block) -> None:
    if not block.rows:
        return
    width = max(len(row) for row in block.rows)
    table = document.add_table(rows=len(block.rows), cols=width)
    table.style = "Table Grid"
    for row_number, (row, values) in enumerate(zip(table.rows, block.rows)):
        bold = block.header and row_number == 0
        for cell, value in zip(row.cells, values):
            _add_inline(cell.paragraphs[0], value, bold=bold)
    document.add_paragraph()  # keeps two tables in a row from merging into one in Word


def _add_inline(paragraph: Paragraph, text: str, *, bold: bool = False) -> None:
    """Add `text` as runs, turning **bold**, *italic* and `code` into formatting."""
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            paragraph.add_run(text[position : match.start()]).bold = bold or None
        if match.group("bold") is not None:
            paragraph.add_run(match.group("bold")).bold = True
        elif match.group("code") is not None:
            run = paragraph.add_run(match.group("code"))
            run.font.name = CODE_FONT
            run.bold = bold or None
        else:
            run = paragraph.add_run(match.group("italic"))
            run.italic = True
            run.bold = bold or None
        position = match.end()
    if position < len(text):
        paragraph.add_run(text[position:]).bold = bold or None
