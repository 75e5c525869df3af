"""Joining a for_each task's items: each item's text under its heading, or one combined text.

Pure: the runner makes the calls (one chain per item, then `combine` when asked) and
hands the outcomes here. How a failure counts:

- `sections`: a failed item is marked in place, and the task fails (its text keeps what
  was written, so the reader of results.csv sees it; a rerun pays only the failed items,
  the others are cache hits).
- `combine`: one text is written from the items that succeeded when at most one item in
  ten failed (`combine_allowed`): a paragraph per country survives a missing country,
  the combined text is told which ones are missing, and the task is done with the
  missing items in its `error` column. More failures than that fail the task: a
  summary of half the countries would read as a summary of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import ItemResult
from ..text import nest_headings
from .outline import SECTION_HEADING_LEVEL

__all__ = ["assemble_items", "combine_allowed", "failed_items", "failure_note"]


def failure_note(outcome: ItemResult) -> str:
    return f'[item {outcome.number} "{outcome.name}" failed: {outcome.error}]'


def assemble_items(outcomes: Sequence[ItemResult]) -> str:
    """Each item's text under its `###` heading, in table order; a note in place of a failed one."""
    blocks = []
    for outcome in sorted(outcomes, key=lambda o: o.number):
        heading = "#" * SECTION_HEADING_LEVEL + " " + outcome.name
        body = nest_headings(outcome.text, SECTION_HEADING_LEVEL + 1).strip() if outcome.ok else failure_note(outcome)
        blocks.append(f"{heading}\n\n{body}" if body else heading)
    return "\n\n".join(blocks)


def failed_items(outcomes: Sequence[ItemResult]) -> str:
    """The failed items, for the task's `error` column ("" when every item was written)."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return ""
    notes = "; ".join(failure_note(o).strip("[]") for o in failed)
    return f"{len(failed)} of {len(outcomes)} items failed: {notes}"


def combine_allowed(outcomes: Sequence[ItemResult]) -> bool:
    """`combine` goes ahead when some item was written and at most one in ten failed."""
    failed = sum(not o.ok for o in outcomes)
    return failed < len(outcomes) and failed <= len(outcomes) // 10
