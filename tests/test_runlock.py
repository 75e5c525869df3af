"""One run per output folder: the lock refuses a live holder and takes over a dead one.

Other processes are real subprocesses, gated by their stdout/stdin pipes, never by sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from report_pipeline.errors import RunLocked
from report_pipeline.ledger.runlock import LOCK_FILE_NAME, LockInfo, RunLock, read_lock

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from report_pipeline.ledger.runlock import RunLock
    with RunLock(Path(sys.argv[1]), sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.read()  # hold it until the test closes our stdin
    """
)
LOCK_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from report_pipeline.ledger.runlock import RunLock
    RunLock(Path(sys.argv[1]), sys.argv[2]).acquire()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on tmp_path as run `child-run` until the test ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), "child-run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        yield process
        assert process.stdin is not None
        process.stdin.close()  # lets it release and leave
        process.wait(timeout=60)


def write_lock_file(folder: Path, **fields: object) -> Path:
    info = {"run_id": "old-run", "pid": os.getpid(), "host": socket.gethostname(), "started_at": 1_714_564_800.0}
    info.update(fields)
    path = folder / LOCK_FILE_NAME
    path.write_text(json.dumps(info))
    return path


def test_the_lock_file_names_the_run_and_is_removed_on_exit(tmp_path: Path) -> None:
    with RunLock(tmp_path, "run-1", clock=lambda: 1_714_564_800.0) as lock:
        assert lock.locked and lock.taken_over is None
        assert read_lock(tmp_path) == LockInfo("run-1", os.getpid(), socket.gethostname(), 1_714_564_800.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE_NAME]  # no temporary file left
    assert not lock.locked
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_in_the_same_process_is_refused_naming_the_first(tmp_path: Path) -> None:
    with RunLock(tmp_path, "run-1", clock=lambda: 1_714_564_800.0):
        with pytest.raises(RunLocked) as raised:
            RunLock(tmp_path, "run-2").acquire()
    message = str(raised.value)
    assert f"{tmp_path} is in use by run run-1 (pid {os.getpid()} on {socket.gethostname()}" in message
    assert "started 2024-05-01T12:00:00Z" in message
    assert "--output" in message


def test_a_run_in_another_process_is_refused_naming_its_run_and_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(RunLocked, match=rf"in use by run child-run \(pid {holder.pid} on "):
        RunLock(tmp_path, "me").acquire()
    assert (tmp_path / LOCK_FILE_NAME).exists()  # the holder's lock is untouched


def test_the_folder_is_free_again_once_the_other_run_ends(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), "child-run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    with RunLock(tmp_path, "me") as lock:
        assert lock.taken_over is None  # released cleanly, nothing stale


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    died = subprocess.run([sys.executable, "-c", LOCK_AND_DIE, str(tmp_path), "crashed-run"], timeout=120)
    assert died.returncode == -signal.SIGKILL
    assert read_lock(tmp_path) is not None and read_lock(tmp_path).run_id == "crashed-run"  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="report_pipeline.runlock"):
        with RunLock(tmp_path, "next-run") as lock:
            assert lock.taken_over is not None and lock.taken_over.run_id == "crashed-run"
            assert read_lock(tmp_path).run_id == "next-run"  # type: ignore[union-attr]
    assert "taking over the lock of run crashed-run" in caplog.text


def test_a_stale_lock_is_taken_over_even_if_its_pid_is_alive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The pid was reused (here: it is our own): nobody holds the flock, so nobody holds the folder."""
    write_lock_file(tmp_path, pid=os.getpid())
    with caplog.at_level(logging.WARNING, logger="report_pipeline.runlock"):
        with RunLock(tmp_path, "new-run") as lock:
            assert lock.taken_over is not None and lock.taken_over.run_id == "old-run"
    assert "its pid now belongs to another program" in caplog.text


def test_an_unreadable_lock_file_nobody_holds_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE_NAME).write_bytes(b"\x00garbage")
    with RunLock(tmp_path, "new-run") as lock:
        assert lock.locked and lock.taken_over is None
        assert read_lock(tmp_path).run_id == "new-run"  # type: ignore[union-attr]


def test_of_many_runs_starting_at_once_exactly_one_gets_the_folder(tmp_path: Path) -> None:
    write_lock_file(tmp_path, run_id="stale-run")  # they race to replace a stale lock, too
    contenders = 16
    start = threading.Barrier(contenders)
    winners: list[RunLock] = []
    refused: list[str] = []

    def contend(n: int) -> None:
        lock = RunLock(tmp_path, f"run-{n}")
        start.wait()
        try:
            lock.acquire()
            winners.append(lock)
        except RunLocked as error:
            refused.append(str(error))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(refused) == contenders - 1
    assert all(f"in use by run {winners[0].run_id} " in message for message in refused)
    winners[0].release()
    assert list(tmp_path.iterdir()) == []


def test_release_is_idempotent_and_the_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = RunLock(tmp_path, "run-1")
    lock.acquire()
    with pytest.raises(RuntimeError, match="already held"):
        lock.acquire()
    lock.release()
    lock.release()
    lock.acquire()
    assert read_lock(tmp_path).run_id == "run-1"  # type: ignore[union-attr]
    lock.release()


def test_the_output_folder_is_created_if_missing(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "output"
    with RunLock(folder, "run-1"):
        assert (folder / LOCK_FILE_NAME).exists()


def test_runs_shows_a_run_killed_with_kill_9_as_interrupted_without_writing(tmp_path: Path) -> None:
    """The ledger still says running (nobody marked it); the lock's process is gone."""
    from report_pipeline.ledger.history import describe_run, list_runs
    from report_pipeline.ledger.runlock import live_run_id
    from report_pipeline.ledger.store import DEFAULT_LEDGER_NAME, Ledger

    with Ledger(tmp_path / DEFAULT_LEDGER_NAME) as ledger:
        ledger.start_run("crashed-run", "sheet.xlsx", "hash", "config", 3)
    died = subprocess.run([sys.executable, "-c", LOCK_AND_DIE, str(tmp_path), "crashed-run"], timeout=120)
    assert died.returncode == -signal.SIGKILL
    before = (tmp_path / DEFAULT_LEDGER_NAME).stat().st_mtime_ns
    assert live_run_id(tmp_path) is None
    assert "interrupted" in list_runs(tmp_path).splitlines()[1]
    assert describe_run(tmp_path, "crashed-run").splitlines()[0] == "run crashed-run: interrupted"
    assert "--resume crashed-run" in describe_run(tmp_path, "crashed-run")
    assert (tmp_path / DEFAULT_LEDGER_NAME).stat().st_mtime_ns == before
    assert read_lock(tmp_path) is not None  # the stale lock is left for the next run to take over


def test_runs_shows_a_live_run_as_running(tmp_path: Path) -> None:
    from report_pipeline.ledger.history import list_runs
    from report_pipeline.ledger.store import DEFAULT_LEDGER_NAME, Ledger

    with Ledger(tmp_path / DEFAULT_LEDGER_NAME) as ledger:
        ledger.start_run("child-run", "sheet.xlsx", "hash", "config", 3)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), "child-run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        assert "running" in list_runs(tmp_path).splitlines()[1]
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)
