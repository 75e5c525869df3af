"""`report-pipeline runs`: what the ledger remembers, as text a person reads at 07:00."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import Usage
from .runlock import live_run_id
from .store import DEFAULT_LEDGER_NAME, Ledger, RunRow, TaskRow


def resume_command(sheet_path: str | Path, output_dir: str | Path, run_id: str) -> str:
    """The exact command that continues a run, from any folder: absolute paths, quoted for a shell.

    No other flag is needed: a resumed run takes its provider, endpoint, model and the rest of
    its config from the ledger (`--set max_cost_usd=...` may raise a budget that stopped it)."""
    sheet = shlex.quote(str(Path(sheet_path).resolve()))
    output = shlex.quote(str(Path(output_dir).resolve()))
    return f"report-pipeline run {sheet} --resume {shlex.quote(run_id)} --output {output}"


def _open(output_dir: Path) -> Ledger:
    path = Path(output_dir) / DEFAULT_LEDGER_NAME
    if not path.exists():
        raise ConfigError(f"no runs recorded under {output_dir} (no {DEFAULT_LEDGER_NAME}): pass the run's --output")
    return Ledger.for_reading(path)  # writes nothing: the file may be another user's, or read-only


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _status(row: RunRow, live: str | None) -> str:
    """The ledger's status, except that a run it still calls running, which no live process
    holds the folder for, was killed (kill -9, a power cut): it says so until the next run
    marks it."""
    if row.status == "running" and row.run_id != live:
        return "interrupted"
    return row.status


def _duration(row: RunRow) -> str:
    if not row.finished_at:
        return "-"
    seconds = row.finished_at - row.started_at
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def list_runs(output_dir: Path, *, limit: int = 20) -> str:
    with _open(output_dir) as ledger:
        rows = ledger.recent_runs(limit)
    live = live_run_id(output_dir)
    if not rows:
        return f"no runs recorded under {output_dir}"
    lines = [f"{'run id':<22} {'started (UTC)':<17} {'status':<12} {'done':>5} {'failed':>6} {'skip':>5} "
             f"{'tokens':>10} {'cost $':>9} {'time':>8}  sheet"]
    for r in rows:
        lines.append(
            f"{r.run_id:<22} {_when(r.started_at):<17} {_status(r, live):<12} {r.done:>5} {r.failed:>6} {r.skipped:>5} "
            f"{r.prompt_tokens + r.completion_tokens:>10,} {r.cost_usd:>9.4f} {_duration(r):>8}  {Path(r.sheet_path or '-').name}"
        )
    return "\n".join(lines)


def describe_run(output_dir: Path, run_id: str) -> str:
    with _open(output_dir) as ledger:
        row = ledger.run(run_id)
        if row is None:
            raise ConfigError(f"no run {run_id!r} under {output_dir}: `report-pipeline runs` lists them")
        tasks = ledger.task_rows(run_id)
        batches = ledger.run_batches(run_id)
        usage = ledger.chapter_usage(run_id)
    status = _status(row, live_run_id(output_dir))
    lines = [
        f"run {row.run_id}: {status}",
        f"  sheet:    {row.sheet_path}",
        f"  started:  {_when(row.started_at)} UTC, took {_duration(row)}",
        f"  tasks:    {row.done} done, {row.failed} failed, {row.skipped} skipped of {row.tasks_total}",
        f"  tokens:   {row.prompt_tokens:,} in, {row.completion_tokens:,} out; cost ${row.cost_usd:.4f}",
        f"  folder:   {Path(output_dir) / row.run_id}",
    ]
    figures = _figures_summary(Path(output_dir) / row.run_id / "run.json")
    if figures:
        lines.insert(-1, f"  figures:  {figures}")
    lines.extend(chapter_table(chapter_facts(tasks, usage, Path(output_dir) / row.run_id / "run.json")))
    if batches:
        lines.append("  batches:")
        for b in batches:
            state = "collected" if b.collected else "not collected yet"
            lines.append(
                f"    wave {b.wave} {b.batch_id or f'(file {b.input_file_id})'}: {b.status}, "
                f"{b.request_completed}/{b.request_total} completed, {b.request_failed} failed; {state}"
            )
    problems = [t for t in tasks if t.status != "done"]
    if problems:
        lines.append("  failed or skipped:")
        for t in problems:
            lines.append(f"    {t.task_key:<24} {t.status:<8} {t.error}")
    if status != "done" and row.sheet_path:
        lines.append(f"  continue it with: {resume_command(row.sheet_path, output_dir, row.run_id)}")
    return "\n".join(lines)


def chapter_facts(tasks: list[TaskRow], usage: dict[str, Usage], run_json: Path) -> list[dict[str, Any]]:
    """Per chapter: task counts by status, calls, tokens and cost, in the sheet's order (from the run's
    run.json; the ledger does not keep it), else in the order the chapters' first tasks started."""
    chapters: dict[str, dict[str, Any]] = {}
    for task in tasks:
        chapter = chapters.setdefault(task.objective_id, {"objective_id": task.objective_id,
                                                          "done": 0, "failed": 0, "skipped": 0})
        chapter[task.status] = chapter.get(task.status, 0) + 1
    for objective_id, chapter in chapters.items():
        used = usage.get(objective_id, Usage())
        chapter.update(calls=used.calls, cached_calls=used.cached_calls,
                       tokens={"input": used.prompt_tokens, "output": used.completion_tokens},
                       cost_usd=used.cost_usd)
    order = _sheet_order(run_json)
    return sorted(chapters.values(), key=lambda c: order.get(c["objective_id"], len(order)))


def chapter_table(chapters: list[dict[str, Any]]) -> list[str]:
    """The chapters as aligned lines under a header (none for a run with no recorded task)."""
    if not chapters:
        return []
    width = max(24, *(len(c["objective_id"]) for c in chapters))
    lines = ["", f"  {'chapter':<{width}} {'done':>5} {'failed':>6} {'skip':>5} {'calls':>6} {'tokens':>10} {'cost $':>9}"]
    for c in chapters:
        tokens = c["tokens"]["input"] + c["tokens"]["output"]
        lines.append(f"  {c['objective_id']:<{width}} {c['done']:>5} {c['failed']:>6} {c['skipped']:>5} "
                     f"{c['calls']:>6} {tokens:>10,} {c['cost_usd']:>9.4f}")
    return lines


def _figures_summary(run_json: Path) -> str | None:
    """The figures check's line from the run's run.json (the ledger does not keep it)."""
    try:
        figures = json.loads(run_json.read_text(encoding="utf-8")).get("figures")
    except (OSError, ValueError, AttributeError):
        return None
    return figures.get("summary") if isinstance(figures, dict) else None


def _sheet_order(run_json: Path) -> dict[str, int]:
    try:
        objectives = json.loads(run_json.read_text(encoding="utf-8")).get("objectives", [])
    except (OSError, ValueError, AttributeError):
        return {}
    return {o.get("objective_id"): i for i, o in enumerate(objectives) if isinstance(o, dict)}
