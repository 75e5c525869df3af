"""What goes into the report beside a task's text: its data tables and its charts.

`build_attachments()` decides, from plain data (the tasks, the `data` sheet),
which tables and charts each task shows; the writers only place them. A table
is attached when the task sets `include_table`; a chart when one of the task's
data sources declares `chart`. A source that cannot be shown (unreadable file,
bad chart column) becomes a visible note on that task, never a failed report:
this runs after every LLM call of the run has been paid for.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..models import DataSource, Task
from ..text import readable_name
from ..workbook.data import DataStore
from .figures.charts import ChartImage
from .labels import column_label, table_title

if TYPE_CHECKING:
    from .figures.charts import ChartRenderer

__all__ = [
    "AttachedTable",
    "ChartScope",
    "TaskAttachments",
    "build_attachments",
    "table_caption",
]

log = logging.getLogger(__name__)

#: Where a chart attached to several tasks appears: with every task, with the
#: first task of each chapter that attaches it, or once in the whole report.
ChartScope = Literal["task", "objective", "report"]


@dataclass(frozen=True)
class AttachedTable:
    """A data table shown after a task's text: `markdown` as `DataStore.markdown()` renders it."""

    name: str
    markdown: str
    caption: str  # without the "Table N:" label: writers number tables in reading order


@dataclass(frozen=True)
class TaskAttachments:
    """Everything shown after one task's text, in order: tables, then charts, then notes."""

    tables: tuple[AttachedTable, ...] = ()
    images: tuple[ChartImage, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be attached, and why: shown to the reader
    see_also: tuple[ChartImage, ...] = ()  # charts placed earlier in the report that this task uses too

    def __bool__(self) -> bool:
        return bool(self.tables or self.images or self.notes or self.see_also)


def readable_header(markdown: str, label: Callable[[str], str] = readable_name) -> str:
    """A Markdown table with its header row in readable names (`Renewable share %`, or the sheet's own
    labels), for the report; prompts keep the raw column names."""
    first, newline, rest = markdown.partition("\n")
    if not first.startswith("|"):
        return markdown
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", first.strip()[1:-1])]
    return "| " + " | ".join(label(cell) for cell in cells) + " |" + newline + rest


def table_caption(source: DataSource) -> str:
    """`generation_germany (source: generation_by_country.csv; filter: country == "Germany")`."""
    details = f"source: {source.path.name}"
    if source.sheet:
        details += f", sheet {source.sheet}"
    if source.filter:
        details += f"; filter: {source.filter}"
    return f"{table_title(source)} ({details})"


def build_attachments(
    tasks: Iterable[Task],
    store: DataStore,
    run_dir: Path,
    *,
    charts: ChartRenderer,
    chart_scope: ChartScope = "report",
) -> dict[str, TaskAttachments]:
    """Task key (`OBJ.TASK`) -> its attachments, for the tasks given (pass only the `done` ones
    if failed tasks should show nothing). Tasks with nothing to show are left out.

    Tables follow `include_table`, task by task: the analyst asked for each. Charts
    follow `chart_scope`, in the order `tasks` come (pass them in reading order): with
    the default "report" a chart is placed once, with the first task that attaches its
    source, and every later task that attaches it refers to it (`see_also`: the writers
    say "See Figure N"); "objective" places it once a chapter, "task" with every task.
    """
    if chart_scope not in ("task", "objective", "report"):
        raise ValueError(f"chart_scope must be task, objective or report, not {chart_scope!r}")
    shown: dict[tuple[str, str], ChartImage | None] = {}  # (place, source) -> the chart placed there
    attachments: dict[str, TaskAttachments] = {}
    for task in tasks:
        tables, table_notes = _tables(task, store) if task.include_table else ((), ())
        images, chart_notes, see_also = _charts(task, store, run_dir, charts, chart_scope, shown)
        found = TaskAttachments(tables=tables, images=images, notes=table_notes + chart_notes, see_also=see_also)
        if found:
            attachments[task.key] = found
    return attachments


def _tables(task: Task, store: DataStore) -> tuple[tuple[AttachedTable, ...], tuple[str, ...]]:
    tables: list[AttachedTable] = []
    notes: list[str] = []
    for name in task.data:
        try:
            source = store.source(name)
            tables.append(AttachedTable(name, readable_header(store.markdown(name), lambda column: column_label(source, column)), table_caption(source)))
        except (KeyError, ValueError) as error:  # DataSourceError is a ValueError
            notes.append(_left_out(task, "Table", name, error))
    return tuple(tables), tuple(notes)


def _charts(
    task: Task,
    store: DataStore,
    run_dir: Path,
    charts: ChartRenderer,
    scope: ChartScope,
    shown: dict[tuple[str, str], ChartImage | None],
) -> tuple[tuple[ChartImage, ...], tuple[str, ...], tuple[ChartImage, ...]]:
    """(charts placed with this task, notes, charts placed earlier that it refers to)."""
    images: list[ChartImage] = []
    notes: list[str] = []
    see_also: list[ChartImage] = []
    for name in task.data:
        if name not in store or not store.source(name).chart:
            continue  # an unknown name is the validator's to report; it has no chart either way
        place = {"task": task.key, "objective": task.objective_id, "report": ""}[scope]
        if (place, name) in shown:
            earlier = shown[(place, name)]
            if earlier is not None and earlier not in images and earlier not in see_also:
                see_also.append(earlier)
            continue
        shown[(place, name)] = None
        try:
            image = charts.render(name, store)
        except (KeyError, ValueError) as error:
            notes.append(_left_out(task, "Chart", name, error))
            continue
        placed = ChartImage(image.path, image.caption, _relative(image.path, run_dir))
        shown[(place, name)] = placed
        images.append(placed)
    return tuple(images), tuple(notes), tuple(see_also)


def _left_out(task: Task, what: str, name: str, error: Exception) -> str:
    reason = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    log.warning("task %s: %s of %s left out of the report: %s", task.key, what.lower(), name, reason)
    return f"{what} of {name} left out: {reason}"


def _relative(path: Path, run_dir: Path) -> str:
    """`charts/x.png`: a forward-slash link from report.md, whatever the platform."""
    try:
        return Path(os.path.relpath(path, run_dir)).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return Path(path).resolve().as_uri()
