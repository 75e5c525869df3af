"""The Files and Batches endpoints, and the pacing that moves batches along.

Why a batch moves in steps: a client polling a real batch sees ``validating``,
then ``in_progress`` with ``request_counts`` growing, then ``finalizing`` and
a terminal status. The simulator makes the same walk in ``batch_steps``
processing steps plus three transitions, spread evenly over
``batch_delay_s`` by one driver task per batch. With ``batch_manual`` the
drivers stand still and a test moves batches with ``advance`` (through
``SimulatorHandle.advance_batches``), so it can assert each state without
sleeping.

Each request is answered by the server's chat logic (``answer``), so a batch
and the real-time endpoint give one body the same text and usage, and
``sim:`` directives work inside batch bodies. Real-time faults and rate
limits do not apply to batches; ``batch_error_rate`` is their counterpart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from report_pipeline.simulator._batch import (
    BATCH_ENDPOINTS,
    COMPLETION_WINDOWS,
    BatchInput,
    BatchJob,
    BatchProblem,
    RequestResult,
    enqueued_token_limit,
    jsonl,
    parse_batch_input,
    unit_draw,
)
from report_pipeline.simulator._config import SimulatorConfig
from report_pipeline.simulator._files import UPLOAD_PURPOSES, FileStore, read_upload
from report_pipeline.simulator._http import (
    api_error,
    cursor_page,
    json_response,
    query_limit,
    read_json_object,
)

logger = logging.getLogger(__name__)

#: ``answer(body, server_error)``: run one batch request through the chat logic.
Answerer = Callable[[object, bool], RequestResult]

# Validation, then finalizing, then the terminal status: steps beyond processing.
_EXTRA_STEPS = 2
_DEFAULT_BATCH_PAGE = 20
_MAX_BATCH_PAGE = 100
_DEFAULT_FILE_PAGE = 10_000
_MAX_FILE_PAGE = 10_000
_MAX_METADATA_PAIRS = 16
_MAX_METADATA_KEY = 64
_MAX_METADATA_VALUE = 512
_CANCELLABLE = ("validating", "in_progress")


@dataclass
class BatchCounters:
    """The batch side of ``/_sim/stats``, zeroed by ``/_sim/reset``.

    ``batch_requests`` counts the requests of every batch that passed
    validation; ``custom_ids`` how many such batches carried each custom_id,
    so a test can assert that no request was submitted twice
    (``batch_requests_repeated`` is 0). ``batch_requests_by_label`` counts
    requests run, by ``sim:label``.
    """

    files_uploaded: int = 0
    batch_requests: int = 0
    custom_ids: Counter[str] = field(default_factory=Counter)
    batch_requests_by_label: Counter[str] = field(default_factory=Counter)
    refused_requests: int = 0  # to /v1/files or /v1/batches while no_batch_api is on


class BatchService:
    """Files, batches and their drivers. Event-loop only, like ``SimulatorServer``."""

    def __init__(
        self,
        *,
        config: Callable[[], SimulatorConfig],
        answer: Answerer,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._answer = answer
        self._wall_clock = wall_clock
        self._files = FileStore()
        self._jobs: dict[str, BatchJob] = {}
        self._serial = 0
        self._counters = BatchCounters()
        self._recent: list[str] = []  # batches created since the last reset
        self._drivers: dict[str, asyncio.Task[None]] = {}  # unfinished batches' drivers
        self._running = asyncio.Event()  # set while batches move on their own
        if not config().batch_manual:
            self._running.set()
        self._created_waiters: list[tuple[int, threading.Event]] = []
        self._finished_waiters: dict[str, list[threading.Event]] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        guard = self._unless_disabled
        router.add_post("/v1/files", guard(self._upload_file))
        router.add_get("/v1/files", guard(self._list_files))
        router.add_get("/v1/files/{file_id}", guard(self._retrieve_file))
        router.add_delete("/v1/files/{file_id}", guard(self._delete_file))
        router.add_get("/v1/files/{file_id}/content", guard(self._file_content))
        router.add_post("/v1/batches", guard(self._create_batch))
        router.add_get("/v1/batches", guard(self._list_batches))
        router.add_get("/v1/batches/{batch_id}", guard(self._retrieve_batch))
        router.add_post("/v1/batches/{batch_id}/cancel", guard(self._cancel_batch))

    def _unless_disabled(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        """With ``no_batch_api`` the endpoints are not there at all: 404, as on Ollama or vLLM."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._config().no_batch_api:
                self._counters.refused_requests += 1
                return api_error(404, f"Not Found: {request.method} {request.path}")
            return await handler(request)

        return guarded

    # -- control, for SimulatorServer and SimulatorHandle -------------------------

    def stats(self) -> dict[str, Any]:
        counters = self._counters
        by_status = Counter(self._jobs[batch_id].status for batch_id in self._recent)
        return {
            "files_uploaded": counters.files_uploaded,
            "batches_created": len(self._recent),
            "batches_by_status": dict(by_status),
            "batch_requests": counters.batch_requests,
            "batch_requests_repeated": counters.batch_requests - len(counters.custom_ids),
            "batch_requests_by_label": dict(counters.batch_requests_by_label),
            "batch_api_refused": counters.refused_requests,
        }

    def reset(self) -> None:
        """Zero the counters; stored files and batches stay, running ones go on."""
        self._counters = BatchCounters()
        self._recent = []

    def config_changed(self, config: SimulatorConfig) -> None:
        if config.batch_manual:
            self._running.clear()
        else:
            self._running.set()

    def batches(self) -> list[dict[str, Any]]:
        """Every batch, oldest first."""
        return [job.as_dict() for job in self._jobs.values()]

    def advance(self, batch_id: str | None, steps: int | None) -> list[dict[str, Any]]:
        """Move one batch (or every unfinished one) ``steps`` steps; None: to the end.

        Runs the steps at once on the loop, so when a test's call returns, the
        batches are in their new state.
        """
        if batch_id is not None:
            jobs = [self._job(batch_id)]
        else:
            jobs = [job for job in self._jobs.values() if not job.finished]
        for job in jobs:
            taken = 0
            while not job.finished and (steps is None or taken < steps):
                self._step(job)
                taken += 1
        return [job.as_dict() for job in jobs]

    def notify_when_created(self, count: int, event: threading.Event) -> None:
        """Set ``event`` (a thread's) once ``count`` batches exist since the last reset."""
        if len(self._recent) >= count:
            event.set()
        else:
            self._created_waiters.append((count, event))

    def created_since_reset(self) -> list[str]:
        return list(self._recent)

    def notify_when_finished(self, batch_id: str, event: threading.Event) -> None:
        """Set ``event`` once batch ``batch_id`` reaches a terminal status."""
        if self._job(batch_id).finished:
            event.set()
        else:
            self._finished_waiters.setdefault(batch_id, []).append(event)

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self._job(batch_id).as_dict()

    async def stop(self) -> None:
        drivers = list(self._drivers.values())
        self._drivers.clear()
        for task in drivers:
            task.cancel()
        for task in drivers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- files ---------------------------------------------------------------------

    async def _upload_file(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        config = self._config()
        try:
            upload = await read_upload(request, max_bytes=config.batch_max_bytes)
        except ValueError as error:
            return api_error(400, str(error))
        if upload.data is None:
            return api_error(400, "Missing required parameter: 'file'.", param="file")
        if upload.purpose is None:
            return api_error(400, "Missing required parameter: 'purpose'.", param="purpose")
        if upload.purpose not in UPLOAD_PURPOSES:
            return api_error(
                400,
                f"Invalid value for 'purpose': {upload.purpose!r}; "
                f"supported values are: {', '.join(UPLOAD_PURPOSES)}.",
                param="purpose",
            )
        filename = upload.filename or "upload"
        if upload.purpose == "batch":
            refused = self._refuse_batch_input(filename, upload.data, upload.size, config)
            if refused is not None:
                return refused
        stored = self._files.add(
            upload.data, filename=filename, purpose=upload.purpose, created_at=self._now()
        )
        self._counters.files_uploaded += 1
        return json_response(stored.as_dict())

    @staticmethod
    def _refuse_batch_input(
        filename: str, data: bytes, size: int, config: SimulatorConfig
    ) -> web.Response | None:
        """OpenAI's upload checks for a batch input, plus the file's lines when
        ``batch_validate_upload`` asks for them (OpenAI checks those later)."""
        if not filename.endswith(".jsonl"):
            return api_error(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        if size > config.batch_max_bytes:
            return api_error(
                400,
                f"File is too large: {size} bytes; a batch input file may be at most "
                f"{config.batch_max_bytes} bytes.",
                param="file",
            )
        if config.batch_validate_upload:
            _, problems = parse_batch_input(
                data, endpoint=BATCH_ENDPOINTS[0], max_requests=config.batch_max_requests
            )
            if problems:
                return api_error(400, _describe(problems[0]), code=problems[0].code, param="file")
        return None

    async def _list_files(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        try:
            limit = query_limit(request, default=_DEFAULT_FILE_PAGE, maximum=_MAX_FILE_PAGE)
        except ValueError as error:
            return api_error(400, str(error), param="limit")
        files = [stored.as_dict() for stored in self._files.listed(request.query.get("purpose"))]
        if request.query.get("order") == "asc":
            files.reverse()
        return json_response(cursor_page(files, after=request.query.get("after"), limit=limit))

    async def _retrieve_file(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        stored = self._files.get(request.match_info["file_id"])
        if stored is None:
            return _no_file(request.match_info["file_id"])
        return json_response(stored.as_dict())

    async def _delete_file(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        file_id = request.match_info["file_id"]
        if not self._files.delete(file_id):
            return _no_file(file_id)
        return json_response({"id": file_id, "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        stored = self._files.get(request.match_info["file_id"])
        if stored is None:
            return _no_file(request.match_info["file_id"])
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # -- batches -----------------------------------------------------------------

    async def _create_batch(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        try:
            body = await read_json_object(request)
            job = self._new_job(body)
        except _BadParameter as error:
            return api_error(error.status, error.message, param=error.param)
        except ValueError as error:
            return api_error(400, str(error))
        self._jobs[job.id] = job
        self._recent.append(job.id)
        self._wake_created_waiters()
        self._drivers[job.id] = asyncio.get_running_loop().create_task(
            self._drive(job), name=f"simulator-{job.id}"
        )
        return json_response(job.as_dict())

    def _new_job(self, body: dict[str, Any]) -> BatchJob:
        """Check the create parameters as OpenAI does (before any validation)."""
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str):
                raise _BadParameter(f"Missing required parameter: '{name}'.", name)
        endpoint, window = body["endpoint"], body["completion_window"]
        if endpoint not in BATCH_ENDPOINTS:
            raise _BadParameter(
                f"Invalid value for 'endpoint': {endpoint!r}; the simulator runs batches "
                f"for {', '.join(BATCH_ENDPOINTS)} only.",
                "endpoint",
            )
        if window not in COMPLETION_WINDOWS:
            raise _BadParameter(
                f"Invalid value for 'completion_window': {window!r}; "
                f"supported values are: {', '.join(COMPLETION_WINDOWS)}.",
                "completion_window",
            )
        metadata = _checked_metadata(body.get("metadata"))
        stored = self._files.get(body["input_file_id"])
        if stored is None:
            raise _BadParameter(
                f"No such File object: {body['input_file_id']}", "input_file_id", status=404
            )
        if stored.purpose != "batch":
            raise _BadParameter(
                f"The input file {stored.id} has purpose {stored.purpose!r}; "
                "a batch needs a file uploaded with purpose 'batch'.",
                "input_file_id",
            )
        self._serial += 1
        return BatchJob(
            id=f"batch_sim{self._serial:010d}",
            input_file_id=stored.id,
            endpoint=endpoint,
            completion_window=window,
            metadata=metadata,
            created_at=self._now(),
        )

    async def _retrieve_batch(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        job = self._jobs.get(request.match_info["batch_id"])
        if job is None:
            return _no_batch(request.match_info["batch_id"])
        return json_response(job.as_dict())

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        job = self._jobs.get(request.match_info["batch_id"])
        if job is None:
            return _no_batch(request.match_info["batch_id"])
        if job.status in _CANCELLABLE:
            job.request_cancel(self._now())
        elif job.status != "cancelling":
            # 400, not 409: clients retry a 409, and this will never succeed.
            return api_error(400, f"Cannot cancel a batch with status '{job.status}'.")
        return json_response(job.as_dict())

    async def _list_batches(self, request: web.Request) -> web.Response:
        denied = self._deny(request)
        if denied is not None:
            return denied
        try:
            limit = query_limit(request, default=_DEFAULT_BATCH_PAGE, maximum=_MAX_BATCH_PAGE)
        except ValueError as error:
            return api_error(400, str(error), param="limit")
        newest_first = [job.as_dict() for job in reversed(self._jobs.values())]
        return json_response(
            cursor_page(newest_first, after=request.query.get("after"), limit=limit)
        )

    # -- the lifecycle -------------------------------------------------------------

    async def _drive(self, job: BatchJob) -> None:
        """Step ``job`` every ``batch_delay_s / (batch_steps + 2)`` seconds until it ends.

        The config is read afresh each time, so ``batch_manual`` and the delay
        can change while batches run.
        """
        while not job.finished:
            if self._config().batch_manual:
                await self._running.wait()
                continue
            config = self._config()
            await asyncio.sleep(config.batch_delay_s / (config.batch_steps + _EXTRA_STEPS))
            if not job.finished and not self._config().batch_manual:
                try:
                    self._step(job)
                except Exception as error:  # a simulator bug: fail loudly, not forever
                    logger.exception("simulator batch %s failed", job.id)
                    problem = BatchProblem("server_error", f"simulator error: {error!r}")
                    job.fail([problem], self._now())
                    self._finished(job)

    def _step(self, job: BatchJob) -> None:
        """One transition: validate, run one chunk, or end."""
        status = job.status
        if status == "validating":
            self._validate(job)
        elif status == "in_progress":
            self._run_chunk(job)
        elif status == "finalizing":
            self._finish(job, "completed")
        elif status == "cancelling":
            self._finish(job, "cancelled")

    def _validate(self, job: BatchJob) -> None:
        config = self._config()
        stored = self._files.get(job.input_file_id)
        if stored is None:
            message = f"The input file {job.input_file_id} was deleted before the batch started."
            problems = [BatchProblem("file_not_found", message)]
            requests: list[BatchInput] = []
        else:
            requests, problems = parse_batch_input(
                stored.data, endpoint=job.endpoint, max_requests=config.batch_max_requests
            )
        if not problems and config.batch_fail:
            model = requests[0].body.get("model")
            problems = [enqueued_token_limit(model if isinstance(model, str) else None)]
        if problems:
            job.fail(problems, self._now())
            self._finished(job)
            return
        job.start(requests, now=self._now(), steps=config.batch_steps, expire=config.batch_expire)
        self._counters.batch_requests += job.total
        self._counters.custom_ids.update(request.custom_id for request in job.requests)

    def _run_chunk(self, job: BatchJob) -> None:
        chunk = job.next_chunk()
        if chunk is None:
            self._finish(job, "expired")
            return
        config = self._config()
        by_label = self._counters.batch_requests_by_label
        for request in chunk:
            server_error = unit_draw(config.seed, job.id, request.custom_id) < (
                config.batch_error_rate
            )
            result = self._answer(request.body, server_error)
            if result.label is not None:
                by_label[result.label] += 1
            job.record(request, result)
        job.mark_finalizing_if_done(self._now())

    def _finish(self, job: BatchJob, status: str) -> None:
        """End ``job`` and write its output and error files (each only if non-empty)."""
        now = self._now()
        job.finish(status, now)
        if job.output_lines:
            job.output_file_id = self._files.add(
                jsonl(job.output_lines),
                filename=f"{job.id}_output.jsonl",
                purpose="batch_output",
                created_at=now,
            ).id
        if job.error_lines:
            job.error_file_id = self._files.add(
                jsonl(job.error_lines),
                filename=f"{job.id}_error.jsonl",
                purpose="batch_output",
                created_at=now,
            ).id
        self._finished(job)

    # -- helpers -------------------------------------------------------------------

    def _job(self, batch_id: str) -> BatchJob:
        job = self._jobs.get(batch_id)
        if job is None:
            raise ValueError(f"no batch {batch_id!r} in this simulator")
        return job

    def _now(self) -> int:
        return int(self._wall_clock())

    def _deny(self, request: web.Request) -> web.Response | None:
        api_key = self._config().api_key
        if api_key is None or request.headers.get("Authorization", "") == f"Bearer {api_key}":
            return None
        return api_error(
            401,
            "Incorrect API key provided. The simulator expects the key it was configured with.",
            code="invalid_api_key",
            type_="invalid_request_error",
        )

    def _wake_created_waiters(self) -> None:
        created = len(self._recent)
        waiting = []
        for count, event in self._created_waiters:
            if created >= count:
                event.set()
            else:
                waiting.append((count, event))
        self._created_waiters = waiting

    def _finished(self, job: BatchJob) -> None:
        """Wake who waits for ``job``; retire its driver (which may be waiting
        for manual mode to end, or be the caller itself)."""
        for event in self._finished_waiters.pop(job.id, []):
            event.set()
        driver = self._drivers.pop(job.id, None)
        if driver is not None and driver is not asyncio.current_task():
            driver.cancel()


class _BadParameter(ValueError):
    """A create parameter OpenAI would refuse: status, message and param name."""

    def __init__(self, message: str, param: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


def _checked_metadata(value: object) -> dict[str, str] | None:
    """OpenAI's metadata rules: up to 16 string pairs, keys <= 64 and values <= 512 chars."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise _BadParameter("Invalid 'metadata': expected an object of strings.", "metadata")
    if len(value) > _MAX_METADATA_PAIRS:
        raise _BadParameter(
            f"Invalid 'metadata': {len(value)} pairs; at most {_MAX_METADATA_PAIRS} are allowed.",
            "metadata",
        )
    for key, item in value.items():
        if len(key) > _MAX_METADATA_KEY or len(item) > _MAX_METADATA_VALUE:
            raise _BadParameter(
                f"Invalid 'metadata': key {key[:_MAX_METADATA_KEY]!r} or its value is too long "
                f"(keys up to {_MAX_METADATA_KEY}, values up to {_MAX_METADATA_VALUE} characters).",
                "metadata",
            )
    return dict(value)


def _describe(problem: BatchProblem) -> str:
    if problem.line is None:
        return problem.message
    return f"Line {problem.line}: {problem.message}"


def _no_file(file_id: str) -> web.Response:
    return api_error(404, f"No such File object: {file_id}", param="id")


def _no_batch(batch_id: str) -> web.Response:
    return api_error(404, f"No such Batch object: {batch_id}", param="batch_id")
