"""`--resume RUN_ID`: continue a stopped run in its own folder, with the tasks it finished restored from the ledger.

A resumed run pays only for calls that had not completed: its finished tasks come back
exactly as that run recorded them (cost included: it was paid in this run), so its
outputs match an uninterrupted run's, and what it spent before counts against
max_cost_usd. It refuses a workbook edited since the run started, and reruns a task whose
model changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError
from ..ledger.store import Ledger, TaskRow, figures_from_json, items_from_json
from ..models import CallRecord, TaskResult
from ..providers.budget import CostMeter
from .plan import Plan

__all__ = ["check_resumable", "no_such_run", "reopen_run", "restore_result"]

log = logging.getLogger("report_pipeline.pipeline")


def check_resumable(config: RunConfig, run_id: str, run_dir: Path) -> None:
    """--resume needs an earlier run's folder and ledger: said before anything is created."""
    if not config.ledger:
        raise ConfigError(
            f"--resume {run_id}: resuming reads the run's finished tasks from the ledger, which this "
            "config turns off (ledger: false); set ledger: true, or run without --resume"
        )
    if not Path(config.resolved_ledger_path).is_file():
        raise no_such_run(config, run_id, "no ledger there")
    if not run_dir.is_dir():
        raise no_such_run(config, run_id, "no such run folder there")


def no_such_run(config: RunConfig, run_id: str, why: str) -> ConfigError:
    return ConfigError(
        f"--resume {run_id}: no such run under {config.output_dir} ({why}): see "
        f"`report-pipeline runs --output {config.output_dir}`, and pass the same --output"
    )


def reopen_run(
    ledger: Ledger, *, config: RunConfig, run_id: str, run_dir: Path, plan: Plan,
    sheet_path: Path, sheet_digest: str, meter: CostMeter,
) -> dict[str, TaskResult]:
    """The run's folder made ready again, its spend on `meter`, and the tasks it finished (by key)."""
    known = ledger.run(run_id)
    if known is None:  # the ledger and the run folder: check_resumable, before the lock
        raise no_such_run(config, run_id, "the ledger does not know it")
    if known.sheet_hash and known.sheet_hash != sheet_digest:
        raise ConfigError(
            f"--resume {run_id}: the workbook {sheet_path}"
            + (f" or the entities file ({config.each})" if config.each else "")
            + " changed since that run started, so "
            "its finished tasks may no longer match their rows. Run it without --resume: a new run "
            "reuses every unchanged call from the ledger and pays only for what changed"
        )
    if known.status == "done":
        log.info("run %s had already finished; resuming rewrites its outputs", run_id)
    (run_dir / "objectives").mkdir(exist_ok=True)
    for leftover in run_dir.rglob(".*.tmp"):  # a write cut short by the crash: never a real file
        leftover.unlink(missing_ok=True)
    (run_dir / "results.csv").unlink(missing_ok=True)  # rewritten whole, restored rows first
    paid = ledger.paid_usd(run_id)
    if paid > 0:
        meter.add(paid)  # max_cost_usd caps the run, not each attempt at it
        log.info("run %s had spent $%.4f before it stopped; max_cost_usd counts it", run_id, paid)
    finished = ledger.completed_tasks(run_id)
    return {key: restore_result(row) for key, row in finished.items()
            if key in plan.tasks and _same_model(plan, config, key, row)}


def _same_model(plan: Plan, config: RunConfig, key: str, row: TaskRow) -> bool:
    """A finished task is reused only if it ran on the model it would run on now (`--model` on resume)."""
    models = plan.tasks[key].model or (config.model,)
    if len(models) > 1 or row.model in (None, "", models[0]):
        return True
    log.info("task %s ran on %s, this run asks %s: it runs again", key, row.model, models[0])
    return False


def restore_result(row: TaskRow) -> TaskResult:
    """A task finished before the interruption, exactly as that run recorded it (cost included:
    it was paid in this run), so a resumed run's outputs match an uninterrupted one's."""
    record = CallRecord(
        step="resumed", model=row.model, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, cost_usd=row.cost_usd, attempts=row.attempts,
    )
    return TaskResult(
        objective_id=row.objective_id, task_id=row.task_id, title=row.title, status="done",
        error=row.error, text=row.text, model=row.model, steps=row.steps, calls=(record,),
        started_at=row.started_at or 0.0, finished_at=row.finished_at or 0.0,
        check_verdict=row.check_verdict, check_notes=row.check_notes, items=items_from_json(row.items),
        figures=figures_from_json(row.figures),
    )
