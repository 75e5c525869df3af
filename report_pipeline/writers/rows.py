"""One TaskResult as one flat row: the shared shape of results.csv, the objective
CSVs and the per-objective sheets of report.xlsx (DESIGN.md, "Outputs")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from report_pipeline.models import (
    CHECK_COLUMNS,
    ENTITY_COLUMNS,
    FIGURE_COLUMNS,
    ITEM_COLUMNS,
    RESULT_COLUMNS,
    TaskResult,
    split_entity,
)
from report_pipeline.writers.safety import neutralise_cell

__all__ = ["ResultColumns", "format_timestamp", "full_row", "untraced_text"]

COST_DECIMALS = 6
DURATION_DECIMALS = 3


@dataclass(frozen=True)
class ResultColumns:
    """Which optional column groups a results table has, beside the columns every row has: the
    check step's verdict, a for_each task's item count, the figures check's counts, and (in a
    family run's results.csv) the entity. One value for results.csv, the chapter CSVs and
    report.xlsx, so their headers cannot disagree."""

    check: bool = False
    items: bool = False
    figures: bool = False
    entity: bool = False

    @classmethod
    def of(cls, results: Iterable[TaskResult]) -> ResultColumns:
        """The groups `results` have something for (a finished run's report.xlsx)."""
        results = list(results)
        return cls(check=_has_check_step(results), items=_has_items(results), figures=_has_figures(results))

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in contract order: `entity` first, the check columns, `items`, then the
        figures check's counts."""
        return ((ENTITY_COLUMNS if self.entity else ()) + RESULT_COLUMNS + (CHECK_COLUMNS if self.check else ())
                + (ITEM_COLUMNS if self.items else ()) + (FIGURE_COLUMNS if self.figures else ()))

    def row(self, result: TaskResult) -> dict[str, object]:
        """The row for `result`: exactly `names`, in order. Every string cell is neutralised against
        formula injection; numbers stay numbers so spreadsheets can sum them."""
        row = full_row(result)
        return {name: row[name] for name in self.names}


def _has_check_step(results: Iterable[TaskResult]) -> bool:
    """True when any task ran a `check` step, i.e. the check columns belong in the output."""
    return any("check" in r.steps or r.check_verdict or r.check_notes for r in results)


def _has_items(results: Iterable[TaskResult]) -> bool:
    """True when any task went over items (for_each), i.e. the `items` column belongs in the output."""
    return any(r.items for r in results)


def _has_figures(results: Iterable[TaskResult]) -> bool:
    """True when the figures check ran on any task, i.e. its columns belong in the output."""
    return any(r.figures is not None for r in results)


def untraced_text(result: TaskResult) -> str:
    """`41.2 ("Prices rose to 41.2 EUR/MWh."); 7% (...)`: each untraced figure with its sentence."""
    return "; ".join(f'{mark.text} ("{mark.sentence}")' for mark in result.untraced_figures)


def full_row(result: TaskResult) -> dict[str, object]:
    """Every column a row may have, neutralised; writers pick the ones their header has. A family
    run's `<entity>~<objective>` is split: `entity`, and the workbook's objective_id."""
    entity, objective_id = split_entity(result.objective_id)
    row: dict[str, object] = {
        "entity": entity,
        "objective_id": objective_id,
        "task_id": result.task_id,
        "title": result.title,
        "status": result.status,
        "error": result.error,
        "text": result.text,
        "model": result.model,
        "steps": ",".join(result.steps),
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": round(result.cost_usd, COST_DECIMALS),
        "attempts": result.attempts,
        "cached": "true" if result.cached else "false",
        "started_at": format_timestamp(result.started_at),
        "finished_at": format_timestamp(result.finished_at),
        "duration_s": round(result.duration_s, DURATION_DECIMALS),
        "check_verdict": result.check_verdict,
        "check_notes": result.check_notes,
        "items": len(result.items) if result.items else "",
        "figures_found": len(result.figures) if result.figures is not None else "",
        "figures_traced": sum(m.traced for m in result.figures) if result.figures is not None else "",
        "figures_untraced": len(result.untraced_figures) if result.figures is not None else "",
        "untraced_figures": untraced_text(result),
    }
    return {name: neutralise_cell(value) for name, value in row.items()}


def format_timestamp(unix_time: float) -> str:
    """`2024-05-01T12:00:00.123Z` (ISO-8601, UTC, milliseconds truncated); "" for 0 (never started)."""
    if not unix_time:
        return ""
    moment = datetime.fromtimestamp(unix_time, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
