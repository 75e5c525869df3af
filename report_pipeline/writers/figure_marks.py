"""Marking the figures check's findings in a task's text, for every report format.

The check (checks/figures.py, run/figures.py) leaves each task a list of `FigureMark`s:
offsets into its text, and for a traced figure the cells it came from. A writer asks for
the text with invisible markers around those spans (private-use characters no model or
workbook writes, so the Markdown and block parsers pass them through untouched), lays the
text out as it always does, and turns the markers into its own mark at the end:
Markdown writes `41.2 [unverified]`, Word a yellow highlight, HTML a `<mark>` for an
untraced figure and a hover title with the source cells for a traced one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence

from ..models import TaskResult

__all__ = [
    "FLAG_CLOSE",
    "FLAG_OPEN",
    "UNVERIFIED_NOTE",
    "html_marks",
    "markdown_marks",
    "marked_text",
    "split_flagged",
    "strip_marks",
]

FLAG_OPEN, FLAG_CLOSE = "\ue000", "\ue001"  # around an untraced figure
_TRACE_OPEN, _TRACE_ID_END, _TRACE_CLOSE = "\ue002", "\ue004", "\ue003"  # around a traced one: OPEN n ID_END ... CLOSE
_ANY_MARK = re.compile("[\ue000-\ue004]")
_TRACE = re.compile(f"{_TRACE_OPEN}(\\d+){_TRACE_ID_END}")

#: What report.md writes after an untraced figure.
UNVERIFIED_NOTE = " [unverified]"


def marked_text(result: TaskResult, *, traced: bool = False) -> str:
    """The task's text with markers around each untraced figure (and each traced one, numbered by its
    place in `result.figures`, when `traced`). The text itself is never changed."""
    text = _ANY_MARK.sub("", result.text)
    if not result.figures or len(text) != len(result.text):
        return text  # no findings, or a text that held markers of its own: its offsets cannot be trusted
    inserts: list[tuple[int, int, str]] = []  # (position, order, marker): closings before openings at one spot
    for number, mark in enumerate(result.figures):
        if mark.end > len(text) or text[mark.start:mark.end] != mark.text:
            continue  # the text moved under the finding: mark nothing rather than the wrong words
        if not mark.traced:
            inserts += [(mark.start, 1, FLAG_OPEN), (mark.end, 0, FLAG_CLOSE)]
        elif traced:
            inserts += [(mark.start, 1, f"{_TRACE_OPEN}{number}{_TRACE_ID_END}"), (mark.end, 0, _TRACE_CLOSE)]
    for position, _, marker in sorted(inserts, key=lambda i: (i[0], i[1]), reverse=True):
        text = text[:position] + marker + text[position:]
    return text


def strip_marks(text: str) -> str:
    """The text without markers (what a writer that marks nothing shows)."""
    return _ANY_MARK.sub("", _TRACE.sub("", text))


def markdown_marks(text: str) -> str:
    """Markers to Markdown: `41.2 [unverified]` after an untraced figure; traced ones plain."""
    return strip_marks(text.replace(FLAG_CLOSE, UNVERIFIED_NOTE))


def split_flagged(text: str) -> Iterator[tuple[str, bool]]:
    """(piece, is an untraced figure) in order, traced markers dropped: what a Word run is cut into."""
    flagged = False
    for piece in re.split(f"([{FLAG_OPEN}{FLAG_CLOSE}])", strip_traced(text)):
        if piece == FLAG_OPEN:
            flagged = True
        elif piece == FLAG_CLOSE:
            flagged = False
        elif piece:
            yield piece, flagged


def strip_traced(text: str) -> str:
    return _TRACE.sub("", text).replace(_TRACE_CLOSE, "")


def html_marks(rendered: str, traces: Sequence[str]) -> str:
    """Markers in rendered HTML to elements: an untraced figure in `<mark class="untraced">`, a traced
    one in `<span class="traced">` whose title is where it came from (escaped)."""
    rendered = rendered.replace(FLAG_OPEN, '<mark class="untraced" title="Not found in the data this section was '
                                           'given: check it">').replace(FLAG_CLOSE, "</mark>")

    def traced(match: re.Match[str]) -> str:
        number = int(match.group(1))
        title = traces[number] if number < len(traces) else ""
        return f'<span class="traced" title="{html.escape(title, quote=True)}">'

    return _TRACE.sub(traced, rendered).replace(_TRACE_CLOSE, "</span>")
