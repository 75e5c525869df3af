"""Running one task: render its prompt in the sandbox, then make each step's call in turn.

Runs on a task thread. It reads dependency texts from the results manager (a short
lock) and never touches the scheduler's state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .config import RunConfig
from .data import DataStore
from .errors import AuthError, ProviderError
from .models import CallRecord, Objective, PromptSheet, Task, TaskResult
from .plan import Plan
from .providers.base import ChatRequest, ChatResponse
from .results import ReportStructureManager
from .steps import DEFAULT_STEP_PROMPTS, DEFAULT_SYSTEM_PROMPT, parse_check
from .templates import PromptRenderer, build_context

log = logging.getLogger("report_pipeline.runner")

CallFn = Callable[[ChatRequest], ChatResponse]


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
    """Turns a planned task into a TaskResult; one instance shared by every task thread."""

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
    ) -> None:
        self._config = config
        self._sheet = sheet
        self._plan = plan
        self._data = data
        self._results = results
        self._call = call
        self._clock = clock
        self._objectives: dict[str, Objective] = {o.objective_id: o for o in sheet.objectives}
        self._renderer = PromptRenderer()  # each distinct template compiles once per run
        self._step_prompts = {**DEFAULT_STEP_PROMPTS, **{k: v for k, v in sheet.prompts.items() if k in DEFAULT_STEP_PROMPTS}}

    def __call__(self, task: Task) -> TaskResult:
        started = self._clock()
        thread = threading.current_thread().name
        steps = task.steps or self._config.steps
        model = task.model[0] if task.model else self._config.model
        calls: list[CallRecord] = []
        text = ""
        verdict = notes = ""
        try:
            prompt = self.render(task)
            for step in steps:
                request = self._request(task, step, model, prompt, text)
                call_started = self._clock()
                response = self._call(request)
                calls.append(_record(step, response, call_started, self._clock(), thread))
                if step == "check":
                    outcome = parse_check(response.text)
                    verdict, notes = outcome.verdict, outcome.notes
                else:
                    text = response.text.strip()
        except AuthError as error:  # the whole run stops: let the scheduler halt it
            error.objective_id, error.task_id = task.objective_id, task.task_id
            raise
        except ProviderError as error:
            error.objective_id, error.task_id = task.objective_id, task.task_id
            return self._failed(task, steps, model, calls, started, thread, str(error))
        except ValueError as error:  # template render errors
            return self._failed(task, steps, model, calls, started, thread, f"prompt: {error}")
        log.info("task %s done: %d call(s), %.2f s", task.key, len(calls), self._clock() - started)
        return TaskResult(
            objective_id=task.objective_id,
            task_id=task.task_id,
            title=task.title,
            status="done",
            text=text,
            model=model,
            steps=tuple(steps),
            calls=tuple(calls),
            started_at=started,
            finished_at=self._clock(),
            thread=thread,
            check_verdict=verdict,
            check_notes=notes,
        )

    # -- steps --------------------------------------------------------------------

    def render(self, task: Task, dependency_texts: Mapping[str, str] | None = None) -> str:
        """The task's prompt with its data and dependency texts; unplaced attached tables appended."""
        tables = AttachedTables(self._data)
        context = build_context(
            objective=self._objectives[task.objective_id],
            task=task,
            data=tables,
            results=self._dependency_texts(task) if dependency_texts is None else dependency_texts,
            project_name=self._config.project_name,
            settings=self._sheet.settings,
        )
        prompt = self._renderer.render(task.prompt, context)
        extra = [name for name in task.data if name not in tables.used]
        for name in extra:
            prompt += f"\n\nData: {name}\n\n{self._data.markdown(name)}"
        return prompt

    def _dependency_texts(self, task: Task) -> dict[str, str]:
        """`results["OBJ.TASK"]` for each dependency and `results["OBJ"]` for whole chapters."""
        parents = self._plan.parents.get(task.key, ())
        texts = self._results.texts_for(parents)
        for ref in task.depends_on:
            if "." not in ref:
                keys = [k for k in self._plan.tasks_by_objective.get(ref, ()) if k in texts]
                texts[ref] = "\n\n".join(texts[k] for k in keys)
        return texts

    def _request(self, task: Task, step: str, model: str, prompt: str, draft: str) -> ChatRequest:
        objective = self._objectives[task.objective_id]
        system = objective.system_prompt or DEFAULT_SYSTEM_PROMPT
        if step == "generate":
            user = prompt
        else:
            context: dict[str, Any] = {"prompt": prompt, "draft": draft}
            user = self._renderer.render(self._step_prompts[step], context)
        return ChatRequest(
            model=model,
            messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
            temperature=task.temperature if task.temperature is not None else self._config.temperature,
            max_tokens=task.max_tokens or self._config.max_tokens,
            label=f"{task.key}.{step}",
        )

    def _failed(
        self, task: Task, steps: tuple[str, ...], model: str, calls: list[CallRecord], started: float, thread: str, error: str
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
    )
