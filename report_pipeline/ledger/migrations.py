"""The ledger's schema, one numbered function per change (after simonw/llm's `migrations.py`).

A schema change is one new `@migration` function at the end of `MIGRATIONS`; never
edit one that has shipped. `migrate(db)` runs, in order, those not yet named in the
`_migrations` table, and commits each one *together with its record* in a single
transaction: a crash half way leaves either both or neither, so a migration never
has to survive being run twice (llm records its migrations outside the transaction
and must write them defensively; ours need not).

Before touching anything, `check_schema(db)` makes sure the file is ours: a database
of another application (tables, but no `_migrations` and not our `application_id`)
or one migrated by a newer report-pipeline (migration names this version does not
know) is refused with a `LedgerError` that names the file and says what to do, and
the file is left exactly as it was.

The connection must not be inside a transaction: `migrate` issues its own
`BEGIN IMMEDIATE` / `COMMIT` (never `executescript`, which commits on its own).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import LedgerError

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []

MIGRATIONS_TABLE = "_migrations"

# PRAGMA application_id: four bytes in the file header that say "this is a
# report-pipeline ledger" ("RPLG"), so a foreign SQLite file is told apart even when empty.
APPLICATION_ID = 0x52504C47


def migration(fn: Migration) -> Migration:
    """Decorator: append `fn` to MIGRATIONS. It returns `fn` (llm's `migration =
    MIGRATIONS.append` returns None and leaves the module's names bound to None)."""
    MIGRATIONS.append(fn)
    return fn


def migrate(db: sqlite3.Connection, *, stop_before: str | None = None) -> list[str]:
    """Bring `db` to the newest schema; returns the names of the migrations it applied.

    `stop_before` (a migration name) stops there: tests use it to build a ledger at an
    older version. Raises LedgerError if the file is foreign or newer than this code.
    """
    check_schema(db)
    if MIGRATIONS_TABLE not in _user_tables(db):
        with transaction(db):
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
    done: list[str] = []
    applied = set(applied_migrations(db))
    for fn in MIGRATIONS:
        name = fn.__name__
        if name == stop_before:
            break
        if name in applied:
            continue
        with transaction(db):
            # re-read under the write lock: another process may have applied it meanwhile
            if db.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", (name,)).fetchone():
                continue
            fn(db)
            db.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", (name, time.time()))
        done.append(name)
    return done


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """The names recorded in `_migrations`, in the order they were applied ([] if none)."""
    if MIGRATIONS_TABLE not in _user_tables(db):
        return []
    rows = db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_at, rowid").fetchall()
    return [row[0] for row in rows]


def check_schema(db: sqlite3.Connection) -> None:
    """Raise LedgerError unless `db` is blank or a ledger this version can use; reads only."""
    path = database_file(db)
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = _user_tables(db)
    if app_id == APPLICATION_ID:
        _check_not_newer(db, path)
        return
    if app_id != 0:
        raise LedgerError(
            f"{path} is not a report-pipeline ledger: it is an SQLite database of another application "
            f"(application_id {app_id:#010x}). Move it aside or use --output with another folder."
        )
    if not tables:
        return  # a new, empty file
    if tables == {MIGRATIONS_TABLE} and not db.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE}").fetchone():
        return  # our first open stopped after creating the bookkeeping table
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise LedgerError(
        f"{path} is not a report-pipeline ledger: it is an SQLite database of another application "
        f"(tables: {shown}). Move it aside or use --output with another folder."
    )


def _check_not_newer(db: sqlite3.Connection, path: str) -> None:
    known = {fn.__name__ for fn in MIGRATIONS}
    unknown = [name for name in applied_migrations(db) if name not in known]
    if unknown:
        raise LedgerError(
            f"{path} was written by a newer version of report-pipeline: its schema has "
            f"migration(s) {', '.join(unknown)} that this version (schema {len(known)}) does not know. "
            "Upgrade report-pipeline, or use --output with another folder."
        )


def database_file(db: sqlite3.Connection) -> str:
    """The file behind the connection's main database, for messages (':memory:' if none)."""
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or ":memory:"
    return ":memory:"


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (DDL included: SQLite's is transactional)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _user_tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {row[0] for row in rows}


def _execute_all(db: sqlite3.Connection, *statements: str) -> None:
    for statement in statements:
        db.execute(statement)


# -- the migrations, oldest first -------------------------------------------------------


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Runs, their tasks and every call. Times are unix seconds (REAL), like TaskResult's."""
    _execute_all(
        db,
        f"PRAGMA application_id = {APPLICATION_ID}",
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            sheet_path TEXT,
            sheet_hash TEXT,
            config_hash TEXT,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'budget', 'aborted')),
            tasks_total INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            pid INTEGER,
            host TEXT
        )
        """,
        """
        CREATE TABLE tasks (
            run_id TEXT NOT NULL,
            task_key TEXT NOT NULL,
            objective_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            title TEXT,
            status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'skipped')),
            error TEXT,
            started_at REAL,
            finished_at REAL,
            text TEXT,
            model TEXT,
            steps TEXT,
            check_verdict TEXT,
            check_notes TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, task_key)
        )
        """,
        """
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            task_key TEXT NOT NULL,
            step TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            provider TEXT NOT NULL,
            base_url TEXT,
            model TEXT,
            prompt TEXT,
            response TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            latency_s REAL,
            attempts INTEGER NOT NULL DEFAULT 1,
            cached INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
            error TEXT,
            created_at REAL NOT NULL
        )
        """,
    )


@migration
def m002_call_indexes(db: sqlite3.Connection) -> None:
    """The cache lookup (latest ok call for a hash) and a task's calls, without a table scan."""
    _execute_all(
        db,
        "CREATE INDEX calls_ok_by_request_hash ON calls (request_hash) WHERE status = 'ok'",
        "CREATE INDEX calls_by_run_task ON calls (run_id, task_key)",
    )


@migration
def m003_batches(db: sqlite3.Connection) -> None:
    """Batch mode: every uploaded input file and batch, and which requests each carries.

    A row is written the moment its file is uploaded (`batch_id` still NULL) and updated
    when the batch exists, so a crash at any point leaves enough to find the batch again
    (by its input file) instead of paying for the same requests twice. `collected` is set
    once its answers are recorded in `calls`.
    """
    _execute_all(
        db,
        """
        CREATE TABLE batches (
            local_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            wave INTEGER NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 1,
            provider TEXT NOT NULL,
            base_url TEXT,
            model TEXT,
            input_file_id TEXT NOT NULL,
            batch_id TEXT UNIQUE,
            status TEXT NOT NULL,
            output_file_id TEXT,
            error_file_id TEXT,
            request_total INTEGER NOT NULL,
            request_completed INTEGER NOT NULL DEFAULT 0,
            request_failed INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            collected INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE batch_requests (
            local_id TEXT NOT NULL REFERENCES batches (local_id),
            custom_id TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            task_key TEXT NOT NULL,
            step TEXT NOT NULL,
            PRIMARY KEY (local_id, custom_id)
        )
        """,
        "CREATE INDEX batch_requests_by_hash ON batch_requests (request_hash)",
        "CREATE INDEX batches_open ON batches (collected) WHERE collected = 0",
    )


@migration
def m004_endpoint_limits(db: sqlite3.Connection) -> None:
    """What each endpoint's rate-limit headers said, so the next run paces at once.

    One row per endpoint (`provider base_url`). NULL limits with a row mean the
    endpoint answered without `x-ratelimit-*` headers (a local server): no probe needed.
    """
    _execute_all(
        db,
        """
        CREATE TABLE endpoint_limits (
            endpoint TEXT PRIMARY KEY,
            requests_limit REAL,
            requests_window_s REAL NOT NULL DEFAULT 0,
            tokens_limit REAL,
            tokens_window_s REAL NOT NULL DEFAULT 0,
            learned_at REAL NOT NULL
        )
        """,
    )


@migration
def m005_endpoint_params(db: sqlite3.Connection) -> None:
    """What each model at each endpoint takes (`max_completion_tokens` or `max_tokens`, a temperature,
    `reasoning_effort`), as its 400s taught a run, so the next run sends the right body first.

    `params` is the JSON of a `Dialect` (providers/openai/dialect.py).
    """
    _execute_all(
        db,
        """
        CREATE TABLE endpoint_params (
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            params TEXT NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (endpoint, model)
        )
        """,
    )


@migration
def m006_call_usage_details(db: sqlite3.Connection) -> None:
    """A call's reasoning tokens (billed inside completion_tokens) and cached prompt tokens (billed at
    the cached-input price), as the endpoint's `usage` details give them."""
    _execute_all(
        db,
        "ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0",
    )


@migration
def m007_run_identity(db: sqlite3.Connection) -> None:
    """What a run is, recorded when it starts (its effective config, secrets removed, as JSON), so
    `--resume` continues it as what it was: the same provider, endpoint, model, mode and steps."""
    _execute_all(db, "ALTER TABLE runs ADD COLUMN identity TEXT")


@migration
def m008_endpoint_concurrency(db: sqlite3.Connection) -> None:
    """How many calls each model at each endpoint served at once when a run ended (the adaptive
    limit, providers/concurrency.py), so the next run starts there instead of finding it again."""
    _execute_all(
        db,
        """
        CREATE TABLE endpoint_concurrency (
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            in_flight_limit INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (endpoint, model)
        )
        """,
    )


@migration
def m009_task_items_and_figures(db: sqlite3.Connection) -> None:
    """A for_each task's items (each one's name, text or error, and calls) and the figures check's
    marks (NULL: not checked), as JSON, so a run resumed after the task finished still lists its
    items and flags the same figures in run.json, results.csv and the report."""
    _execute_all(db, "ALTER TABLE tasks ADD COLUMN items TEXT", "ALTER TABLE tasks ADD COLUMN figures TEXT")
