"""`run --dry-run`: render every prompt and price the run before spending anything."""

from __future__ import annotations

from ..config import RunConfig
from ..models import PromptSheet, Task, split_entity
from ..providers.tokens import prompt_tokens as estimate_prompt
from ..workbook.data import DataStore
from ..workbook.family import FamilyData, family_selection
from .plan import build_plan, critical_path_rounds
from .results import ReportStructureManager
from .runner import TaskRunner

_CHECK_ANSWER_TOKENS = 200


def estimate_run(sheet: PromptSheet, config: RunConfig, *, show_prompts: bool = False) -> str:
    """A per-objective table of calls, tokens and an upper-bound cost; raises if any prompt fails to render.

    A dependency's text is not known before the run: it counts at its `max_tokens` (a task
    waiting on three chapters may send them all), so the figure stays an upper bound.
    `show_prompts` adds every task's rendered prompt, a dependency's text as a placeholder."""
    objectives, tasks = family_selection(sheet, config.objectives, config.tasks)
    plan = build_plan(sheet, objectives=objectives, limit=config.limit, tasks=tasks)
    family = FamilyData(sheet.data_sources, sheet.family) if sheet.family else None
    runner = TaskRunner(
        config=config, sheet=sheet, plan=plan, data=family.shared if family else DataStore(sheet.data_sources),
        results=ReportStructureManager(plan), call=_never_called, family=family,
    )
    lines = [f"dry run of {sheet.path}: nothing is sent", ""]
    if sheet.family:  # each line below sums the chapter over every entity
        shard = f" (shard {config.shard} of a family of {len(sheet.family_ids)})" if config.shard else ""
        lines[-1:-1] = [f"a family of {len(sheet.family)} reports{shard}, one per row of {config.each}: "
                        f"{plan.task_count} tasks in all; each line sums a chapter over the family"]
    by_chapter: dict[str, tuple[str, list]] = {}  # the workbook's objective id -> (title, row)
    lines.append(f"{'objective':<28} {'tasks':>5} {'calls':>6} {'prompt tok':>11} {'max out tok':>12} {'max cost $':>11}")
    totals = [0, 0, 0, 0, 0.0]
    batch_cost = 0.0
    unpriced: set[str] = set()
    prompts: list[str] = []
    notes: list[str] = []
    item_counts: dict[str, int] = {}  # for_each task -> items: its text is that many answers long
    for objective in plan.objectives:
        row = [0, 0, 0, 0, 0.0]
        for key in plan.tasks_by_objective[objective.objective_id]:
            task = plan.tasks[key]
            placeholders = {ref: f"[text of {ref}, written during the run]" for ref in (*plan.parents[key], *task.depends_on)}
            max_out = task.max_tokens or config.max_tokens
            written_before = sum(item_counts.get(parent, 1) * _max_out(plan.tasks[parent], config)
                                 for parent in plan.parents[key])
            row[0] += 1
            items = runner.items(task) if task.for_each else [None]
            if task.for_each:
                item_counts[key] = len(items)
                notes.append(f"{key}: {len(items)} items (for_each {task.for_each}), a call chain each"
                             + (", then one combine call" if task.merge == "combine" else ""))
            calls = []
            for item in items:
                prompt = runner.render(task, placeholders, item)
                first = runner.request_for(task, "generate", config.model, prompt)
                if show_prompts:
                    label = f" item {item.number} {item.label!r}" if item is not None else ""
                    prompts += [f"== {key}{label} ({', '.join(task.model or (config.model,))}) ==", prompt, ""]
                prompt_bound = estimate_prompt(first.messages) + written_before
                calls.extend(_calls(task, objective.mode, config, prompt_bound, max_out))
            if task.for_each and task.merge == "combine":
                calls.append(((task.model or (config.model,))[0], "combine", len(items) * max_out + _CHECK_ANSWER_TOKENS,
                              max_out))
            for model, step, prompt_tokens, out_tokens in calls:
                row[1] += 1
                row[2] += prompt_tokens
                row[3] += out_tokens
                price = config.price_for(model)
                if price is None:
                    unpriced.add(model)
                else:
                    row[4] += price.cost(prompt_tokens, out_tokens)
                    batch_cost += price.cost(prompt_tokens, out_tokens, batch=True)
        totals = [a + b for a, b in zip(totals, row)]
        local = split_entity(objective.objective_id)[1]
        _, summed = by_chapter.setdefault(local, (objective.title, [0, 0, 0, 0, 0.0]))
        summed[:] = [a + b for a, b in zip(summed, row)]
    for title, row in by_chapter.values():
        lines.append(f"{title[:28]:<28} {row[0]:>5} {row[1]:>6} {row[2]:>11,} {row[3]:>12,} {row[4]:>11.4f}")
    lines.append(f"{'total':<28} {totals[0]:>5} {totals[1]:>6} {totals[2]:>11,} {totals[3]:>12,} {totals[4]:>11.4f}")
    lines.append("")
    lines.append("Tokens are estimated at 4 characters a token; output is counted at max_tokens, a dependency's text "
                 "in a prompt at its max_tokens, and outline chapters at outline_max_sections sections (retries not "
                 "counted), so the cost is an upper bound.")
    lines.extend(notes)
    if config.execution == "batch":
        waves = critical_path_rounds(plan, config.steps)
        lines.append(
            f"Batch mode: {waves} wave(s) (the longest chain of calls that wait for one another), "
            f"at most ${batch_cost:.4f} at batch prices against ${totals[4]:.4f} in real time."
        )
    if unpriced:
        lines.append(f"No price in config `prices` for: {', '.join(sorted(unpriced))} (counted as $0).")
    if config.max_cost_usd is not None and totals[4] > config.max_cost_usd:
        lines.append(f"Warning: the upper bound passes max_cost_usd = {config.max_cost_usd}; the run stops there (exit 3).")
    if prompts:
        lines = [*prompts, *lines]
    return "\n".join(lines)


def _max_out(task: Task, config: RunConfig) -> int:
    return task.max_tokens or config.max_tokens


def _calls(task, mode: str, config: RunConfig, prompt_tokens: int, max_out: int):
    """(model, step, prompt tokens, most output tokens) of every call a task can make:
    an outline plan and its sections (each section's answer counted at max_tokens), one
    chain per model, and a judge for `merge = best`."""
    models = task.model or (config.model,)
    for model in models:
        for step in task.steps or config.steps:
            if step == "generate" and mode == "outline":
                yield model, "outline", prompt_tokens, _CHECK_ANSWER_TOKENS
                for _ in range(config.outline_max_sections):
                    yield model, "section", prompt_tokens + _CHECK_ANSWER_TOKENS, max_out
                continue
            extra = 0 if step == "generate" else max_out
            yield model, step, prompt_tokens + extra, _CHECK_ANSWER_TOKENS if step == "check" else max_out
    if len(models) > 1 and task.merge == "best":
        yield config.judge_model or config.model, "judge", prompt_tokens + len(models) * max_out, _CHECK_ANSWER_TOKENS


def _never_called(request):  # pragma: no cover - a dry run renders, it never calls
    raise AssertionError("a dry run must not call the model")
