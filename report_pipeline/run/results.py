"""`ReportStructureManager`: every task's result, collected from many threads, read in sheet order.

The lock guards dict updates only; callers do LLM calls and file writes outside it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from ..models import Chapter, ReportView, TaskResult
from .plan import Plan


@dataclass(frozen=True)
class Recorded:
    """What recording one result changed, so the caller can act outside the lock."""

    objective_finished: bool
    objective_id: str


class ReportStructureManager:
    """Holds results keyed by `OBJ.TASK`; hands out snapshots in sheet order."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._lock = threading.Lock()
        self._results: dict[str, TaskResult] = {}
        self._left: dict[str, int] = {obj: len(keys) for obj, keys in plan.tasks_by_objective.items()}

    def record(self, result: TaskResult) -> Recorded:
        """Store a result once; a second result for the same task is a bug, not a retry."""
        key = result.key
        with self._lock:
            if key in self._results:
                raise RuntimeError(f"task {key} recorded twice")
            if key not in self._plan.tasks:
                raise KeyError(f"task {key} is not part of this run")
            self._results[key] = result
            self._left[result.objective_id] -= 1
            finished = self._left[result.objective_id] == 0
        return Recorded(objective_finished=finished, objective_id=result.objective_id)

    def get(self, key: str) -> TaskResult | None:
        with self._lock:
            return self._results.get(key)

    def texts_for(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The finished text of each key (dependencies of a task about to run)."""
        with self._lock:
            return {key: self._results[key].text for key in keys if key in self._results}

    def objective_results(self, objective_id: str) -> tuple[TaskResult, ...]:
        """The recorded results of one objective, in sheet order."""
        keys = self._plan.tasks_by_objective.get(objective_id, ())
        with self._lock:
            return tuple(self._results[k] for k in keys if k in self._results)

    def all_results(self) -> list[TaskResult]:
        """Every recorded result, in sheet order."""
        with self._lock:
            return [self._results[k] for k in self._plan.tasks if k in self._results]

    def is_recorded(self, key: str) -> bool:
        with self._lock:
            return key in self._results

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r.status for r in self._results.values())

    def report_view(self, *, project_name: str, run_id: str, generated_at: float, provider: str, model: str,
                    description_as_lead: bool = False) -> ReportView:
        """The report in sheet order, whatever order the results arrived in. A chapter's lead is its
        `lead` cell; its `description` (an analyst's note) only when the settings ask for it."""
        chapters = []
        for number, objective in enumerate(self._plan.objectives, start=1):
            results = self.objective_results(objective.objective_id)
            lead = objective.lead or (objective.description if description_as_lead else "")
            chapters.append(Chapter(objective=objective, results=results, number=number, lead=lead.strip()))
        return ReportView(
            project_name=project_name,
            run_id=run_id,
            generated_at=generated_at,
            provider=provider,
            model=model,
            chapters=tuple(chapters),
        )
