"""`report-pipeline show` and `logs`: the words and figures behind a run, a task, or any call.

Every call's rendered prompt and answer is in the ledger already; an analyst who wants to
know why a paragraph says what it says should not need sqlite3 for it. Read-only, as
`runs` is: it works on another user's output folder or a read-only copy.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .history import _duration, _open, _status, _when, chapter_facts, chapter_table
from .runlock import live_run_id
from .store import Ledger, TaskRow, messages_text, prompt_messages

__all__ = ["logs", "run_facts", "show", "task_facts"]


def show(output_dir: Path, run_id: str, task_key: str | None = None, *, as_json: bool = False) -> str:
    """The run's chapters, or one task's chain, as text a person reads (or JSON for a script)."""
    with _open(output_dir) as ledger:
        facts = task_facts(ledger, run_id, task_key) if task_key else run_facts(ledger, run_id, output_dir)
    if as_json:
        return json.dumps(facts, indent=2, ensure_ascii=False)
    return _task_text(facts) if task_key else _run_text(facts)


def run_facts(ledger: Ledger, run_id: str, output_dir: Path) -> dict[str, Any]:
    row = _run_row(ledger, run_id, output_dir)
    tasks = ledger.task_rows(run_id)
    return {
        "run_id": row.run_id, "status": _status(row, live_run_id(output_dir)), "sheet": row.sheet_path,
        "started": _when(row.started_at), "took": _duration(row),
        "tasks": {"done": row.done, "failed": row.failed, "skipped": row.skipped, "total": row.tasks_total},
        "tokens": {"input": row.prompt_tokens, "output": row.completion_tokens}, "cost_usd": row.cost_usd,
        "chapters": chapter_facts(tasks, ledger.chapter_usage(run_id), output_dir / run_id / "run.json"),
        "problems": [{"task": t.task_key, "status": t.status, "error": t.error} for t in tasks if t.status != "done"],
    }


def task_facts(ledger: Ledger, run_id: str, task_key: str) -> dict[str, Any]:
    _run_row(ledger, run_id, None)
    tasks = {t.task_key: t for t in ledger.task_rows(run_id)}
    task = tasks.get(task_key)
    if task is None:
        close = difflib.get_close_matches(task_key, list(tasks), n=1)
        hint = f": did you mean {close[0]}?" if close else ": write OBJECTIVE_ID.TASK_ID as in the tasks sheet"
        raise ConfigError(f"run {run_id} has no task {task_key}{hint}")
    calls = ledger.call_rows(run_id, task_key)
    return {**_task_summary(task), "calls": [_call(call) for call in calls]}


def _run_row(ledger: Ledger, run_id: str, output_dir: Path | None):
    row = ledger.run(run_id)
    if row is None:
        where = f" under {output_dir}" if output_dir is not None else ""
        raise ConfigError(f"no run {run_id!r}{where}: `report-pipeline runs` lists them")
    return row


def _task_summary(task: TaskRow) -> dict[str, Any]:
    took = (task.finished_at - task.started_at) if task.finished_at and task.started_at else None
    return {
        "run_id": task.run_id, "task": task.task_key, "title": task.title, "status": task.status,
        "error": task.error, "model": task.model, "steps": list(task.steps),
        "tokens": {"input": task.prompt_tokens, "output": task.completion_tokens}, "cost_usd": task.cost_usd,
        "attempts": task.attempts, "seconds": round(took, 3) if took is not None else None,
        "check": {"verdict": task.check_verdict, "notes": task.check_notes} if task.check_verdict else None,
        "text": task.text,
    }


def _call(call: dict[str, Any]) -> dict[str, Any]:
    messages = prompt_messages(call["prompt"])
    return {
        "step": call["step"], "model": call["model"], "status": call["status"], "error": call["error"],
        "cached": bool(call["cached"]), "attempts": call["attempts"], "seconds": call["latency_s"],
        "tokens": {"input": call["prompt_tokens"], "output": call["completion_tokens"],
                   "reasoning": call["reasoning_tokens"], "cached_input": call["cached_tokens"]},
        "cost_usd": call["cost_usd"], "messages": messages, "answer": call["response"],
    }


def _run_text(facts: dict[str, Any]) -> str:
    tasks, tokens = facts["tasks"], facts["tokens"]
    lines = [
        f"run {facts['run_id']}: {facts['status']}",
        f"  sheet:   {facts['sheet']}",
        f"  started: {facts['started']} UTC, took {facts['took']}",
        f"  tasks:   {tasks['done']} done, {tasks['failed']} failed, {tasks['skipped']} skipped of {tasks['total']}",
        f"  tokens:  {tokens['input']:,} in, {tokens['output']:,} out; cost ${facts['cost_usd']:.4f}",
        *chapter_table(facts["chapters"]),
    ]
    for problem in facts["problems"]:
        lines.append(f"  {problem['task']}: {problem['status']}: {problem['error']}")
    lines.append(f"  a task's prompt and answers: report-pipeline show {facts['run_id']} OBJECTIVE_ID.TASK_ID")
    return "\n".join(lines)


def _task_text(facts: dict[str, Any]) -> str:
    tokens = facts["tokens"]
    lines = [
        f"task {facts['task']} ({facts['title']}) in run {facts['run_id']}: {facts['status']}"
        + (f": {facts['error']}" if facts["error"] else ""),
        f"  model {facts['model'] or '-'}; steps {', '.join(facts['steps']) or '-'}; {len(facts['calls'])} call(s), "
        f"{facts['attempts']} send(s); tokens {tokens['input']:,} in / {tokens['output']:,} out; "
        f"cost ${facts['cost_usd']:.4f}" + (f"; {facts['seconds']:.1f} s" if facts["seconds"] is not None else ""),
    ]
    if facts["check"]:
        lines.append(f"  check: {facts['check']['verdict']}" + (f": {facts['check']['notes']}" if facts["check"]["notes"] else ""))
    for call in facts["calls"]:
        paid = "from the cache" if call["cached"] else f"${call['cost_usd']:.4f}"
        seconds = f"{call['seconds']:.2f} s" if call["seconds"] is not None else "-"
        lines += ["", f"--- {call['step']}: {call['model']}, {seconds}, {call['attempts']} send(s), "
                  f"{call['tokens']['input']:,} in / {call['tokens']['output']:,} out, {paid}"
                  + (f", {call['status']}: {call['error']}" if call["status"] != "ok" else "") + " ---"]
        lines += [messages_text(call["messages"]), "[answer]", call["answer"] or ""]
    return "\n".join(lines)


def logs(output_dir: Path, *, run_id: str | None = None, task_key: str | None = None, text: str | None = None,
         limit: int = 20, as_json: bool = False) -> str:
    """Calls across runs, newest first, as `llm logs` shows them: when, run, task, step, model,
    tokens and cost, then the prompt's last message and the answer, each cut to a few lines."""
    with _open(output_dir) as ledger:
        rows = ledger.search_calls(run_id=run_id, task_key=task_key, text=text, limit=limit)
    calls = [{"run_id": row["run_id"], "task": row["task_key"], "when": _when(row["created_at"]),
              **_call(row)} for row in rows]
    if as_json:
        return json.dumps(calls, indent=2, ensure_ascii=False)
    if not calls:
        return "no calls match"
    lines: list[str] = []
    for call in calls:
        paid = "from the cache" if call["cached"] else f"${call['cost_usd']:.4f}"
        lines += [f"{call['when']} UTC  {call['run_id']}  {call['task']} {call['step']}  {call['model']}  "
                  f"{call['tokens']['input']:,} in / {call['tokens']['output']:,} out  {paid}"
                  + (f"  {call['status']}: {call['error']}" if call["status"] != "ok" else "")]
        asked = next((m.get("content", "") for m in reversed(call["messages"]) if m.get("role") == "user"), "")
        lines += [f"  > {line}" for line in _few_lines(str(asked))]
        lines += [f"  < {line}" for line in _few_lines(call["answer"] or "")]
        lines.append("")
    return "\n".join(lines).rstrip()


def _few_lines(text: str, count: int = 3, width: int = 110) -> list[str]:
    kept = [line if len(line) <= width else line[: width - 1] + "…" for line in text.strip().splitlines()[:count]]
    return kept + (["…"] if len(text.strip().splitlines()) > count else [])
