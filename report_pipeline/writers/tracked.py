"""report.docx with each task's text marked against the base run's as Word tracked changes.

A director opens it in Word or LibreOffice and accepts or rejects each change: deleted words
are `w:del` runs (their text in `w:delText`), inserted words `w:ins` runs, both authored
"report-pipeline" and dated when the run wrote its report. The document is otherwise the one
`docx_out` builds (same title page, Contents, chapters, tables, charts): only each task's body
is written here, through `docx_out._build(body=...)`.

Word level, inside the Markdown structure: the two texts are cut into the same blocks the
clean document renders (paragraphs, bullets, tables, code); blocks are matched in order,
a matched paragraph gets a word-level diff (`compare.words`) with its bold, italic and code
kept, a matched table a word-level diff per cell with whole rows inserted or deleted, and a
block only one side has is inserted or deleted whole (its paragraph mark too, so accepting
a deletion leaves no empty paragraph).
"""

from __future__ import annotations

import difflib
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from lxml.etree import SubElement

from ..compare.words import Piece, word_diff
from ..models import ReportView, TaskResult
from ._text import xml_safe
from .atomic import atomic_path
from .docx_out import (
    _INLINE,
    _P,
    _PPR,
    _R,
    _SMALL_SIZE,
    _TC,
    _TEXT,
    _TR,
    _TR_PR,
    CODE_FONT,
    Block,
    _add_block,
    _add_run,
    _add_table,
    _add_task_body,
    _build,
    _FastDocument,
    parse_blocks,
)

if TYPE_CHECKING:
    from docx.oxml.text.paragraph import CT_P

    from .attachments import TaskAttachments

__all__ = ["AUTHOR", "write_tracked_docx"]

AUTHOR = "report-pipeline"
#: Revision ids start here: bookmarks (one per heading) take the small numbers, and Word wants
#: the ids of a document's annotations distinct.
_FIRST_ID = 100_000
_TEXT_KINDS = frozenset({"para", "heading", "bullet", "numbered", "code"})
_INS, _DEL, _DEL_TEXT, _RPR = ("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag
                               for tag in ("ins", "del", "delText", "rPr"))
_ID, _AUTHOR, _DATE = ("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + name
                       for name in ("id", "author", "date"))


def write_tracked_docx(
    path: str | os.PathLike[str],
    report: ReportView,
    *,
    base_texts: Mapping[str, str],
    attachments: Mapping[str, TaskAttachments] | None = None,
) -> Path:
    """The report with each done task's text as tracked changes against `base_texts` (task key ->
    the base run's text; a task it lacks is inserted whole), saved atomically to `path`."""
    revisions = _Revisions(AUTHOR, datetime.fromtimestamp(report.generated_at, tz=timezone.utc))

    def body(document: _FastDocument, result: TaskResult) -> None:
        _tracked_body(document, result, base_texts.get(result.key, ""), revisions)

    document = _build(report, attachments or {}, body=body)
    target = Path(path)
    with atomic_path(target) as tmp:
        document.save(str(tmp))
    return target


class _Revisions:
    """Makes the `w:ins` / `w:del` elements: one author, one date, ids counted up."""

    def __init__(self, author: str, when: datetime) -> None:
        self._attributes = {_AUTHOR: author, _DATE: when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        self._ids = itertools.count(_FIRST_ID)

    def mark(self, parent, tag: str):
        return SubElement(parent, tag, {_ID: str(next(self._ids)), **self._attributes})


@dataclass(frozen=True)
class _Look:
    """A run's formatting, as `docx_out._add_run` takes it."""

    bold: bool = False
    italic: bool = False
    font: str | None = None
    size: str | None = None


# -- a task's body ----------------------------------------------------------------------------


def _tracked_body(document: _FastDocument, result: TaskResult, old: str, revisions: _Revisions) -> None:
    new_text = xml_safe(result.text).strip()
    old_text = xml_safe(old).strip()
    if result.status != "done" or not new_text or old_text == new_text:
        _add_task_body(document, result)  # nothing to mark: a failed task's note, or the same text
        return
    old_blocks = list(parse_blocks(old_text)) if old_text else []
    new_blocks = list(parse_blocks(new_text))
    matcher = difflib.SequenceMatcher(None, [_key(b) for b in old_blocks], [_key(b) for b in new_blocks],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for block in new_blocks[j1:j2]:
                _add_block(document, block)
            continue
        for before, after in itertools.zip_longest(old_blocks[i1:i2], new_blocks[j1:j2]):
            if before is not None and after is not None and _comparable(before, after):
                _changed_block(document, before, after, revisions)
                continue
            if before is not None:
                _changed_block(document, before, None, revisions)
            if after is not None:
                _changed_block(document, None, after, revisions)


def _key(block: Block) -> tuple:
    return (block.kind, block.level, tuple(block.lines), tuple(tuple(row) for row in block.rows), block.header)


def _comparable(before: Block, after: Block) -> bool:
    """Two blocks whose words are diffed in place: two tables, or two pieces of running text."""
    if before.kind == "table" or after.kind == "table":
        return before.kind == after.kind
    return before.kind in _TEXT_KINDS and after.kind in _TEXT_KINDS


def _changed_block(document: _FastDocument, before: Block | None, after: Block | None, revisions: _Revisions) -> None:
    """`before` turned into `after` (either may be None: a block inserted or deleted whole)."""
    shape = after or before
    assert shape is not None
    if shape.kind == "table":
        _changed_table(document, before, after, revisions)
        return
    # the paragraph as docx_out makes it (style, list level, keep-with-next), its text left empty
    _add_block(document, Block(shape.kind, lines=[""], level=shape.level))
    paragraph = _last_block(document)
    for run in paragraph.findall(_R):
        paragraph.remove(run)
    old = _segments(before) if before is not None else []
    new = _segments(after) if after is not None else []
    _write_diff(paragraph, old, new, revisions)
    if before is None or after is None:  # the paragraph mark itself is inserted or deleted
        p_pr = paragraph.find(_PPR)
        if p_pr is None:
            p_pr = SubElement(paragraph, _PPR)
            paragraph.insert(0, p_pr)
        revisions.mark(SubElement(p_pr, _RPR), _INS if before is None else _DEL)


def _changed_table(document: _FastDocument, before: Block | None, after: Block | None, revisions: _Revisions) -> None:
    """A table whose rows are matched (header with header, then rows in order): a changed row
    gets a word diff per cell, a row only one side has is inserted or deleted whole."""
    rows = list(_row_pairs(before, after))
    shape = after or before
    assert shape is not None
    shown = [new if new is not None else old for old, new in rows]
    _add_table(document, Block("table", rows=[list(r) for r in shown], header=shape.header, right=shape.right))
    table = _last_block(document).getprevious()  # _add_table ends with an empty paragraph
    for number, (tr, (old, new)) in enumerate(zip(table.iterchildren(_TR), rows, strict=True)):
        if old == new:
            continue
        bold = shape.header and number == 0
        width = max(len(old or ()), len(new or ()))
        for index, tc in enumerate(tr.iterchildren(_TC)):
            paragraph = tc.find(_P)
            for run in paragraph.findall(_R):
                paragraph.remove(run)
            old_cell = old[index] if old is not None and index < len(old) else ""
            new_cell = new[index] if new is not None and index < len(new) else ""
            if index < width:
                _write_diff(paragraph, _inline(old_cell, bold) if old is not None else [],
                            _inline(new_cell, bold) if new is not None else [], revisions)
        if old is None or new is None:
            tr_pr = tr.find(_TR_PR)
            if tr_pr is None:
                tr_pr = SubElement(tr, _TR_PR)
                tr.insert(0, tr_pr)
            revisions.mark(tr_pr, _INS if old is None else _DEL)


_RowPair = tuple[tuple[str, ...] | None, tuple[str, ...] | None]


def _row_pairs(before: Block | None, after: Block | None) -> Iterator[_RowPair]:
    """(old row, new row) in the order the table shows them; None on the side that lacks it (a row whose
    label changed is one deleted and one inserted)."""
    old = [tuple(r) for r in before.rows] if before is not None else []
    new = [tuple(r) for r in after.rows] if after is not None else []
    if before is not None and after is not None and before.header and after.header and old and new:
        yield old[0], new[0]
        old, new = old[1:], new[1:]
    # rows are matched by their first cell (the year, the country), as changes.md names them
    labels = difflib.SequenceMatcher(None, [r[:1] for r in old], [r[:1] for r in new], autojunk=False)
    for tag, i1, i2, j1, j2 in labels.get_opcodes():
        if tag == "equal":
            yield from zip(old[i1:i2], new[j1:j2], strict=True)
            continue
        yield from ((row, None) for row in old[i1:i2])
        yield from ((None, row) for row in new[j1:j2])


def _last_block(document: _FastDocument) -> CT_P:
    """The element `_add_block` / `_add_table` appended last (just before the section properties)."""
    marker = document._sect_pr
    return marker.getprevious() if marker is not None else document._body_element[-1]


# -- words with their formatting -------------------------------------------------------------


def _segments(block: Block) -> list[tuple[str, _Look]]:
    """A text block's words as (text, formatting), as `docx_out._add_block` would render them."""
    if block.kind == "code":
        return [("\n".join(block.lines), _Look(font=CODE_FONT, size=_SMALL_SIZE))]
    found: list[tuple[str, _Look]] = []
    for number, line in enumerate(block.lines):
        if number:
            found.append(("\n", _Look()))
        found.extend(_inline(line, bold=block.kind == "heading"))
    return found


def _inline(text: str, bold: bool = False) -> list[tuple[str, _Look]]:
    """**bold**, *italic* and `code` as formatting, as `docx_out._add_inline` reads them."""
    found: list[tuple[str, _Look]] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            found.append((text[position : match.start()], _Look(bold=bold)))
        if match.group("bold") is not None:
            found.append((match.group("bold"), _Look(bold=True)))
        elif match.group("code") is not None:
            found.append((match.group("code"), _Look(bold=bold, font=CODE_FONT)))
        else:
            found.append((match.group("italic"), _Look(bold=bold, italic=True)))
        position = match.end()
    if position < len(text):
        found.append((text[position:], _Look(bold=bold)))
    return found


def _write_diff(paragraph: CT_P, old: Sequence[tuple[str, _Look]], new: Sequence[tuple[str, _Look]],
                revisions: _Revisions) -> None:
    """Runs for the word diff of the two texts, each keeping the formatting of its side's characters:
    shared words as plain runs, deleted ones in a `w:del`, inserted ones in a `w:ins`."""
    old_plain, new_plain = "".join(t for t, _ in old), "".join(t for t, _ in new)
    old_looks, new_looks = _looks(old), _looks(new)
    old_at = new_at = 0
    for piece in word_diff(old_plain, new_plain):
        if piece.op == "delete":
            _add_runs(paragraph, piece, old_looks[old_at : old_at + len(piece.text)], revisions)
            old_at += len(piece.text)
        elif piece.op == "insert":
            _add_runs(paragraph, piece, new_looks[new_at : new_at + len(piece.text)], revisions)
            new_at += len(piece.text)
        else:
            _add_runs(paragraph, piece, new_looks[new_at : new_at + len(piece.text)], revisions)
            old_at += len(piece.text)
            new_at += len(piece.text)


def _looks(segments: Sequence[tuple[str, _Look]]) -> list[_Look]:
    """The formatting of each character."""
    return [look for text, look in segments for _ in text]


def _add_runs(paragraph: CT_P, piece: Piece, looks: Sequence[_Look], revisions: _Revisions) -> None:
    """The piece as one run per stretch of one formatting, wrapped in one `w:ins`/`w:del` when changed."""
    wrapper = None if piece.op == "equal" else revisions.mark(paragraph, _INS if piece.op == "insert" else _DEL)
    start = 0
    for end in range(1, len(piece.text) + 1):
        if end < len(piece.text) and looks[end] == looks[start]:
            continue
        look = looks[start]
        _add_run(paragraph, piece.text[start:end], bold=look.bold, italic=look.italic, font=look.font, size=look.size)
        if wrapper is not None:
            run = paragraph[-1]
            wrapper.append(run)  # lxml moves it into the wrapper
            if piece.op == "delete":
                for text in run.iter(_TEXT):
                    text.tag = _DEL_TEXT
        start = end
