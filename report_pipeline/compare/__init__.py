"""Compare two runs of a workbook: what changed in each task's text, in its inputs, and in what it cost.

    words.py    a word-level diff whose pieces put back together give both texts exactly (pure)
    tables.py   the data tables inside a rendered prompt, and their changed rows (pure)
    runs.py     two runs' rows in, per task changed / unchanged / added / removed, ranked (pure)
    render.py   a comparison as terminal text, Markdown (changes.md) and JSON (pure)
    load.py     read the two runs from the ledger, read-only (`report-pipeline diff`)

Above the ledger, below the writers: `writers/changes.py` writes changes.md and the
tracked-changes report.docx of a run from a comparison, `writers/diff_html.py` the page.
"""

from __future__ import annotations

from .load import find_base, load_comparison
from .render import as_dict, as_markdown, as_text
from .runs import ChapterChange, RunComparison, TaskChange, compare_runs
from .words import Piece, word_diff

__all__ = [
    "ChapterChange", "Piece", "RunComparison", "TaskChange", "as_dict", "as_markdown", "as_text",
    "compare_runs", "find_base", "load_comparison", "word_diff",
]
