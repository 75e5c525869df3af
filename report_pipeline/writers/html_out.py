"""report.html: the report as one self-contained page, for a browser, a phone, or printing to PDF.

No network: the styles are inline and each chart is a PNG data URI. Chapters in sheet order,
each starting a new printed page; Contents with links; data tables and figures numbered as
in report.docx; the failed and skipped tasks with their reasons. Under each task a folded
panel says how it was written: model, steps, tokens, cost, time, the check's verdict, cache
hits, and (from the ledger) the rendered prompt and each step's answer.

Text from a workbook or a model is never markup here: task texts are Markdown rendered with
raw HTML off (markdown-it-py, so `<script>` shows as text), everything else is escaped, and
`{{ }}` is only text.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

from ..models import CallText, Chapter, ReportView, TaskResult
from ..text import nest_headings
from ._text import (
    FIGURE_LABEL,
    FIGURES_CHECK_TITLE,
    TABLE_LABEL,
    CaptionNumbers,
    caption_text,
    chapter_heading,
    chapter_intro,
    display_datetime,
    figures_check_note,
    flagged_figures,
    one_line,
    problem_note,
    problems,
    see_figure,
    task_heading,
    written_by_line,
)
from .atomic import atomic_write_text
from ..workbook.items import item_number
from .figure_marks import html_marks, marked_text

if TYPE_CHECKING:
    from .attachments import TaskAttachments

__all__ = ["render_html", "write_html"]

APPENDIX_TITLE = "Failed or skipped tasks"
_TEXT_HEADING_LEVEL = 4  # a task is an <h3>: its text's own headings nest below

_STYLE = """
:root { color-scheme: light; --ink: #1d2733; --quiet: #5b6776; --rule: #d5dbe3; --head: #e7ecf3; --accent: #2f5d8a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 48rem; padding: 1.5rem 1rem 4rem; font: 16px/1.55 Georgia, "Times New Roman", serif;
       color: var(--ink); }
h1, h2, h3, h4, h5, h6, nav, figcaption, .meta, table, details summary { font-family: system-ui, -apple-system,
       "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0 0 .5rem; color: var(--accent); }
h2 { font-size: 1.45rem; margin: 2.5rem 0 .5rem; color: var(--accent); border-bottom: 1px solid var(--rule); }
h3 { font-size: 1.15rem; margin: 1.8rem 0 .4rem; }
.meta { color: var(--quiet); font-size: .9rem; margin: 0; }
.lead { font-style: italic; }
nav ol { list-style: none; padding-left: 0; } nav ol ol { padding-left: 1.2rem; font-size: .95rem; }
nav a { color: var(--accent); text-decoration: none; } nav a:hover { text-decoration: underline; }
.table-wrap { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { border: 1px solid var(--rule); padding: .2rem .45rem; vertical-align: top; }
th { background: var(--head); text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.caption { font-weight: 600; font-size: .85rem; color: var(--accent); margin: 1rem 0 .2rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption, .note { font-style: italic; color: var(--quiet); font-size: .9rem; }
.problem { border-left: 4px solid #b3261e; padding: .3rem .8rem; background: #fbeeee; }
mark.untraced { background: #ffe08a; border-bottom: 2px solid #b3261e; cursor: help; }
span.traced { border-bottom: 1px dotted #7a7a7a; cursor: help; }
details.provenance { margin: .6rem 0 1.2rem; font-size: .85rem; border: 1px solid var(--rule); border-radius: 4px;
       padding: .3rem .7rem; background: #fafbfc; }
details.provenance summary { cursor: pointer; color: var(--quiet); }
details.provenance dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .8rem; }
details.provenance dt { color: var(--quiet); } details.provenance dd { margin: 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f3f5f8; padding: .5rem; font-size: .8rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  section.chapter, section.appendix { break-before: page; }
  details.provenance, nav { break-inside: avoid; }
  figure, .table-wrap { break-inside: avoid; }
  h2, h3, .caption { break-after: avoid; }
}
"""


def render_html(
    report: ReportView,
    *,
    attachments: Mapping[str, TaskAttachments] | None = None,
    calls: Mapping[str, Sequence[CallText]] | None = None,
    run_dir: Path | None = None,
) -> str:
    """The page. `calls` (task key -> its calls' prompts and answers) fill the provenance panels;
    `run_dir` is where the charts' relative paths start (their PNGs are inlined)."""
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    numbers = CaptionNumbers()
    parts = [
        *page_head(one_line(report.project_name) or "Report"),
        "<body>",
        "<header>",
        f"<h1>{_e(one_line(report.project_name) or 'Report')}</h1>",
        f'<p class="meta">Generated {_e(display_datetime(report.generated_at))} · run <code>{_e(report.run_id)}</code></p>',
        f'<p class="meta">{_e(written_by_line(report))}</p>',
        "</header>",
        _contents(report),
        "<main>",
    ]
    for chapter in report.chapters:
        parts.append(_chapter(chapter, markdown, attachments or {}, calls or {}, numbers, run_dir))
    if problems(report):
        parts.append(_appendix(report))
    if figures_check_note(report) is not None:
        parts.append(_figures_appendix(report))
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(
    path: str | os.PathLike[str],
    report: ReportView,
    *,
    attachments: Mapping[str, TaskAttachments] | None = None,
    calls: Mapping[str, Sequence[CallText]] | None = None,
) -> Path:
    """Render `report` and write it to `path` atomically; charts are read from beside it."""
    target = Path(path)
    return atomic_write_text(target, render_html(report, attachments=attachments, calls=calls, run_dir=target.parent))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _chapter_id(chapter: Chapter) -> str:
    return f"chapter-{chapter.number}"


def _task_id(result: TaskResult) -> str:
    return "task-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in result.key)


def _contents(report: ReportView) -> str:
    items = []
    for chapter in report.chapters:
        tasks = "".join(f'<li><a href="#{_task_id(r)}">{_e(task_heading(r))}</a></li>' for r in chapter.results)
        items.append(f'<li><a href="#{_chapter_id(chapter)}">{_e(chapter_heading(chapter))}</a><ol>{tasks}</ol></li>')
    if problems(report):
        items.append(f'<li><a href="#problems">{_e(APPENDIX_TITLE)}</a></li>')
    if figures_check_note(report) is not None:
        items.append(f'<li><a href="#figures-check">{_e(FIGURES_CHECK_TITLE)}</a></li>')
    if not report.chapters:
        items.append("<li><em>No chapters in this run.</em></li>")
    return f'<nav id="contents"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def _chapter(chapter: Chapter, markdown: MarkdownIt, attachments: Mapping[str, TaskAttachments],
             calls: Mapping[str, Sequence[CallText]], numbers: CaptionNumbers, run_dir: Path | None) -> str:
    parts = [f'<section class="chapter" id="{_chapter_id(chapter)}">', f"<h2>{_e(chapter_heading(chapter))}</h2>"]
    intro = chapter_intro(chapter)
    if intro:
        parts.append(f'<p class="lead">{_e(intro)}</p>')
    for result in chapter.results:
        parts.append(f'<article class="task" id="{_task_id(result)}">')
        parts.append(f"<h3>{_e(task_heading(result))}</h3>")
        parts.append(_task_body(result, markdown))
        found = attachments.get(result.key)
        if found:
            parts.append(_attachments(found, markdown, numbers, run_dir))
        parts.append(_provenance(result, in_item_order(calls.get(result.key, ()))))
        parts.append("</article>")
    parts.append("</section>")
    return "\n".join(parts)


def page_head(title: str, *, extra_style: str = "") -> list[str]:
    """The page's opening up to `</head>`: one self-contained stylesheet for every page we write."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}{extra_style}</style>",
        "</head>",
    ]


def _task_body(result: TaskResult, markdown: MarkdownIt) -> str:
    if result.status != "done":
        label, reason = problem_note(result)
        return f'<p class="problem"><strong>{_e(label)}:</strong> {_e(reason)}</p>'
    text = marked_text(result, traced=True).strip()
    if not text:
        return '<p class="note">(The model returned no text.)</p>'
    rendered = markdown.render(nest_headings(text, _TEXT_HEADING_LEVEL))
    # an untraced figure is marked; a traced one shows on hover the cells it came from
    return _tables_scroll(html_marks(rendered, [m.trace for m in result.figures or ()]))


def _tables_scroll(rendered: str) -> str:
    """Wide tables scroll sideways on a phone instead of widening the page."""
    return rendered.replace("<table>", '<div class="table-wrap"><table>').replace("</table>", "</table></div>")


def _attachments(found: TaskAttachments, markdown: MarkdownIt, numbers: CaptionNumbers, run_dir: Path | None) -> str:
    parts = []
    for table in found.tables:
        caption = caption_text(TABLE_LABEL, numbers.next_table(), table.caption)
        parts.append(f'<p class="caption">{_e(caption)}</p>')
        parts.append(_tables_scroll(markdown.render(table.markdown.strip())))
    for image in found.images:
        caption = caption_text(FIGURE_LABEL, numbers.next_figure(image), image.caption)
        source = _data_uri(run_dir / image.relative if run_dir is not None else image.path)
        picture = f'<img src="{source}" alt="{_e(caption)}">' if source else ""
        parts.append(f"<figure>{picture}<figcaption>{_e(caption)}</figcaption></figure>")
    for earlier in found.see_also:
        number = numbers.figure_of(earlier)
        if number is not None:
            parts.append(f'<p class="note">{_e(see_figure(number, earlier.caption))}</p>')
    for note in found.notes:
        parts.append(f'<p class="note">{_e(one_line(note))}</p>')
    return "\n".join(parts)


def _data_uri(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def in_item_order(calls: Sequence[CallText]) -> list[CallText]:
    """Each run of consecutive item calls (`refine#3`) sorted by item number, keeping chain order
    within an item; calls outside such runs (`combine`, after every item) stay where they are. A
    for_each task's items run at once and finish in any order; a report must not depend on it."""
    ordered: list[CallText] = []
    block: list[CallText] = []
    for call in [*calls, None]:
        if call is not None and item_number(call.step) is not None:
            block.append(call)
            continue
        ordered.extend(sorted(block, key=lambda c: item_number(c.step) or 0))
        block = []
        if call is not None:
            ordered.append(call)
    return ordered



def _provenance(result: TaskResult, calls: Sequence[CallText]) -> str:
    """The folded panel: how this task's text was made, and the words that made it."""
    facts = [
        ("status", result.status),
        ("model", result.model or ", ".join(sorted({c.model for c in result.calls})) or "-"),
        ("steps", ", ".join(result.steps) or ", ".join(c.step for c in result.calls) or "-"),
        ("tokens", f"{result.prompt_tokens:,} in / {result.completion_tokens:,} out"
                   + (f" ({result.reasoning_tokens:,} reasoning)" if result.reasoning_tokens else "")),
        ("cost", f"${result.cost_usd:.4f}"),
        ("time", f"{max(0.0, result.finished_at - result.started_at):.1f} s, {result.attempts} send(s)"),
        ("cache", f"{sum(c.cached for c in result.calls)} of {len(result.calls)} call(s) from the cache"),
    ]
    if result.check_verdict:
        facts.append(("check", result.check_verdict + (f": {result.check_notes}" if result.check_notes else "")))
    rows = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts)
    steps = []
    for call in calls:
        cached = " (from the cache)" if call.cached else ""
        steps.append(f"<h4>{_e(call.step)} · {_e(call.model)}{cached}</h4>"
                     f"<p class=\"meta\">Prompt</p><pre>{_e(call.prompt)}</pre>"
                     f"<p class=\"meta\">Answer</p><pre>{_e(call.response)}</pre>")
    if not calls:
        steps.append('<p class="note">The prompts and answers are in the ledger when it is on.</p>')
    return (f'<details class="provenance"><summary>How this was written</summary><dl>{rows}</dl>'
            + "".join(steps) + "</details>")


def _figures_appendix(report: ReportView) -> str:
    rows = [f'<tr><td><a href="#{_task_id(result)}">{_e(task_heading(result))}</a> ({_e(result.key)})</td>'
            f"<td><mark class=\"untraced\">{_e(mark.text)}</mark></td><td>{_e(mark.sentence)}</td></tr>"
            for result, mark in flagged_figures(report)]
    table = ('<div class="table-wrap"><table><thead><tr><th>Section</th><th>Figure</th><th>Sentence</th></tr>'
             f"</thead><tbody>{''.join(rows)}</tbody></table></div>") if rows else ""
    return (f'<section class="appendix" id="figures-check"><h2>{_e(FIGURES_CHECK_TITLE)}</h2>'
            f"<p>{_e(figures_check_note(report) or '')}</p>{table}</section>")


def _appendix(report: ReportView) -> str:
    rows = []
    for chapter, result in problems(report):
        _, reason = problem_note(result)
        rows.append(f'<tr><td><a href="#{_task_id(result)}">{_e(chapter_heading(chapter))}</a></td>'
                    f"<td>{_e(task_heading(result))} ({_e(result.key)})</td><td>{_e(result.status)}</td>"
                    f"<td>{_e(reason)}</td></tr>")
    return ('<section class="appendix" id="problems">'
            f"<h2>{_e(APPENDIX_TITLE)}</h2><div class=\"table-wrap\"><table>"
            "<thead><tr><th>Objective</th><th>Task</th><th>Status</th><th>Reason</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")
