"""One TaskResult as one flat row: the shared shape of results.csv, the objective
CSVs and the per-objective sheets of report.xlsx (DESIGN.md, "Outputs")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from report_pipeline.models import CHECK_COLUMNS, RESULT_COLUMNS, TaskResult
from report_pipeline.writers.safety import neutralise_cell

__all__ = ["format_timestamp", "has_check_step", "result_columns", "result_row"]

COST_DECIMALS = 6
DURATION_DECIMALS = 3


def result_columns(*, with_check: bool) -> tuple[str, ...]:
    """The column names, in contract order."""
    return RESULT_COLUMNS + CHECK_COLUMNS if with_check else RESULT_COLUMNS


def has_check_step(results: Iterable[TaskResult]) -> bool:
    """True when any task ran a `check` step, i.e. the check columns belong in the output."""
    return any("check" in r.steps or r.check_verdict or r.check_notes for r in results)


def result_row(result: TaskResult, *, with_check: bool) -> dict[str, object]:
    """The row for `result`: exactly `result_columns(with_check=...)`, in order.

    Every string cell is neutralised against formula injection; numbers stay
    numbers so spreadsheets can sum them.
    """
    row: dict[str, object] = {
        "objective_id": result.objective_id,
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
    }
    if with_check:
        row["check_verdict"] = result.check_verdict
        row["check_notes"] = result.check_notes
    return {name: neutralise_cell(value) for name, value in row.items()}


def format_timestamp(unix_time: float) -> str:
    """`2024-05-01T12:00:00.123Z` (ISO-8601, UTC, milliseconds truncated); "" for 0 (never started)."""
    if not unix_time:
        return ""
    moment = datetime.fromtimestamp(unix_time, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
