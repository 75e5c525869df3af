"""The figures check in a run: what a task was given, traced against what it wrote.

checks/figures.py does the tracing (pure, no model); this module gathers a task's sources
from the run (its attached tables and its for_each table after filter and columns, the
texts of the tasks it depends on, its rendered prompt) and turns the findings into the
plain `FigureMark`s that results.csv counts and the writers mark. With `figures_check:
fix` the runner sends one more call with `fix_request_context`, and checks again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..checks.figures import FigureCheck, Sources, trace_figures
from ..checks.numbers import NumberStyle
from ..checks.tables import SourceTable
from ..models import FigureMark, Task
from ..workbook.data import DataStore
from ..workbook.items import expand_items, parse_for_each, task_table_names

__all__ = ["RunTables", "check_task_figures", "fix_request_context", "marks_of", "task_tables"]


def task_tables(task: Task, data: DataStore) -> list[str]:
    """The names of the tables the task was given (its `data`, then its for_each table) that `data` holds."""
    return [name for name in task_table_names(task) if name in data]


class RunTables:
    """The run's tables as the check reads them, each loaded and indexed once however many tasks use it."""

    def __init__(self, data: DataStore) -> None:
        self.data = data
        self._tables: dict[str, list[SourceTable]] = {}
        self._lock = threading.Lock()

    def for_task(self, task: Task) -> list[SourceTable]:
        tables = [table for name in task_tables(task, self.data) for table in self._get(name, name, None)]
        if task.for_each:
            spec = parse_for_each(task.for_each)
            if spec.column is not None and spec.table in self.data:
                tables += self._get(f"{spec}", spec.table, spec.column)
        return tables

    def _get(self, key: str, name: str, column: str | None) -> list[SourceTable]:
        with self._lock:
            found = self._tables.get(key)
        if found is None:
            unit = self.data.source(name).unit
            if column is None:
                found = [SourceTable(name, self.data.frame(name), unit=unit)]
            else:  # a for_each task's groups, each a table of its own
                items = expand_items(parse_for_each(key), self.data.frame(name))[:_MAX_ITEM_TABLES]
                found = [SourceTable(f"{name} [{item.label}]", item.rows, unit=unit) for item in items]
            with self._lock:
                found = self._tables.setdefault(key, found)
        return found


def check_task_figures(
    task: Task, text: str, *, tables: RunTables, dependencies: Mapping[str, str], prompt: str, style: NumberStyle,
) -> FigureCheck:
    """Trace every figure of `text` to what `task` was given."""
    sources = Sources(tables=tables.for_task(task), dependencies=dependencies, prompt=prompt)
    return trace_figures(text, sources, style)


#: A for_each task's groups are also given to the check as tables of their own, up to this many:
#: "coal comes to 413" in Germany's paragraph is Germany's rows summed, not the whole table's.
_MAX_ITEM_TABLES = 50


def marks_of(check: FigureCheck) -> tuple[FigureMark, ...]:
    """The findings in text order, each traced one with its trace as a sentence."""
    traced = {id(t.figure): str(t.trace) for t in check.traced}
    marks = [FigureMark(f.start, f.end, f.text, f.sentence, traced.get(id(f), "")) for f in check.figures]
    return tuple(sorted(marks, key=lambda m: m.start))


def fix_request_context(task: Task, draft: str, check: FigureCheck, tables: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """What the `fix` prompt sees: the draft, each untraced figure with its sentence, and the tables."""
    return {
        "draft": draft,
        "flagged": [{"figure": f.text, "sentence": f.sentence} for f in check.untraced],
        "tables": [{"name": name, "table": markdown} for name, markdown in tables],
        "title": task.title or task.key,
    }
