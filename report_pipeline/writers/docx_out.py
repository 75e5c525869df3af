"""report.docx: a Word report with a title page, a real table of contents,
one Heading 1 per objective (each on a new page, its lead as an intro)
and one Heading 2 per task, in sheet order, then an appendix of failed tasks.

Task texts are Markdown from an LLM; a small renderer turns the common parts
into Word structure (bullets, tables, bold) instead of showing raw asterisks.
A task's attachments (data tables, charts) follow its text as real Word tables
and 15 cm pictures, with numbered captions ("Table 2:", "Figure 3:") made the
way Word's own Insert Caption makes them: a SEQ field, so Word can build a
table of figures and cross-references from them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.image.exceptions import UnrecognizedImageError
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.oxml.simpletypes import ST_HpsMeasure, ST_SignedTwipsMeasure, ST_TwipsMeasure
from docx.oxml.table import CT_Tbl
from docx.shared import Cm, Emu, Length, Pt, RGBColor, Twips
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml.etree import SubElement  # python-docx's own XML library

from report_pipeline.models import ReportView, TaskResult
from report_pipeline.writers._text import (
    FIGURE_LABEL,
    FIGURES_CHECK_TITLE,
    TABLE_LABEL,
    CaptionNumbers,
    chapter_heading,
    chapter_intro,
    display_date,
    display_datetime,
    figures_check_note,
    flagged_figures,
    one_line,
    problem_note,
    problems,
    see_figure,
    task_heading,
    written_by_line,
    xml_safe,
)
from report_pipeline.writers.atomic import atomic_path
from report_pipeline.writers.figure_marks import FLAG_CLOSE, FLAG_OPEN, marked_text, split_flagged

if TYPE_CHECKING:
    from docx.oxml.text.paragraph import CT_P

    from .attachments import TaskAttachments

__all__ = ["APPENDIX_TITLE", "PAGE_REFERENCE", "write_docx"]

logger = logging.getLogger(__name__)

APPENDIX_TITLE = "Failed or skipped tasks"
#: Word's own "Insert > Table of Contents": headings 1-3, hyperlinked, no page
#: numbers in web view, keep outline levels.
PAGE_REFERENCE = "PAGEREF"  # each Contents entry's page: a field on the bookmark of its heading
TOC_PLACEHOLDER = "This report has no chapters."
IMAGE_WIDTH = Cm(15)
PROBLEM_COLOUR = RGBColor(0xA0, 0x1C, 0x1C)
QUIET_COLOUR = RGBColor(0x59, 0x59, 0x59)
HEADER_FILL = "E7ECF3"  # table header rows: a light blue-grey that prints well in greyscale
CODE_FONT = "Consolas"
APPENDIX_COLUMNS = ("Objective", "Task", "Status", "Reason")
TITLE_SPACE_BEFORE = Pt(160)  # the title sits a third of the way down its page
DATA_TABLE_FONT = Pt(8)  # attached data tables: up to a dozen columns across 15 cm
TEXT_TABLE_FONT = Pt(9.5)
TABLE_TEXT_STYLE = "Table Text"  # cells of tables from task texts and the appendix
TABLE_DATA_STYLE = "Table Data"  # cells of attached data tables
DATA_TABLE_FONT_MIN = Pt(7)  # a wide data table steps down to this before its words would break
TABLE_DATA_SMALL_STYLE = "Table Data Small"
TOC_INDENT = Cm(0.6)
MAX_COLUMN_CHARS = 40  # a long-text column asks for at most this many characters a line
MIN_COLUMN_CHARS = 3
CHAR_WIDTH_EM = 0.55  # estimated average character width: a little wider than a digit
DATA_CELL_MARGIN = Cm(0.08)  # left/right padding in data tables (Word's default is 0.19 cm)
TEXT_CELL_MARGIN = Cm(0.15)
KEEP_TOGETHER_ROWS = 20  # a table this short never starts at a page's foot and ends overleaf
_EMU_PER_TWIP = 635
_ZERO_WIDTH_SPACE = "\u200b"  # lets Word wrap `renewable_share_pct` at its underscores

# settings.xml children that must come after <w:updateFields> (ECMA-376 CT_Settings order).
_AFTER_UPDATE_FIELDS = (
    "hdrShapeDefaults", "footnotePr", "endnotePr", "compat", "docVars", "rsids",
    "attachedSchema", "themeFontLang", "clrSchemeMapping", "doNotIncludeSubdocsInStats",
    "doNotAutoCompressPictures", "forceUpgrade", "captions", "readModeInkLockDown",
    "smartTagType", "shapeDefaults", "doNotEmbedSmartTags", "decimalSymbol", "listSeparator",
)
_MATH_PR = "{http://schemas.openxmlformats.org/officeDocument/2006/math}mathPr"

# Tags and attributes of the XML built directly (see `_add_run`), in Clark notation.
_P, _PPR, _PSTYLE, _KEEP_NEXT, _SPACING, _IND, _JC = (
    qn(f"w:{tag}") for tag in ("p", "pPr", "pStyle", "keepNext", "spacing", "ind", "jc")
)
_R, _RPR, _RFONTS, _BOLD, _ITALIC, _COLOR, _SIZE, _HIGHLIGHT = (
    qn(f"w:{tag}") for tag in ("r", "rPr", "rFonts", "b", "i", "color", "sz", "highlight")
)
_TEXT, _TAB, _BREAK, _FLD_CHAR, _INSTR_TEXT = (qn(f"w:{tag}") for tag in ("t", "tab", "br", "fldChar", "instrText"))
_VAL, _ASCII, _H_ANSI, _LEFT, _BEFORE, _AFTER = (
    qn(f"w:{name}") for name in ("val", "ascii", "hAnsi", "left", "before", "after")
)
_FLD_CHAR_TYPE, _DIRTY, _XML_SPACE = qn("w:fldCharType"), qn("w:dirty"), qn("xml:space")
_BOOKMARK_START, _BOOKMARK_END, _TABS, _ID, _NAME, _LEADER, _POS = (
    qn(f"w:{name}") for name in ("bookmarkStart", "bookmarkEnd", "tabs", "id", "name", "leader", "pos")
)
_TR, _TR_PR, _TC, _TC_PR, _TC_W, _GRID_COL, _CANT_SPLIT, _TBL_HEADER, _SHADING = (
    qn(f"w:{tag}") for tag in ("tr", "trPr", "tc", "tcPr", "tcW", "gridCol", "cantSplit", "tblHeader", "shd")
)
_W_WIDTH, _W_TYPE, _COLOUR_ATTR, _FILL = (qn(f"w:{name}") for name in ("w", "type", "color", "fill"))
_RUN_BREAKS = re.compile(r"([\t\r\n])")
_SMALL_SIZE = ST_HpsMeasure.convert_to_xml(Pt(9))  # notes and code: "18" half-points
_QUIET = str(QUIET_COLOUR)
_PROBLEM = str(PROBLEM_COLOUR)


def write_docx(
    path: str | os.PathLike[str],
    report: ReportView,
    *,
    attachments: Mapping[str, TaskAttachments] | None = None,
) -> Path:
    """Build the Word report and save it to `path` atomically; return the path.

    `attachments` (task key -> tables, charts, notes) are placed after each task's
    text; a missing or unreadable chart becomes a visible note, not a failed report.
    """
    document = _build(report, attachments or {})
    target = Path(path)
    with atomic_path(target) as tmp:
        document.save(str(tmp))
    return target


class _FastDocument:
    """A python-docx Document whose paragraphs and tables append in O(1).

    python-docx inserts each paragraph or table by scanning the body for
    `w:sectPr`, resolves the style by name each time and finds the text width
    by scanning for every section: quadratic in the report's length (a
    2,000-task report took 12 s of a 14 s run). Here new blocks go just before
    the remembered `w:sectPr`, and style ids and the text width are looked up
    once. `add_p` returns the bare `w:p`, which `_add_run` fills: the report's
    text is built as XML directly (see there). The XML is the same; everything
    else is delegated to the real document.
    """

    def __init__(self, document: DocxDocument) -> None:
        self._document = document
        self._body_element = document.element.body
        self._sect_pr = self._body_element.sectPr  # found once: a lookup scans every child
        self._style_ids: dict[str, str] = {}
        self.text_width: Length = document._block_width  # page width minus margins, found once

    def __getattr__(self, name: str):
        return getattr(self._document, name)

    def _style_id(self, name: str) -> str:
        if name not in self._style_ids:
            self._style_ids[name] = self._document.styles[name].style_id
        return self._style_ids[name]

    def _append(self, element) -> None:
        if self._sect_pr is not None:
            self._sect_pr.addprevious(element)
        else:
            self._body_element.append(element)

    def add_p(self, text: str = "", style: str | None = None) -> CT_P:
        """A new `w:p` at the end of the body (with its style and text): the element, no proxy."""
        element = SubElement(self._body_element, _P)  # appended after w:sectPr, then moved before it
        self._append(element)
        if style is not None:
            SubElement(SubElement(element, _PPR), _PSTYLE, {_VAL: self._style_id(style)})
        if text:
            _add_run(element, text)
        return element

    def add_paragraph(self, text: str = "", style: str | None = None) -> Paragraph:
        return Paragraph(self.add_p(text, style), self._document._body)

    def add_heading(self, text: str = "", level: int = 1) -> Paragraph:
        return Paragraph(self.add_heading_p(text, level), self._document._body)

    def add_heading_p(self, text: str = "", level: int = 1) -> CT_P:
        return self.add_p(text, "Title" if level == 0 else f"Heading {level}")

    def add_table(self, rows: int, cols: int, style: str | None = None) -> Table:
        element = CT_Tbl.new_tbl(rows, cols, self.text_width)
        self._append(element)
        table = Table(element, self._document._body)
        if style is not None:
            element.tblStyle_val = self._style_id(style)
        return table


def _build(report: ReportView, attachments: Mapping[str, TaskAttachments], *,
           body: Callable[[_FastDocument, TaskResult], None] | None = None) -> DocxDocument:
    """The document; `body` writes each task's text (`writers/tracked.py` passes one that marks
    the changes against a base run as Word tracked changes)."""
    body = body or _add_task_body
    document = _FastDocument(Document())
    _set_properties(document, report)
    _set_styles(document)
    _add_title_page(document, report)
    _add_page_footer(document, report)
    _add_table_of_contents(document, report)
    numbers = CaptionNumbers()
    marks = iter(range(len(_toc_entries(report))))  # each heading's bookmark, in the Contents' order
    for chapter in report.chapters:
        _bookmark(document.add_heading_p(xml_safe(chapter_heading(chapter)), level=1), next(marks))
        intro = chapter_intro(chapter)
        if intro:
            _add_run(document.add_p(), xml_safe(intro), italic=True)
        for result in chapter.results:
            _bookmark(document.add_heading_p(xml_safe(task_heading(result)), level=2), next(marks))
            body(document, result)
            found = attachments.get(result.key)
            if found:
                _add_attachments(document, found, numbers)
    if problems(report):
        _add_appendix(document, report, next(marks))
    if figures_check_note(report) is not None:
        _add_figures_appendix(document, report, next(marks))
    return document


def _toc_mark(number: int) -> str:
    return f"_Toc_rp{number}"


def _bookmark(p: CT_P, number: int) -> None:
    """Wrap the heading's text in a bookmark the Contents' PAGEREF fields point at."""
    start = SubElement(p, _BOOKMARK_START, {_ID: str(number), _NAME: _toc_mark(number)})
    p_pr = p.find(_PPR)
    p.remove(start)
    p.insert(1 if p_pr is not None else 0, start)
    SubElement(p, _BOOKMARK_END, {_ID: str(number)})


def _set_properties(document: DocxDocument, report: ReportView) -> None:
    props = document.core_properties
    props.title = xml_safe(report.project_name)
    props.subject = f"run {report.run_id}"
    props.author = "report-pipeline"
    props.created = datetime.fromtimestamp(report.generated_at, tz=timezone.utc).replace(tzinfo=None)


def _set_styles(document: DocxDocument) -> None:
    """Each chapter (and the appendix) starts on a new page; headings stay with their text;
    table cells get their own paragraph styles (see `_finish_table`)."""
    styles = document.styles
    heading = styles["Heading 1"].paragraph_format
    heading.page_break_before = True
    heading.keep_with_next = True
    styles["Heading 2"].paragraph_format.keep_with_next = True
    for name, size in ((TABLE_TEXT_STYLE, TEXT_TABLE_FONT), (TABLE_DATA_STYLE, DATA_TABLE_FONT),
                       (TABLE_DATA_SMALL_STYLE, DATA_TABLE_FONT_MIN)):
        style = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
        style.base_style = styles["Normal"]
        style.font.size = size
        style.paragraph_format.space_before = Pt(0)
        style.paragraph_format.space_after = Pt(0)


def _add_title_page(document: DocxDocument, report: ReportView) -> None:
    title = document.add_heading(xml_safe(report.project_name) or "Report", level=0)
    title.paragraph_format.space_before = TITLE_SPACE_BEFORE
    document.add_paragraph(display_date(report.generated_at), style="Subtitle")
    details = [
        f"Generated {display_datetime(report.generated_at)}",
        f"Run {report.run_id}",
        written_by_line(report),
    ]
    for line in details:
        paragraph = document.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(2)
        run = paragraph.add_run(xml_safe(line))
        run.font.size = Pt(9)
        run.font.color.rgb = QUIET_COLOUR
    document.add_page_break()


def _add_page_footer(document: DocxDocument, report: ReportView) -> None:
    """`Project name · 7` at the foot of every page but the title page (a PAGE field)."""
    footer_style = document.styles["Footer"].font  # the field's number takes the paragraph's look
    footer_style.size = Pt(8)
    footer_style.color.rgb = QUIET_COLOUR
    section = document.sections[0]
    section.different_first_page_header_footer = True  # the title page stays bare
    paragraph = section.footer.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    name = one_line(xml_safe(report.project_name))
    if name:
        paragraph.add_run(f"{name} · ")
    _field_start(paragraph, "PAGE")
    paragraph.add_run("1")  # Word and LibreOffice put each page's number here
    _field_char(paragraph, "end")


def _add_table_of_contents(document: DocxDocument, report: ReportView) -> None:
    """Contents whose page numbers Word and LibreOffice both fill in.

    python-docx cannot lay out pages, so each entry (every heading, in order) ends in
    a dot leader and a `PAGEREF` field to a bookmark on its heading, as the entries
    of Word's own TOC do. They are not wrapped in a TOC field: LibreOffice keeps a
    TOC field's stored text as it is (no page numbers in a PDF made with it, as the
    first report's readers found), while it computes a PAGEREF when it lays the
    pages out. Word is asked to update fields on open, which fills the same fields.
    The entries are written from the same headings as the body, so they never need
    Word's "Update table".
    """
    document.add_p("Contents", style="TOC Heading")
    entries = _toc_entries(report)
    if not entries:
        _add_run(document.add_p(), TOC_PLACEHOLDER, italic=True)
    for number, (level, text) in enumerate(entries):
        paragraph = document.add_p()
        _toc_entry_format(paragraph, level, first=not number, tab=document.text_width)
        _add_run(paragraph, xml_safe(text), bold=level == 1)
        SubElement(SubElement(paragraph, _R), _TAB)
        _field_start(paragraph, f"{PAGE_REFERENCE} {_toc_mark(number)} \\h", dirty=True)
        _add_run(paragraph, "", bold=level == 1)
        _field_char(paragraph, "end")
    _update_fields_on_open(document)
    # no page break here: Heading 1 starts a new page (see _set_styles)


def _toc_entries(report: ReportView) -> list[tuple[int, str]]:
    entries: list[tuple[int, str]] = []
    for chapter in report.chapters:
        entries.append((1, chapter_heading(chapter)))
        entries.extend((2, task_heading(result)) for result in chapter.results)
    if problems(report):
        entries.append((1, APPENDIX_TITLE))
    if figures_check_note(report) is not None:
        entries.append((1, FIGURES_CHECK_TITLE))
    return entries


# (is a chapter, is the first entry) -> w:ind left, w:spacing after and before, in twips
_TOC_FORMATS = {
    (chapter, first): (
        ST_SignedTwipsMeasure.convert_to_xml(0 if chapter else TOC_INDENT),
        ST_TwipsMeasure.convert_to_xml(Pt(2 if chapter else 0)),
        ST_TwipsMeasure.convert_to_xml(Pt(6 if chapter and not first else 0)),
    )
    for chapter in (True, False)
    for first in (True, False)
}


def _toc_entry_format(p: CT_P, level: int, *, first: bool, tab: Length) -> None:
    """A chapter entry in bold with 6 pt above (none above the first), a task entry indented; the page
    number at a right tab with a dot leader."""
    indent, after, before = _TOC_FORMATS[level == 1, first]
    p_pr = SubElement(p, _PPR)
    p.insert(0, p_pr)  # the first entry already holds the field's start
    tabs = SubElement(p_pr, _TABS)
    SubElement(tabs, _TAB, {_VAL: "right", _LEADER: "dot", _POS: ST_TwipsMeasure.convert_to_xml(tab)})
    SubElement(p_pr, _SPACING, {_AFTER: after, _BEFORE: before})
    SubElement(p_pr, _IND, {_LEFT: indent})


def _field_char(paragraph: Paragraph | CT_P, kind: str, *, dirty: bool = False) -> None:
    """A run holding a `w:fldChar` of `kind` (begin, separate, end); `paragraph` a proxy or a `w:p`."""
    attributes = {_FLD_CHAR_TYPE: kind, _DIRTY: "true"} if dirty else {_FLD_CHAR_TYPE: kind}
    SubElement(SubElement(_p_element(paragraph), _R), _FLD_CHAR, attributes)


def _field_start(paragraph: Paragraph | CT_P, instruction: str, *, dirty: bool = False) -> None:
    """begin / instrText / separate: what follows is the field's stored result, then `end`."""
    _field_char(paragraph, "begin", dirty=dirty)
    instr = SubElement(SubElement(_p_element(paragraph), _R), _INSTR_TEXT, {_XML_SPACE: "preserve"})
    instr.text = f" {instruction} "
    _field_char(paragraph, "separate")


def _p_element(paragraph: Paragraph | CT_P) -> CT_P:
    return paragraph._p if isinstance(paragraph, Paragraph) else paragraph


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


def _add_task_body(document: _FastDocument, result: TaskResult) -> None:
    if result.status != "done":
        label, reason = problem_note(result)
        paragraph = document.add_p()
        _add_run(paragraph, f"{label}: ", bold=True, colour=_PROBLEM)
        _add_run(paragraph, xml_safe(reason))
        return
    text = xml_safe(marked_text(result)).strip()  # untraced figures come out highlighted (_add_run)
    if not text:
        _add_run(document.add_p(), "(The model returned no text.)", italic=True)
        return
    for block in parse_blocks(text):
        _add_block(document, block)


# --- attachments: data tables, charts, notes ----------------------------------------------


def _add_attachments(document: DocxDocument, found: TaskAttachments, numbers: CaptionNumbers) -> None:
    """Tables (caption above, as tables are read top-down), then charts (caption below), then notes."""
    for table in found.tables:
        caption = _add_caption(document, TABLE_LABEL, numbers.next_table(), table.caption)
        caption.paragraph_format.keep_with_next = True
        for block in parse_blocks(xml_safe(table.markdown)):
            if block.kind == "table":
                for number, part in enumerate(_split_wide(block, document.text_width)):
                    if number:
                        _add_note(document, "(continued: the next columns, by the same first column)")
                    _add_table(document, part, data=True)
            else:  # the "(showing the first 200 of 950 rows)" line under a cut table
                _add_note(document, " ".join(block.lines))
    for image in found.images:
        if _add_image(document, image.path):
            _add_caption(document, FIGURE_LABEL, numbers.next_figure(image), image.caption)
    for earlier in found.see_also:
        number = numbers.figure_of(earlier)
        if number is not None:
            _add_note(document, see_figure(number, earlier.caption))
    for note in found.notes:
        _add_note(document, note)


def _add_image(document: DocxDocument, image_path: Path) -> bool:
    """The picture, centred, 15 cm wide; a visible note instead when it cannot be read."""
    paragraph = document.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    try:
        paragraph.add_run().add_picture(str(image_path), width=IMAGE_WIDTH)
    except (OSError, UnrecognizedImageError) as exc:
        logger.warning("image %s left out of the report: %s", image_path, exc)
        paragraph.add_run(f"[image not available: {image_path.name}]").italic = True
        return False
    paragraph.paragraph_format.keep_with_next = True  # never a picture at a page's foot, its caption overleaf
    return True


def _add_caption(document: _FastDocument, label: str, number: int, text: str) -> Paragraph:
    """`Figure 3: text` in the Caption style, the number a SEQ field as Word's Insert Caption makes."""
    paragraph = document.add_p(style="Caption")
    _add_run(paragraph, f"{label} ")
    _field_start(paragraph, f"SEQ {label} \\* ARABIC")
    _add_run(paragraph, str(number))
    _field_char(paragraph, "end")
    _add_run(paragraph, f": {xml_safe(one_line(text))}")
    return Paragraph(paragraph, document._body)


def _add_note(document: _FastDocument, text: str) -> None:
    _add_run(document.add_p(), xml_safe(text), italic=True, size=_SMALL_SIZE, colour=_QUIET)


def _add_appendix(document: DocxDocument, report: ReportView, mark: int) -> None:
    _bookmark(document.add_heading(APPENDIX_TITLE, level=1)._p, mark)
    rows = problems(report)
    table = document.add_table(rows=1 + len(rows), cols=len(APPENDIX_COLUMNS), style="Table Grid")
    for cell, name in zip(table.rows[0].cells, APPENDIX_COLUMNS):
        cell.paragraphs[0].add_run(name).bold = True
    for row, (chapter, result) in zip(table.rows[1:], rows):
        _, reason = problem_note(result)
        values = (chapter_heading(chapter), f"{task_heading(result)} ({result.key})", result.status, reason)
        for cell, value in zip(row.cells, values):
            cell.text = xml_safe(value)
    texts = [[c.text for c in row.cells] for row in table.rows]
    _finish_table(document, table, texts, header=True, right=[False] * len(APPENDIX_COLUMNS))


def _add_figures_appendix(document: DocxDocument, report: ReportView, mark: int) -> None:
    _bookmark(document.add_heading(FIGURES_CHECK_TITLE, level=1)._p, mark)
    _add_run(document.add_p(), xml_safe(figures_check_note(report) or ""))
    flagged = flagged_figures(report)
    if not flagged:
        return
    columns = ("Section", "Figure", "Sentence")
    table = document.add_table(rows=1 + len(flagged), cols=len(columns), style="Table Grid")
    for cell, name in zip(table.rows[0].cells, columns):
        cell.paragraphs[0].add_run(name).bold = True
    for row, (result, figure) in zip(table.rows[1:], flagged):
        for cell, value in zip(row.cells, (f"{task_heading(result)} ({result.key})", figure.text, figure.sentence)):
            cell.text = xml_safe(value)
    texts = [[c.text for c in row.cells] for row in table.rows]
    _finish_table(document, table, texts, header=True, right=[False] * len(columns))


# --- a small Markdown reader for task texts -------------------------------------------


@dataclass
class Block:
    """One piece of a task text: kind is para, heading, bullet, numbered, table or code."""

    kind: str
    lines: list[str] = field(default_factory=list)  # para/code: lines; others: one line
    level: int = 0  # bullet nesting depth
    rows: list[list[str]] = field(default_factory=list)  # table rows, header first
    header: bool = False  # table: whether the first row is a header
    right: list[bool] = field(default_factory=list)  # table: right-aligned columns (`---:`)


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
    right: list[bool] = []
    if header:
        right = [cell.replace(" ", "").endswith(":") and not cell.strip().startswith(":") for cell in rows[1]]
        del rows[1]
    rows = [row for row in rows if not _is_separator(row)]
    return Block("table", rows=rows, header=header, right=right)


def _table_cells(line: str) -> list[str]:
    inner = line.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def _is_separator(cells: list[str]) -> bool:
    return bool(cells) and all(_TABLE_SEPARATOR_CELL.match(cell.replace(" ", "")) for cell in cells)


def _add_block(document: _FastDocument, block: Block) -> None:
    if block.kind == "para":
        paragraph = document.add_p()
        for number, line in enumerate(block.lines):
            if number:
                SubElement(SubElement(paragraph, _R), _BREAK)
            _add_inline(paragraph, line)
    elif block.kind == "heading":
        # Word headings would enter the TOC and the outline; a bold line keeps the chapter structure.
        paragraph = document.add_p()
        SubElement(SubElement(paragraph, _PPR), _KEEP_NEXT)
        _add_inline(paragraph, block.lines[0], bold=True)
    elif block.kind == "bullet":
        style = "List Bullet" if block.level == 0 else f"List Bullet {block.level + 1}"
        _add_inline(document.add_p(style=style), block.lines[0])
    elif block.kind == "numbered":
        # The number is kept as written: Word's List Number would continue counting across tasks.
        _add_inline(document.add_p(style="List Paragraph"), block.lines[0])
    elif block.kind == "code":
        _add_run(document.add_p(), "\n".join(block.lines), font=CODE_FONT, size=_SMALL_SIZE)
    elif block.kind == "table":
        _add_table(document, block)


def _add_table(document: DocxDocument, block: Block, *, data: bool = False) -> None:
    """A Markdown table as a Word table; `data`: an attached data table (small type,
    header wrapping at underscores, natural width) rather than one from the task text."""
    if not block.rows:
        return
    width = max(len(row) for row in block.rows)
    table = document.add_table(rows=len(block.rows), cols=width, style="Table Grid")
    # rows and cells straight from the XML: a new table has no merged cells, and python-docx's
    # `row.cells` works out every cell's grid span to find them
    for row_number, (tr, values) in enumerate(zip(table._tbl.iterchildren(_TR), block.rows)):
        bold = block.header and row_number == 0
        for tc, value in zip(tr.iterchildren(_TC), values):
            if bold and data:
                value = value.replace("_", "_" + _ZERO_WIDTH_SPACE)
            _add_inline(tc.find(_P), value, bold=bold)
    right = (block.right + [False] * width)[:width]
    _finish_table(document, table, block.rows, header=block.header, right=right, data=data, fill_width=not data)
    document.add_p()  # keeps two tables in a row from merging into one in Word


def _split_wide(block: Block, text_width: Length) -> list[Block]:
    """A data table too wide for the page even at the smallest type, as parts that fit, each
    starting with the first column (the year, the country) so every part reads on its own."""
    width = max((len(row) for row in block.rows), default=0)
    needs = _column_needs(block.rows, width, header=block.header, font_size=DATA_TABLE_FONT_MIN,
                          margin=DATA_CELL_MARGIN)
    if width < 3 or sum(needs) <= text_width:
        return [block]
    parts: list[list[int]] = []
    current: list[int] = []
    for column in range(1, width):
        if current and needs[0] + sum(needs[c] for c in current) + needs[column] > text_width:
            parts.append(current)
            current = []
        current.append(column)
    parts.append(current)
    right = (block.right + [False] * width)[:width]
    return [Block("table", rows=[[row[c] if c < len(row) else "" for c in (0, *columns)] for row in block.rows],
                  header=block.header, right=[right[c] for c in (0, *columns)]) for columns in parts]


def _finish_table(
    document: _FastDocument,
    table: Table,
    texts: Sequence[Sequence[str]],
    *,
    header: bool,
    right: Sequence[bool],
    data: bool = False,
    fill_width: bool = True,
) -> None:
    """Make a table readable in print: column widths fitted to the text, a shaded header
    row repeated on every page, rows that never split, a short table kept on one page,
    numbers right-aligned.

    Widths are fixed (not Word's autofit) so Word and LibreOffice lay the table out
    alike; `fill_width` stretches it to the text width, else it keeps its natural width.
    Cell text takes a paragraph style (size, no spacing) rather than direct formatting:
    one attribute per cell instead of four, and a reader can restyle every table at once.
    """
    tbl = table._tbl
    grid = list(tbl.tblGrid.iterchildren(_GRID_COL))
    font_size, margin = (DATA_TABLE_FONT, DATA_CELL_MARGIN) if data else (TEXT_TABLE_FONT, TEXT_CELL_MARGIN)
    style = TABLE_DATA_STYLE if data else TABLE_TEXT_STYLE
    needs = _column_needs(texts, len(grid), header=header, font_size=font_size, margin=margin)
    text_width = sum(Twips(int(column.get(_W_WIDTH, 0))) for column in grid)  # new tables span the text width
    if data and sum(needs) > text_width:  # too wide: a smaller type, so words and numbers stay whole
        font_size, style = DATA_TABLE_FONT_MIN, TABLE_DATA_SMALL_STYLE
        needs = _column_needs(texts, len(grid), header=header, font_size=font_size, margin=margin)
    style_id = document._style_id(style)
    widths = _fit_widths(needs, table_width=text_width, fill=fill_width)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    _set_table_geometry(table, sum(widths, Emu(0)), margin)
    twips = [ST_TwipsMeasure.convert_to_xml(width) for width in widths]
    for column, width in zip(grid, twips):
        column.set(_W_WIDTH, width)  # LibreOffice reads the grid...
    rows = list(tbl.iterchildren(_TR))
    last = len(rows) - 1
    keep_together = last < KEEP_TOGETHER_ROWS
    for row_number, tr in enumerate(rows):
        is_header = header and row_number == 0
        _row_properties(tr, header=is_header)
        for tc, width, align_right in zip(tr.iterchildren(_TC), twips, right):
            _set_cell_width(tc, width)  # ...Word reads each cell
            if is_header:
                _shade(tc, HEADER_FILL)
            for p in tc.iterchildren(_P):
                # keep-with-next on every row but the last is Word's way to keep a table on one page
                _set_cell_paragraph(p, style_id, keep_with_next=keep_together and row_number < last, right=align_right)


def _column_needs(
    texts: Sequence[Sequence[str]], count: int, *, header: bool, font_size: Length, margin: Length
) -> list[int]:
    """Each column's width for its longest text on one line (capped), in EMU.

    A header counts by its longest word (`renewable_share_pct` wraps at its
    underscores), so a long name over a column of short numbers does not widen it.
    The character width is an estimate (python-docx cannot measure text): a little
    wider than a digit, so numbers never wrap.
    """
    char = font_size * CHAR_WIDTH_EM
    needs = []
    for index in range(count):
        longest = max(
            (
                _header_length(row[index]) if header and number == 0 else len(row[index].strip())
                for number, row in enumerate(texts)
                if index < len(row)
            ),
            default=0,
        )
        characters = min(MAX_COLUMN_CHARS, max(MIN_COLUMN_CHARS, longest)) + 0.5
        needs.append(int(characters * char + 2 * margin))
    return needs


def _header_length(text: str) -> int:
    """The longest word of a header in characters, widened for bold type (an eighth, as the example's
    `Renewable` broke in LibreOffice at one character more), plus one for the `_` it wraps after."""
    return max((math.ceil(len(word) * 1.125) + 1 for word in re.split(r"[\s_]+", text.strip())), default=0)


def _fit_widths(needs: Sequence[int], *, table_width: int, fill: bool) -> list[Length]:
    """Widths adding up to at most `table_width`: narrow columns get what they need,
    wide ones share the rest equally (water-filling), so a year or a status column
    never wraps because a long text column wanted the room."""
    count = len(needs)
    if sum(needs) <= table_width:
        if not fill:
            return [Emu(n) for n in needs]
        extra = (table_width - sum(needs)) / max(1, sum(needs))
        return [Emu(int(n * (1 + extra))) for n in needs]
    widths = [0] * count
    remaining = table_width
    order = sorted(range(count), key=lambda i: needs[i])
    for left, index in zip(range(count, 0, -1), order):
        widths[index] = min(needs[index], remaining // left)
        remaining -= widths[index]
    return [Emu(w) for w in widths]


def _set_table_geometry(table: Table, width: Length, margin: Length) -> None:
    """`w:tblW` (total width) and `w:tblCellMar` (left/right cell padding), in schema order."""
    tbl_pr = table._tbl.tblPr
    tbl_w = tbl_pr.find(qn("w:tblW"))
    if tbl_w is not None:
        tbl_w.set(qn("w:type"), "dxa")
        tbl_w.set(qn("w:w"), str(int(width / _EMU_PER_TWIP)))
    cell_margins = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        element = OxmlElement(f"w:{side}")
        element.set(qn("w:w"), str(int(margin / _EMU_PER_TWIP)))
        element.set(qn("w:type"), "dxa")
        cell_margins.append(element)
    look = tbl_pr.find(qn("w:tblLook"))
    if look is not None:
        look.addprevious(cell_margins)
    else:
        tbl_pr.append(cell_margins)


def _set_cell_paragraph(p, style_id: str, *, keep_with_next: bool, right: bool) -> None:
    """`w:pPr` with style, keep-with-next and alignment, in schema order, built directly:
    python-docx's property setters search the element for each child's place, which
    made a report of 2,000 small tables spend most of its time here."""
    p_pr = p.find(_PPR)
    if p_pr is not None:  # not one of ours: let python-docx keep its order
        p.style = style_id
        paragraph_format = Paragraph(p, None).paragraph_format
        paragraph_format.keep_with_next = keep_with_next or None
        if right:
            paragraph_format.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        return
    p_pr = SubElement(p, _PPR)
    p.insert(0, p_pr)
    SubElement(p_pr, _PSTYLE, {_VAL: style_id})
    if keep_with_next:
        SubElement(p_pr, _KEEP_NEXT)
    if right:
        SubElement(p_pr, _JC, {_VAL: "right"})


def _row_properties(tr, *, header: bool) -> None:
    """`w:cantSplit` for every row, `w:tblHeader` (repeat on each page) for the header; schema order."""
    tr_pr = tr.find(_TR_PR)
    if tr_pr is None:
        tr_pr = SubElement(tr, _TR_PR)
        tr.insert(0, tr_pr)  # a new row has no w:tblPrEx to go before it
    SubElement(tr_pr, _CANT_SPLIT)
    if header:
        SubElement(tr_pr, _TBL_HEADER)


def _set_cell_width(tc, twips: str) -> None:
    """What `cell.width = ...` writes: `w:tcPr/w:tcW` in twips (a new table's cells have both)."""
    tc_pr = tc.find(_TC_PR)
    width = tc_pr.find(_TC_W) if tc_pr is not None else None
    if width is None:
        width = tc.get_or_add_tcPr().get_or_add_tcW()
    width.set(_W_TYPE, "dxa")
    width.set(_W_WIDTH, twips)


def _shade(tc, fill: str) -> None:
    tc_pr = tc.find(_TC_PR)
    SubElement(tc_pr if tc_pr is not None else tc.get_or_add_tcPr(), _SHADING, {_VAL: "clear", _COLOUR_ATTR: "auto", _FILL: fill})


def _add_inline(paragraph: CT_P, text: str, *, bold: bool = False) -> None:
    """Add `text` to the `w:p` as runs, turning **bold**, *italic* and `code` into formatting."""
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            _add_run(paragraph, text[position : match.start()], bold=bold)
        if match.group("bold") is not None:
            _add_run(paragraph, match.group("bold"), bold=True)
        elif match.group("code") is not None:
            _add_run(paragraph, match.group("code"), font=CODE_FONT, bold=bold)
        else:
            _add_run(paragraph, match.group("italic"), italic=True, bold=bold)
        position = match.end()
    if position < len(text):
        _add_run(paragraph, text[position:], bold=bold)


def _add_run(
    paragraph: CT_P,
    text: str = "",
    *,
    bold: bool = False,
    italic: bool = False,
    font: str | None = None,
    size: str | None = None,
    colour: str | None = None,
    highlight: bool = False,
) -> None:
    """Append a `w:r` to the `w:p`: the XML python-docx's `add_run(text)` and font setters make,
    built directly (their setters search the element for each child's place, and the text
    setter reads the text a character at a time: most of a long report's time).

    Run properties go in schema order (rFonts, b, i, color, sz, highlight); `size` is in half-points and
    `colour` an RRGGBB string, as they appear in the XML. A run without formatting has no
    `w:rPr` at all, where python-docx's `run.bold = None` left an empty one.
    """
    if FLAG_OPEN in text or FLAG_CLOSE in text:  # an untraced figure inside: its own run, highlighted
        for piece, flagged in split_flagged(text):
            _add_run(paragraph, piece, bold=bold, italic=italic, font=font, size=size, colour=colour,
                     highlight=flagged)
        return
    run = SubElement(paragraph, _R)
    if bold or italic or font or size or colour or highlight:
        properties = SubElement(run, _RPR)
        if font:
            SubElement(properties, _RFONTS, {_ASCII: font, _H_ANSI: font})
        if bold:
            SubElement(properties, _BOLD)
        if italic:
            SubElement(properties, _ITALIC)
        if colour:
            SubElement(properties, _COLOR, {_VAL: colour})
        if size:
            SubElement(properties, _SIZE, {_VAL: size})
        if highlight:
            SubElement(properties, _HIGHLIGHT, {_VAL: "yellow"})
    if text:
        _add_text(run, text)


def _add_text(run, text: str) -> None:
    """`text` as python-docx writes it: each tab a `w:tab`, each CR or LF a `w:br`, the rest `w:t`
    (space-preserving when it starts or ends with whitespace)."""
    pieces = _RUN_BREAKS.split(text) if ("\t" in text or "\n" in text or "\r" in text) else (text,)
    for piece in pieces:
        if piece == "\t":
            SubElement(run, _TAB)
        elif piece == "\n" or piece == "\r":
            SubElement(run, _BREAK)
        elif piece:
            element = SubElement(run, _TEXT)
            element.text = piece
            if len(piece.strip()) < len(piece):
                element.set(_XML_SPACE, "preserve")
