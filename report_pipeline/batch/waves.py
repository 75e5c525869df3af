"""Batch mode: a run's calls go out in waves through the provider's Batch API.

How it fits the real-time machinery (nothing in the runner changes):

- `BatchExecution.call` is the runner's call function. A call answered in an earlier
  wave of this run comes back at once; one in the cache too; any other one is
  noted as wanted and `AwaitingBatch` parks its task (see scheduler.py).
- When every task left is parked, the scheduler calls `run_wave`: the wanted calls
  become JSONL input files (one model per batch, split at the per-file limits), are
  submitted together and polled until every batch ends. The answers are recorded
  in the ledger as the run's calls (they are the cache), and the parked tasks run
  again from the top: calls answered before return at once, the next ones park.

Nothing is paid for twice: an input file is recorded the moment it is uploaded and a
batch the moment it exists, so after a crash, Ctrl-C or `max_wait`, the next run
(`--resume`) adopts the recorded batches that carry the calls it wants, instead of
sending them again. Expired, cancelled or failed batches keep what they answered;
the rest is sent again in a new batch, `batch_resubmits` times at most.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..config import Price, RunConfig
from ..errors import AuthError, AwaitingBatch, ProviderError, TransientProviderError
from ..ledger.store import BatchRequestRow, BatchRow, Ledger, request_hash
from ..providers.base import ChatRequest, ChatResponse
from ..providers.openai.answers import ChatAnswer, cut_warning
from ..providers.tokens import prompt_tokens, prompt_tokens_at_most, text_tokens
from ..run.gateway import CallGateway
from ..run.outcome import WaveProgress
from ..run.scheduler import Halt
from .backend import BatchBackend, BatchState
from .lines import (
    BatchLine,
    Refusal,
    build_lines,
    jsonl,
    parse_results,
    split_batches,
)

log = logging.getLogger("report_pipeline.batch")

# Transient errors while uploading, creating or polling: tries, and the first pause (doubling).
_TRANSIENT_TRIES = 5
_TRANSIENT_PAUSE_S = 1.0


@dataclass
class SubmittedBatch:
    """One batch of a wave, as this run follows it."""

    local_id: str
    attempt: int
    model: str | None
    requests: list[BatchRequestRow]
    submitted_at: float
    state: BatchState | None = None  # None until the server has it
    input_file_id: str = ""
    adopted: bool = False  # recorded by an earlier (crashed) run, picked up here

    @property
    def batch_id(self) -> str | None:
        return self.state.batch_id if self.state else None


@dataclass
class WaveReport:
    """One wave, for run.json."""

    wave: int
    requests: int = 0
    adopted_requests: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    realtime_cost_usd: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    own_time_s: float = 0.0  # wall time not spent waiting for the server: our overhead

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave, "requests": self.requests, "adopted_requests": self.adopted_requests,
            "batches": self.batches, "cost_usd": round(self.cost_usd, 6),
            "realtime_cost_usd": round(self.realtime_cost_usd, 6),
            "duration_s": round(self.finished_at - self.started_at, 3), "own_time_s": round(self.own_time_s, 3),
        }


class _Collector:
    """The gateway's provider in batch mode: a call not in the cache waits for its wave."""

    def __init__(self, name: str) -> None:
        self.name = name

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise AwaitingBatch(request.label)

    def list_models(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


class BatchExecution:
    """The call function and the wave hook of one batch-mode run."""

    def __init__(
        self,
        *,
        config: RunConfig,
        backend: BatchBackend,
        ledger: Ledger | None,
        run_id: str,
        use_cache: bool,
        stop: threading.Event,
        on_progress: Callable[[WaveProgress], None] = lambda progress: None,
        clock: Callable[[], float] = time.time,
        pause: Callable[[float], bool] | None = None,
    ) -> None:
        self._config = config
        self._backend = backend
        self._ledger = ledger
        self._run_id = run_id
        self._provider_name = config.provider
        self._base_url = config.base_url
        self._stop = stop
        self._on_progress = on_progress
        self._clock = clock
        self._pause = pause or stop.wait  # returns True when the run is stopping
        self._gateway = CallGateway(
            _Collector(config.provider), ledger=ledger, run_id=run_id, base_url=config.base_url,
            use_cache=use_cache, durable=False,
        )
        self._lock = threading.Lock()
        self._settled: dict[str, ChatResponse | Refusal] = {}
        self._wanted: dict[str, ChatRequest] = {}
        self._requests: dict[str, ChatRequest] = {}  # every call ever wanted, to send again if need be
        self._waves: list[WaveReport] = []
        self.spent_usd = 0.0
        self.realtime_usd = 0.0

    # -- the runner's call function -----------------------------------------------------

    def __call__(self, request: ChatRequest) -> ChatResponse:
        key = request_hash(self._provider_name, self._base_url, request.sampling())
        with self._lock:
            settled = self._settled.get(key)
        if isinstance(settled, ChatResponse):
            return settled
        if isinstance(settled, Refusal):
            raise ProviderError(settled.message, status_code=settled.status_code)
        try:
            response = self._gateway(request)  # a cache hit, or AwaitingBatch
        except AwaitingBatch:
            with self._lock:
                self._wanted.setdefault(key, request)
            raise
        with self._lock:
            self._settled[key] = response
        return response

    @property
    def waves(self) -> list[WaveReport]:
        return list(self._waves)

    # -- the scheduler's wave hook ------------------------------------------------------

    def run_wave(self) -> Halt | None:
        """Send what the parked tasks wait for, wait until every batch has ended, keep the answers."""
        with self._lock:
            wanted, self._wanted = self._wanted, {}
            self._requests.update(wanted)
        report = WaveReport(wave=len(self._waves) + 1, started_at=self._clock())
        self._waves.append(report)
        waited = 0.0
        try:
            batches = self._adopt(wanted, report)
            lines = build_lines(((k, r) for k, r in wanted.items()), url=self._backend.url, body=self._backend.body)
            report.requests = len(lines) + report.adopted_requests
            halt = self._check_budget(lines)
            if halt is not None:
                return halt
            log.info(
                "wave %d: %d request(s) to send%s", report.wave, len(lines),
                f", {report.adopted_requests} already in recorded batch(es)" if report.adopted_requests else "",
            )
            batches += self._submit(lines, report.wave, attempt=1)
            while batches:
                outcome, spent = self._wait(batches, report)
                waited += spent
                if outcome is not None:
                    return outcome
                batches = self._resubmit(self._collect(batches, report), report)
            return None
        except AuthError as error:
            return Halt("aborted", f"aborted: {error}", error)
        except TransientProviderError as error:
            return Halt(
                "interrupted",
                f"batch: the server kept failing ({error}); the batches sent so far are recorded: "
                f"--resume {self._run_id} picks them up",
                error,
            )
        finally:
            report.finished_at = self._clock()
            report.own_time_s = max(0.0, report.finished_at - report.started_at - waited)

    # -- steps of a wave ----------------------------------------------------------------

    def _adopt(self, wanted: dict[str, ChatRequest], report: WaveReport) -> list[SubmittedBatch]:
        """Recorded batches that never got collected and carry wanted calls: follow them, send nothing."""
        if self._ledger is None:
            return []
        adopted: list[SubmittedBatch] = []
        for row in self._ledger.open_batches():
            requests = self._ledger.batch_requests(row.local_id)
            mine = [r for r in requests if r.request_hash in wanted]
            if not mine:
                continue
            for request in requests:
                wanted.pop(request.request_hash, None)
            batch = SubmittedBatch(
                local_id=row.local_id, attempt=row.attempt, model=row.model, requests=requests,
                submitted_at=row.created_at, input_file_id=row.input_file_id, adopted=True,
            )
            batch.state = self._find_state(row)
            adopted.append(batch)
            report.adopted_requests += len(mine)
            log.info(
                "wave %d: following batch %s recorded by run %s (%d request(s)), not sending them again",
                report.wave, row.batch_id or f"from file {row.input_file_id}", row.run_id, len(requests),
            )
        return adopted

    def _find_state(self, row: BatchRow) -> BatchState | None:
        """The server's state of a recorded batch; created now if the crash came before create."""
        if row.batch_id is not None:
            return self._retry(lambda: self._backend.retrieve(row.batch_id or ""))
        found = self._retry(lambda: self._backend.find(row.input_file_id))
        if found is None:
            found = self._retry(lambda: self._backend.create(row.input_file_id, self._metadata(row.wave)))
        assert self._ledger is not None
        self._ledger.update_batch(row.local_id, status=found.status, batch_id=found.batch_id)
        return found

    def _check_budget(self, lines: Sequence[BatchLine]) -> Halt | None:
        """A wave whose estimated cost would pass max_cost_usd is not sent."""
        cap = self._config.max_cost_usd
        if cap is None or not lines:
            return None
        estimate = sum(self._estimate(line.request) for line in lines)
        if self.spent_usd + estimate <= cap:
            return None
        return Halt(
            "budget",
            f"budget: the next wave ({len(lines)} requests, about ${estimate:.4f} at batch prices) would pass "
            f"max_cost_usd ${cap:.2f} (${self.spent_usd:.4f} spent); it was not sent",
        )

    def _price(self, model: str) -> Price | None:
        """The model's price; none offline, where nothing is paid (as in real-time mode)."""
        return None if self._backend.name == "offline" else self._config.price_for(model)

    def _estimate(self, request: ChatRequest) -> float:
        price = self._price(request.model)
        if price is None:
            return 0.0
        return price.cost(prompt_tokens_at_most(request.messages), request.max_tokens, batch=True)

    def _submit(self, lines: Sequence[BatchLine], wave: int, *, attempt: int) -> list[SubmittedBatch]:
        """Upload and create every batch of the wave, recording each step as it happens."""
        submitted = []
        for number, chunk in enumerate(split_batches(
            lines, max_requests=self._config.batch_max_requests, max_bytes=self._config.batch_max_bytes,
        ), start=1):
            if self._stop.is_set():
                break
            local_id = f"rpb-{secrets.token_hex(6)}"
            requests = [BatchRequestRow(line.custom_id, line.request_hash, line.task_key, line.step) for line in chunk]
            model = chunk[0].request.model
            filename = f"{self._run_id}-wave{wave}-{number}-try{attempt}.jsonl"
            try:
                file_id = self._retry(partial(self._backend.upload, filename, jsonl(chunk)))
            except (AuthError, TransientProviderError):
                raise
            except ProviderError as error:  # the server refuses this file: its calls fail, as a 4xx would
                self._refuse(chunk, f"batch input file refused: {error}")
                continue
            if self._ledger is not None:
                self._ledger.record_batch_upload(
                    local_id=local_id, run_id=self._run_id, wave=wave, attempt=attempt, provider=self._provider_name,
                    base_url=self._base_url, model=model, input_file_id=file_id, requests=requests,
                )
            batch = SubmittedBatch(local_id, attempt, model, requests, self._clock(), input_file_id=file_id)
            try:
                batch.state = self._retry(partial(self._backend.create, file_id, self._metadata(wave)))
            except (AuthError, TransientProviderError):
                raise
            except ProviderError as error:
                if self._ledger is not None:
                    self._ledger.update_batch(local_id, status="failed", error=str(error))
                    self._ledger.mark_batch_collected(local_id)
                self._refuse(chunk, f"batch refused: {error}")
                continue
            if self._ledger is not None:
                self._ledger.update_batch(local_id, status=batch.state.status, batch_id=batch.state.batch_id)
            log.info("wave %d: batch %s submitted: %d request(s), model %s", wave, batch.batch_id, len(chunk), model)
            submitted.append(batch)
        return submitted

    def _refuse(self, chunk: Sequence[BatchLine], message: str) -> None:
        with self._lock:
            for line in chunk:
                self._settled[line.request_hash] = Refusal(message)
        log.error("%d request(s) fail: %s", len(chunk), message)

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Upload, create, poll and download shrug off a few transient errors (5xx, 429, a dropped connection)."""
        pause = _TRANSIENT_PAUSE_S
        for attempt in range(1, _TRANSIENT_TRIES + 1):
            try:
                return fn()
            except TransientProviderError as error:
                if attempt == _TRANSIENT_TRIES or self._stop.is_set():
                    raise
                log.warning("batch API: %s; trying again in %.0f s (%d/%d)", error, pause, attempt, _TRANSIENT_TRIES)
                if self._pause(pause):
                    raise
                pause *= 2
        raise AssertionError("unreachable")

    def _metadata(self, wave: int) -> dict[str, str]:
        return {"report_pipeline_run": self._run_id, "wave": str(wave)}

    def _wait(self, batches: list[SubmittedBatch], report: WaveReport) -> tuple[Halt | None, float]:
        """Poll until every batch has ended; a stop or `batch_max_wait_s` ends the wait with a Halt."""
        started = self._clock()
        deadline = None if self._config.batch_max_wait_s is None else started + self._config.batch_max_wait_s
        last_seen: dict[str, tuple[str, int, int]] = {}
        while True:
            for batch in batches:
                if batch.state is None or batch.state.terminal:
                    continue
                batch.state = self._retry(partial(self._backend.retrieve, batch.batch_id or ""))
                self._note(batch, last_seen)
            self._on_progress(self._progress(batches, report, self._clock() - started))
            if all(b.state is None or b.state.terminal for b in batches):
                return None, self._clock() - started
            if deadline is not None and self._clock() >= deadline:
                return Halt(
                    "interrupted",
                    f"batch: max_wait {self._config.batch_max_wait_s:g} s reached in wave {report.wave}; its "
                    f"batches are recorded: `report-pipeline run ... --resume {self._run_id}` picks them up",
                ), self._clock() - started
            interval = self._config.batch_poll_interval_s
            if deadline is not None:
                interval = max(0.0, min(interval, deadline - self._clock()))
            if self._pause(interval) or self._stop.is_set():
                return Halt(
                    "interrupted",
                    f"interrupted while waiting for wave {report.wave}; its batches are recorded: "
                    f"--resume {self._run_id} picks them up",
                ), self._clock() - started

    def _note(self, batch: SubmittedBatch, last_seen: dict[str, tuple[str, int, int]]) -> None:
        """Record a batch's state in the ledger when it changed."""
        state = batch.state
        assert state is not None
        seen = (state.status, state.completed, state.failed)
        if last_seen.get(batch.local_id) == seen:
            return
        last_seen[batch.local_id] = seen
        if self._ledger is not None:
            self._ledger.update_batch(
                batch.local_id, status=state.status, batch_id=state.batch_id, completed=state.completed,
                failed=state.failed, output_file_id=state.output_file_id, error_file_id=state.error_file_id,
                error=state.errors,
            )
        log.debug("batch %s: %s, %d/%d completed, %d failed", state.batch_id, state.status,
                  state.completed, state.total, state.failed)

    def _progress(self, batches: Sequence[SubmittedBatch], report: WaveReport, waited: float) -> WaveProgress:
        statuses: dict[str, int] = {}
        total = completed = failed = 0
        for batch in batches:
            status = batch.state.status if batch.state else "uploaded"
            statuses[status] = statuses.get(status, 0) + 1
            total += batch.state.total if batch.state and batch.state.total else len(batch.requests)
            completed += batch.state.completed if batch.state else 0
            failed += batch.state.failed if batch.state else 0
        done = completed + failed
        eta = None
        if 0 < done < total and waited > 0:
            eta = waited * (total - done) / done
        return WaveProgress(report.wave, len(batches), statuses, total, completed, failed, waited, eta)

    def _collect(self, batches: Sequence[SubmittedBatch], report: WaveReport) -> list[tuple[BatchRequestRow, SubmittedBatch]]:
        """Read every ended batch's files: answers and refusals settle their calls; the rest is returned
        to be sent again (expired, cancelled, failed before it ran)."""
        again: list[tuple[BatchRequestRow, SubmittedBatch]] = []
        for batch in batches:
            state = batch.state
            if state is None:
                continue
            results: dict[str, ChatAnswer | Refusal] = {}
            for file_id in (state.output_file_id, state.error_file_id):
                if file_id:
                    results.update(parse_results(self._retry(partial(self._backend.download, file_id))))
            latency = max(0.0, self._clock() - batch.submitted_at)
            for request in batch.requests:
                result = results.get(request.custom_id)
                if result is None or (isinstance(result, Refusal) and (result.never_ran or self._corrected(request, result))):
                    again.append((request, batch))
                    continue
                self._settle(request, result, batch, latency, report)
            if self._ledger is not None:
                self._ledger.mark_batch_collected(batch.local_id)
            report.batches.append({
                "batch_id": state.batch_id, "status": state.status, "attempt": batch.attempt,
                "model": batch.model, "requests": len(batch.requests), "completed": state.completed,
                "failed": state.failed, "adopted": batch.adopted,
            })
            log.info(
                "wave %d: batch %s %s: %d completed, %d failed of %d", report.wave, state.batch_id,
                state.status, state.completed, state.failed, len(batch.requests),
            )
        if self._ledger is not None:
            self._ledger.flush()
        return again

    def _settle(
        self, request: BatchRequestRow, result: ChatAnswer | Refusal, batch: SubmittedBatch, latency: float,
        report: WaveReport,
    ) -> None:
        if isinstance(result, Refusal):
            with self._lock:
                self._settled[request.request_hash] = result
            self._record(request, batch, None, latency, error=result.message)
            return
        model = result.model or batch.model or ""
        sent = self._original(request)
        if result.cut and sent is not None:
            log.warning(cut_warning(sent.label or request.custom_id, sent.max_tokens))
        # a line without usage is counted by the one estimate, as a real-time answer is
        prompt = result.prompt_tokens if result.prompt_tokens is not None else (
            prompt_tokens(sent.messages) if sent else 0)
        completion = result.completion_tokens if result.completion_tokens is not None else text_tokens(result.text)
        price = self._price(batch.model or "") or self._price(model)
        cached = result.cached_tokens
        cost = price.cost(prompt, completion, batch=True, cached=cached) if price else 0.0
        realtime = price.cost(prompt, completion, cached=cached) if price else 0.0
        saving = price.cost(prompt, completion, batch=True) - cost if price else 0.0
        response = ChatResponse(
            text=result.text, model=model, prompt_tokens=prompt,
            completion_tokens=completion, cost_usd=cost, attempts=batch.attempt,
            latency_s=latency, finish_reason=result.finish_reason,
            extra={"batch_id": batch.batch_id, "realtime_cost_usd": realtime},
            reasoning_tokens=result.reasoning_tokens, cached_tokens=cached, cache_saving_usd=saving,
        )
        with self._lock:
            self._settled[request.request_hash] = response
            self.spent_usd += cost
            self.realtime_usd += realtime
        report.cost_usd += cost
        report.realtime_cost_usd += realtime
        self._record(request, batch, response, latency)

    def _record(
        self, request: BatchRequestRow, batch: SubmittedBatch, response: ChatResponse | None, latency: float,
        *, error: str | None = None,
    ) -> None:
        if self._ledger is None:
            return
        self._ledger.record_call(
            run_id=self._run_id, task_key=request.task_key, step=request.step, request_hash=request.request_hash,
            provider=self._provider_name, base_url=self._base_url,
            model=(response.model if response else None) or batch.model or "", messages=self._messages(request),
            response_text=response.text if response else None,
            prompt_tokens=response.prompt_tokens if response else 0,
            completion_tokens=response.completion_tokens if response else 0,
            cost_usd=response.cost_usd if response else 0.0, latency_s=latency, attempts=batch.attempt,
            status="ok" if response else "error", error=error,
            reasoning_tokens=response.reasoning_tokens if response else 0,
            cached_tokens=response.cached_tokens if response else 0,
        )

    def _messages(self, request: BatchRequestRow) -> Sequence[dict[str, str]]:
        original = self._original(request)
        return original.messages if original is not None else ()

    def _resubmit(self, again: list[tuple[BatchRequestRow, SubmittedBatch]], report: WaveReport) -> list[SubmittedBatch]:
        """Requests that never ran go out again in a new batch, or fail once the resubmits are used up."""
        if not again:
            return []
        resend: list[tuple[str, ChatRequest]] = []
        attempt = 1 + max(batch.attempt for _, batch in again)
        for request, batch in again:
            state = batch.state
            why = f"batch {batch.batch_id} {state.status if state else 'lost'}"
            if state is not None and state.errors:
                why += f": {state.errors}"
            if batch.attempt > self._config.batch_resubmits:
                with self._lock:
                    self._settled[request.request_hash] = Refusal(
                        f"{why}; sent {batch.attempt} time(s) (batch_resubmits {self._config.batch_resubmits})"
                    )
                self._record(request, batch, None, 0.0, error=why)
                continue
            original = self._original(request)
            if original is None:  # adopted from a crashed run and no longer wanted: leave it
                continue
            resend.append((request.request_hash, original))
        lines = build_lines(resend, url=self._backend.url, body=self._backend.body)
        if not lines:
            return []
        log.warning("wave %d: %d request(s) did not run; sending them again (try %d)", report.wave, len(lines), attempt)
        return self._submit(lines, report.wave, attempt=attempt)

    def _corrected(self, request: BatchRequestRow, refusal: Refusal) -> bool:
        """A line refused for a parameter its model does not take, now corrected: worth sending again."""
        original = self._original(request)
        if refusal.param is None or original is None:
            return False
        return self._backend.resend_after(original.model, refusal.param, refusal.message)

    def _original(self, request: BatchRequestRow) -> ChatRequest | None:
        """The request a line was made from (None for a line adopted from an earlier process)."""
        with self._lock:
            return self._requests.get(request.request_hash)
