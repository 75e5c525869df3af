"""`ReportGenerationPipeline`: a validated sheet and config in, a run folder of outputs out.

The order of work: plan and provider first (bad input fails before anything is
written), then the run folder and its log, then the scheduler, then the reports.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TASKS_FAILED,
    ConfigError,
    OutputError,
)
from .ledger.history import resume_command
from .ledger.runlock import RunLock
from .ledger.store import Ledger, config_hash, sheet_hash
from .logs import redact, run_log
from .models import CallText, Objective, PromptSheet, ReportView, Task, TaskResult, Usage, split_entity, status_counts
from .providers import Provider
from .providers.controls import CallControls
from .providers.factory import make_provider, open_endpoint
from .providers.ratelimit import Throttle
from .run import endpoint_memory
from .run.endpoint_memory import MEMORY_S
from .run.gateway import CallGateway
from .run.outcome import RunObserver, RunResult
from .run.plan import build_plan, dispatch_priority, own_seconds, remaining_path
from .run.results import ReportStructureManager
from .run.resume import check_resumable, reopen_run
from .run.runner import TaskRunner
from .run.scheduler import Halt, Scheduler, SchedulerHooks, make_executors
from .text import a_few
from .version import __version__
from .watch.monitor import ResourceMonitor, process_started_at
from .workbook.data import DataStore
from .workbook.family import FamilyData, family_selection
from .writers import (
    ResultColumns,
    ResultsCsvAppender,
    atomic_write_text,
    objective_csv_name,
    write_objective_csv,
)
from .writers.family import EntityFolder, SameChartOnce, entity_dir, entity_view, local_calls, local_result, local_task
from .writers.figures.charts import ChartRenderer
from .writers.runjson import ChapterFile, RunFacts, build_manifest

if TYPE_CHECKING:
    from .batch.backend import BatchBackend
    from .batch.waves import BatchExecution
    from .writers.figures.chart_drawing import ChartSpec
    from .writers.figures.drawing_process import DrawingProcess

log = logging.getLogger("report_pipeline.pipeline")

#: What a run needs only once answers are in (report writers, the drawing client, the figures
#: check): imported while the first calls are out rather than before the first request is sent.
_AFTER_FIRST_CALL = (
    "report_pipeline.run.figures",  # first: the first task to finish checks its figures
    "report_pipeline.writers.reports",
    "report_pipeline.writers.changes",
    "report_pipeline.writers.figures.drawing",
)

#: Threads that write chapter files as chapters finish (a chapter's CSV is small).
_CHAPTER_WRITERS = 8



def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique enough for one output folder: `20261122-140501-3f9a`."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class ReportGenerationPipeline:
    """Runs every task of a prompt sheet through the provider, concurrently, and writes the report."""

    def __init__(
        self,
        config: RunConfig,
        prompt_sheet: PromptSheet,
        data: DataStore | None = None,
        *,
        provider: Provider | None = None,
        observer: RunObserver | None = None,
        stop: threading.Event | None = None,
        run_id: str | None = None,
        resume: bool = False,
        drawing_process: DrawingProcess | None = None,
        compare_to: str | None = None,
    ) -> None:
        self.config = config
        # The child that draws the charts and timeline.png, if the caller started one early (the
        # CLI does, before its own imports, so that it is warm by the first chart); else the run
        # starts its own. Either way the run closes it.
        self._drawer = drawing_process
        self.compare_to = compare_to  # the base run of changes.md (--compare-to); None: the previous run
        self.sheet = prompt_sheet
        # a family run (--each): each entity reads its own filters of the tables, the rest shared
        self.family = FamilyData(prompt_sheet.data_sources, prompt_sheet.family) if prompt_sheet.family else None
        self.data = data or (self.family.shared if self.family is not None else DataStore(prompt_sheet.data_sources))
        objectives, tasks = family_selection(prompt_sheet, config.objectives, config.tasks)
        self.plan = build_plan(prompt_sheet, objectives=objectives, limit=config.limit, tasks=tasks)
        # The shared machinery, built here and handed down: the root keeps its own references
        self.controls = CallControls.for_config(config)
        needs_endpoint = provider is None or config.execution == "batch"
        self._endpoint = open_endpoint(config) if needs_endpoint else None  # a missing key fails here
        self._own_provider = provider is None
        try:
            self.provider = provider or make_provider(config, controls=self.controls, endpoint=self._endpoint)
        except BaseException:
            self._close_endpoint()
            raise
        self.observer = observer or RunObserver()
        self.stop = stop or threading.Event()
        if resume and not run_id:
            raise ConfigError("--resume needs the id of the run to continue (see `report-pipeline runs`)")
        self.resume = resume
        self.run_id = run_id or new_run_id()
        self.run_dir = Path(config.output_dir) / self.run_id
        self.results = ReportStructureManager(self.plan)
        self._charts = ChartRenderer(self.run_dir, draw_png=self._draw_chart)
        # the chapter CSVs' columns; results.csv adds `entity` in a family run
        self._columns = ResultColumns(
            check=any("check" in (t.steps or config.steps) for t in self.plan.tasks.values()),
            items=any(t.for_each for t in self.plan.tasks.values()),
            figures=config.figures_check != "off",
        )
        self._batch_backend: BatchBackend | None = None
        self._batch: BatchExecution | None = None
        self._started_tasks: set[str] = set()
        self._first_wave_out = threading.Event()  # then what the run needs after its calls is imported
        self._monitor: ResourceMonitor | None = None  # while the tasks run
        self._unwritten: list[OSError] = []  # chapter CSVs that could not be written (said at the end)
        self._chapter_times: dict[str, tuple[float, float]] = {}  # objective -> (last answer, CSV on disk)
        if config.execution == "batch":
            try:  # an endpoint without a Batch API is refused here, before anything is sent or written
                from .batch.backend import make_batch_backend

                self._batch_backend = make_batch_backend(config, self.provider, self._endpoint, scrub=self._scrub)
                self._batch_backend.check()
            except BaseException:
                self._close_provider()
                raise

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self.observer.close()

    def _run(self) -> RunResult:
        secrets_to_hide = self.secrets
        if self.resume:
            check_resumable(self.config, self.run_id, self.run_dir)
        lock = RunLock(Path(self.config.output_dir), self.run_id)
        try:
            lock.acquire()
        except OSError as error:
            raise self._unusable_output(error) from None
        try:
            ledger = Ledger(self.config.resolved_ledger_path, secrets=secrets_to_hide) if self.config.ledger else None
            if lock.taken_over is not None and ledger is not None:
                log.warning("took over a stale lock left by %s", lock.taken_over.describe())
                ledger.mark_interrupted(lock.taken_over.run_id)  # it died mid-run: say so in `runs`
            try:
                try:
                    restored = self._prepare_run_dir(ledger)
                except OSError as error:
                    raise self._unusable_output(error) from None
                return self._run_with(ledger, restored, secrets_to_hide)
            finally:
                if ledger is not None:
                    ledger.close()
        finally:
            lock.release()

    @functools.cached_property
    def _sheet_digest(self) -> str:
        """The workbook's sha256 (with a family's entities file), read once: a resume compares it, the
        ledger records it, so a resume refuses an entities file edited since the run started."""
        digest = sheet_hash(self.sheet.path)
        if self.config.each:
            from .workbook.family import entities_file

            entities = entities_file(self.config.each, self.sheet.path)
            if entities.resolve() != Path(self.sheet.path).resolve():
                digest = hashlib.sha256(f"{digest} {sheet_hash(entities)}".encode()).hexdigest()
        return digest

    def chapter_csv(self, objective: Objective) -> Path:
        """`objectives/NN_<slug>.csv` for a chapter, relative to the run folder (written and listed alike)."""
        chapters = len(self.sheet.objectives) // max(1, len(self.sheet.family))
        name = objective_csv_name(objective.index + 1, objective.title, of=chapters)
        if objective.entity_id:  # a family run: in the entity's folder, beside its report
            return entity_dir(Path("."), objective.entity_id) / "objectives" / name
        return Path("objectives") / name

    def _unusable_output(self, error: OSError) -> ConfigError:
        """Before any call: a folder that cannot hold the run is bad input (exit 2), not a crash."""
        where = error.filename or self.config.output_dir
        return ConfigError(
            f"cannot use the output folder {self.config.output_dir} ({error.strerror or error} at {where}): "
            "pass --output a folder this user can create and write"
        )

    def _prepare_run_dir(self, ledger: Ledger | None) -> dict[str, TaskResult]:
        """A new run gets a new folder; a resumed one reuses its folder and the tasks it finished."""
        if not self.resume:
            self.run_dir.mkdir(parents=True, exist_ok=False)
            if self.family is None:
                (self.run_dir / "objectives").mkdir()
            self._entity_folders()
            return {}
        self._entity_folders()
        assert ledger is not None  # check_resumable refused a run without one
        return reopen_run(
            ledger, config=self.config, run_id=self.run_id, run_dir=self.run_dir, plan=self.plan,
            sheet_path=self.sheet.path, sheet_digest=self._sheet_digest, meter=self.controls.meter,
        )

    def _entity_folders(self) -> None:
        """`entities/<id>/objectives/` for each entity of a family run (again on resume: no harm)."""
        for entity in self.sheet.family:
            (entity_dir(self.run_dir, entity.entity_id) / "objectives").mkdir(parents=True, exist_ok=True)

    def _run_with(self, ledger: Ledger | None, restored: dict[str, TaskResult], secrets_to_hide: list[str]) -> RunResult:
        try:
            result = self._run_logged(ledger, restored, secrets_to_hide)
        except OSError as error:
            if ledger is not None:
                ledger.mark_interrupted(self.run_id)  # `runs` shows it stopped, and --resume takes it up
            raise self._cannot_write(error) from None
        if self._unwritten:
            raise self._cannot_write(self._unwritten[0], also=len(self._unwritten) - 1)
        return result

    def _cannot_write(self, error: OSError, *, also: int = 0) -> OutputError:
        more = f" (and {also} more file(s))" if also else ""
        return OutputError(
            f"run {self.run_id} could not write {error.filename or self.run_dir}{more}: {error.strerror or error}. "
            f"Every answer paid so far is in the ledger: fix the folder, then `report-pipeline run "
            f"{self.sheet.path} --resume {self.run_id}` writes the outputs again without paying twice"
        )

    def _run_logged(self, ledger: Ledger | None, restored: dict[str, TaskResult], secrets_to_hide: list[str]) -> RunResult:
        started = time.time()
        if ledger is not None:
            ledger.start_run(
                self.run_id, self.sheet.path, self._sheet_digest,
                config_hash(self.config.redacted()), self.plan.task_count, identity=self.config.redacted(),
            )
        with run_log(self.run_dir / "run.log", level=self.config.log_level, secrets=secrets_to_hide):
            if restored:
                log.info("resuming run %s: %d finished task(s) reused", self.run_id, len(restored))
            log.info(
                "run %s: %d objective(s), %d task(s), provider %s, model %s, sheet %s",
                self.run_id, len(self.plan.objectives), self.plan.task_count,
                self.provider.name, self.config.model, self.sheet.path,
            )
            if self.plan.taken_in:  # a warning: the console says it too, before anything is paid
                log.warning("the selection also runs %d task(s) the chosen ones depend on: %s",
                            len(self.plan.taken_in), a_few(self.plan.taken_in, 5))
            if ledger is not None:
                self._endpoint_memory(ledger, keep=False)
            if self._throttle() is not None:
                self.observer.watch_concurrency(self.controls.concurrency.current)
            self.observer.run_started(self.plan, self.run_dir)
            charts = self._chart_names()
            if charts and self._drawer is None:
                from .writers.figures.drawing import start_drawer

                self._drawer = start_drawer()
            drawer = self._drawer
            prefetch = self._start_charts(charts)
            try:
                with ResourceMonitor(rss_warn_mb=self.config.rss_warn_mb) as monitor:
                    self._monitor = monitor
                    halt = self._execute(ledger, restored)
                if ledger is not None:
                    self._endpoint_memory(ledger, keep=True)
                prefetch.join()

                def calls_of(entity: str | None = None) -> dict[str, list[CallText]]:
                    """The run's answered calls, or one family entity's: a family's are read an entity
                    at a time (their prompts hold the tables: 0.75 MB an entity on the example)."""
                    return ledger.call_texts(self.run_id, entity=entity) if ledger is not None else {}

                result = self._finish(started, halt, monitor.stats.as_dict(), drawer, calls_of)
            finally:
                if drawer is not None:
                    drawer.close()
                self._drawer = None
            if ledger is not None:
                ledger.finish_run(self.run_id, result.status, {  # type: ignore[arg-type]
                    "tasks_total": result.counts["total"], "done": result.counts["done"],
                    "failed": result.counts["failed"], "skipped": result.counts["skipped"],
                    "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                    "cost_usd": result.cost_usd,
                })
            log.info(
                "run %s %s: %s; tokens %s; cost $%.4f%s; %.1f s",
                self.run_id, result.status, _counts_text(result.counts), result.tokens_text(),
                result.cost_usd, result.figures_text(), result.duration_s,
            )
            if result.resume_command:
                log.info("run %s stopped with work left; to continue it: %s", self.run_id, result.resume_command)
        self._close_provider()
        self.observer.run_finished(result)
        return result

    # -- the run ------------------------------------------------------------------

    def _execute(self, ledger: Ledger | None, restored: dict[str, TaskResult]) -> Halt | None:
        config = self.config
        appender = ResultsCsvAppender(self.run_dir / "results.csv",
                                      columns=dataclasses.replace(self._columns, entity=self.family is not None))
        use_cache = config.cache or self.resume
        objective_slots, task_slots = config.objective_slots, config.task_slots
        if self._batch_backend is not None:
            # Between waves nothing waits on the network: every pass runs on this thread, every
            # objective admitted, so each wave holds every call whose inputs are ready.
            from .batch.waves import BatchExecution

            self._batch = BatchExecution(
                config=config, backend=self._batch_backend, ledger=ledger, run_id=self.run_id,
                use_cache=use_cache, stop=self.stop, on_progress=self.observer.wave_progress,
            )
            call: Any = self._batch
            objective_slots = task_slots = max(1, self.plan.task_count)
            sequential_objectives = sequential_tasks = True
        else:
            call = CallGateway(
                self.provider, ledger=ledger, run_id=self.run_id, base_url=config.base_url,
                use_cache=use_cache, durable=self.provider.name != "offline",
            )
            sequential_objectives, sequential_tasks = not config.run_objectives_concurrent, not config.run_task_concurrent
        runner = TaskRunner(
            config=config, sheet=self.sheet, plan=self.plan, data=self.data,
            results=self.results, call=call, sequential_subcalls=sequential_tasks, family=self.family,
        )
        restored = runner.recheck_restored(restored)
        task_threads = config.task_threads
        objective_pool, task_pool = make_executors(
            min(config.objective_slots, _CHAPTER_WRITERS), task_threads,
            sequential_objectives=sequential_objectives, sequential_tasks=sequential_tasks,
        )

        def task_finished(result: TaskResult) -> None:
            self._first_wave_out.set()  # a first wave smaller than the threads: an answer is in
            appender.append(result)
            if ledger is not None:
                ledger.record_task(self.run_id, result)
            log.debug("task %s settled as %s%s", result.key, result.status, f": {result.error}" if result.error else "")
            self.observer.task_finished(result)

        hooks = SchedulerHooks(
            task_started=self._task_started,
            task_finished=task_finished,
            objective_started=lambda objective_id: log.info("objective %s started", objective_id),
            objective_finished=self._objective_finished,
            halted=self._halted,
        )
        run_task: Callable[[Task], TaskResult] = runner
        if self._batch is not None:
            first_started: dict[str, float] = {}

            def run_task(task: Task) -> TaskResult:
                """A parked task runs again after each wave; it started the first time."""
                first_started.setdefault(task.key, time.time())
                result = runner(task)
                return dataclasses.replace(result, started_at=first_started[task.key])

        scheduler = Scheduler(
            self.plan, run_task, lambda r: self.results.record(r).objective_finished,
            objective_slots=objective_slots, task_slots=task_slots,
            objective_executor=objective_pool, task_executor=task_pool,
            hooks=hooks, stop=self.stop, restored=restored, scrub=self._scrub,
            wave=self._batch.run_wave if self._batch is not None else None,
            dispatch_limit=None if self._batch is not None else task_threads,
            priority=None if self._batch is not None or config.sequential else self._priorities(ledger),
            fail_fast=config.fail_fast,
        )
        names = [n for n in _AFTER_FIRST_CALL if n != "report_pipeline.run.figures" or self._columns.figures]
        threading.Thread(target=_import_when, args=(self._first_wave_out, names), name="imports",
                         daemon=True).start()
        try:
            return scheduler.run(grace_s=config.shutdown_grace_s)
        finally:
            self._first_wave_out.set()
            # Tasks abandoned after the grace period keep their threads until their call ends;
            # the run writes its outputs without waiting for them (and the CLI leaves without).
            drained = scheduler.abandoned == 0
            task_pool.shutdown(wait=drained, cancel_futures=True)
            if drained:
                runner.close()  # the runner's section/variant pools, after the tasks that use them
            objective_pool.shutdown(wait=True)
            appender.close()

    def _priorities(self, ledger: Ledger | None) -> dict[str, tuple[float, int]]:
        """The order ready tasks start in: longest remaining path first, by what the ledger measured
        of each task and model at this endpoint (rounds of calls where it knows nothing)."""
        config = self.config
        task_s: dict[str, float] = {}
        model_s: dict[str, float] = {}
        if ledger is not None and config.provider != "offline":
            # the newest calls only, about what the last run of this plan made: this runs before the
            # first request, and twenty weekly runs of 2,500 calls took 0.18 s to scan (50,000), 7 ms for 2,000
            task_s, model_s = ledger.call_seconds(config.provider, config.base_url, max_age_s=MEMORY_S,
                                                  limit=max(1_000, 4 * self.plan.task_count))
        own = own_seconds(self.plan, config.steps, known_task_s=task_s, known_model_call_s=model_s,
                          default_model=config.model)
        return dispatch_priority(self.plan, remaining_path(self.plan, own))

    def _halted(self, halt: Halt) -> None:
        """Interrupted: calls already sent may finish (the grace period), but none is sent after
        them, not a retry and not a task's next step: those tasks are skipped, for --resume."""
        if halt.reason == "interrupted" and self._throttle() is not None:
            log.warning("stopping: no new call is sent; calls in flight have %g s to finish",
                        self.config.shutdown_grace_s)
            self.controls.stop()
        elif halt.reason == "fail_fast" and self._throttle() is not None:
            log.warning("stopping (fail_fast): no new call is sent; the calls in flight finish")
            self.controls.stop()

    def _throttle(self) -> Throttle | None:
        """The run's shared throttle, for a provider that paces (not the offline one)."""
        return None if self.config.provider == "offline" else self.controls.throttle

    def _close_provider(self) -> None:
        """The provider the run made, then the endpoint it opened (an injected provider is the caller's)."""
        if self._own_provider:
            self.provider.close()
        self._close_endpoint()
        self.controls.close()

    def _close_endpoint(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    def _endpoint_memory(self, ledger: Ledger, keep: bool) -> None:
        """Recall (at the start) or keep (at the end) what the endpoint taught: limits, parameters."""
        throttle = self._throttle()
        if throttle is None:
            return
        dialects = self._endpoint.dialects if self._endpoint is not None else None
        (endpoint_memory.remember if keep else endpoint_memory.recall)(
            ledger, self.provider.name, self.config.base_url, throttle=throttle, dialects=dialects,
            concurrency=self.controls.concurrency)

    def _draw_chart(self, path: Path, spec: ChartSpec) -> None:
        from .writers.figures.drawing import draw_chart

        draw_chart(self._drawer, path, spec)

    def _chart_names(self) -> list[str]:
        """The data sources whose chart this run's tasks attach (a family's are drawn per entity, at the end)."""
        if self.family is not None:
            return []
        return sorted({n for t in self.plan.tasks.values() for n in t.data
                       if n in self.sheet.data_sources and self.sheet.data_sources[n].chart})

    def _start_charts(self, names: Sequence[str]) -> threading.Thread:
        """Charts depend on the data, not on the model's answers: draw them while the calls run."""

        def draw() -> None:
            for name in names:
                try:
                    self._charts.render(name, self.data)
                except Exception as error:  # noqa: BLE001 - the report shows a note instead
                    log.warning("chart for %s not drawn: %s", name, error)

        thread = threading.Thread(target=draw, name="charts", daemon=True)
        thread.start()
        return thread

    def _facts(self, run: RunResult, *, started: float, finished: float, halt: Halt | None,
               resources: dict[str, Any], writers: Sequence[tuple[str, str, int]]) -> RunFacts:
        return RunFacts(
            version=__version__, run_id=run.run_id, status=run.status, exit_code=run.exit_code,
            halt_reason=halt.message if halt else None, sheet=str(self.sheet.path), started=started,
            finished=finished, duration_s=run.duration_s, counts=run.counts, prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens, reasoning_tokens=run.reasoning_tokens,
            cached_tokens=run.cached_tokens, cost_usd=run.cost_usd,
            prompt_cache_saving_usd=run.prompt_cache_saving_usd, execution=self.config.execution,
            batch=self.batch_summary(), provider=self.provider.name, model=self.config.model,
            resources=resources, outputs={k: Path(v).name for k, v in run.outputs.items()},
            resume_command=run.resume_command, writers=writers,
            concurrency=self.controls.concurrency.summary() if self._throttle() is not None else None,
            config=self.config.redacted(),
        )

    def batch_summary(self) -> dict[str, Any] | None:
        """run.json's `batch`: the waves and the saving against real-time prices (None in realtime)."""
        if self._batch is None:
            return None
        waves = [wave.as_dict() for wave in self._batch.waves]
        cost = sum(w["cost_usd"] for w in waves)
        realtime = sum(w["realtime_cost_usd"] for w in waves)
        return {
            "waves": waves,
            "batches": sum(len(w["batches"]) for w in waves),
            "requests": sum(b["completed"] for w in waves for b in w["batches"]),
            "cost_usd": round(cost, 6),
            "realtime_cost_usd": round(realtime, 6),
            "saving_usd": round(realtime - cost, 6),
        }

    @property
    def secrets(self) -> list[str]:
        """Strings no output may contain: the API key."""
        return [self.config.api_key.get_secret_value()] if self.config.api_key else []

    def _scrub(self, text: str) -> str:
        return redact(text, self.secrets)

    def _task_started(self, task: Task) -> None:
        if task.key in self._started_tasks:  # batch mode runs a parked task again after each wave
            return
        self._started_tasks.add(task.key)
        if len(self._started_tasks) >= min(self.config.task_threads, self.plan.task_count):
            self._first_wave_out.set()
        log.debug("task %s started", task.key)
        if self._monitor is not None:
            self._monitor.note_threads()
        self.observer.task_started(task)

    def _objective_finished(self, objective_id: str) -> None:
        """Runs on the objective pool the moment the chapter's last task settles."""
        objective = self.sheet.objective(objective_id)
        results = self.results.objective_results(objective_id)
        last_answer = max((r.finished_at for r in results), default=0.0)
        path = self.run_dir / self.chapter_csv(objective)
        try:
            write_objective_csv(path, results, columns=self._columns)
        except OSError as error:  # the run goes on: its other files may still be written, and it says so at the end
            log.error("could not write %s: %s", path, error.strerror or error)
            self._unwritten.append(error)
            return
        self._chapter_times[objective_id] = (last_answer, time.time())
        done = sum(r.status == "done" for r in results)
        log.info("objective %s finished: %d/%d tasks done (%s), wrote %s", objective_id, done, len(results),
                 Usage.of(results).describe(), path.name)
        self.observer.objective_finished(objective_id, results)

    def _finish(
        self, started: float, halt: Halt | None, resources: dict[str, Any], drawer: DrawingProcess | None,
        calls_of: Callable[..., Mapping[str, Sequence[CallText]]],
    ) -> RunResult:
        from .writers.changes import write_changes
        from .writers.reports import write_reports

        finished = time.time()
        results = self.results.all_results()
        counts = status_counts(results)
        counts["total"] = self.plan.task_count
        status, exit_code = _outcome(counts, halt)
        first = _first_request_s(results)
        if first is not None:  # how long the process took to send its first call (start-up, issue 19)
            resources = {**resources, "first_request_s": first}
        view = self.results.report_view(
            project_name=self.config.project_name, run_id=self.run_id, generated_at=finished,
            provider=self.provider.name, model=self.config.model,
            description_as_lead=self.config.description_as_lead,
        )
        outputs = {
            "report_md": self.run_dir / "report.md",
            "report_docx": self.run_dir / "report.docx",
            "report_xlsx": self.run_dir / "report.xlsx",
            "report_html": self.run_dir / "report.html",
            "results_csv": self.run_dir / "results.csv",
            "run_json": self.run_dir / "run.json",
            "run_log": self.run_dir / "run.log",
            "timeline_png": self.run_dir / "timeline.png",
        }
        family: list[EntityFolder] | None = None
        if self.family is not None:  # each entity's report in its folder; the run's own files at the root
            outputs = {k: v for k, v in outputs.items() if k in ("results_csv", "run_json", "run_log", "timeline_png")}
            family = self._write_family(view, results, drawer, calls_of)
            # one changes.md for the family, at the run's root (each entity's chapters named with it)
            outputs.update(write_changes(self.config, view, {"report_md": self.run_dir / "report.md"},
                                         base=self.compare_to))
        else:
            attachments = write_reports(
                view, outputs, results=results,
                done_tasks=[self.plan.tasks[r.key] for r in view.all_results() if r.status == "done"],
                data=self.data, charts=self._charts, drawer=drawer,
                timeline_title=f"{self.config.project_name}: run {self.run_id}",
                objective_titles={o.objective_id: o.title for o in self.plan.objectives}, calls=calls_of(),
            )
            outputs.update(write_changes(self.config, view, outputs, attachments=attachments, base=self.compare_to))
        finished = time.time()  # the run's duration includes writing its reports
        run = RunResult(
            run_id=self.run_id,
            run_dir=self.run_dir,
            status=status,
            exit_code=exit_code,
            counts=counts,
            prompt_tokens=sum(r.prompt_tokens for r in results),
            completion_tokens=sum(r.completion_tokens for r in results),
            cost_usd=sum(r.cost_usd for r in results),
            duration_s=finished - started,
            results=tuple(results),
            outputs={k: str(v) for k, v in outputs.items()},
            resume_command=(resume_command(self.sheet.path, self.config.output_dir, self.run_id)
                            if status != "done" and self.config.ledger else None),
        )
        facts = self._facts(run, started=started, finished=finished, halt=halt, resources=resources,
                            writers=view.written_by())
        if family is not None:
            facts = dataclasses.replace(facts, family=self._family_facts(family))
        manifest = build_manifest(
            facts, run.results,
            [ChapterFile(o.objective_id, o.title, self.chapter_csv(o).as_posix(),
                         written_at=self._chapter_times.get(o.objective_id, (0.0, 0.0))[1],
                         last_answer_at=self._chapter_times.get(o.objective_id, (0.0, 0.0))[0])
             for o in self.plan.objectives],
        )
        atomic_write_text(outputs["run_json"], json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return run


    # -- a family run's outputs ------------------------------------------------------------

    def _write_family(self, view: ReportView, results: Sequence[TaskResult], drawer: DrawingProcess | None,
                      calls_of: Callable[..., Mapping[str, Sequence[CallText]]]) -> list[EntityFolder]:
        """Each entity's report.md/.docx/.xlsx/.html in `entities/<id>/`, under the workbook's own ids
        (its chapter CSVs were written as its chapters finished); then the run's one timeline."""
        from .writers.reports import write_reports

        assert self.family is not None
        draw_once = SameChartOnce(self._draw_chart)
        by_entity: dict[str, list[TaskResult]] = {}  # grouped once, not scanned per entity
        for result in results:
            by_entity.setdefault(split_entity(result.objective_id)[0], []).append(result)
        tasks_of: dict[str, int] = {}
        for objective in self.plan.objectives:
            tasks_of[objective.entity_id] = (tasks_of.get(objective.entity_id, 0)
                                             + len(self.plan.tasks_by_objective[objective.objective_id]))
        folders = []
        for entity in self.sheet.family:
            own = entity_view(view, entity)
            folder = entity_dir(self.run_dir, entity.entity_id)
            mine = by_entity.get(entity.entity_id, [])
            write_reports(
                own, {kind: folder / name for kind, name in _ENTITY_REPORTS.items()}, results=mine,
                done_tasks=[local_task(self.plan.tasks[r.key]) for r in mine if r.status == "done"],
                data=self.family.for_entity(entity.entity_id),
                charts=ChartRenderer(folder, draw_png=draw_once), drawer=drawer,
                timeline_title="", objective_titles={},
                calls=local_calls(calls_of(entity=entity.entity_id)),
            )
            folders.append(EntityFolder.of(entity, [local_result(r) for r in mine], tasks_of.get(entity.entity_id, 0)))
        self._family_timeline(drawer, results)
        return folders

    def _family_timeline(self, drawer: DrawingProcess | None, results: Sequence[TaskResult]) -> None:
        from .writers.figures.drawing import child_failed, use_drawer, write_timeline
        from .writers.figures.drawing_process import TimelineJob
        from .writers.figures.timeline import timeline_data

        job = TimelineJob(self.run_dir / "timeline.png", timeline_data(results),
                          f"{self.config.project_name}: run {self.run_id}",
                          {o.objective_id: o.title for o in self.plan.objectives})
        if drawer is not None and use_drawer(drawer):
            if not child_failed(lambda: drawer.send_reports(timeline=job), ["timeline"]) \
                    and not child_failed(drawer.wait, ["timeline"]):
                return
        write_timeline(job)

    def _family_facts(self, folders: Sequence[EntityFolder]) -> dict[str, Any]:
        """run.json's `family`: what a merge of the shards needs to check and gather them."""
        shard = self.config.shard_slice
        return {
            "each": self.config.each,
            "shard": self.config.shard,
            "shards": shard[1] if shard else 1,
            "sheet_sha256": self._sheet_digest,
            "family_ids": list(self.sheet.family_ids),
            "entities": [folder.as_dict() for folder in folders],
        }


#: a family entity's reports, in its folder (the run has one timeline, at its root)
_ENTITY_REPORTS = {"report_md": "report.md", "report_docx": "report.docx", "report_xlsx": "report.xlsx",
                   "report_html": "report.html"}


def _first_request_s(results: Sequence[TaskResult]) -> float | None:
    """Seconds from the process's start to its first call sent (not a cache hit); None if none was."""
    sent = [c.started_at for r in results for c in r.calls if c.started_at and not c.cached and c.step != "resumed"]
    if not sent:
        return None
    return round(max(0.0, min(sent) - process_started_at()), 3)


def _import_when(ready: threading.Event, names: Sequence[str]) -> None:
    """Import `names` once `ready` is set, off the path to the first request (the run imports each
    again where it is used, so one that fails here fails there, with its error)."""
    ready.wait()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - said where the run imports it for use
            log.debug("importing %s ahead of use failed", name, exc_info=True)


def _outcome(counts: dict[str, int], halt: Halt | None) -> tuple[str, int]:
    if halt is not None:
        return {
            "budget": ("budget", EXIT_BUDGET),
            "aborted": ("aborted", EXIT_BAD_INPUT),
            "interrupted": ("interrupted", EXIT_INTERRUPTED),
            "fail_fast": ("failed", EXIT_TASKS_FAILED),
        }[halt.reason]
    if counts["failed"] or counts["skipped"]:
        return "failed", EXIT_TASKS_FAILED
    return "done", EXIT_OK


def _counts_text(counts: dict[str, int]) -> str:
    return f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped of {counts['total']}"


