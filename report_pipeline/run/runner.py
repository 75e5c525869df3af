"""Running one task: render its prompt in the sandbox, then make each step's call in turn.

Runs on a task thread. It reads dependency texts from the results manager (a short
lock) and never touches the scheduler's state.

The `generate` step is one call, except that

- in an `outline` objective it is a section plan (a json_object call, retried while
  the answer is unusable) and then one call per planned section, in parallel
  (see outline.py);
- with several models it is one variant per model, in parallel, merged by the
  task's `merge` rule (see variants.py).

Those sub-calls run on pools of their own, owned by the runner and bounded by
`max_concurrent_requests`, never on the task pool the task itself runs on: a task
waiting for work queued behind it in its own full pool would wait forever. In
sequential mode (`run_task_concurrent` false) they run inline, one by one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ..checks.numbers import NumberStyle
from ..config import RunConfig
from ..errors import NotSent, ProviderError, RunAborted, TaskInputError
from ..models import CallRecord, FigureMark, ItemResult, Objective, PromptSheet, Task, TaskResult, split_entity
from ..providers.base import ChatRequest, ChatResponse
from ..workbook.data import DataStore, to_markdown
from ..workbook.family import FamilyData, local_keys
from ..workbook.items import Item, expand_items, parse_for_each
from ..workbook.templates import PromptRenderer, build_context, item_variable
from .foreach import assemble_items, combine_allowed, failed_items
from .outline import (
    FilledSection,
    OutlinePlan,
    Section,
    assemble_sections,
    failed_sections,
    parse_plan,
)
from .plan import Plan
from .results import ReportStructureManager
from .scheduler import InlineExecutor
from .steps import (
    DEFAULT_STEP_PROMPTS,
    DEFAULT_SYSTEM_PROMPT,
    JSON_OBJECT,
    JUDGE_SYSTEM_PROMPT,
    AnswerError,
    parse_check,
)
from .variants import (
    Variant,
    all_failed_message,
    collect_all_text,
    combined_notes,
    combined_verdict,
    failed_variants,
    judge_fallback_note,
    judged_note,
    label_model,
    parse_choice,
)

if TYPE_CHECKING:
    from ..checks.figures import FigureCheck
    from .figures import RunTables  # numpy: imported on use

log = logging.getLogger("report_pipeline.runner")

CallFn = Callable[[ChatRequest], ChatResponse]
T = TypeVar("T")

# The judge writes a number and a sentence; this is plenty, and caps a rambling one.
_JUDGE_MAX_TOKENS = 300
# How much a retried plan request's temperature moves per retry (see _retry_request).
_RETRY_TEMPERATURE_STEP = 0.1
_MAX_TEMPERATURE = 2.0


class _TaskFailed(Exception):
    """The task cannot produce a text (no usable plan, no section, no variant); the message says why."""


class _ItemsFailed(_TaskFailed):
    """A for_each task failed on its items: what was written is kept, with a note in place of each failure."""

    def __init__(self, message: str, text: str, items: tuple[ItemResult, ...]) -> None:
        super().__init__(message)
        self.text = text
        self.items = items


@dataclass(frozen=True)
class _Draft:
    """What the generate stage produced, and the parts of it that failed (for `error`)."""

    text: str
    partial: str = ""


@dataclass(frozen=True)
class _Outcome:
    """A task's text after its whole chain, ready to become a TaskResult."""

    text: str
    model: str
    partial: str = ""
    verdict: str = ""
    notes: str = ""


class _CallLog:
    """The CallRecords of one task, appended from its own thread and its sub-call threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> tuple[CallRecord, ...]:
        with self._lock:
            return tuple(sorted(self._records, key=lambda r: r.started_at))


class AttachedTables:
    """`data.NAME` in a template: a table turns into Markdown on first use, and the names used
    are remembered so attached tables the template did not place can be appended to the prompt."""

    def __init__(self, store: DataStore) -> None:
        self._store = store
        self.used: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        return self._store.names

    def markdown(self, name: str) -> str:
        self.used.add(name)
        return self._store.markdown(name)


class TaskRunner:
    """Turns a planned task into a TaskResult; one instance shared by every task thread.

    Call `close()` when the run is over: it shuts the sub-call pools down.
    """

    def __init__(
        self,
        *,
        config: RunConfig,
        sheet: PromptSheet,
        plan: Plan,
        data: DataStore,
        results: ReportStructureManager,
        call: CallFn,
        clock: Callable[[], float] = time.time,
        sequential_subcalls: bool | None = None,
        family: FamilyData | None = None,
    ) -> None:
        self._config = config
        self._sheet = sheet
        self._plan = plan
        self._data = data
        self._family = family  # a family run: each task reads its entity's tables
        self._results = results
        self._call = call
        self._clock = clock
        self._objectives: dict[str, Objective] = {o.objective_id: o for o in sheet.objectives}
        self._renderer = PromptRenderer()  # each distinct template compiles once per run
        self._number_style = NumberStyle.for_locale(config.locale)
        self._figure_tables: dict[str, Any] = {}  # entity -> run/figures.RunTables: each table indexed once
        self._figure_tables_lock = threading.Lock()
        self._step_prompts = {**DEFAULT_STEP_PROMPTS, **{k: v for k, v in sheet.prompts.items() if k in DEFAULT_STEP_PROMPTS}}
        if sequential_subcalls is None:
            sequential_subcalls = not config.run_task_concurrent
        # sequential mode, and batch mode's passes, make sections and variants one by one
        self._pools = _SubCallPools(config.max_concurrent_requests, inline=sequential_subcalls)
        # a runner dropped without close() still lets its idle threads go
        self._finalizer = weakref.finalize(self, self._pools.close)

    def close(self) -> None:
        """Shut the sub-call pools down; call it once the task pool has drained, so nothing is left in them."""
        self._finalizer()

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, task: Task) -> TaskResult:
        started = self._clock()
        thread = threading.current_thread().name
        steps = task.steps or self._config.steps
        models = task.model or (self._config.model,)
        calls = _CallLog()
        items: tuple[ItemResult, ...] = ()
        figures: tuple[FigureMark, ...] | None = None
        try:
            prompt = ""
            texts = self._dependency_texts(task)  # read once: the prompt(s) and the figures check use them
            if task.for_each:
                outcome, items = self._for_each(task, steps, models[0], texts, calls)
            else:
                prompt = self.render(task, texts)
                if len(models) == 1:
                    outcome = self._single(task, steps, models[0], prompt, calls)
                else:
                    outcome = self._variants(task, steps, models, prompt, calls)
            if self._config.figures_check != "off":
                outcome, figures = self._check_figures(task, outcome, prompt, texts, calls)
        except (RunAborted, NotSent) as error:  # the whole run stops: let the scheduler halt or skip it
            error.objective_id, error.task_id = task.objective_id, task.task_id
            raise
        except ProviderError as error:
            error.objective_id, error.task_id = task.objective_id, task.task_id
            failed = self._failed(task, steps, ",".join(models), calls.records(), started, thread, str(error))
            return dataclasses.replace(failed, failed_attempts=error.attempts)
        except _ItemsFailed as error:
            failed = self._failed(task, steps, models[0], calls.records(), started, thread, str(error))
            return dataclasses.replace(failed, text=error.text, items=error.items)
        except _TaskFailed as error:
            return self._failed(task, steps, ",".join(models), calls.records(), started, thread, str(error))
        except TaskInputError as error:  # its prompt does not render, or its data does not load
            return self._failed(task, steps, ",".join(models), calls.records(), started, thread, f"prompt: {error}")
        records = calls.records()
        if outcome.partial:
            log.warning("task %s done, with parts missing: %s", task.key, outcome.partial)
        log.info("task %s done: %d call(s), %.2f s", task.key, len(records), self._clock() - started)
        return TaskResult(
            objective_id=task.objective_id,
            task_id=task.task_id,
            title=task.title,
            status="done",
            error=outcome.partial,
            text=outcome.text,
            model=outcome.model,
            steps=tuple(steps),
            calls=records,
            started_at=started,
            finished_at=self._clock(),
            thread=thread,
            check_verdict=outcome.verdict,
            check_notes=outcome.notes,
            items=items,
            figures=figures,
        )

    # -- prompts --------------------------------------------------------------------

    def render(self, task: Task, dependency_texts: Mapping[str, str] | None = None, item: Item | None = None) -> str:
        """The task's prompt with its data and dependency texts (and, for_each, its item); unplaced
        attached tables appended. In a family run the prompt sees its entity, and its objective and
        results under the workbook's own ids, so it renders as it would in that entity's own run."""
        store = self._store(task)
        tables = AttachedTables(store)
        objective = self._objectives[task.objective_id]
        results = self._dependency_texts(task) if dependency_texts is None else dependency_texts
        if task.entity is not None:
            objective = dataclasses.replace(objective, objective_id=split_entity(objective.objective_id)[1])
            results = local_keys(results)
        context = build_context(
            objective=objective,
            task=task,
            data=tables,
            results=results,
            project_name=self._config.project_name,
            settings=self._sheet.settings,
            item=item_variable(item.label, item.fields, to_markdown(item.rows)) if item is not None else None,
            entity=task.entity.field_map() if task.entity is not None else None,
        )
        prompt = self._renderer.render(task.prompt, context)
        extra = [name for name in task.data if name not in tables.used]
        for name in extra:
            prompt += f"\n\nData: {name}\n\n{store.markdown(name)}"
        return prompt

    def _store(self, task: Task) -> DataStore:
        """The tables a task reads: its entity's in a family run (own filters, shared tables), else the run's."""
        if self._family is not None and task.entity is not None:
            return self._family.for_entity(task.entity.entity_id)
        return self._data

    def _dependency_texts(self, task: Task, known: Mapping[str, TaskResult] | None = None) -> dict[str, str]:
        """`results["OBJ.TASK"]` for each dependency and `results["OBJ"]` for whole chapters (from the
        run's results, or from `known`)."""
        parents = self._plan.parents.get(task.key, ())
        if known is None:
            texts = self._results.texts_for(parents)
        else:
            texts = {key: known[key].text for key in parents if key in known}
        for ref in task.depends_on:
            if "." not in ref:
                keys = [k for k in self._plan.tasks_by_objective.get(ref, ()) if k in texts]
                texts[ref] = "\n\n".join(texts[k] for k in keys)
        return texts

    def request_for(self, task: Task, step: str, model: str, user: str) -> ChatRequest:
        """The call a task's `step` sends with `user` as its prompt (what `--dry-run` prices)."""
        return self._request(task, step, model, user)

    def _request(
        self, task: Task, step: str, model: str, user: str, *, suffix: str = "",
        system: str | None = None, response_format: dict[str, Any] | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
    ) -> ChatRequest:
        """One call of `task`, labelled `OBJ.TASK.<step><suffix>` (logs and the ledger's step)."""
        if system is None:
            system = self._objectives[task.objective_id].system_prompt or DEFAULT_SYSTEM_PROMPT
        if temperature is None:
            temperature = task.temperature if task.temperature is not None else self._config.temperature
        return ChatRequest(
            model=model,
            messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
            temperature=temperature,
            max_tokens=max_tokens or task.max_tokens or self._config.max_tokens,
            response_format=response_format,
            label=f"{task.key}.{step}{suffix}",
            reasoning_effort=task.reasoning_effort or self._config.reasoning_effort,
        )

    def _step_user(self, step: str, context: Mapping[str, Any]) -> str:
        return self._renderer.render(self._step_prompts[step], context)

    def _send(self, request: ChatRequest, step: str, calls: _CallLog) -> ChatResponse:
        """One call through the gateway (cache, provider, ledger), recorded in the task's calls."""
        call_started = self._clock()
        response = self._call(request)
        calls.add(_record(step, response, call_started, self._clock(), threading.current_thread().name))
        return response

    # -- one model ------------------------------------------------------------------

    def _single(self, task: Task, steps: Sequence[str], model: str, prompt: str, calls: _CallLog) -> _Outcome:
        draft = self._draft(task, model, prompt, calls, suffix="")
        return self._chain(task, steps[1:], model, prompt, draft, calls, suffix="")

    def _draft(self, task: Task, model: str, prompt: str, calls: _CallLog, *, suffix: str) -> _Draft:
        """The generate stage: one call, or a plan and its sections in an outline objective."""
        if self._objectives[task.objective_id].mode == "outline":
            return self._outline(task, model, prompt, calls, suffix=suffix)
        response = self._send(self._request(task, "generate", model, prompt, suffix=suffix), "generate", calls)
        return _Draft(response.text.strip())

    def _chain(
        self, task: Task, later: Sequence[str], model: str, prompt: str, draft: _Draft, calls: _CallLog, *, suffix: str
    ) -> _Outcome:
        """The steps after generate (refine, check), in order, on the draft."""
        text = draft.text
        verdict = notes = ""
        for step in later:
            user = self._step_user(step, {"prompt": prompt, "draft": text})
            response = self._send(self._request(task, step, model, user, suffix=suffix), step, calls)
            if step == "check":
                outcome = parse_check(response.text)
                verdict, notes = outcome.verdict, outcome.notes
            else:
                text = response.text.strip()
        return _Outcome(text=text, model=model, partial=draft.partial, verdict=verdict, notes=notes)

    # -- the figures check ----------------------------------------------------------

    def _run_tables(self, task: Task) -> RunTables:
        """The tables the figures check traces a task's figures to: its entity's, built once."""
        from .figures import RunTables

        entity = task.entity.entity_id if task.entity else ""
        with self._figure_tables_lock:
            tables = self._figure_tables.get(entity)
            if tables is None:
                tables = self._figure_tables[entity] = RunTables(self._store(task))
        return tables

    def recheck_restored(self, restored: Mapping[str, TaskResult]) -> dict[str, TaskResult]:
        """Tasks `--resume` keeps, each with figure marks: the ones the ledger kept, else traced again
        (no model; a ledger from before it kept them, or a run that had the check off), so the
        resumed report flags what an uninterrupted run would."""
        unchecked = [key for key, result in restored.items() if result.figures is None]
        if self._config.figures_check == "off" or not unchecked:
            return dict(restored)
        from .figures import marks_of

        checked = dict(restored)
        for key in unchecked:
            task = self._plan.tasks[key]
            texts = self._dependency_texts(task, known=restored)
            check = self._traced(task, restored[key].text, texts,
                                 lambda: "" if task.for_each else self.render(task, texts))  # noqa: B023 - called now
            if check is not None:
                checked[key] = dataclasses.replace(restored[key], figures=marks_of(check))
        return checked

    def _traced(
        self, task: Task, text: str, texts: Mapping[str, str], prompt: str | Callable[[], str]
    ) -> FigureCheck | None:
        """`text`'s figures traced to what `task` was given (its prompt, or what renders it); None, with a
        warning, when the check cannot run: a check never fails the task it checks."""
        from .figures import check_task_figures

        try:
            return check_task_figures(task, text, tables=self._run_tables(task), dependencies=texts,
                                      prompt=prompt if isinstance(prompt, str) else prompt(), style=self._number_style)
        except Exception as error:  # noqa: BLE001
            log.warning("task %s: figures not checked: %s: %s", task.key, type(error).__name__, error)
            return None

    def _check_figures(
        self, task: Task, outcome: _Outcome, prompt: str, texts: Mapping[str, str], calls: _CallLog
    ) -> tuple[_Outcome, tuple[FigureMark, ...] | None]:
        """Trace the text's figures (no model); with `fix`, one more call corrects the untraced ones,
        and what it still cannot trace stays flagged."""
        from .figures import check_task_figures, fix_request_context, marks_of, task_tables  # numpy: on use

        store = self._store(task)
        check = self._traced(task, outcome.text, texts, prompt)
        if check is None:
            return outcome, None
        if check.untraced and self._config.figures_check == "fix":
            # the task's prompt carries its tables; a for_each task's prompts are per item, so it gets them whole
            shown = [] if prompt else [(name, store.markdown(name)) for name in task_tables(task, store)]
            ask = self._step_user("fix", fix_request_context(task, outcome.text, check, shown))
            user = f"{prompt}\n\n---\n\n{ask}" if prompt else ask
            model = outcome.model.split(",")[0]
            try:
                fixed = self._send(self._request(task, "fix", model, user), "fix", calls).text.strip()
            except (RunAborted, NotSent):
                raise
            except ProviderError as error:
                log.warning("task %s: the figures fix call failed (%s); its figures stay flagged", task.key, error)
                fixed = ""
            if fixed:
                before = check.untraced_count
                outcome = dataclasses.replace(outcome, text=fixed)
                check = check_task_figures(task, fixed, tables=self._run_tables(task), dependencies=texts,
                                           prompt=prompt, style=self._number_style)
                log.info("task %s: figures fix: %d untraced before, %d after", task.key, before, check.untraced_count)
        if check.untraced:
            log.info("task %s: %s", task.key, check.summary())
        return outcome, marks_of(check)

    # -- for each item ----------------------------------------------------------------

    def items(self, task: Task) -> list[Item]:
        """A for_each task's items, from its table after the data sheet's filter and columns."""
        assert task.for_each is not None
        spec = parse_for_each(task.for_each)
        items = expand_items(spec, self._store(task).frame(spec.table))
        if not items:
            raise _TaskFailed(f"for_each {spec}: table {spec.table} has no rows after its filter — nothing to send")
        if len(items) > self._config.max_items:
            raise _TaskFailed(f"for_each {spec}: {len(items)} items, more than max_items ({self._config.max_items})")
        return items

    def _for_each(
        self, task: Task, steps: Sequence[str], model: str, texts: Mapping[str, str], calls: _CallLog
    ) -> tuple[_Outcome, tuple[ItemResult, ...]]:
        """Each item's chain in parallel (in sheet order inline), then the items joined by `merge`."""
        items = self.items(task)
        outcomes = tuple(self._pools.run_all(
            "item", [partial(self._item, task, steps, model, texts, item, calls) for item in items]))
        if not any(o.ok for o in outcomes):
            raise _ItemsFailed(f"every item failed — {failed_items(outcomes)}", assemble_items(outcomes), outcomes)
        check = "check" in steps
        verdict = combined_verdict([o.verdict for o in outcomes if o.ok]) if check else ""
        notes = "; ".join(f"{o.name}: {o.notes}" for o in outcomes if o.ok and o.notes) if check else ""
        if task.merge == "combine":
            if not combine_allowed(outcomes):
                raise _ItemsFailed(f"too many items failed to combine the rest (at most one in ten may) — "
                                   f"{failed_items(outcomes)}", assemble_items(outcomes), outcomes)
            text = self._combine(task, model, outcomes, calls)
            return _Outcome(text=text, model=model, partial=failed_items(outcomes), verdict=verdict, notes=notes), outcomes
        if not all(o.ok for o in outcomes):
            raise _ItemsFailed(failed_items(outcomes), assemble_items(outcomes), outcomes)
        return _Outcome(text=assemble_items(outcomes), model=model, verdict=verdict, notes=notes), outcomes

    def _item(
        self, task: Task, steps: Sequence[str], model: str, texts: Mapping[str, str], item: Item, calls: _CallLog
    ) -> ItemResult:
        """One item's chain (generate, refine, check); a provider failure is this item's, not the task's."""
        own = _CallLog()
        try:
            prompt = self.render(task, texts, item)
            draft = self._draft(task, model, prompt, own, suffix=item.suffix)
            outcome = self._chain(task, steps[1:], model, prompt, draft, own, suffix=item.suffix)
        except (RunAborted, NotSent):
            raise
        except (ProviderError, _TaskFailed, TaskInputError) as error:
            log.warning("task %s: item %d %r failed: %s", task.key, item.number, item.label, error)
            return ItemResult(item.number, item.label, error=str(error), calls=own.records())
        finally:
            for record in own.records():
                calls.add(record)
        if not outcome.text:
            return ItemResult(item.number, item.label, error="the model returned no text", calls=own.records())
        return ItemResult(item.number, item.label, text=outcome.text, calls=own.records(),
                          verdict=outcome.verdict, notes=outcome.notes)

    def _combine(self, task: Task, model: str, outcomes: Sequence[ItemResult], calls: _CallLog) -> str:
        """One more call: a single text from the items' texts (`combine` in the prompts sheet overrides it)."""
        context = {
            "title": task.title or task.key,
            "items": [{"number": o.number, "name": o.name, "text": o.text} for o in outcomes if o.ok],
            "missing": [o.name for o in outcomes if not o.ok],
        }
        user = self._step_user("combine", context)
        return self._send(self._request(task, "combine", model, user), "combine", calls).text.strip()

    # -- outline, then fill ---------------------------------------------------------

    def _outline(self, task: Task, model: str, prompt: str, calls: _CallLog, *, suffix: str) -> _Draft:
        plan = self._section_plan(task, model, prompt, calls, suffix=suffix)
        fill = partial(self._fill_section, task, model, prompt, plan, calls, suffix=suffix)
        filled = self._pools.run_all("section", [partial(fill, section) for section in plan.sections])
        if not any(f.ok for f in filled):
            raise _TaskFailed(f"{self._outline_of(task)}: every section failed — {failed_sections(filled)}")
        return _Draft(assemble_sections(filled), failed_sections(filled))

    def _section_plan(self, task: Task, model: str, prompt: str, calls: _CallLog, *, suffix: str) -> OutlinePlan:
        """Ask for the plan; an unusable answer is asked again, up to `outline_retries` times."""
        most = self._config.outline_max_sections
        user = self._step_user("outline", {"prompt": prompt, "max_sections": most})
        first = self._request(task, "outline", model, user, suffix=suffix, response_format=JSON_OBJECT)
        problems: list[str] = []
        for attempt in range(self._config.outline_retries + 1):
            request = _retry_request(first, attempt)
            response = self._send(request, "outline", calls)
            try:
                plan = parse_plan(response.text, most)
            except AnswerError as problem:
                cut = " (cut off at max_tokens)" if response.finish_reason == "length" else ""
                problems.append(f"answer {attempt + 1}: {problem}{cut}")
                log.warning("task %s: section plan %d unusable: %s%s", task.key, attempt + 1, problem, cut)
                continue
            if plan.dropped:
                log.warning(
                    "task %s: the plan has %d sections; kept the first %d (outline_max_sections)",
                    task.key, len(plan.sections) + plan.dropped, most,
                )
            log.info("task %s: %d section(s) planned: %s", task.key, len(plan.sections), "; ".join(s.title for s in plan.sections))
            return plan
        raise _TaskFailed(
            f"{self._outline_of(task)}: no usable section plan after {len(problems)} answer(s) — "
            + "; ".join(problems)
            + " — use a model that supports JSON mode, raise max_tokens, or raise outline_retries"
        )

    def _fill_section(
        self, task: Task, model: str, prompt: str, plan: OutlinePlan, calls: _CallLog, section: Section, *, suffix: str
    ) -> FilledSection:
        """One section's call; a provider failure is this section's, not the task's."""
        context = {
            "prompt": prompt,
            "sections": [{"number": s.number, "title": s.title, "brief": s.brief} for s in plan.sections],
            "section": {"number": section.number, "title": section.title, "brief": section.brief},
        }
        user = self._step_user("section", context)
        request = self._request(task, f"section-{section.number}", model, user, suffix=suffix)
        try:
            text = self._send(request, "section", calls).text.strip()
        except (RunAborted, NotSent):
            raise
        except ProviderError as error:
            log.warning("task %s: section %d %r failed: %s", task.key, section.number, section.title, error)
            return FilledSection(section, error=str(error))
        if not text:
            return FilledSection(section, error="the model returned no text")
        return FilledSection(section, text=text)

    def _outline_of(self, task: Task) -> str:
        objective = self._objectives[task.objective_id]
        return f'outline of objective {objective.objective_id} "{objective.title}" (task {task.key})'

    # -- variants -------------------------------------------------------------------

    def _variants(self, task: Task, steps: Sequence[str], models: Sequence[str], prompt: str, calls: _CallLog) -> _Outcome:
        later = steps[1:]
        if task.merge == "collect_all":  # each variant keeps its text: the whole chain runs on each
            variants = self._pools.run_all("variant", [partial(self._variant, task, m, prompt, calls, later) for m in models])
            kept = [v for v in variants if v.ok]
            if not kept:
                raise _TaskFailed(all_failed_message(variants))
            check = "check" in later
            return _Outcome(
                text=collect_all_text(variants),
                model=",".join(v.model for v in kept),
                partial=failed_variants(variants),
                verdict=combined_verdict([v.verdict for v in kept]) if check else "",
                notes=combined_notes(kept) if check else "",
            )
        fns = [partial(self._variant, task, m, prompt, calls, ()) for m in models]
        if task.merge == "first_success":
            chosen, variants = self._pools.first_success("variant", fns, lambda v: v.ok)
            if chosen is None:
                raise _TaskFailed(all_failed_message(variants))
            log.info("task %s: kept %s, the first variant to succeed", task.key, chosen.model)
            note = ""
        else:  # best
            variants = self._pools.run_all("variant", fns)
            kept = [v for v in variants if v.ok]
            if not kept:
                raise _TaskFailed(all_failed_message(variants))
            chosen, note = self._judge(task, prompt, kept, calls)
        draft = _Draft(chosen.text or "", failed_variants([v for v in variants if not v.ok or v is chosen]))
        outcome = self._chain(task, later, chosen.model, prompt, draft, calls, suffix="")
        if note:
            outcome = dataclasses.replace(outcome, text=f"{outcome.text}\n\n{note}")
        return outcome

    def _variant(
        self, task: Task, model: str, prompt: str, calls: _CallLog, later: Sequence[str]
    ) -> Variant:
        """One model's draft (and, for collect_all, the rest of its chain); its failure is its own."""
        suffix = "@" + label_model(model)
        try:
            draft = self._draft(task, model, prompt, calls, suffix=suffix)
            outcome = self._chain(task, later, model, prompt, draft, calls, suffix=suffix)
        except (RunAborted, NotSent):
            raise
        except (ProviderError, _TaskFailed) as error:
            log.warning("task %s: variant %s failed: %s", task.key, model, error)
            return Variant(model=model, error=str(error))
        return Variant(
            model=model, text=outcome.text, partial=outcome.partial, verdict=outcome.verdict, notes=outcome.notes
        )

    def _judge(self, task: Task, prompt: str, kept: Sequence[Variant], calls: _CallLog) -> tuple[Variant, str]:
        """Ask the judge model to pick one variant; keep the first when it cannot say."""
        if len(kept) == 1:
            return kept[0], judge_fallback_note(kept[0].model, "the only variant that succeeded")
        judge = self._config.judge_model or self._config.model
        candidates = [{"number": n, "model": v.model, "text": v.text} for n, v in enumerate(kept, start=1)]
        user = self._step_user("judge", {"prompt": prompt, "variants": candidates})
        # temperature 0: the same candidates should get the same verdict on a re-run
        request = self._request(
            task, "judge", judge, user, system=JUDGE_SYSTEM_PROMPT, response_format=JSON_OBJECT,
            temperature=0.0, max_tokens=_JUDGE_MAX_TOKENS,
        )
        try:
            choice = parse_choice(self._send(request, "judge", calls).text, len(kept))
        except (RunAborted, NotSent):
            raise
        except (ProviderError, AnswerError) as error:
            log.warning("task %s: the judge (%s) gave no usable choice: %s; keeping %s", task.key, judge, error, kept[0].model)
            return kept[0], judge_fallback_note(kept[0].model, f"the judge gave no usable choice ({error})")
        chosen = kept[choice.index]
        log.info("task %s: the judge (%s) chose %s: %s", task.key, judge, chosen.model, choice.reason)
        return chosen, judged_note(chosen.model, choice.reason)

    # -- results --------------------------------------------------------------------

    def _failed(
        self, task: Task, steps: Sequence[str], model: str, calls: Sequence[CallRecord], started: float, thread: str, error: str
    ) -> TaskResult:
        log.error("task %s failed: %s", task.key, error)
        return TaskResult(
            objective_id=task.objective_id,
            task_id=task.task_id,
            title=task.title,
            status="failed",
            error=error,
            model=model,
            steps=tuple(steps),
            calls=tuple(calls),
            started_at=started,
            finished_at=self._clock(),
            thread=thread,
        )


class _SubCallPools:
    """The pools a task's sub-calls run on: `variant` and `section`, created on first use.

    Two pools, not one: a variant of an outline task waits for its sections, and
    waiting for work queued in your own full pool never ends. Sections wait for nothing
    but their call, so every wait here ends. Each pool has at most
    `max_concurrent_requests` threads: more could only wait for an in-flight slot.
    """

    def __init__(self, workers: int, *, inline: bool) -> None:
        self._workers = workers
        self._inline = inline
        self._lock = threading.Lock()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._closed = False

    def _executor(self, kind: str) -> Executor:
        if self._inline:
            return InlineExecutor()
        with self._lock:
            if self._closed:
                raise RuntimeError("the task runner is closed: no more sub-calls")
            if kind not in self._pools:
                self._pools[kind] = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=kind)
            return self._pools[kind]

    def run_all(self, kind: str, fns: Sequence[Callable[[], T]]) -> list[T]:
        """Every fn's result, in the order given; an error that escapes one is raised once all have settled."""
        executor = self._executor(kind)
        futures = [executor.submit(fn) for fn in fns]
        wait(futures)
        return [future.result() for future in futures]

    def first_success(
        self, kind: str, fns: Sequence[Callable[[], T]], succeeded: Callable[[T], bool]
    ) -> tuple[T | None, list[T]]:
        """The first result to succeed in completion order, and every result that came back.

        Everything is submitted at once (inline: one at a time, stopping at a success).
        After a success, work not started yet is cancelled; work already started, whose
        call is sent or about to be, is waited for: it is paid for, so it is recorded.
        """
        executor = self._executor(kind)
        capacity = 1 if self._inline else len(fns)
        waiting = list(fns)
        order: dict[Future[T], int] = {}
        running: set[Future[T]] = set()
        chosen: T | None = None
        while (waiting or running) and chosen is None:
            while waiting and len(running) < capacity:
                future = executor.submit(waiting.pop(0))
                order[future] = len(order)
                running.add(future)
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=order.__getitem__):  # finished together: list order
                if future.exception() is None and chosen is None and succeeded(future.result()):
                    chosen = future.result()
            if any(future.exception() is not None for future in done):
                break
        for future in running:
            future.cancel()
        wait(running)
        settled = [f for f in sorted(order, key=order.__getitem__) if not f.cancelled()]
        results = [future.result() for future in settled]  # raises an error that escaped one
        return chosen, results

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _retry_request(first: ChatRequest, attempt: int) -> ChatRequest:
    """The plan request for try `attempt` (0 = the first).

    A retry must not be the same request: the cache would answer it with the same
    unusable answer. It keeps the messages and moves the temperature a little, which
    also gives a model that answers deterministically a different draw.
    """
    if attempt == 0:
        return first
    moved = first.temperature + attempt * _RETRY_TEMPERATURE_STEP
    if moved > _MAX_TEMPERATURE:
        moved = max(0.0, first.temperature - attempt * _RETRY_TEMPERATURE_STEP)
    return dataclasses.replace(first, temperature=round(moved, 3), label=f"{first.label}-retry{attempt}")


def _record(step: str, response: ChatResponse, started: float, finished: float, thread: str) -> CallRecord:
    return CallRecord(
        step=step,
        model=response.model,
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        cost_usd=response.cost_usd,
        attempts=response.attempts,
        latency_s=response.latency_s,
        cached=bool(response.extra.get("cached")),
        started_at=started,
        finished_at=finished,
        thread=thread,
        reasoning_tokens=response.reasoning_tokens,
        cached_tokens=response.cached_tokens,
        cache_saving_usd=response.cache_saving_usd,
    )
