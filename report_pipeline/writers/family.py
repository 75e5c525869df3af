"""A family run's reports: one folder per entity, `entities/<entity_id>/`, each a report of its own.

The run holds every entity's chapters under `<entity_id>~<objective_id>`; each entity's report
is cut from it and shown under the workbook's own ids, so it reads (and is byte for byte) what
a run of that entity alone would write, whichever shard or process ran it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..models import CallText, Chapter, Entity, ReportView, Task, TaskResult, Usage, split_entity, status_counts

__all__ = ["ENTITIES_DIR", "EntityFolder", "SameChartOnce", "entity_dir", "entity_view", "local_calls",
           "local_result", "local_task"]

#: the entities' folders, under the run folder
ENTITIES_DIR = "entities"


def entity_dir(run_dir: Path, entity_id: str) -> Path:
    return Path(run_dir) / ENTITIES_DIR / entity_id


@dataclass(frozen=True)
class EntityFolder:
    """One entity of a family run, as run.json lists it."""

    entity: Entity
    folder: str  # relative to the run folder
    counts: Mapping[str, int]  # done, failed, skipped, total
    usage: Usage

    def as_dict(self) -> dict[str, object]:
        return {
            "entity_id": self.entity.entity_id,
            "row": self.entity.row,
            "fields": dict(self.entity.fields),
            "folder": self.folder,
            "counts": dict(self.counts),
            "calls": self.usage.calls,
            "cost_usd": round(self.usage.cost_usd, 6),
        }

    @classmethod
    def of(cls, entity: Entity, results: Sequence[TaskResult], total: int) -> EntityFolder:
        return cls(entity, f"{ENTITIES_DIR}/{entity.entity_id}", {**status_counts(results), "total": total},
                   Usage.of(results))


def local_result(result: TaskResult) -> TaskResult:
    """The result under the workbook's objective id."""
    return dataclasses.replace(result, objective_id=split_entity(result.objective_id)[1])


def local_task(task: Task) -> Task:
    return dataclasses.replace(task, objective_id=split_entity(task.objective_id)[1],
                               depends_on=tuple(split_entity(ref)[1] for ref in task.depends_on))


def local_calls(calls: Mapping[str, Sequence[CallText]]) -> dict[str, list[CallText]]:
    """One entity's calls (`Ledger.call_texts(run, entity=ID)`) keyed `OBJ.TASK`, as its report.html's
    provenance panels name them (they put a for_each task's item calls in item order)."""
    return {split_entity(key)[1]: list(value) for key, value in calls.items()}


def entity_view(view: ReportView, entity: Entity) -> ReportView:
    """The entity's chapters, numbered from 1, under the workbook's ids; the title names the entity
    (its first field: `Outlook 2026 — Germany`)."""
    chapters = [c for c in view.chapters if c.objective.entity_id == entity.entity_id]
    local = tuple(
        Chapter(objective=dataclasses.replace(c.objective, objective_id=split_entity(c.objective.objective_id)[1]),
                results=tuple(local_result(r) for r in c.results), number=number, lead=c.lead)
        for number, c in enumerate(chapters, start=1)
    )
    name = entity.fields[0][1] if entity.fields else entity.entity_id
    return dataclasses.replace(view, project_name=f"{view.project_name} — {name}", chapters=local)


class SameChartOnce:
    """Draws each distinct chart once for the whole family: a table every entity shares makes the
    same picture in every folder, so it is drawn for the first and linked (or copied) for the rest."""

    def __init__(self, draw: Callable[[Path, object], None]) -> None:
        self._draw = draw
        self._drawn: dict[str, Path] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._registry = threading.Lock()

    def __call__(self, path: Path, spec: object) -> None:
        key = hashlib.sha256(repr(spec).encode()).hexdigest()  # a ChartSpec holds plain values: its repr is its content
        with self._registry:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            first = self._drawn.get(key)
            if first is None or not first.exists():
                self._draw(path, spec)
                self._drawn[key] = path
                return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(first, path)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(first, path)
