"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every output of a run (objective CSVs, report.md/.docx/.xlsx, run.json) is
written to a temporary file in the *same folder*, flushed and fsync'ed, then
moved onto its real name with `os.replace`, which is atomic on POSIX and on
Windows when both names are on one volume. A crash or Ctrl-C mid-write leaves
at worst a stray `.<name>.<random>.tmp`, never a truncated `report.docx`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]

_FALLBACK_UMASK = 0o022


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`.

    For libraries that save to a file name (python-docx, openpyxl): write the
    whole file to the yielded path. When the block ends normally the file is
    fsync'ed and renamed onto `path`; when it raises, the temporary file is
    removed and `path` (if it existed) is left exactly as it was.

    The temporary name starts with "." and ends with ".tmp" so that globbing
    for outputs (`*.csv`, `report.*`) never picks it up.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        # mkstemp creates the file 0600; give it the mode a plain open() would.
        os.chmod(tmp, _target_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically; return the path written."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically, newlines exactly as given; return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync_file(path: Path) -> None:
    """Force the file's bytes to disk before the rename makes them visible."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); Windows cannot open a folder, and needn't."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and network mounts) refuse fsync on a folder
    finally:
        os.close(fd)


def _target_mode(target: Path) -> int:
    """Keep an existing file's mode; a new file gets 0666 minus the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_current_umask()


def _current_umask() -> int:
    """Read the umask without changing it.

    `os.umask()` can only be read by setting it, which races with other threads
    creating files; Linux exposes it in /proc/self/status instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK_UMASK
