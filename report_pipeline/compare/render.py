"""A `RunComparison` as words: plain text for a terminal, Markdown for changes.md, a dict for JSON.

Pure. Text from a workbook or a model is never markup here: in Markdown every character
that could start emphasis, a link, a table or raw HTML is escaped, so a model's `<script>`
or `**` reaches the reader as the characters it wrote. Each changed answer is shown as the
few words around its first changes (`hunks`, each cut to `_HUNK_WORDS` by `clip`), and each
task's changed data rows as a few named lines, not in full; `diff --html` shows it all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .runs import ChapterChange, RunComparison, TaskChange, TaskSide
from .words import Piece, clip, hunks

__all__ = ["as_dict", "as_markdown", "as_text", "markdown_escape"]

_WHITESPACE = re.compile(r"\s+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")  # what can start markup inside a line
_BLOCK_START = re.compile(r"^([#>+\-]|\d+[.)])")  # what can start a block at the start of a line
#: Hunks shown per task: a task rewritten from end to end says so instead of listing forty.
_MOST_HUNKS = 3
#: Words a hunk shows at most (context and change): an inserted page reads as its first lines.
_HUNK_WORDS = 40


def as_text(comparison: RunComparison) -> str:
    """What `report-pipeline diff` prints: a header, then chapter by chapter, most significant first."""
    lines = _header_lines(comparison)
    for chapter in comparison.chapters:
        lines += ["", f"{chapter.number}. {_flat(chapter.title)} ({chapter.objective_id}): {chapter.summary()}"]
        for task in chapter.changed:
            lines.append(f"  {task.key} {_flat(task.title)}: {_status_words(task)}")
            lines += [f"    {reason}" for reason in task.reasons()]
            lines += [f"    {_plain_hunk(hunk)}" for hunk in _shown_hunks(task.text)]
            if len(hunks(task.text)) > _MOST_HUNKS:
                lines.append(f"    (and {len(hunks(task.text)) - _MOST_HUNKS} more changes: see diff --html)")
            if any(p.op != "equal" for p in task.prompt):
                lines += [f"    prompt: {_plain_hunk(hunk)}" for hunk in _shown_hunks(task.prompt)]
        unchanged = [t.key for t in chapter.tasks if t.status == "unchanged"]
        if chapter.changed and unchanged:
            lines.append(f"  unchanged: {', '.join(unchanged)}")
    return "\n".join(lines)


def _header_lines(comparison: RunComparison) -> list[str]:
    before, after = comparison.before, comparison.after
    counts = comparison.counts
    lines = [
        (f"run {before.run_id} → run {after.run_id}: {counts.get('changed', 0)} changed, "
         f"{counts.get('unchanged', 0)} unchanged, {counts.get('added', 0)} added, {counts.get('removed', 0)} removed"),
        *(f"  {label}  {row.run_id} started {_when(row.started_at)} UTC, {row.status}, "
          f"{Path(row.sheet_path or '-').name}" for label, row in (("base:", before), ("new: ", after))),
    ]
    if comparison.workbook_edited:
        lines.append("  the workbook was edited between the two runs")
    if comparison.settings:
        lines.append("  settings: " + "; ".join(f"{k} {a} → {b}" for k, a, b in comparison.settings))
    tokens = sum(t.tokens_delta for t in comparison.tasks)
    cost = sum(t.cost_delta for t in comparison.tasks)
    lines.append(f"  tokens {tokens:+,}, cost {_money(cost)}")
    return lines


def _status_words(task: TaskChange) -> str:
    return task.status if task.status in ("added", "removed") else f"{task.status}, {task.significance}"


def _shown_hunks(pieces: Sequence[Piece]) -> list[tuple[Piece, ...]]:
    return [clip(hunk, words=_HUNK_WORDS) for hunk in hunks(pieces)[:_MOST_HUNKS]]


def _plain_hunk(hunk: Sequence[Piece]) -> str:
    """`… to [-52-]{+61+} (B) …`: git's --word-diff=plain marks, on one line."""
    marks = {"equal": "{}", "delete": "[-{}-]", "insert": "{{+{}+}}"}
    return "".join(marks[p.op].format(_flat(p.text, keep_edges=True)) for p in hunk).strip()


# -- Markdown (changes.md) -----------------------------------------------------------------


def as_markdown(comparison: RunComparison, *, diff_command: str | None = None) -> str:
    """changes.md: what changed since the base run, chapter by chapter, most significant first,
    so the Monday reader starts there."""
    before, after = comparison.before, comparison.after
    counts = comparison.counts
    total = sum(counts.values())
    lines = [
        f"# What changed since run {markdown_escape(before.run_id)}",
        "",
        f"Run {markdown_escape(after.run_id)} of `{_code(Path(after.sheet_path or '-').name)}`, compared with run "
        f"{markdown_escape(before.run_id)} (started {_when(before.started_at)} UTC). "
        f"{counts.get('changed', 0) + counts.get('added', 0) + counts.get('removed', 0)} of {total} tasks changed"
        + (f" ({counts.get('added', 0)} added, {counts.get('removed', 0)} removed)"
           if counts.get("added") or counts.get("removed") else "")
        + ". Most significant first: a changed row in a data table, a changed answer, inputs that changed "
          "without changing the answer, then cost.",
    ]
    if comparison.workbook_edited:
        lines += ["", "The workbook was edited between the two runs."]
    if comparison.settings:
        lines += ["", "Settings changed: " + "; ".join(
            f"`{_code(k)}` {markdown_escape(a)} → {markdown_escape(b)}" for k, a, b in comparison.settings) + "."]
    changed = [c for c in comparison.chapters if c.changed]
    quiet = [c for c in comparison.chapters if not c.changed]
    if not changed:
        lines += ["", "Nothing changed: every task has the same inputs and the same text."]
    for chapter in changed:
        lines += ["", f"## {chapter.number}. {markdown_escape(_flat(chapter.title))}", "", chapter.summary(), ""]
        for task in chapter.changed:
            lines += _markdown_task(task)
        unchanged = [t for t in chapter.tasks if t.status == "unchanged"]
        if unchanged:
            lines += ["", "Unchanged: " + ", ".join(f"{markdown_escape(_flat(t.title))} (`{_code(t.key)}`)"
                                                    for t in unchanged) + "."]
    if quiet:
        lines += ["", "## Unchanged chapters", ""]
        lines += [f"- {c.number}. {markdown_escape(_flat(c.title))}: {c.summary()}"
                  for c in sorted(quiet, key=lambda c: c.number)]
    if diff_command:
        lines += ["", f"Every change word by word: `{_code(diff_command)}`"]
    return "\n".join(lines) + "\n"


def _markdown_task(task: TaskChange) -> list[str]:
    """The task's line, its changed data rows one a line under it, then its first changes quoted."""
    rows = task.row_reasons() if task.status == "changed" else []
    said = (["data changed"] if rows else []) + task.reasons(rows=False)
    reasons = "; ".join(markdown_escape(reason) for reason in said)
    lines = [f"- **{markdown_escape(_flat(task.title))}** (`{_code(task.key)}`): {reasons}."]
    lines += [f"  - {markdown_escape(_flat(row))}" for row in rows]
    shown = _shown_hunks(task.text)
    for hunk in shown:
        lines.append(f"  > {_markdown_hunk(hunk)}")
        lines.append("  >")
    if shown:
        lines.pop()
    more = len(hunks(task.text)) - len(shown)
    if more > 0:
        lines.append(f"  > (and {more} more changes)")
    return lines


def _markdown_hunk(hunk: Sequence[Piece]) -> str:
    """`… to ~~52~~ **61** (B) …`: deletions struck through, insertions in bold, on one line."""
    parts = []
    for piece in hunk:
        text = _flat(piece.text, keep_edges=True)
        if piece.op == "equal":
            parts.append(markdown_escape(text))
            continue
        core = text.strip()
        if not core:
            parts.append(text)
            continue
        lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()):]
        mark = "~~" if piece.op == "delete" else "**"
        parts.append(f"{lead}{mark}{markdown_escape(core)}{mark}{trail}")
    line = "".join(parts).strip()
    return _BLOCK_START.sub(r"\\\1", line)


def markdown_escape(text: str) -> str:
    """`text` as Markdown that shows exactly these characters (no emphasis, links, tables or HTML)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    """Text inside `code`: backticks cannot be escaped there, so they become quotes."""
    return _flat(text).replace("`", "'")


# -- JSON ----------------------------------------------------------------------------------


def as_dict(comparison: RunComparison) -> dict[str, Any]:
    """`diff --json`: everything the text shows, and each changed task's whole word diff."""
    return {
        "before": _run(comparison.before),
        "after": _run(comparison.after),
        "workbook_edited": comparison.workbook_edited,
        "settings": [{"key": k, "before": a, "after": b} for k, a, b in comparison.settings],
        "counts": dict(comparison.counts),
        "chapters": [_chapter(c) for c in comparison.chapters],
    }


def _run(row: Any) -> dict[str, Any]:
    return {"run_id": row.run_id, "sheet": row.sheet_path, "status": row.status, "started": _when(row.started_at)}


def _chapter(chapter: ChapterChange) -> dict[str, Any]:
    return {"objective_id": chapter.objective_id, "title": chapter.title, "number": chapter.number,
            "summary": chapter.summary(), "tasks": [_task(t) for t in chapter.tasks]}


def _task(task: TaskChange) -> dict[str, Any]:
    found: dict[str, Any] = {
        "task": task.key, "title": task.title, "status": task.status, "significance": task.significance,
        "reasons": task.reasons(), "upstream": list(task.upstream),
        "rows": [{"table": r.table, "item": r.item, "row": r.row, "kind": r.kind, "count": r.count,
                  "cells": [{"column": c, "before": a, "after": b} for c, a, b in r.cells]} for r in task.rows],
        "model": _pair(task.before, task.after, "model"),
        "task_status": _pair(task.before, task.after, "status"),
        "tokens": {**_pair(task.before, task.after, "tokens"), "delta": task.tokens_delta},
        "cost_usd": {**_pair(task.before, task.after, "cost_usd"), "delta": round(task.cost_delta, 6)},
    }
    if task.status != "unchanged":
        found["text_diff"] = [[p.op, p.text] for p in task.text]
        found["prompt_diff"] = [[p.op, p.text] for p in task.prompt]
    return found


def _pair(before: TaskSide | None, after: TaskSide | None, name: str) -> dict[str, Any]:
    return {"before": getattr(before, name) if before else None, "after": getattr(after, name) if after else None}


# -- shared --------------------------------------------------------------------------------


def _flat(text: str, *, keep_edges: bool = False) -> str:
    """On one line: every run of whitespace one space (a hunk or a title inside a line)."""
    flat = _WHITESPACE.sub(" ", text)
    return flat if keep_edges else flat.strip()


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _money(amount: float) -> str:
    sign = "-" if amount < -5e-5 else "+"
    return f"{sign}${abs(amount):.4f}"
