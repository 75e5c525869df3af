"""One run at a time per output folder: `OUTPUT_DIR/.report-pipeline.lock`.

Two runs writing the same folder would interleave the ledger and clobber each other's
files, so a run holds this lock from start to finish. The lock file holds JSON
`{run_id, pid, host, started_at}` for messages; what makes it a lock is an exclusive
`fcntl.flock` on the file, held by the open descriptor for as long as the run lives.
The kernel drops a flock when its process dies, kill -9 included, so:

- flock held by someone  -> a live run: `RunLocked` naming its run id, pid and start time
  (this is reliable even if a dead run's pid has been reused by another program);
- flock free             -> the run that wrote it is gone: the stale lock is logged
  and taken over (`RunLock.taken_over` says whose it was, to mark that run interrupted).

Taking it is atomic: the JSON is written to a private file created with
O_CREAT|O_EXCL and flocked first, then hard-linked into place (`link` fails if the
name exists). So the lock file never exists unlocked or half written. A stale lock is
removed only by a run holding that file's own flock, and only if it is still the file
at the path; runs clearing stale locks take turns under a flock on the folder, so of
several runs started at once exactly one wins and the others name it.

Where there is no flock (no `fcntl`, or a file system that refuses it) the fallback is
the pid: a holder on this host whose process is gone is stale; anything else is taken as
live, and the message says which file to delete if no run is active.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import psutil

from ..errors import RunLocked

try:
    import fcntl
except ImportError:  # Windows: pid checks only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("report_pipeline.runlock")

LOCK_FILE_NAME = ".report-pipeline.lock"
_MAX_ATTEMPTS = 5  # each retry follows a stale lock removed or a holder that just left


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) an output folder's lock."""

    run_id: str
    pid: int
    host: str
    started_at: float  # unix time

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.started_at, timezone.utc).isoformat(timespec="seconds")
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started {started.replace('+00:00', 'Z')})"


class RunLock:
    """`with RunLock(output_dir, run_id):` — the output folder is this run's until the block ends."""

    def __init__(self, output_dir: Path, run_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_FILE_NAME
        self.run_id = run_id
        self.taken_over: LockInfo | None = None  # the stale lock this one replaced, if any
        self._clock = clock
        self._fd: int | None = None

    def __repr__(self) -> str:
        state = "held" if self.locked else "free"
        return f"RunLock({str(self.path)!r}, run_id={self.run_id!r}, {state})"

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, replacing a stale one; RunLocked if a live run holds it."""
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        me = LockInfo(self.run_id, os.getpid(), socket.gethostname(), self._clock())
        for _ in range(_MAX_ATTEMPTS):
            fd = self._create(me)
            if fd is not None:
                self._fd = fd
                return
            self._clear_if_stale()  # raises RunLocked if the holder is alive
        raise RunLocked(
            f"{self.output_dir} could not be locked: {self.path} keeps reappearing, so another run is "
            "probably starting there. Try again, or use --output with another folder."
        )

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the flock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                os.unlink(self.path)
            else:
                log.warning(
                    "lock %s was removed or replaced by someone else while run %s held it", self.path, self.run_id
                )
        finally:
            os.close(fd)  # drops the flock, after the name is gone

    # -- private steps --------------------------------------------------------------------

    def _create(self, me: LockInfo) -> int | None:
        """A flocked, written descriptor now at self.path, or None if the name is taken."""
        payload = (json.dumps(asdict(me)) + "\n").encode("utf-8")
        try:
            return self._create_linked(payload)
        except _LinksUnsupported:
            return self._create_in_place(payload)

    def _create_linked(self, payload: bytes) -> int | None:
        private = self.output_dir / f"{LOCK_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(private, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        placed = False
        try:
            _try_flock(fd)  # nobody else knows this name yet, so it cannot be refused
            _write_all(fd, payload)
            placed = _link(private, self.path)
            return fd if placed else None
        finally:
            if not placed:
                os.close(fd)
            try:
                os.unlink(private)
            except OSError:
                pass

    def _create_in_place(self, payload: bytes) -> int | None:
        """For file systems without hard links: O_EXCL on the lock itself, then flock and write.

        Between the create and the flock another run could see an unlocked, empty file and
        remove it as stale; that window is microseconds, and only on such file systems.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        try:
            _try_flock(fd)
            _write_all(fd, payload)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        return fd

    def _clear_if_stale(self) -> None:
        """Remove the lock file if its holder is gone; RunLocked if it is alive.

        Runs under the folder's guard, so two runs clearing the same stale lock do it one
        after the other: the second finds the first one's new lock (and names it) instead
        of mistaking the first's brief hold on the stale file for a live run.
        """
        with _guard(self.output_dir):
            try:
                fd = _open_existing(self.path)
            except FileNotFoundError:
                return  # released meanwhile: try again
            try:
                info = _read_info(fd)
                flocked = _try_flock(fd)
                if flocked is False or (flocked is None and _alive(info)):
                    raise RunLocked(_locked_message(self.output_dir, self.path, info, certain=flocked is False))
                if not _same_file(fd, self.path):
                    return  # replaced by a newer lock meanwhile: look again
                self._take_over(info)
            finally:
                os.close(fd)  # before the guard is released

    def _take_over(self, info: LockInfo | None) -> None:
        if info is None:
            log.warning("output folder %s: removing an unreadable lock file no process holds", self.output_dir)
        else:
            reused = " (its pid now belongs to another program)" if _pid_taken_here(info) else ""
            log.warning(
                "output folder %s: taking over the lock of %s: that process is gone%s",
                self.output_dir, info.describe(), reused,
            )
        os.unlink(self.path)
        self.taken_over = info


def read_lock(output_dir: Path) -> LockInfo | None:
    """Who the lock file of `output_dir` names (live or stale), or None if there is none."""
    try:
        fd = os.open(Path(output_dir) / LOCK_FILE_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_info(fd)
    finally:
        os.close(fd)


def live_run_id(output_dir: Path) -> str | None:
    """The run holding `output_dir`'s lock, as far as a reader can tell without taking it.

    For `report-pipeline runs`, which must not write (the folder may be shared or read
    only), nor take the lock even briefly (a run starting that instant would think it
    held). So the holder's pid is asked, as where there is no flock: a lock whose
    process on this host is gone (kill -9, a power cut) has no live run. A holder on
    another host cannot be checked, and counts as live.
    """
    info = read_lock(output_dir)
    return info.run_id if info is not None and _alive(info) else None


@contextmanager
def _guard(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder itself, held only while a stale lock is checked and removed.

    Live runs never hold it, so waiting for it is a matter of microseconds. Where a folder
    cannot be flocked (some network file systems) the takeover goes unguarded: still
    correct, since removal needs the stale file's own flock, only less precise in its message.
    """
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def _open_existing(path: Path) -> int:
    """Read-write where we may (network file systems emulate flock with write locks), else read-only."""
    try:
        return os.open(path, os.O_RDWR)
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def _locked_message(output_dir: Path, path: Path, info: LockInfo | None, *, certain: bool) -> str:
    who = info.describe() if info else "another report-pipeline run (its lock file is unreadable)"
    message = f"{output_dir} is in use by {who}. Wait for it to finish, or use --output with another folder."
    if not certain:
        message += f" If no run is active there, delete {path}."
    return message


def _try_flock(fd: int) -> bool | None:
    """True: we now hold the flock; False: someone else does; None: flock is not available here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def _link(source: Path, target: Path) -> bool:
    """Hard-link source to target: True if placed, False if target exists (atomic either way)."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
            raise _LinksUnsupported(str(error)) from error
        raise
    return True


class _LinksUnsupported(Exception):
    """Internal: this file system refuses hard links."""


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _read_info(fd: int) -> LockInfo | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        data = json.loads(raw.decode("utf-8"))
        return LockInfo(
            run_id=str(data["run_id"]), pid=int(data["pid"]), host=str(data["host"]),
            started_at=float(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(info: LockInfo | None) -> bool:
    """Could the holder still be running, judged by pid alone? Unknown holders and other hosts: yes."""
    if info is None or info.host != socket.gethostname():
        return True
    return psutil.pid_exists(info.pid)


def _pid_taken_here(info: LockInfo) -> bool:
    return info.host == socket.gethostname() and psutil.pid_exists(info.pid)


def _same_file(fd: int, path: Path) -> bool:
    """Is the open descriptor still the file at `path`?"""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino)
