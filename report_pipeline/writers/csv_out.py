"""The CSV outputs: one file per objective (atomic) and results.csv (appended live).

Both use the csv module's default "excel" dialect: comma, minimal quoting,
"\\r\\n" between records, and multi-line texts kept inside quoted fields.
Files are opened with `newline=""` as the csv module requires, so a "\\n"
inside a text is written as-is and never doubled or translated.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from report_pipeline.models import CHECK_COLUMNS, TaskResult
from report_pipeline.writers.atomic import atomic_path
from report_pipeline.writers.rows import COST_DECIMALS, ResultColumns, full_row

__all__ = ["ResultsCsvAppender", "write_objective_csv"]

logger = logging.getLogger(__name__)

ENCODING = "utf-8"


def write_objective_csv(path: str | os.PathLike[str], results: Iterable[TaskResult], *, columns: ResultColumns) -> Path:
    """Write one chapter's results to `path` atomically (header + one row per task).

    Returns the path written. Readers never see a partial file: it appears
    complete under its name or not at all.
    """
    names = columns.names
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding=ENCODING, newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for result in results:
                writer.writerow(_csv_record(result, names))
    return target


class ResultsCsvAppender:
    """results.csv, one row per finished task, flushed as each row is written.

    Open once per run; worker threads call `append()` as tasks finish (a small
    lock keeps rows whole). Each row is flushed to the OS, so `tail -f` and a
    killed process both see every finished task; fsync (against power loss)
    happens once, at `close()`, not per row.

    Opening an existing file continues it (a resumed run): the header is not
    written again, and a last row torn by a crash is cut off first so the
    next row starts on a fresh line.
    """

    def __init__(self, path: str | os.PathLike[str], *, columns: ResultColumns) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing, complete_bytes = _scan_existing(self.path)
        self.columns = _choose_columns(self.path, existing, columns.names)
        if complete_bytes is not None:
            _cut_torn_tail(self.path, complete_bytes)
        self._lock = threading.Lock()
        self._file: TextIO | None = open(self.path, "a", encoding=ENCODING, newline="")
        self._writer = csv.writer(self._file)
        if existing is None:
            self._writer.writerow(self.columns)
            self._file.flush()

    @property
    def with_check(self) -> bool:
        """Whether rows carry the check columns (the file's header decides on resume)."""
        return CHECK_COLUMNS[0] in self.columns

    @property
    def closed(self) -> bool:
        return self._file is None

    def append(self, result: TaskResult) -> None:
        """Write `result` as one row and flush it. Safe to call from any thread."""
        record = _csv_record(result, self.columns)
        with self._lock:
            if self._file is None:
                raise RuntimeError(f"cannot append to {self.path}: the appender is closed")
            self._writer.writerow(record)
            self._file.flush()

    def close(self) -> None:
        """Flush, fsync and close. Calling it again does nothing."""
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
                self._file = None

    def __enter__(self) -> ResultsCsvAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ResultsCsvAppender {str(self.path)!r} {state}>"


def _csv_record(result: TaskResult, columns: Sequence[str]) -> list[object]:
    row = full_row(result)
    return [_plain_number(row[name]) for name in columns]


def _plain_number(value: object) -> object:
    """Floats without exponents: `0.000001`, not `1e-06`, for readers that only parse plain decimals."""
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = f"{value:.{COST_DECIMALS}f}".rstrip("0").rstrip(".") or "0"
        return text
    return value


def _choose_columns(path: Path, existing: list[str] | None, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to write: the requested ones for a new file, the file's own on resume (rows of a run
    without checks leave those cells empty). A header without the check columns a run needs is an error."""
    if existing is None:
        return wanted
    found = tuple(existing)
    if found not in _KNOWN_HEADERS:
        raise ValueError(
            f"{path}: not a results.csv of this version (header {', '.join(found)!r}); "
            "move it aside or start a new run"
        )
    # a resumed run keeps the file's header: the items and figures columns a newer version adds are
    # left out of its rows; only the check columns, which carry a step's verdict, must be there
    missing = [name for name in wanted if name not in found and name in CHECK_COLUMNS]
    if missing:
        raise ValueError(
            f"{path}: the existing header has no {', '.join(missing)} column(s) but this run "
            "needs them; resume with the same sheet or start a new run"
        )
    return found


_KNOWN_HEADERS = {ResultColumns(c, i, f, e).names
                  for c in (False, True) for i in (False, True) for f in (False, True) for e in (False, True)}


def _scan_existing(path: Path) -> tuple[list[str] | None, int | None]:
    """(header, bytes to keep) of a results.csv being continued; (None, None) if absent.

    Bytes to keep is the length of the complete records: everything after is a
    row torn by a crash. With no complete header it is 0 (start afresh).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    # surrogateescape round-trips any byte, so character offsets map back to bytes exactly.
    text = data.decode(ENCODING, errors="surrogateescape")
    header, complete_chars = _complete_records(text)
    if header is None:
        return None, 0  # blank lines or a torn header
    return header, len(text[:complete_chars].encode(ENCODING, errors="surrogateescape"))


def _cut_torn_tail(path: Path, keep: int) -> None:
    size = path.stat().st_size
    if keep < size:
        logger.warning("%s: cutting %d bytes of a row torn by an interrupted run", path, size - keep)
        with open(path, "r+b") as f:
            f.truncate(keep)


def _complete_records(text: str) -> tuple[list[str] | None, int]:
    """(first record, length of the prefix made of complete records) of a CSV text.

    A record is complete when the csv module can parse it and it ends with a
    line break: rows are written whole, so only the last one can be torn.
    """
    lines = _CountingLines(text)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    complete = 0
    try:
        for record in reader:
            if not lines.last.endswith(("\n", "\r")):
                break
            complete = lines.consumed
            if header is None and record:
                header = record
    except csv.Error:
        pass  # an unterminated quoted field at the end: torn mid-text
    return header, complete


class _CountingLines:
    """Feeds lines to csv.reader and counts the characters it has taken so far."""

    def __init__(self, text: str) -> None:
        # newline="" splits on \r, \n and \r\n and keeps them, as csv expects.
        self._lines = iter(io.StringIO(text, newline=""))
        self.consumed = 0
        self.last = ""

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed += len(line)
        self.last = line
        return line
