"""`report-pipeline diff --html FILE`: two runs compared, as one self-contained page.

In report.html's style (its stylesheet, no network): chapters most significant first, each
changed task with why it is listed, its changed data rows as a table, and its whole text
with deletions struck through (`<del>`) and insertions marked (`<ins>`); its prompt's own
changes folded below. Every text from a workbook or a model is escaped: a model's
`<script>` is shown as text, and the page runs no script at all.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from ..compare.render import as_text
from ..compare.runs import ChapterChange, RunComparison, TaskChange
from ..compare.tables import RowChange
from ..compare.words import Piece
from .atomic import atomic_write_text
from .html_out import page_head

__all__ = ["render_diff_html", "write_diff_html"]

_DIFF_STYLE = """
ins { background: #dff3e4; color: #0f5323; text-decoration: underline; text-decoration-thickness: 1px; }
del { background: #fbe4e2; color: #8c1d18; text-decoration: line-through; }
.diff { white-space: pre-wrap; word-break: break-word; font-size: .95rem; border-left: 3px solid var(--rule);
        padding: .2rem .8rem; margin: .5rem 0 1rem; }
.badge { font-size: .75rem; font-weight: 600; padding: .05rem .45rem; border-radius: 3px; background: var(--head);
         color: var(--accent); vertical-align: middle; }
.badge.data { background: #fde8c8; color: #7a4300; } .badge.answer { background: #e3ecf8; }
ul.reasons { margin: .2rem 0 .5rem; padding-left: 1.2rem; font-size: .9rem; }
article.task { margin-bottom: 1.6rem; }
"""


def render_diff_html(comparison: RunComparison) -> str:
    """The page, as a string."""
    before, after = comparison.before.run_id, comparison.after.run_id
    header = as_text(comparison).split("\n\n", 1)[0].splitlines()  # the same summary the terminal shows
    parts = [
        *page_head(f"Changes: run {before} to run {after}", extra_style=_DIFF_STYLE),
        "<body>",
        "<header>",
        f"<h1>What changed from run {_e(before)} to run {_e(after)}</h1>",
        *(f'<p class="meta">{_e(line.strip())}</p>' for line in header),
        "</header>",
        _contents(comparison.chapters),
        "<main>",
        *(_chapter(chapter) for chapter in comparison.chapters),
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def write_diff_html(path: str | os.PathLike[str], comparison: RunComparison) -> Path:
    """Render the page and write it to `path` atomically."""
    return atomic_write_text(Path(path), render_diff_html(comparison))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(prefix: str, key: str) -> str:
    return prefix + "-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in key)


def _contents(chapters: Sequence[ChapterChange]) -> str:
    items = "".join(
        f'<li><a href="#{_anchor("chapter", c.objective_id)}">{c.number}. {_e(c.title)}</a> '
        f'<span class="meta">{_e(c.summary())}</span></li>'
        for c in chapters
    )
    return f"<nav><h2>Chapters, most significant first</h2><ol>{items}</ol></nav>"


def _chapter(chapter: ChapterChange) -> str:
    parts = [f'<section class="chapter" id="{_anchor("chapter", chapter.objective_id)}">',
             f"<h2>{chapter.number}. {_e(chapter.title)}</h2>",
             f'<p class="meta">{_e(chapter.summary())}</p>']
    parts += [_task(task) for task in chapter.changed]
    unchanged = [t for t in chapter.tasks if t.status == "unchanged"]
    if unchanged and chapter.changed:
        names = ", ".join(f"{_e(t.title)} (<code>{_e(t.key)}</code>)" for t in unchanged)
        parts.append(f'<p class="meta">Unchanged: {names}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _task(task: TaskChange) -> str:
    badge = task.status if task.status in ("added", "removed") else task.significance
    parts = [f'<article class="task" id="{_anchor("task", task.key)}">',
             (f'<h3>{_e(task.title)} <code>{_e(task.key)}</code> '
              f'<span class="badge {_e(badge)}">{_e(badge)}</span></h3>'),
             '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in task.reasons()) + "</ul>"]
    if task.rows:
        rows = "".join(_row_cells(row) for row in task.rows)
        parts.append('<div class="table-wrap"><table><thead><tr><th>table</th><th>row</th><th>change</th>'
                     f"<th>column</th><th>before</th><th>after</th></tr></thead><tbody>{rows}</tbody></table></div>")
    if task.text:
        parts.append(f'<div class="diff">{_pieces(task.text)}</div>')
    if any(p.op != "equal" for p in task.prompt):
        parts.append('<details class="provenance"><summary>What changed in its prompt (data tables and the '
                     'texts of the tasks it uses left out)</summary>'
                     f'<div class="diff">{_pieces(task.prompt)}</div></details>')
    parts.append("</article>")
    return "\n".join(parts)


def _row_cells(row: RowChange) -> str:
    """A changed row's cells, one table row each; a table added, removed or with other columns, one line."""
    table = f"{row.table}" + (f" ({row.item})" if row.item else "")
    if row.kind in ("columns", "table_added", "table_removed"):
        return (f"<tr><td>{_e(table)}</td><td></td><td>{_e(row.kind.replace('_', ' '))}</td>"
                f'<td colspan="3">{_e(row.describe())}</td></tr>')
    return "".join(f"<tr><td>{_e(table)}</td><td>{_e(row.row)}</td><td>{_e(row.kind)}</td><td>{_e(column)}</td>"
                   f"<td><del>{_e(old)}</del></td><td><ins>{_e(new)}</ins></td></tr>" for column, old, new in row.cells)


def _pieces(pieces: Sequence[Piece]) -> str:
    tags = {"equal": "{}", "delete": "<del>{}</del>", "insert": "<ins>{}</ins>"}
    return "".join(tags[p.op].format(_e(p.text)) for p in pieces)
