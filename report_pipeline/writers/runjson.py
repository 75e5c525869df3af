"""run.json: everything a person or a script needs to know about a run, built from plain values, no secrets.

The schema is `report_pipeline/schemas/run.schema.json`; the pipeline gathers the facts
(`RunFacts`) and the per-chapter files (`ChapterFile`) and this module lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..models import FiguresTally, ItemResult, TaskResult, Usage, split_entity

__all__ = ["ChapterFile", "RunFacts", "build_manifest", "iso_time"]


@dataclass(frozen=True)
class RunFacts:
    """The run as a whole: how it ended, what it cost, where it ran (the config already redacted)."""

    version: str
    run_id: str
    status: str
    exit_code: int
    halt_reason: str | None
    sheet: str
    started: float
    finished: float
    duration_s: float
    counts: Mapping[str, int]
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cost_usd: float
    prompt_cache_saving_usd: float
    execution: str
    batch: Mapping[str, Any] | None
    provider: str
    model: str
    resources: Mapping[str, Any]
    outputs: Mapping[str, str]  # kind -> file name in the run folder
    config: Mapping[str, Any]
    resume_command: str | None = None
    writers: Sequence[tuple[str, str, int]] = ()  # (provider, model, sections written)
    concurrency: Mapping[str, Any] | None = None  # the in-flight limits over the run (None: offline)
    family: Mapping[str, Any] | None = None  # a family run (--each): its entities, their folders and counts


@dataclass(frozen=True)
class ChapterFile:
    """One objective (chapter) and its CSV, relative to the run folder."""

    objective_id: str
    title: str
    csv: str
    written_at: float = 0.0  # when the CSV was on disk (0: not written)
    last_answer_at: float = 0.0  # when the chapter's last task settled


def iso_time(ts: float) -> str | None:
    """A timestamp as `2026-11-22T14:05:01.123Z`; None for 0 (never happened)."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_manifest(facts: RunFacts, results: Sequence[TaskResult], chapters: Sequence[ChapterFile]) -> dict[str, Any]:
    """The manifest as a JSON-ready dict, in the schema's order."""
    by_objective: dict[str, list[TaskResult]] = {}  # grouped once: a family has thousands of chapters
    for result in results:
        by_objective.setdefault(result.objective_id, []).append(result)
    return {
        "schema_version": 1,
        "tool": "report-pipeline",
        "version": facts.version,
        "run_id": facts.run_id,
        "status": facts.status,
        "exit_code": facts.exit_code,
        "halt_reason": facts.halt_reason,
        "resume_command": facts.resume_command,
        "sheet": facts.sheet,
        "started_at": iso_time(facts.started),
        "finished_at": iso_time(facts.finished),
        "duration_s": round(facts.duration_s, 3),
        "counts": dict(facts.counts),
        "tokens": {"prompt": facts.prompt_tokens, "completion": facts.completion_tokens,
                   "total": facts.prompt_tokens + facts.completion_tokens,
                   "reasoning": facts.reasoning_tokens, "cached": facts.cached_tokens},
        "cost_usd": round(facts.cost_usd, 6),
        "prompt_cache_saving_usd": round(facts.prompt_cache_saving_usd, 6),
        "figures": _run_figures(results),
        "execution": facts.execution,
        "concurrency": dict(facts.concurrency) if facts.concurrency is not None else None,
        "batch": facts.batch,
        "provider": facts.provider,
        "model": facts.model,
        "written_by": [{"provider": p, "model": m, "sections": n} for p, m, n in facts.writers],
        "resources": dict(facts.resources),
        "outputs": dict(facts.outputs),
        "objectives": [_chapter(chapter, by_objective.get(chapter.objective_id, [])) for chapter in chapters],
        "tasks": [_task(result) for result in results],
        "config": dict(facts.config),
        **({"family": dict(facts.family)} if facts.family is not None else {}),
    }


def _chapter(chapter: ChapterFile, mine: Sequence[TaskResult]) -> dict[str, Any]:
    """One chapter's line, from its own results."""
    entity, objective_id = split_entity(chapter.objective_id)
    return {
        **({"entity": entity} if entity else {}),
        "objective_id": objective_id,
        "title": chapter.title,
        "csv": chapter.csv,
        "done": sum(r.status == "done" for r in mine),
        "failed": sum(r.status == "failed" for r in mine),
        "skipped": sum(r.status == "skipped" for r in mine),
        **_usage(Usage.of(mine)),
        "csv_written_at": iso_time(chapter.written_at),
        # how promptly the chapter's file followed its last answer (seconds; None: not written)
        "csv_after_last_answer_s": (round(max(0.0, chapter.written_at - chapter.last_answer_at), 4)
                                    if chapter.written_at and chapter.last_answer_at else None),
    }


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "calls": usage.calls,
        "cached_calls": usage.cached_calls,
        "tokens": {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens, "total": usage.tokens,
                   "reasoning": usage.reasoning_tokens, "cached": usage.cached_tokens},
        "cost_usd": round(usage.cost_usd, 6),
    }


def _item(item: ItemResult) -> dict[str, Any]:
    usage = Usage.of_calls(item.calls)
    return {
        "number": item.number,
        "name": item.name,
        "status": "done" if item.ok else "failed",
        "error": item.error or None,
        "calls": usage.calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": round(usage.cost_usd, 6),
    }


def _figures(r: TaskResult) -> dict[str, Any] | None:
    if r.figures is None:
        return None
    return {
        "found": len(r.figures),
        "traced": sum(m.traced for m in r.figures),
        "untraced": len(r.untraced_figures),
        "untraced_figures": [{"figure": m.text, "sentence": m.sentence} for m in r.untraced_figures],
    }


def _run_figures(results: Sequence[TaskResult]) -> dict[str, Any] | None:
    tally = FiguresTally.of(results)
    if not tally.checked_tasks:
        return None
    return {"checked_tasks": tally.checked_tasks, "found": tally.found, "traced": tally.traced,
            "flagged": tally.flagged, "flagged_tasks": tally.flagged_tasks, "summary": tally.describe()}


def _task(r: TaskResult) -> dict[str, Any]:
    entity, objective_id = split_entity(r.objective_id)
    return {
        **({"entity": entity} if entity else {}),
        "objective_id": objective_id,
        "task_id": r.task_id,
        "status": r.status,
        "error": r.error or None,
        "model": r.model or None,
        "steps": list(r.steps),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "cached_tokens": r.cached_tokens,
        "cost_usd": round(r.cost_usd, 6),
        "attempts": r.attempts,
        "cached": r.cached,
        "started_at": iso_time(r.started_at),
        "finished_at": iso_time(r.finished_at),
        "duration_s": round(r.duration_s, 3),
        "thread": r.thread or None,
        "items": [_item(item) for item in r.items] if r.items else None,
        "figures": _figures(r),
        "calls": [
            {
                "step": c.step, "model": c.model, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "reasoning_tokens": c.reasoning_tokens,
                "cached_tokens": c.cached_tokens, "cost_usd": round(c.cost_usd, 6),
                "attempts": c.attempts, "latency_s": round(c.latency_s, 4), "cached": c.cached,
                "started_at": iso_time(c.started_at), "finished_at": iso_time(c.finished_at), "thread": c.thread,
            }
            for c in r.calls
        ],
    }
