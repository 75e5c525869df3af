"""The ledger: schema migrations, the cache key, the writer thread, and files it must refuse.

Real SQLite files in tmp_path throughout; a killed subprocess checks durability.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from report_pipeline.errors import LedgerError
from report_pipeline.ledger import migrations
from report_pipeline.ledger.migrations import APPLICATION_ID, MIGRATIONS, migrate
from report_pipeline.ledger.store import (
    DEFAULT_READERS,
    CachedCall,
    Ledger,
    config_hash,
    figures_from_json,
    items_from_json,
    request_hash,
    sheet_hash,
)
from report_pipeline.models import CallRecord, FigureMark, ItemResult, TaskResult
from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.ratelimit import LearnedLimits

EXPECTED_RUNS = {
    "run_id": "TEXT",
    "sheet_path": "TEXT",
    "sheet_hash": "TEXT",
    "config_hash": "TEXT",
    "started_at": "REAL",
    "finished_at": "REAL",
    "status": "TEXT",
    "tasks_total": "INTEGER",
    "done": "INTEGER",
    "failed": "INTEGER",
    "skipped": "INTEGER",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "cost_usd": "REAL",
    "pid": "INTEGER",
    "host": "TEXT",
    "identity": "TEXT",
}
EXPECTED_TASKS = {
    "run_id": "TEXT",
    "task_key": "TEXT",
    "objective_id": "TEXT",
    "task_id": "TEXT",
    "title": "TEXT",
    "status": "TEXT",
    "error": "TEXT",
    "started_at": "REAL",
    "finished_at": "REAL",
    "text": "TEXT",
    "model": "TEXT",
    "steps": "TEXT",
    "check_verdict": "TEXT",
    "check_notes": "TEXT",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "cost_usd": "REAL",
    "attempts": "INTEGER",
    "items": "TEXT",
    "figures": "TEXT",
}
EXPECTED_CALLS = {
    "id": "INTEGER",
    "run_id": "TEXT",
    "task_key": "TEXT",
    "step": "TEXT",
    "request_hash": "TEXT",
    "provider": "TEXT",
    "base_url": "TEXT",
    "model": "TEXT",
    "prompt": "TEXT",
    "response": "TEXT",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "cost_usd": "REAL",
    "latency_s": "REAL",
    "attempts": "INTEGER",
    "cached": "INTEGER",
    "status": "TEXT",
    "error": "TEXT",
    "created_at": "REAL",
    "reasoning_tokens": "INTEGER",
    "cached_tokens": "INTEGER",
}

DbFactory = Callable[[Path], sqlite3.Connection]

MESSAGES = ({"role": "system", "content": "You write reports."}, {"role": "user", "content": "Summarise Q3."})
PARAMS: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [dict(m) for m in MESSAGES],
    "temperature": 0.2,
    "max_tokens": 800,
}


# --- builders ---------------------------------------------------------------------------


def ticking_clock(start: float = 1_714_564_800.0) -> Callable[[], float]:
    """Each reading one second later than the last: orderings without sleeping."""
    counter = itertools.count()
    return lambda: start + next(counter)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "out" / "ledger.sqlite"


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    with Ledger(ledger_path, clock=ticking_clock()) as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection of our own, as another tool (or a later process) would open the file."""
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def db_factory() -> Iterator[DbFactory]:
    """`raw` connections closed at the end of the test."""
    opened: list[sqlite3.Connection] = []

    def open_db(path: Path) -> sqlite3.Connection:
        opened.append(raw(path))
        return opened[-1]

    yield open_db
    for connection in opened:
        connection.close()


def columns(db: sqlite3.Connection, table: str) -> dict[str, str]:
    return {row[1]: row[2] for row in db.execute(f"PRAGMA table_info({table})")}


def record(ledger: Ledger, **overrides: Any) -> None:
    call: dict[str, Any] = {
        "run_id": "run-1",
        "task_key": "O1.T1",
        "step": "generate",
        "request_hash": request_hash("openai", None, PARAMS),
        "provider": "openai",
        "base_url": None,
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "response_text": "Q3 was good.",
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "cost_usd": 0.0025,
        "latency_s": 1.5,
        "attempts": 1,
        "status": "ok",
    }
    call.update(overrides)
    ledger.record_call(**call)


def task_result(task_id: str = "T1", *, status: str = "done", text: str = "Done text.", **kwargs: Any) -> TaskResult:
    return TaskResult(
        objective_id="O1",
        task_id=task_id,
        title=f"Task {task_id}",
        status=status,  # type: ignore[arg-type]
        text=text,
        model="gpt-4o-mini",
        steps=("generate", "check"),
        calls=(
            CallRecord("generate", "gpt-4o-mini", prompt_tokens=100, completion_tokens=50, cost_usd=0.002),
            CallRecord("check", "gpt-4o-mini", prompt_tokens=80, completion_tokens=10, cost_usd=0.001, attempts=2),
        ),
        started_at=1_714_564_800.0,
        finished_at=1_714_564_803.0,
        **kwargs,
    )


# --- migrations -------------------------------------------------------------------------


def test_migrate_blank_creates_the_expected_tables_and_columns(tmp_path: Path, db_factory: DbFactory) -> None:
    db = db_factory(tmp_path / "blank.sqlite")
    applied = migrate(db)
    assert applied == [fn.__name__ for fn in MIGRATIONS]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"_migrations", "runs", "tasks", "calls", "batches", "batch_requests", "endpoint_limits",
                      "endpoint_params", "endpoint_concurrency"}
    assert columns(db, "runs") == EXPECTED_RUNS
    assert columns(db, "tasks") == EXPECTED_TASKS
    assert columns(db, "calls") == EXPECTED_CALLS
    assert [row[5] for row in db.execute("PRAGMA table_info(tasks)") if row[5]] == [1, 2]  # PK(run_id, task_key)
    index_sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'calls_ok_by_request_hash'").fetchone()[0]
    assert "(request_hash) WHERE status = 'ok'" in index_sql
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_migrate_twice_is_a_noop(tmp_path: Path, db_factory: DbFactory) -> None:
    db = db_factory(tmp_path / "ledger.sqlite")
    migrate(db)
    schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    records = db.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
    assert migrate(db) == []
    assert db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert db.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall() == records


def test_a_ledger_for_reading_reads_a_live_run_and_refuses_to_record(ledger: Ledger, ledger_path: Path) -> None:
    ledger.start_run("run-1", "q3.xlsx", "s", "c", 4)  # the writer's connection stays open: a run under way
    with Ledger.for_reading(ledger_path) as reader:
        (row,) = reader.recent_runs()
        assert (row.run_id, row.status) == ("run-1", "running")
        with pytest.raises(RuntimeError, match="read-only"):
            reader.finish_run("run-1", "done", {})
        reader.flush()  # nothing queued: a no-op, not an error
    (row,) = ledger.recent_runs()
    assert row.status == "running"


def test_a_ledger_for_reading_at_an_older_schema_is_migrated_as_a_run_would(
    ledger_path: Path, db_factory: DbFactory
) -> None:
    ledger_path.parent.mkdir(parents=True)
    db = db_factory(ledger_path)
    migrate(db, stop_before="m003_batches")
    db.close()
    with pytest.raises(LedgerError, match="older report-pipeline"):  # read-only cannot upgrade it
        Ledger(ledger_path, read_only=True)
    with Ledger.for_reading(ledger_path) as reader:
        assert reader.recent_runs() == [] and reader.run_batches("none") == []
    assert "m003_batches" in [row[0] for row in db_factory(ledger_path).execute("SELECT name FROM _migrations")]


def test_a_ledger_for_reading_names_a_file_that_is_not_one(ledger_path: Path) -> None:
    ledger_path.parent.mkdir(parents=True)
    ledger_path.write_bytes(b"not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable report-pipeline ledger"):
        Ledger.for_reading(ledger_path)
    assert ledger_path.read_bytes() == b"not a database" * 100


def test_a_ledger_at_m001_is_upgraded_on_open_and_keeps_its_rows(
    ledger_path: Path, db_factory: DbFactory
) -> None:
    ledger_path.parent.mkdir(parents=True)
    db = db_factory(ledger_path)
    assert migrate(db, stop_before="m002_call_indexes") == ["m001_initial"]
    key = request_hash("openai", None, PARAMS)
    db.execute(
        "INSERT INTO calls (run_id, task_key, step, request_hash, provider, model, response, prompt_tokens,"
        " completion_tokens, cost_usd, status, created_at)"
        " VALUES ('old-run', 'O1.T1', 'generate', ?, 'openai', 'gpt-4o-mini', 'From the old schema.',"
        " 10, 5, 0.01, 'ok', 1.0)",
        (key,),
    )
    db.close()

    with Ledger(ledger_path) as ledger:
        hit = ledger.cached_response(key)
    assert hit is not None and hit.text == "From the old schema." and hit.run_id == "old-run"
    db = db_factory(ledger_path)
    assert [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")] == [
        fn.__name__ for fn in MIGRATIONS
    ]
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"calls_ok_by_request_hash", "calls_by_run_task"} <= indexes


def test_a_failing_migration_leaves_neither_its_change_nor_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_factory: DbFactory
) -> None:
    def m099_half_done(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, m099_half_done])
    db = db_factory(tmp_path / "ledger.sqlite")
    with pytest.raises(RuntimeError, match="disk on fire"):
        migrate(db)
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone()
    assert not db.execute("SELECT 1 FROM _migrations WHERE name = 'm099_half_done'").fetchone()
    assert db.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)  # the earlier ones stay


def test_ledger_opens_in_wal_mode_and_the_cache_lookup_uses_its_index(
    ledger: Ledger, ledger_path: Path, db_factory: DbFactory
) -> None:
    db = db_factory(ledger_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM calls WHERE request_hash = 'x' AND status = 'ok' AND cached = 0"
        " ORDER BY id DESC LIMIT 1"
    ).fetchall()
    assert any("calls_ok_by_request_hash" in row[-1] for row in plan)


# --- files the ledger refuses -----------------------------------------------------------


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database, just bytes\n" * 200)


def _foreign(path: Path) -> None:
    db = raw(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    db.close()


def _foreign_application(path: Path) -> None:
    db = raw(path)
    db.execute("PRAGMA application_id = 1234")
    db.close()


def _newer(path: Path) -> None:
    Ledger(path).close()
    db = raw(path)
    db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', 2.0)")
    db.close()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_corrupt, "not an SQLite database or is damaged"),
        (_foreign, "another application (tables: customers)"),
        (_foreign_application, "another application (application_id"),
        (_newer, "newer version of report-pipeline: its schema has migration(s) m999_from_the_future"),
    ],
    ids=["random-bytes", "foreign-tables", "foreign-application-id", "newer-schema"],
)
def test_an_unusable_file_is_refused_with_a_message_naming_it(
    ledger_path: Path, make: Callable[[Path], None], says: str
) -> None:
    ledger_path.parent.mkdir(parents=True)
    make(ledger_path)
    before = ledger_path.read_bytes()
    with pytest.raises(LedgerError) as raised:
        Ledger(ledger_path)
    message = str(raised.value)
    assert str(ledger_path) in message
    assert says in message
    assert "--output" in message
    assert ledger_path.read_bytes() == before  # left exactly as it was


# --- the cache key ----------------------------------------------------------------------


def test_request_hash_is_a_sha256_that_ignores_key_order() -> None:
    shuffled = {
        "max_tokens": 800,
        "temperature": 0.2,
        "messages": [{"content": m["content"], "role": m["role"]} for m in MESSAGES],
        "model": "gpt-4o-mini",
    }
    key = request_hash("openai", "https://api.example.com/v1", PARAMS)
    assert len(key) == 64 and int(key, 16) >= 0
    assert request_hash("openai", "https://api.example.com/v1", shuffled) == key


@pytest.mark.parametrize(
    ("provider", "base_url", "changes"),
    [
        ("azure", None, {}),
        ("openai", "http://localhost:11434/v1", {}),
        ("openai", None, {"model": "gpt-4o"}),
        ("openai", None, {"messages": [{"role": "system", "content": "You write reports."}]}),
        ("openai", None, {"messages": [{"role": "user", "content": "You write reports."}, PARAMS["messages"][1]]}),
        ("openai", None, {"messages": [PARAMS["messages"][0], {"role": "user", "content": "Summarise Q4."}]}),
        ("openai", None, {"temperature": 0.3}),
        ("openai", None, {"max_tokens": 801}),
        ("openai", None, {"response_format": {"type": "json_object"}}),
        ("openai", None, {"top_p": 0.9}),
        ("openai", None, {"seed": 7}),
    ],
    ids=["provider", "base_url", "model", "messages-count", "message-role", "message-content", "temperature",
         "max_tokens", "response_format", "top_p", "seed"],
)
def test_request_hash_changes_with_each_parameter(provider: str, base_url: str | None, changes: dict[str, Any]) -> None:
    assert request_hash(provider, base_url, {**PARAMS, **changes}) != request_hash("openai", None, PARAMS)


@pytest.mark.parametrize(
    ("base_url", "a", "b"),
    [
        ("https://api.example.com/v1/", {}, {}),  # vs no trailing slash
        ("https://api.example.com/v1", {"temperature": 1}, {"temperature": 1.0}),
        ("https://api.example.com/v1", {"messages": list(MESSAGES)}, {"messages": tuple(MESSAGES)}),
    ],
    ids=["trailing-slash", "int-vs-float", "list-vs-tuple"],
)
def test_request_hash_is_equal_for_equivalent_spellings(base_url: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    assert request_hash("openai", base_url, {**PARAMS, **a}) == request_hash(
        "openai", "https://api.example.com/v1", {**PARAMS, **b}
    )


def test_request_hash_of_a_chat_request_ignores_its_label() -> None:
    first = ChatRequest(model="gpt-4o-mini", messages=MESSAGES, label="O1.T1.generate")
    second = ChatRequest(model="gpt-4o-mini", messages=MESSAGES, label="O2.T9.generate")
    assert request_hash("openai", None, first.sampling()) == request_hash("openai", None, second.sampling())


def test_sheet_hash_is_the_sha256_of_the_bytes_and_config_hash_ignores_order(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.xlsx"
    sheet.write_bytes(b"PK\x03\x04 pretend workbook")
    assert sheet_hash(sheet) == hashlib.sha256(b"PK\x03\x04 pretend workbook").hexdigest()
    one = {"model": "m", "output_dir": tmp_path, "steps": ("generate",)}
    two = {"steps": ["generate"], "output_dir": str(tmp_path), "model": "m"}
    assert config_hash(one) == config_hash(two)
    assert config_hash({**one, "model": "n"}) != config_hash(one)


# --- the cache --------------------------------------------------------------------------


def test_cache_hit_returns_the_text_tokens_and_model_at_no_cost(ledger: Ledger) -> None:
    key = request_hash("openai", None, PARAMS)
    record(ledger, request_hash=key)
    ledger.flush()
    hit = ledger.cached_response(key)
    assert hit == CachedCall(
        text="Q3 was good.", model="gpt-4o-mini", prompt_tokens=120, completion_tokens=40,
        original_cost_usd=0.0025, call_id=hit.call_id if hit else 0, run_id="run-1",
        created_at=hit.created_at if hit else 0.0,
    )
    assert hit is not None and hit.cost_usd == 0.0
    response = hit.to_response()
    assert (response.text, response.cost_usd, response.extra["cached"]) == ("Q3 was good.", 0.0, True)
    assert response.extra["original_cost_usd"] == 0.0025


def test_cache_serves_the_latest_paid_ok_call_and_skips_errors_and_replayed_hits(ledger: Ledger) -> None:
    key = request_hash("openai", None, PARAMS)
    record(ledger, request_hash=key, response_text="first answer")
    record(ledger, request_hash=key, response_text="second answer", cost_usd=0.004)
    record(ledger, request_hash=key, response_text=None, status="error", error="HTTP 500", cost_usd=0.0)
    record(ledger, request_hash=key, response_text="second answer", cost_usd=0.0, cached=True, run_id="run-2")
    ledger.flush()
    hit = ledger.cached_response(key)
    assert hit is not None
    assert (hit.text, hit.original_cost_usd, hit.run_id) == ("second answer", 0.004, "run-1")


def test_cache_misses_for_an_unknown_hash_and_before_the_write_is_committed(ledger_path: Path) -> None:
    with Ledger(ledger_path, batch_delay_s=60.0) as ledger:  # nothing commits until a flush
        key = request_hash("openai", None, PARAMS)
        assert ledger.cached_response(key) is None
        record(ledger, request_hash=key)
        assert ledger.cached_response(key) is None
        ledger.flush()
        assert ledger.cached_response(key) is not None


# --- many threads -----------------------------------------------------------------------


def test_record_call_from_32_threads_lands_every_call_after_flush(
    ledger: Ledger, ledger_path: Path, db_factory: DbFactory
) -> None:
    threads, per_thread = 32, 200
    seeded = request_hash("openai", None, PARAMS)
    record(ledger, request_hash=seeded, task_key="seed")
    ledger.flush()
    start = threading.Barrier(threads)
    misses: list[int] = []

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            record(ledger, task_key=f"T{n}", step=f"s{i:03d}", request_hash=f"{n}-{i}")
            if i % 50 == 0 and ledger.cached_response(seeded) is None:  # readers alongside the writer
                misses.append(n)

    workers = [threading.Thread(target=work, args=(n,), name=f"task-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ledger.flush()

    assert misses == []
    db = db_factory(ledger_path)
    rows = db.execute("SELECT task_key, step FROM calls WHERE task_key != 'seed' ORDER BY id").fetchall()
    assert len(rows) == threads * per_thread
    for n in range(threads):  # each thread's calls all there, in the order it made them
        assert [step for key, step in rows if key == f"T{n}"] == [f"s{i:03d}" for i in range(per_thread)]


def test_reads_from_32_threads_share_a_few_connections_and_each_sees_its_own_answer(ledger: Ledger) -> None:
    threads = 32
    for n in range(threads):
        record(ledger, task_key=f"T{n}", request_hash=f"hash-{n}", response_text=f"answer {n}")
    ledger.flush()
    start = threading.Barrier(threads)
    seen: dict[int, list[str]] = {}

    def work(n: int) -> None:
        start.wait()
        seen[n] = [hit.text for _ in range(20) if (hit := ledger.cached_response(f"hash-{n}")) is not None]

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == {n: [f"answer {n}"] * 20 for n in range(threads)}
    assert 1 <= len(ledger._readers) <= DEFAULT_READERS  # not a connection per thread


def test_a_record_that_cannot_be_written_loses_only_itself_and_flush_says_so(
    ledger: Ledger, ledger_path: Path, db_factory: DbFactory
) -> None:
    db = db_factory(ledger_path)
    db.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.task_key = 'poison'"
        " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    )
    record(ledger, task_key="before")
    record(ledger, task_key="poison")
    record(ledger, task_key="after")
    with pytest.raises(LedgerError, match="1 record.*poisoned row"):
        ledger.flush()
    assert [r[0] for r in db.execute("SELECT task_key FROM calls ORDER BY id")] == ["before", "after"]
    ledger.flush()  # reported once


def test_calls_flushed_before_a_kill_9_are_on_disk(ledger_path: Path, db_factory: DbFactory) -> None:
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from report_pipeline.ledger.store import Ledger
        ledger = Ledger(Path(sys.argv[1]), batch_delay_s=60.0)
        for i in range(300):
            ledger.record_call(
                run_id="killed", task_key=f"O1.T{i}", step="generate", request_hash=f"h{i}",
                provider="openai", base_url=None, model="m", messages=[{"role": "user", "content": "hi"}],
                response_text=f"answer {i}", prompt_tokens=1, completion_tokens=1, cost_usd=0.001,
                latency_s=0.1, attempts=1, status="ok",
            )
        ledger.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(ledger_path)], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    with Ledger(ledger_path) as ledger:
        hit = ledger.cached_response("h299")
    assert hit is not None and hit.text == "answer 299"
    assert db_factory(ledger_path).execute("SELECT count(*) FROM calls").fetchone()[0] == 300


# --- runs and tasks ---------------------------------------------------------------------


def test_start_and_finish_run_round_trip(ledger: Ledger) -> None:
    ledger.start_run("run-1", Path("sheets/q3.xlsx"), "sheet-sha", "config-sha", 12)
    running = ledger.run("run-1")
    assert running is not None
    assert (running.status, running.finished_at, running.tasks_total, running.sheet_path) == (
        "running", None, 12, str(Path("sheets/q3.xlsx"))
    )
    assert running.pid is not None and running.host
    ledger.finish_run("run-1", "failed", {
        "done": 10, "failed": 1, "skipped": 1, "prompt_tokens": 900, "completion_tokens": 300, "cost_usd": 0.25,
    })
    finished = ledger.run("run-1")
    assert finished is not None and finished.finished_at is not None
    assert (finished.status, finished.done, finished.failed, finished.skipped, finished.cost_usd) == (
        "failed", 10, 1, 1, 0.25
    )
    assert finished.tasks_total == 12  # not in totals: kept
    assert ledger.run("no-such-run") is None


def test_finish_run_rejects_an_unknown_status_or_total(ledger: Ledger) -> None:
    ledger.start_run("run-1", "q3.xlsx", "s", "c", 1)
    with pytest.raises(ValueError, match="status"):
        ledger.finish_run("run-1", "finished", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown total.*tokens"):
        ledger.finish_run("run-1", "done", {"tokens": 5})


def test_resuming_a_run_marks_it_running_again_and_keeps_its_first_start(ledger: Ledger) -> None:
    ledger.start_run("run-1", "q3.xlsx", "s", "c", 4)
    first = ledger.run("run-1")
    ledger.mark_interrupted("run-1")
    ledger.start_run("run-1", "q3.xlsx", "s", "c", 4)
    again = ledger.run("run-1")
    assert first is not None and again is not None
    assert (again.status, again.finished_at, again.started_at) == ("running", None, first.started_at)


def test_recent_runs_are_newest_first_and_limited(ledger: Ledger) -> None:
    for name in ("run-a", "run-b", "run-c", "run-d"):
        ledger.start_run(name, "q3.xlsx", "s", "c", 1)
    assert [r.run_id for r in ledger.recent_runs()] == ["run-d", "run-c", "run-b", "run-a"]
    assert [r.run_id for r in ledger.recent_runs(limit=2)] == ["run-d", "run-c"]


def test_completed_tasks_are_the_done_ones_with_their_text(ledger: Ledger) -> None:
    ledger.record_task("run-1", task_result("T1", check_verdict="pass", check_notes="Numbers match."))
    ledger.record_task("run-1", task_result("T2", status="failed", text="", error="HTTP 500"))
    ledger.record_task("run-1", task_result("T3", status="failed", text="", error="timeout"))
    ledger.record_task("run-1", task_result("T3", text="Second try worked."))  # replaces the failure
    ledger.record_task("run-2", task_result("T9"))
    done = ledger.completed_tasks("run-1")
    assert sorted(done) == ["O1.T1", "O1.T3"]
    row = done["O1.T1"]
    assert (row.text, row.steps, row.check_verdict, row.check_notes) == (
        "Done text.", ("generate", "check"), "pass", "Numbers match."
    )
    assert (row.prompt_tokens, row.completion_tokens, row.attempts) == (180, 60, 3)
    assert row.cost_usd == pytest.approx(0.003)
    assert done["O1.T3"].text == "Second try worked."
    assert [r.status for r in ledger.task_rows("run-1")] == ["done", "failed", "done"]


def test_a_tasks_items_and_figure_marks_come_back_as_they_were_recorded(ledger: Ledger) -> None:
    items = (ItemResult(1, "Germany", text="Coal fell.", calls=(CallRecord("generate", "m", 10, 5, 0.001),)),
             ItemResult(2, "France", error="timeout", calls=(CallRecord("generate", "m", attempts=3),)))
    marks = (FigureMark(0, 2, "41", "Prices were 41.", "cell: prices[2024] = 41"), FigureMark(9, 12, "7%", "Up 7%."))
    ledger.record_task("run-1", dataclasses.replace(task_result("T1"), items=items, figures=marks))
    ledger.record_task("run-1", dataclasses.replace(task_result("T2"), figures=()))  # checked: no figure
    ledger.record_task("run-1", task_result("T3"))  # not checked
    done = ledger.completed_tasks("run-1")
    assert (items_from_json(done["O1.T1"].items), figures_from_json(done["O1.T1"].figures)) == (items, marks)
    assert items_from_json(done["O1.T2"].items) == () and figures_from_json(done["O1.T2"].figures) == ()
    assert figures_from_json(done["O1.T3"].figures) is None


def test_mark_interrupted_counts_what_was_recorded(ledger: Ledger) -> None:
    ledger.start_run("run-1", "q3.xlsx", "s", "c", 5)
    ledger.record_task("run-1", task_result("T1"))
    ledger.record_task("run-1", task_result("T2", status="failed", text="", error="boom"))
    record(ledger, task_key="O1.T1", cost_usd=0.5, prompt_tokens=10, completion_tokens=3)
    record(ledger, task_key="O1.T2", cost_usd=0.25, prompt_tokens=5, completion_tokens=0, status="error")
    ledger.mark_interrupted("run-1")
    row = ledger.run("run-1")
    assert row is not None and row.finished_at is not None
    assert (row.status, row.done, row.failed, row.skipped) == ("interrupted", 1, 1, 0)
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (15, 3, 0.75)
    ledger.finish_run("run-1", "done", {})
    ledger.mark_interrupted("run-1")  # only a run still marked running
    assert ledger.run("run-1").status == "done"  # type: ignore[union-attr]


# --- secrets and lifecycle --------------------------------------------------------------


def test_secrets_never_reach_the_ledger_file(ledger_path: Path) -> None:
    key, quoted = "sk-test-0123456789abcdef", 'sk-"quoted"-key-42'
    with Ledger(ledger_path, secrets=[key, quoted]) as ledger:
        ledger.start_run("run-1", f"sheet-{key}.xlsx", "s", "c", 1)
        record(
            ledger,
            base_url="https://user:pw-0987654321@proxy.example.com/v1",
            messages=[{"role": "user", "content": f"my key is {key} and {quoted}"}],
            response_text=f"echo {key}",
            error=f"401 for key {key}",
        )
        ledger.record_task("run-1", task_result("T1", text=f"text {key}", error=f"oops {quoted}"))
    everything = b"".join(p.read_bytes() for p in ledger_path.parent.iterdir())
    for secret in (key, quoted, 'sk-\\"quoted\\"-key-42', "pw-0987654321"):
        assert secret.encode() not in everything
    assert b"***" in everything


def test_close_is_idempotent_and_the_ledger_refuses_use_after_it(
    ledger_path: Path, db_factory: DbFactory
) -> None:
    ledger = Ledger(ledger_path)
    record(ledger)
    ledger.close()
    ledger.close()
    with pytest.raises(RuntimeError, match="closed"):
        record(ledger)
    with pytest.raises(RuntimeError, match="close"):
        ledger.cached_response("x")
    assert not Path(f"{ledger_path}-wal").exists()  # checkpointed: every connection was closed
    assert db_factory(ledger_path).execute("SELECT count(*) FROM calls").fetchone()[0] == 1  # close flushed


def test_reopening_a_ledger_keeps_everything(ledger_path: Path) -> None:
    with Ledger(ledger_path) as ledger:
        ledger.start_run("run-1", "q3.xlsx", "s", "c", 1)
        ledger.record_task("run-1", task_result("T1"))
    with Ledger(ledger_path) as ledger:
        assert ledger.run("run-1") is not None
        assert list(ledger.completed_tasks("run-1")) == ["O1.T1"]


def test_endpoint_limits_are_remembered_per_endpoint_and_forgotten_when_old(ledger_path: Path) -> None:
    now = [1_000_000.0]
    with Ledger(ledger_path, clock=lambda: now[0]) as ledger:
        assert ledger.recall_limits("openai", "http://a/v1", max_age_s=60) is None
        ledger.remember_limits("openai", "http://a/v1", LearnedLimits(40, 1.0, 90_000, 60.0))
        ledger.remember_limits("openai", "http://b/v1", LearnedLimits())  # answered without headers
        ledger.remember_limits("openai", "http://a/v1", LearnedLimits(50, 1.0, 90_000, 60.0))  # the latest wins
        now[0] += 30
        assert ledger.recall_limits("openai", "http://a/v1", max_age_s=60) == (
            LearnedLimits(50, 1.0, 90_000, 60.0), 1_000_000.0
        )
        limits, _ = ledger.recall_limits("openai", "http://b/v1", max_age_s=60)
        assert not limits.paced and limits.describe() == "no rate-limit headers"
        now[0] += 31
        assert ledger.recall_limits("openai", "http://a/v1", max_age_s=60) is None


def test_an_endpoint_url_with_credentials_is_stored_without_them(ledger_path: Path, db_factory: DbFactory) -> None:
    with Ledger(ledger_path) as ledger:
        ledger.remember_limits("openai", "https://user:sk-secret@host/v1", LearnedLimits(40, 1.0))
        assert ledger.recall_limits("openai", "https://user:sk-secret@host/v1", max_age_s=60) is not None
    stored = db_factory(ledger_path).execute("SELECT endpoint FROM endpoint_limits").fetchall()
    assert "sk-secret" not in repr(stored)


class _NoCalls:
    """A provider that must not be asked: every call here is a cache hit."""

    name = "openai"

    def complete(self, request: ChatRequest):
        raise AssertionError(f"{request.label} should have come from the cache")


@pytest.mark.parametrize(("run_id", "cost"), [("run-1", 0.0025), ("run-2", 0.0)])
def test_a_call_the_same_run_paid_before_it_stopped_keeps_its_cost_on_resume(ledger: Ledger, run_id: str, cost: float) -> None:
    """run-1 paid for the call, then was interrupted: resumed, run-1 still paid it; run-2 got it free."""
    from report_pipeline.run.gateway import CallGateway

    record(ledger, request_hash=request_hash("openai", None, PARAMS))
    ledger.flush()
    gateway = CallGateway(_NoCalls(), ledger=ledger, run_id=run_id, base_url=None, use_cache=True, durable=False)  # type: ignore[arg-type]
    response = gateway(ChatRequest(model="gpt-4o-mini", messages=MESSAGES, label="O1.T1.generate"))
    assert response.extra["cached"] is True and response.cost_usd == cost


# -- another process holding the file -----------------------------------------------------------


class _Seen(logging.Handler):
    """Sets `event` when a record's message contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_a_paid_answer_waits_out_a_lock_longer_than_the_busy_timeout_and_is_kept(ledger_path: Path) -> None:
    """A sqlite3 shell left in a transaction on the ledger: the answer is held, not dropped."""
    seen = _Seen("is locked by another process")
    logging.getLogger("report_pipeline.ledger").addHandler(seen)
    try:
        with Ledger(ledger_path, busy_timeout_s=0.05) as opened:
            holder = sqlite3.connect(ledger_path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            flushed: list[BaseException | None] = []

            def pay() -> None:
                try:
                    record(opened)
                    opened.flush()
                    flushed.append(None)
                except BaseException as error:  # noqa: BLE001 - the test reports it
                    flushed.append(error)

            worker = threading.Thread(target=pay)
            worker.start()
            assert seen.event.wait(10)  # the writer met the lock, past its busy timeout...
            assert worker.is_alive() and flushed == []  # ...and holds the answer, the flush waiting
            holder.execute("ROLLBACK")
            holder.close()
            worker.join(10)
            assert flushed == [None]
            assert opened.cached_response(request_hash("openai", None, PARAMS)) is not None
    finally:
        logging.getLogger("report_pipeline.ledger").removeHandler(seen)


def test_a_lock_still_held_as_the_ledger_closes_is_reported_with_what_a_rerun_pays(ledger_path: Path, monkeypatch) -> None:
    import report_pipeline.ledger.store as ledger_module

    monkeypatch.setattr(ledger_module, "CLOSE_LOCK_WAIT_S", 0.2)
    opened = Ledger(ledger_path, busy_timeout_s=0.05)
    holder = sqlite3.connect(ledger_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        record(opened)
        with pytest.raises(LedgerError, match=r"1 of them paid calls .*a rerun pays for those calls again"):
            opened.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_endpoint_params_are_remembered_per_endpoint_and_model_and_forgotten_when_old(ledger_path: Path) -> None:
    clock = [1000.0]
    with Ledger(ledger_path, clock=lambda: clock[0]) as ledger:
        ledger.remember_params("openai", "https://x.example/v1", {"m1": {"token_limit": "max_completion_tokens"}})
        ledger.remember_params("openai", "https://y.example/v1", {"m1": {"token_limit": "max_tokens"}})
        assert ledger.recall_params("openai", "https://x.example/v1", max_age_s=60) == {
            "m1": {"token_limit": "max_completion_tokens"}}
        clock[0] += 61
        assert ledger.recall_params("openai", "https://x.example/v1", max_age_s=60) == {}


def test_call_seconds_are_the_latest_run_of_each_task_and_the_mean_call_of_each_model(ledger: Ledger) -> None:
    """What a run ranks its ready tasks by: a task's calls in the latest run that made them; not
    cached answers, errors, or another endpoint."""
    record(ledger, run_id="old", task_key="O1.T1", latency_s=9.0)
    record(ledger, run_id="new", task_key="O1.T1", latency_s=1.0)
    record(ledger, run_id="new", task_key="O1.T1", step="refine", latency_s=2.0)
    record(ledger, run_id="new", task_key="O1.T2", latency_s=4.0, model="gpt-5-mini")
    record(ledger, run_id="new", task_key="O1.T3", latency_s=50.0, cached=True)
    record(ledger, run_id="new", task_key="O1.T3", latency_s=50.0, status="error")
    record(ledger, run_id="new", task_key="O1.T4", latency_s=50.0, base_url="http://elsewhere:8080/v1")
    tasks, models = ledger.call_seconds("openai", None, max_age_s=86_400)
    assert tasks == {"O1.T1": 3.0, "O1.T2": 4.0}
    assert models == {"gpt-4o-mini": 4.0, "gpt-5-mini": 4.0}


def test_call_texts_of_one_family_entity_are_its_own_and_no_other(ledger: Ledger) -> None:
    """A family run writes each entity's report from that entity's calls, read an entity at a time."""
    for key in ("A~O1.T1", "A~O2.T1", "AB~O1.T1", "B~O1.T1", "A", "O1.T1"):
        record(ledger, task_key=key, response_text=f"answer of {key}")
    record(ledger, task_key="A~O1.T1", step="refine", status="error", response_text=None)
    assert sorted(ledger.call_texts("run-1", entity="A")) == ["A~O1.T1", "A~O2.T1"]
    assert [t.response for t in ledger.call_texts("run-1", entity="A")["A~O1.T1"]] == ["answer of A~O1.T1"]
    assert sorted(ledger.call_texts("run-1", entity="AB")) == ["AB~O1.T1"]
    assert len(ledger.call_texts("run-1")) == 6  # the whole run, as before
