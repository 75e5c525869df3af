"""The run ledger: an SQLite file (default `OUTPUT_DIR/ledger.sqlite`) that records runs,
tasks and every LLM call, and serves completed calls back as a cache.

"Nothing lost, nothing paid twice": a call that was paid for is written down with its
answer, so re-running the same sheet, or `--resume RUN_ID` after a crash or Ctrl-C,
finds it by its request hash instead of paying for it again.

Threads. Many task threads record calls at once and none of them may wait on the disk,
so every write goes through one queue to ONE writer thread that owns the only write
connection and commits in batches (up to `batch_size` items, or whatever arrived
within `batch_delay_s` of the first one). Reads (the cache lookup) use one read-only
connection per thread: in WAL mode readers never block the writer nor each other.

Durability. `flush()` returns once everything queued before it is committed; WAL with
`synchronous=NORMAL` makes a commit survive a killed process (kill -9), though an OS
crash or power cut may roll back the last commits (never corrupting the file). So a
kill -9 loses at most what was still queued: the calls of the last ~50 ms (more only
if calls came faster than the disk takes them, thousands a second, never at LLM
rates), and those are simply made, and paid, again on resume. There is deliberately
no synchronous `record_call`: a second writer would fight the writer thread for
SQLite's one write lock; `record_call(...)` then `flush()` gives the same guarantee
at once (a flush cuts the batch delay short).

Secrets. The ledger is handed messages and parameters, never a key; keys passed as
`secrets=` are still scrubbed from every text value before it is queued, and user
info is dropped from base URLs, as a last line of defence.

All SQL lives here and in `migrations.py` (the schema).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import quote

from ..errors import LedgerError
from ..logs import redact, url_without_credentials
from ..models import ENTITY_SEPARATOR, CallRecord, CallText, FigureMark, ItemResult, TaskResult, Usage
from ..providers.base import ChatResponse
from ..providers.ratelimit import LearnedLimits
from .migrations import MIGRATIONS, applied_migrations, check_schema, migrate

log = logging.getLogger("report_pipeline.ledger")

DEFAULT_LEDGER_NAME = "ledger.sqlite"
DEFAULT_BATCH_SIZE = 500
DEFAULT_BATCH_DELAY_S = 0.05
DEFAULT_BUSY_TIMEOUT_S = 10.0
# Closing, the writer waits this long at most for another process's lock, then says what it
# could not record (while the run goes on, it waits as long as the lock is held).
CLOSE_LOCK_WAIT_S = 30.0
# Read connections shared by every thread (a pool, not one per thread): a read is a
# fraction of a millisecond under the GIL, so more would only cost opening them (one per
# worker thread was 200 connects at the start of a large run).
DEFAULT_READERS = 4
CACHE_KEY_VERSION = 1  # bump if the meaning of request_hash changes, so old keys can never match

RunStatus = Literal["running", "done", "failed", "interrupted", "budget", "aborted"]
CallStatus = Literal["ok", "error"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)
RUN_TOTALS: tuple[str, ...] = (
    "tasks_total", "done", "failed", "skipped", "prompt_tokens", "completion_tokens", "cost_usd",
)


def default_ledger_path(output_dir: Path) -> Path:
    return Path(output_dir) / DEFAULT_LEDGER_NAME


# -- hashing ------------------------------------------------------------------------------


def canonical_json(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """One JSON text per value, so equal values hash equal.

    Keys sorted, no whitespace, UTF-8 kept as is; tuples become lists, sets sorted lists,
    and integral floats integers (a sheet's `1` and a config's `1.0` are the same
    temperature). Anything else is a TypeError unless `default` converts it: a cache key
    must never depend on a `repr`.
    """
    return json.dumps(
        _plain(value, default), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _plain(value: Any, default: Callable[[Any], Any] | None) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON needs string keys, not {key!r}")
            plain[key] = _plain(item, default)
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(item, default) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item, default) for item in value), key=canonical_json)
    if default is not None:
        return _plain(default(value), None)
    raise TypeError(f"cannot put a {type(value).__name__} in canonical JSON: {value!r}")


def request_hash(provider: str, base_url: str | None, params: Mapping[str, Any]) -> str:
    """The cache key of a call: sha256 of the canonical JSON of everything that decides the answer.

    That is the provider, the endpoint and every sampling parameter (`ChatRequest.sampling()`:
    model, messages, temperature, max_tokens, response_format, ...), so a cached answer is
    only ever served for exactly the same question to the same model, while dict order and
    formatting do not matter. Nothing that cannot change the answer is hashed: not the API
    key (rotating it keeps the cache, and the key never reaches the ledger), nor labels,
    timeouts or retry settings. A trailing "/" on the base URL is ignored.
    """
    key = {
        "v": CACHE_KEY_VERSION,
        "provider": provider,
        "base_url": (base_url or "").strip().rstrip("/") or None,
        "params": params,
    }
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


def sheet_hash(path: Path) -> str:
    """sha256 of the workbook's bytes: tells a re-run of the same sheet from an edited one."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a config dict (pass `RunConfig.redacted()`).

    Values JSON does not know (paths, secret types) are hashed by `str()`.
    """
    return hashlib.sha256(canonical_json(config, default=str).encode("utf-8")).hexdigest()


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """A row of `runs`. Times are unix seconds; finished_at is None while running."""

    run_id: str
    sheet_path: str | None
    sheet_hash: str | None
    config_hash: str | None
    started_at: float
    finished_at: float | None
    status: str
    tasks_total: int
    done: int
    failed: int
    skipped: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    pid: int | None
    host: str | None
    identity: str | None = None  # the effective config when the run started (JSON, no secrets)

    def recorded_config(self) -> dict[str, Any] | None:
        """The config the run was started with, or None for a run recorded before runs kept it."""
        if not self.identity:
            return None
        try:
            data = json.loads(self.identity)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class TaskRow:
    """A row of `tasks`: a task's outcome in one run (tokens and cost summed over its calls)."""

    run_id: str
    task_key: str
    objective_id: str
    task_id: str
    title: str
    status: str
    error: str
    started_at: float | None
    finished_at: float | None
    text: str
    model: str
    steps: tuple[str, ...]
    check_verdict: str
    check_notes: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int
    items: str | None = None  # a for_each task's items as JSON (see `items_json`)
    figures: str | None = None  # the figures check's marks as JSON; None: not checked (see `figures_json`)


def items_json(items: Sequence[ItemResult]) -> str | None:
    """A for_each task's items for the `tasks` row (None for any other task)."""
    if not items:
        return None
    return json.dumps([dataclasses.asdict(item) for item in items], ensure_ascii=False)


def items_from_json(text: str | None) -> tuple[ItemResult, ...]:
    """The items `items_json` wrote, as the run that finished the task had them."""
    if not text:
        return ()
    return tuple(ItemResult(**{**item, "calls": tuple(CallRecord(**call) for call in item.get("calls", ()))})
                 for item in json.loads(text))


def figures_json(figures: Sequence[FigureMark] | None) -> str | None:
    """The figures check's marks for the `tasks` row: None when the check did not run ("[]" when it
    found no figure)."""
    if figures is None:
        return None
    return json.dumps([dataclasses.asdict(mark) for mark in figures], ensure_ascii=False)


def figures_from_json(text: str | None) -> tuple[FigureMark, ...] | None:
    """The marks `figures_json` wrote; None when the row has none (not checked, or an older ledger)."""
    if text is None:
        return None
    return tuple(FigureMark(**mark) for mark in json.loads(text))


def prompt_messages(prompt: str | None) -> list[dict[str, Any]]:
    """A recorded call's prompt (its messages as JSON) as the messages; [] for a torn record."""
    try:
        messages = json.loads(prompt or "[]")
    except json.JSONDecodeError:
        return []
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def messages_text(messages: list[dict[str, Any]]) -> str:
    """The messages as a reviewer reads them: each under its role."""
    return "\n\n".join(f"[{m.get('role', '')}]\n{m.get('content', '')}" for m in messages)


#: A call as `show` and `logs` print it: every column but the request hash and the endpoint.
_CALL_VIEW_COLUMNS = ("run_id, task_key, step, model, prompt, response, prompt_tokens, completion_tokens, "
                      "reasoning_tokens, cached_tokens, cost_usd, latency_s, attempts, cached, status, error, "
                      "created_at")


@dataclass(frozen=True)
class CachedCall:
    """The latest successful call with a given request hash.

    A cache hit costs nothing: `cost_usd` is 0 and what it cost when it was made is
    `original_cost_usd`.
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    original_cost_usd: float
    call_id: int
    run_id: str
    created_at: float
    cost_usd: float = 0.0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    def to_response(self) -> ChatResponse:
        """A ChatResponse marked `extra["cached"]`, which the runner turns into a cached CallRecord."""
        return ChatResponse(
            text=self.text, model=self.model, prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens, cost_usd=0.0, attempts=0, latency_s=0.0,
            extra={"cached": True, "original_cost_usd": self.original_cost_usd, "cached_from_run": self.run_id},
            reasoning_tokens=self.reasoning_tokens, cached_tokens=self.cached_tokens,
        )


@dataclass(frozen=True)
class BatchRequestRow:
    """One request of a recorded batch: how its answer finds its way back."""

    custom_id: str
    request_hash: str
    task_key: str
    step: str


@dataclass(frozen=True)
class BatchRow:
    """A batch as recorded: uploaded (`batch_id` None yet), submitted, finished, collected."""

    local_id: str
    run_id: str
    wave: int
    attempt: int
    provider: str
    base_url: str | None
    model: str | None
    input_file_id: str
    batch_id: str | None
    status: str
    output_file_id: str | None
    error_file_id: str | None
    request_total: int
    request_completed: int
    request_failed: int
    error: str | None
    collected: bool
    created_at: float
    updated_at: float


# -- SQL ----------------------------------------------------------------------------------

_START_RUN = """
INSERT INTO runs (run_id, sheet_path, sheet_hash, config_hash, started_at, status, tasks_total, pid, host, identity)
VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET
    status = 'running', finished_at = NULL, sheet_path = excluded.sheet_path,
    sheet_hash = excluded.sheet_hash, config_hash = excluded.config_hash,
    tasks_total = excluded.tasks_total, pid = excluded.pid, host = excluded.host,
    identity = coalesce(runs.identity, excluded.identity)
"""
_FINISH_RUN = f"""
UPDATE runs SET status = ?, finished_at = ?,
    {", ".join(f"{name} = coalesce(?, {name})" for name in RUN_TOTALS)}
WHERE run_id = ?
"""
# a run that never reached finish_run: its counts and totals from what was recorded
_MARK_INTERRUPTED = """
UPDATE runs SET status = 'interrupted', finished_at = ?,
    done = (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id AND t.status = 'done'),
    failed = (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id AND t.status = 'failed'),
    skipped = (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id AND t.status = 'skipped'),
    prompt_tokens = (SELECT coalesce(sum(prompt_tokens), 0) FROM calls c WHERE c.run_id = runs.run_id),
    completion_tokens = (SELECT coalesce(sum(completion_tokens), 0) FROM calls c WHERE c.run_id = runs.run_id),
    cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM calls c WHERE c.run_id = runs.run_id)
WHERE run_id = ? AND status = 'running'
"""
_RECORD_TASK = """
INSERT OR REPLACE INTO tasks (
    run_id, task_key, objective_id, task_id, title, status, error, started_at, finished_at, text,
    model, steps, check_verdict, check_notes, prompt_tokens, completion_tokens, cost_usd, attempts, items,
    figures
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_RECORD_CALL = """
INSERT INTO calls (
    run_id, task_key, step, request_hash, provider, base_url, model, prompt, response, prompt_tokens,
    completion_tokens, cost_usd, latency_s, attempts, cached, status, error, created_at, reasoning_tokens,
    cached_tokens
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# `status = 'ok'` spelled as in the partial index's WHERE, so the index is used;
# cache hits recorded by later runs are skipped: the original row keeps the real cost
_CACHED_RESPONSE = """
SELECT id, run_id, model, response, prompt_tokens, completion_tokens, cost_usd, created_at, reasoning_tokens,
    cached_tokens
FROM calls WHERE request_hash = ? AND status = 'ok' AND cached = 0
ORDER BY id DESC LIMIT 1
"""
_RECORD_BATCH = """
INSERT INTO batches (
    local_id, run_id, wave, attempt, provider, base_url, model, input_file_id, status, request_total,
    created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'uploaded', ?, ?, ?)
"""
_RECORD_BATCH_REQUEST = """
INSERT INTO batch_requests (local_id, custom_id, request_hash, task_key, step) VALUES (?, ?, ?, ?, ?)
"""
_UPDATE_BATCH = """
UPDATE batches SET batch_id = coalesce(?, batch_id), status = ?, output_file_id = coalesce(?, output_file_id),
    error_file_id = coalesce(?, error_file_id), request_completed = ?, request_failed = ?,
    error = coalesce(?, error), updated_at = ?
WHERE local_id = ?
"""
_COLLECTED_BATCH = "UPDATE batches SET collected = 1, updated_at = ? WHERE local_id = ?"
_REMEMBER_LIMITS = """
INSERT OR REPLACE INTO endpoint_limits (
    endpoint, requests_limit, requests_window_s, tokens_limit, tokens_window_s, learned_at
) VALUES (?, ?, ?, ?, ?, ?)
"""
_REMEMBER_PARAMS = """
INSERT OR REPLACE INTO endpoint_params (endpoint, model, params, learned_at) VALUES (?, ?, ?, ?)
"""
_REMEMBER_CONCURRENCY = """
INSERT OR REPLACE INTO endpoint_concurrency (endpoint, model, in_flight_limit, learned_at) VALUES (?, ?, ?, ?)
"""
_RUN_COLUMNS = ", ".join(RunRow.__dataclass_fields__)
_TASK_COLUMNS = ", ".join(TaskRow.__dataclass_fields__)
_BATCH_COLUMNS = ", ".join(BatchRow.__dataclass_fields__)


# -- the ledger ---------------------------------------------------------------------------


class Ledger:
    """Runs, tasks and calls in one SQLite file, shared by every thread of a run.

    Writes (`start_run`, `record_call`, `record_task`, `finish_run`, `mark_interrupted`)
    are queued for the writer thread; `record_*` return at once, the run methods wait
    for their commit. Reads other than `cached_response` flush first, so they see
    everything recorded before them; `cached_response` (the hot path) reads committed
    rows only. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        path: Path,
        *,
        secrets: Iterable[str] = (),
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_delay_s: float = DEFAULT_BATCH_DELAY_S,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._secrets = _secret_variants(secrets)
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._closed = False
        self._readers: list[sqlite3.Connection] = []  # every reader opened, to close them
        self._idle_readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._readers_lock = threading.Lock()
        self._writer: _Writer | None = None
        self._finalizer: weakref.finalize[Any, Ledger] | None = None
        if read_only:
            self._read_uri = _read_only_uri(self.path)
            if _schema_behind(self.path, self._read_uri):
                raise LedgerError(
                    f"{self.path} was written by an older report-pipeline and must be upgraded before it is "
                    "read, which needs write access: the next run does it, or `report-pipeline runs` run "
                    "by a user who can write the file and its folder."
                )
            return
        connection = _open_for_writing(self.path, busy_timeout_s)
        self._writer = _Writer(connection, self.path, batch_size=batch_size, batch_delay_s=batch_delay_s)
        # a ledger dropped or left open at exit still commits what was queued
        self._finalizer = weakref.finalize(self, _close_quietly, self._writer)

    @classmethod
    def for_reading(cls, path: Path) -> Ledger:
        """A ledger to read only (`report-pipeline runs`): nothing in its folder is created,
        migrated or written, so it reads a file its reader may not write (another user's
        cron output, a read-only mount, a backup), even while a run writes to it.

        Only a ledger an older version wrote, which must be migrated before it is read,
        is opened for writing (as the next run would); if it cannot be written, the
        error says so.
        """
        path = Path(path)
        return cls(path) if _schema_behind(path, _read_only_uri(path)) else cls(path, read_only=True)

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}{', closed' if self._closed else ''})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------

    def start_run(
        self, run_id: str, sheet_path: str | Path, sheet_hash: str, config_hash: str, tasks_total: int,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a run as running (again, for --resume: its first start time and identity are kept).

        `identity` is the effective config, secrets removed: what `--resume` continues the run as.
        Waits for the commit."""
        self._submit("run", _START_RUN, (
            run_id, str(sheet_path), sheet_hash, config_hash, self._clock(), tasks_total,
            os.getpid(), socket.gethostname(),
            json.dumps(dict(identity), sort_keys=True, default=str) if identity is not None else None,
        ))
        self.flush()

    def finish_run(self, run_id: str, status: RunStatus, totals: Mapping[str, int | float]) -> None:
        """Record how a run ended; `totals` keys are among RUN_TOTALS (missing ones keep their value)."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run: status must be one of {', '.join(RUN_STATUSES[1:])}, not {status!r}")
        unknown = sorted(set(totals) - set(RUN_TOTALS))
        if unknown:
            raise ValueError(f"finish_run: unknown total(s) {', '.join(unknown)}; known: {', '.join(RUN_TOTALS)}")
        values = tuple(totals.get(name) for name in RUN_TOTALS)
        self._submit("run", _FINISH_RUN, (status, self._clock(), *values, run_id))
        self.flush()

    def mark_interrupted(self, run_id: str) -> None:
        """A run still marked running becomes interrupted, with counts from its recorded tasks and calls."""
        self._submit("run", _MARK_INTERRUPTED, (self._clock(), run_id))
        self.flush()

    # -- tasks and calls ----------------------------------------------------------------

    def record_task(self, run_id: str, result: TaskResult) -> None:
        """Queue a task's outcome (replacing an earlier one for the same run and task)."""
        self._submit("task", _RECORD_TASK, (
            run_id, result.key, result.objective_id, result.task_id, result.title, result.status,
            result.error, result.started_at or None, result.finished_at or None, result.text, result.model,
            ",".join(result.steps), result.check_verdict, result.check_notes, result.prompt_tokens,
            result.completion_tokens, result.cost_usd, result.attempts, items_json(result.items),
            figures_json(result.figures),
        ))

    def record_call(
        self,
        *,
        run_id: str,
        task_key: str,
        step: str,
        request_hash: str,
        provider: str,
        base_url: str | None,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        response_text: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_s: float,
        attempts: int,
        status: CallStatus,
        error: str | None = None,
        cached: bool = False,
        reasoning_tokens: int = 0,
        cached_tokens: int = 0,
    ) -> None:
        """Queue one call (made, failed, or served from the cache with `cached=True`); returns at once.

        `reasoning_tokens` are of `completion_tokens`, `cached_tokens` of `prompt_tokens` (the
        endpoint's own prompt cache, not ours)."""
        if status not in CALL_STATUSES:
            raise ValueError(f"record_call: status must be 'ok' or 'error', not {status!r}")
        prompt = json.dumps([dict(m) for m in messages], ensure_ascii=False)
        self._submit("call", _RECORD_CALL, (
            run_id, task_key, step, request_hash, provider, url_without_credentials(base_url), model, prompt,
            response_text, prompt_tokens, completion_tokens, cost_usd, latency_s, attempts, int(cached),
            status, error, self._clock(), reasoning_tokens, cached_tokens,
        ))

    # -- reads --------------------------------------------------------------------------

    def cached_response(self, request_hash: str) -> CachedCall | None:
        """The latest successful, actually paid call with this hash, or None. Sees committed rows only."""
        rows = self._select(_CACHED_RESPONSE, (request_hash,))
        if not rows:
            return None
        row = rows[0]
        return CachedCall(
            text=row["response"] or "", model=row["model"] or "", prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"], original_cost_usd=row["cost_usd"],
            call_id=row["id"], run_id=row["run_id"], created_at=row["created_at"],
            reasoning_tokens=row["reasoning_tokens"], cached_tokens=row["cached_tokens"],
        )

    def has_answers(self) -> bool:
        """True once any paid answer is recorded: a ledger without one has nothing its cache could serve."""
        self.flush()
        return bool(self._select("SELECT 1 AS found FROM calls WHERE status = 'ok' AND cached = 0 LIMIT 1", ()))

    def run(self, run_id: str) -> RunRow | None:
        self.flush()
        rows = self._select(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return RunRow(**rows[0]) if rows else None

    def paid_usd(self, run_id: str) -> float:
        """What a run's own calls cost (answers from the cache cost nothing): a resumed run's budget starts there."""
        self.flush()
        rows = self._select("SELECT COALESCE(SUM(cost_usd), 0) AS paid FROM calls WHERE run_id = ? AND cached = 0",
                            (run_id,))
        return float(rows[0]["paid"]) if rows else 0.0

    def recent_runs(self, limit: int = 20) -> list[RunRow]:
        """Newest first."""
        self.flush()
        rows = self._select(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?", (limit,)
        )
        return [RunRow(**row) for row in rows]

    def task_rows(self, run_id: str) -> list[TaskRow]:
        """A run's tasks in the order they started."""
        self.flush()
        rows = self._select(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY started_at, task_key", (run_id,)
        )
        return [_task_row(row) for row in rows]

    def completed_tasks(self, run_id: str) -> dict[str, TaskRow]:
        """Task key -> row of every task done in that run: what --resume need not run again."""
        return {row.task_key: row for row in self.task_rows(run_id) if row.status == "done"}

    # -- batches (batch mode) -----------------------------------------------------------

    def record_batch_upload(
        self,
        *,
        local_id: str,
        run_id: str,
        wave: int,
        attempt: int,
        provider: str,
        base_url: str | None,
        model: str | None,
        input_file_id: str,
        requests: Sequence[BatchRequestRow],
    ) -> None:
        """An input file is on the server: record it and its requests, and wait for the commit.

        Written before the batch is created, so a crash in between still knows which
        file carries which requests (and finds the batch by its input file).
        """
        now = self._clock()
        self._submit("batch", _RECORD_BATCH, (
            local_id, run_id, wave, attempt, provider, url_without_credentials(base_url), model, input_file_id,
            len(requests), now, now,
        ))
        for request in requests:
            self._submit("batch", _RECORD_BATCH_REQUEST, (
                local_id, request.custom_id, request.request_hash, request.task_key, request.step,
            ))
        self.flush()

    def update_batch(
        self,
        local_id: str,
        *,
        status: str,
        batch_id: str | None = None,
        completed: int = 0,
        failed: int = 0,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """A batch's latest state from the server (the id the first time); waits for the commit."""
        self._submit("batch", _UPDATE_BATCH, (
            batch_id, status, output_file_id, error_file_id, completed, failed, error, self._clock(), local_id,
        ))
        self.flush()

    def mark_batch_collected(self, local_id: str) -> None:
        """Its answers are recorded as calls: it is never polled or adopted again."""
        self._submit("batch", _COLLECTED_BATCH, (self._clock(), local_id))
        self.flush()

    def open_batches(self) -> list[BatchRow]:
        """Batches whose answers were never collected (a crash, Ctrl-C, max_wait), oldest first."""
        self.flush()
        rows = self._select(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE collected = 0 ORDER BY created_at, local_id", ()
        )
        return [_batch_row(row) for row in rows]

    def run_batches(self, run_id: str) -> list[BatchRow]:
        """Every batch a run submitted, oldest first (run.json, `runs --show`)."""
        self.flush()
        rows = self._select(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE run_id = ? ORDER BY created_at, local_id", (run_id,)
        )
        return [_batch_row(row) for row in rows]

    def batch_requests(self, local_id: str) -> list[BatchRequestRow]:
        rows = self._select(
            "SELECT custom_id, request_hash, task_key, step FROM batch_requests WHERE local_id = ?", (local_id,)
        )
        return [BatchRequestRow(**row) for row in rows]

    # -- endpoints' rate limits -----------------------------------------------------------

    def remember_limits(self, provider: str, base_url: str | None, limits: LearnedLimits) -> None:
        """What this run's answers said of the endpoint's limits (replacing the last run's)."""
        self._submit("limits", _REMEMBER_LIMITS, (
            _endpoint(provider, base_url), limits.requests_limit, limits.requests_window_s,
            limits.tokens_limit, limits.tokens_window_s, self._clock(),
        ))
        self.flush()

    def remember_params(self, provider: str, base_url: str | None, params: Mapping[str, Mapping[str, Any]]) -> None:
        """What each model at the endpoint takes, as this run learned it (model -> a dialect's fields)."""
        endpoint, now = _endpoint(provider, base_url), self._clock()
        for model, fields in params.items():
            self._submit("params", _REMEMBER_PARAMS, (endpoint, model, json.dumps(dict(fields), sort_keys=True), now))
        self.flush()

    def recall_params(self, provider: str, base_url: str | None, *, max_age_s: float) -> dict[str, dict[str, Any]]:
        """model -> what it takes, as earlier runs learned it within `max_age_s`."""
        rows = self._select(
            "SELECT model, params, learned_at FROM endpoint_params WHERE endpoint = ?", (_endpoint(provider, base_url),)
        )
        recalled: dict[str, dict[str, Any]] = {}
        for row in rows:
            if self._clock() - row["learned_at"] > max_age_s:
                continue
            try:
                fields = json.loads(row["params"])
            except ValueError:
                continue
            if isinstance(fields, dict):
                recalled[row["model"]] = fields
        return recalled

    def remember_concurrency(self, provider: str, base_url: str | None, limits: Mapping[str, int]) -> None:
        """Each model's in-flight limit at the end of this run (the adaptive concurrency)."""
        endpoint, now = _endpoint(provider, base_url), self._clock()
        for model, limit in limits.items():
            self._submit("concurrency", _REMEMBER_CONCURRENCY, (endpoint, model, int(limit), now))
        self.flush()

    def recall_concurrency(self, provider: str, base_url: str | None, *, max_age_s: float) -> dict[str, int]:
        """model -> the in-flight limit an earlier run ended at, within `max_age_s`."""
        rows = self._select(
            "SELECT model, in_flight_limit, learned_at FROM endpoint_concurrency WHERE endpoint = ?",
            (_endpoint(provider, base_url),),
        )
        return {row["model"]: row["in_flight_limit"] for row in rows if self._clock() - row["learned_at"] <= max_age_s}

    def call_rows(self, run_id: str, task_key: str | None = None) -> list[dict[str, Any]]:
        """A run's calls (one task's, when given) in the order made, every column but the hash:
        what `report-pipeline show` prints."""
        return self._call_view(run_id=run_id, task_key=task_key)

    def search_calls(self, *, run_id: str | None = None, task_key: str | None = None, text: str | None = None,
                     limit: int = 20) -> list[dict[str, Any]]:
        """Calls across runs, newest first: of one run, of one task, or whose prompt or answer holds
        `text` (case-insensitive, as written: `%` and `_` are not wildcards)."""
        return self._call_view(run_id=run_id, task_key=task_key, text=text, newest_first=True, limit=limit)

    def call_texts(self, run_id: str, *, entity: str | None = None) -> dict[str, list[CallText]]:
        """Every answered call of a run (of one family entity's tasks, `ENTITY~OBJ.TASK`) by task key,
        in the order made: the rendered prompt and the answer of each step, for the report's
        provenance panels."""
        texts: dict[str, list[CallText]] = {}
        prefix = f"{entity}{ENTITY_SEPARATOR}" if entity is not None else None
        for row in self._call_view(run_id=run_id, task_prefix=prefix):
            if row["status"] == "ok":
                texts.setdefault(row["task_key"], []).append(CallText(
                    row["step"], row["model"] or "", messages_text(prompt_messages(row["prompt"])),
                    row["response"] or "", bool(row["cached"])))
        return texts

    def _call_view(self, *, run_id: str | None = None, task_key: str | None = None, text: str | None = None,
                   task_prefix: str | None = None, newest_first: bool = False,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """The calls that match, as dicts of `_CALL_VIEW_COLUMNS`."""
        self.flush()
        where, params = ["1 = 1"], []
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        if task_key:
            where.append("task_key = ?")
            params.append(task_key)
        if task_prefix:  # a range, so the (run_id, task_key) index serves it
            where.append("task_key >= ? AND task_key < ?")
            params += [task_prefix, task_prefix[:-1] + chr(ord(task_prefix[-1]) + 1)]
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(prompt LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        sql = f"SELECT {_CALL_VIEW_COLUMNS} FROM calls WHERE {' AND '.join(where)} ORDER BY id"
        if newest_first:
            sql += " DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [dict(row) for row in self._select(sql, tuple(params))]

    def chapter_usage(self, run_id: str) -> dict[str, Usage]:
        """Objective id -> what its tasks' answered calls in this run used (cache hits count as calls, at
        no cost): `runs --show` prints a line per chapter from it."""
        self.flush()
        rows = self._select(
            "SELECT t.objective_id AS objective_id, count(*) AS calls, coalesce(sum(c.cached), 0) AS cached_calls,"
            " coalesce(sum(c.prompt_tokens), 0) AS prompt_tokens, coalesce(sum(c.completion_tokens), 0) AS completion_tokens,"
            " coalesce(sum(c.reasoning_tokens), 0) AS reasoning_tokens, coalesce(sum(c.cached_tokens), 0) AS cached_tokens,"
            " coalesce(sum(c.cost_usd), 0) AS cost_usd"
            " FROM calls c JOIN tasks t ON t.run_id = c.run_id AND t.task_key = c.task_key"
            " WHERE c.run_id = ? AND c.status = 'ok' GROUP BY t.objective_id",
            (run_id,),
        )
        return {row["objective_id"]: Usage(**{k: row[k] for k in row.keys() if k != "objective_id"}) for row in rows}

    def call_seconds(
        self, provider: str, base_url: str | None, *, max_age_s: float, limit: int = 5_000
    ) -> tuple[dict[str, float], dict[str, float]]:
        """What calls to this endpoint took lately (answered, not from the cache, within `max_age_s`):
        task key -> the seconds of its calls in the latest run that made them, and model -> its mean
        seconds a call. A run ranks its ready tasks by them (run/plan.own_seconds)."""
        self.flush()
        rows = self._select(
            "SELECT run_id, task_key, model, latency_s FROM calls WHERE provider = ? AND base_url IS ?"
            " AND status = 'ok' AND cached = 0 AND latency_s > 0 AND created_at >= ? ORDER BY id DESC LIMIT ?",
            (provider, url_without_credentials(base_url), self._clock() - max_age_s, limit),
        )
        latest_run: dict[str, str] = {}
        task_s: dict[str, float] = {}
        model_sums: dict[str, list[float]] = {}
        for row in rows:
            key = row["task_key"]
            if latest_run.setdefault(key, row["run_id"]) == row["run_id"]:
                task_s[key] = task_s.get(key, 0.0) + row["latency_s"]
            totals = model_sums.setdefault(row["model"] or "", [0.0, 0.0])
            totals[0] += row["latency_s"]
            totals[1] += 1
        return task_s, {model: total / count for model, (total, count) in model_sums.items()}

    def recall_limits(
        self, provider: str, base_url: str | None, *, max_age_s: float
    ) -> tuple[LearnedLimits, float] | None:
        """The endpoint's limits as a previous run learned them, and when; None if unknown or older."""
        rows = self._select(
            "SELECT requests_limit, requests_window_s, tokens_limit, tokens_window_s, learned_at"
            " FROM endpoint_limits WHERE endpoint = ?",
            (_endpoint(provider, base_url),),
        )
        if not rows or self._clock() - rows[0]["learned_at"] > max_age_s:
            return None
        row = rows[0]
        limits = LearnedLimits(
            row["requests_limit"], row["requests_window_s"], row["tokens_limit"], row["tokens_window_s"]
        )
        return limits, row["learned_at"]

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> None:
        """Block until everything queued so far is committed (durable against a killed process).

        `record_call(...)` then `flush()` is the synchronous record, for a caller that must
        know a call is on disk before it goes on.

        Raises LedgerError if any queued record could not be written since the last flush
        (the others were written; the failures were also logged as they happened).
        """
        if self._writer is not None:  # read-only: nothing is ever queued
            self._writer.flush()

    def close(self) -> None:
        """Flush, stop the writer and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            with self._readers_lock:
                readers, self._readers = self._readers, []
            for connection in readers:
                connection.close()

    # -- private steps ------------------------------------------------------------------

    def _submit(self, what: str, sql: str, params: tuple[Any, ...]) -> None:
        if self._writer is None:
            raise RuntimeError(f"{self!r} was opened read-only (Ledger.for_reading): it records nothing")
        if self._secrets:
            params = tuple(redact(p, self._secrets) if isinstance(p, str) else p for p in params)
        self._writer.submit(_Write(sql, params, what))

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        connection = self._take_reader()
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise LedgerError(f"{self.path}: cannot read the ledger: {error}") from error
        finally:
            self._idle_readers.put(connection)

    def _take_reader(self) -> sqlite3.Connection:
        """An idle read-only connection; a new one while fewer than DEFAULT_READERS exist; else wait."""
        if self._closed:
            raise RuntimeError(f"{self!r}: cannot read after close()")
        try:
            return self._idle_readers.get_nowait()
        except queue.Empty:
            pass
        with self._readers_lock:
            if len(self._readers) >= DEFAULT_READERS:
                connection = None
            else:
                if self._writer is None:
                    connection = _connect(self._read_uri, self._busy_timeout_s, uri=True)
                else:
                    connection = _connect(self.path, self._busy_timeout_s)
                connection.execute("PRAGMA query_only = ON")
                connection.row_factory = sqlite3.Row
                self._readers.append(connection)
        return connection if connection is not None else self._idle_readers.get()


def _batch_row(row: sqlite3.Row) -> BatchRow:
    values = dict(row)
    values["collected"] = bool(values["collected"])
    return BatchRow(**values)


def _task_row(row: sqlite3.Row) -> TaskRow:
    values = dict(row)
    for name in ("title", "error", "text", "model", "check_verdict", "check_notes"):
        values[name] = values[name] or ""
    values["steps"] = tuple(s for s in (values["steps"] or "").split(",") if s)
    return TaskRow(**values)


# -- the writer thread --------------------------------------------------------------------


class _Write(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    what: str  # "call", "task", "run": for messages


class _Barrier:
    """Queued by flush() and close(): set once everything queued before it is committed."""

    def __init__(self, *, stop: bool = False) -> None:
        self.stop = stop
        self.done = threading.Event()


class _Writer:
    """Owns the one write connection; applies queued writes in batched transactions.

    Holds no reference to the Ledger, so a forgotten ledger can still be flushed at exit.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, *, batch_size: int, batch_delay_s: float) -> None:
        self._connection = connection
        self._path = path
        self._batch_size = batch_size
        self._batch_delay_s = batch_delay_s
        self._queue: queue.SimpleQueue[_Write | _Barrier] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders submit() against close(): nothing is queued after the stop
        self._closed = False
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def submit(self, write: _Write) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the ledger {self._path} is closed")
            self._queue.put(write)

    def flush(self) -> None:
        barrier = _Barrier()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the ledger {self._path} is closed")
            self._queue.put(barrier)
        self._wait(barrier)
        self._raise_errors()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            barrier = _Barrier(stop=True)
            self._queue.put(barrier)
        self._wait(barrier)
        self._thread.join()
        self._raise_errors()

    def _wait(self, barrier: _Barrier) -> None:
        # a dead writer would never set the event: check it is alive while waiting
        while not barrier.done.wait(0.5):
            if not self._thread.is_alive():
                raise LedgerError(f"the ledger writer for {self._path} stopped; recent calls may not be recorded")

    def _raise_errors(self) -> None:
        with self._errors_lock:
            errors, self._errors = self._errors, []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise LedgerError(f"{self._path}: {len(errors)} record(s) could not be written: {errors[0]}{more}")

    # -- on the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            writes, barriers = self._next_batch()
            stopping = any(b.stop for b in barriers)
            try:
                if writes:
                    self._commit(writes, closing=stopping)
                if stopping:
                    self._close_connection()
            except Exception as error:  # never let the thread die with waiters behind it
                self._failed(f"{len(writes)} write(s)", error)
            for barrier in barriers:
                barrier.done.set()

    def _next_batch(self) -> tuple[list[_Write], list[_Barrier]]:
        """Block for the first item, then gather until the batch is full or the delay is up.

        A barrier (a flush) ends the wait, but not the batch: whatever else is already
        queued (other threads' writes and flushes) joins the same commit. With 200
        threads each recording a call and flushing, that is one commit for many calls
        instead of one commit per call (group commit).
        """
        writes: list[_Write] = []
        barriers: list[_Barrier] = []
        item = self._queue.get()
        deadline = time.monotonic() + self._batch_delay_s
        while True:
            if isinstance(item, _Barrier):
                barriers.append(item)
                if item.stop:
                    return writes, barriers
            else:
                writes.append(item)
            if len(writes) >= self._batch_size:
                return writes, barriers
            try:
                if barriers:  # someone waits: take only what is already queued
                    item = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return writes, barriers
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return writes, barriers

    def _commit(self, writes: list[_Write], *, closing: bool = False) -> None:
        """One transaction for the batch; if it fails, each write alone, so one bad row loses only itself."""
        try:
            self._apply_when_free(writes, closing=closing)
        except sqlite3.Error as error:
            if _locked(error):  # still locked after CLOSE_LOCK_WAIT_S at close
                calls = sum(w.what == "call" for w in writes)
                self._failed(
                    f"{len(writes)} record(s), {calls} of them paid calls (another process held the file "
                    f"for over {CLOSE_LOCK_WAIT_S:g} s as the run closed; a rerun pays for those calls again)",
                    error,
                )
                return
            if len(writes) == 1:
                self._failed(f"a {writes[0].what}", error)
                return
            log.warning("ledger %s: a batch of %d failed (%s); writing them one by one", self._path, len(writes), error)
            for write in writes:
                self._commit([write], closing=closing)

    def _apply_when_free(self, writes: list[_Write], *, closing: bool) -> None:
        """`_apply`, waiting out another process's lock on the file (a sqlite3 shell, a backup).

        Each attempt already waits the busy timeout; past it, a paid answer is still worth
        waiting for rather than dropping, so the writer tries again for as long as the run
        goes on (the threads that flush wait too: the run pauses, and says why), and for
        `CLOSE_LOCK_WAIT_S` more when it is closing. Then the lock error is raised.
        """
        started = time.monotonic()
        while True:
            try:
                self._apply(writes)
                return
            except sqlite3.OperationalError as error:
                waited = time.monotonic() - started
                if not _locked(error) or (closing and waited >= CLOSE_LOCK_WAIT_S):
                    raise
                log.warning(
                    "ledger %s is locked by another process (%.0f s so far): holding %d record(s) until it is "
                    "free; close the program that holds it (a sqlite3 shell, a backup) to let the run go on",
                    self._path, waited, len(writes),
                )
                time.sleep(0.05)  # the busy timeout did the waiting; this only keeps a zero timeout from spinning

    def _apply(self, writes: list[_Write]) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, group in groupby(writes, key=attrgetter("sql")):
                connection.executemany(sql, [write.params for write in group])
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _failed(self, what: str, error: BaseException) -> None:
        message = f"{what}: {error}"
        log.error("ledger %s: could not record %s", self._path, message)
        with self._errors_lock:
            self._errors.append(message)

    def _close_connection(self) -> None:
        try:
            self._connection.execute("PRAGMA optimize")  # cheap; keeps the planner's statistics fresh
        except sqlite3.Error as error:
            log.debug("ledger %s: PRAGMA optimize skipped: %s", self._path, error)
        self._connection.close()


def _close_quietly(writer: _Writer) -> None:
    try:
        writer.close()
    except Exception:  # at interpreter exit there is nobody left to raise to
        log.exception("ledger: closing at exit failed")


# -- opening ------------------------------------------------------------------------------


def _locked(error: sqlite3.Error) -> bool:
    """Another connection holds the lock past the busy timeout (SQLITE_BUSY / SQLITE_LOCKED)."""
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower()


def _connect(path: Path | str, busy_timeout_s: float, *, uri: bool = False) -> sqlite3.Connection:
    """Autocommit mode (we issue BEGIN/COMMIT ourselves); usable from the thread it is handed to."""
    connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False,
                                 uri=uri)
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return connection


def _read_only_uri(path: Path) -> str:
    """The URI that reads `path` without writing anything beside it.

    With no `-wal` file beside it, no run is writing it and every commit is in the
    file itself: it is read as it stands (`immutable=1`: no lock, no `-shm` or `-wal`
    created). With one, a run is under way (or was killed): `mode=ro` reads the
    commits still in the WAL, through the `-shm` index. Where that cannot be opened
    (a folder the reader may not write), the file is read as it stands, which shows
    the runs up to the last checkpoint.
    """
    base = f"file:{quote(str(path.resolve()))}"
    uris = [f"{base}?immutable=1"]
    if path.with_name(path.name + "-wal").exists():
        uris.insert(0, f"{base}?mode=ro")
    last: sqlite3.Error | None = None
    for uri in uris:
        try:
            connection = _connect(uri, DEFAULT_BUSY_TIMEOUT_S, uri=True)
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
            return uri
        except sqlite3.Error as error:
            last = error
    assert last is not None
    raise _open_error(path, last) from last


def _schema_behind(path: Path, uri: str) -> bool:
    """True if the ledger at `uri` lacks migrations this version has (a blank file too);
    LedgerError if it is not ours or is newer. Reads only."""
    connection = _connect(uri, DEFAULT_BUSY_TIMEOUT_S, uri=True)
    try:
        check_schema(connection)
        done = set(applied_migrations(connection))
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    finally:
        connection.close()
    return any(fn.__name__ not in done for fn in MIGRATIONS)


def _open_for_writing(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """The writer's connection: the file checked as ours *before* anything is changed, then WAL, then migrated."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LedgerError(f"cannot create the folder for the ledger {path}: {error}") from error
    connection: sqlite3.Connection | None = None
    try:
        connection = _connect(path, busy_timeout_s)
        check_schema(connection)  # reads only: a foreign file is left as it was
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning(
                "ledger %s: WAL mode unavailable here (journal_mode %s); readers may wait on writes", path, mode
            )
        connection.execute("PRAGMA synchronous = NORMAL")
        applied = migrate(connection)
        if applied:
            log.info("ledger %s: applied migration(s) %s", path, ", ".join(applied))
        return connection
    except LedgerError:
        if connection is not None:
            connection.close()
        raise
    except sqlite3.Error as error:
        if connection is not None:
            connection.close()
        raise _open_error(path, error) from error


def _open_error(path: Path, error: sqlite3.Error) -> LedgerError:
    code = getattr(error, "sqlite_errorname", "")
    text = str(error)
    if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
        return LedgerError(
            f"{path} is not a usable report-pipeline ledger: the file is not an SQLite database or is "
            f"damaged ({text}). Move it aside (e.g. rename it to {path.name}.bad) or use --output "
            "with another folder; a new ledger is created on the next run."
        )
    return LedgerError(
        f"cannot open the ledger {path}: {text}. Check the file and its folder, or use --output elsewhere."
    )


# -- secrets ------------------------------------------------------------------------------


def _secret_variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as written and as it appears inside JSON (the prompt column), longest first."""
    variants: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= 4:  # as logs.SecretFilter: shorter would redact ordinary text
            variants.add(secret)
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return sorted(variants, key=len, reverse=True)


def _endpoint(provider: str, base_url: str | None) -> str:
    """`openai http://localhost:8000/v1`: whose rate limits a row holds (no credentials)."""
    return f"{provider} {url_without_credentials(base_url) or 'default'}"
