"""Runs on one machine and one key share its rate: bookings in one file, across threads and processes,
and two whole runs at once against the simulator's limit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from report_pipeline.providers.shared_pace import SharedPace, endpoint_file_name
from tests.test_pipeline_simulator import openai_config, run
from tests.workbooks import simple_workbook

pytest.importorskip("fcntl")


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_two_runs_booking_at_once_get_slots_one_interval_apart(tmp_path: Path) -> None:
    wall, mono_a, mono_b = _Clock(1_000.0), _Clock(5.0), _Clock(70.0)  # each run its own monotonic clock
    path = tmp_path / "pace.json"
    a = SharedPace(path, wall_clock=wall, clock=mono_a)
    b = SharedPace(path, wall_clock=wall, clock=mono_b)
    sends = []
    for _ in range(3):
        sends.append(a.book(mono_a.now, request_rate=10.0, token_rate=None, tokens=0) - mono_a.now)
        sends.append(b.book(mono_b.now, request_rate=10.0, token_rate=None, tokens=0) - mono_b.now)
    assert sends == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert (a.moved, b.moved) == (2, 3)


def test_a_booking_in_the_past_costs_nothing_and_a_torn_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "pace.json"
    path.write_text(json.dumps({"requests_tat": 10.0}))  # a run that crashed long ago
    pace = SharedPace(path, wall_clock=_Clock(1_000.0), clock=_Clock(0.0))
    assert pace.book(0.0, request_rate=5.0, token_rate=None, tokens=0) == 0.0
    path.write_bytes(b'{"requests_t')
    assert pace.book(0.0, request_rate=5.0, token_rate=None, tokens=0) == 0.0


def test_tokens_are_paced_by_the_size_of_each_call(tmp_path: Path) -> None:
    pace = SharedPace(tmp_path / "pace.json", wall_clock=_Clock(0.0), clock=_Clock(0.0))
    assert pace.book(0.0, request_rate=None, token_rate=1_000.0, tokens=500) == 0.0
    assert pace.book(0.0, request_rate=None, token_rate=1_000.0, tokens=500) == pytest.approx(0.5)


def test_the_file_is_named_by_a_hash_and_never_holds_the_key(tmp_path: Path) -> None:
    pace = SharedPace.open(tmp_path, "openai", "https://api.example.test/v1", "sk-live-SECRET123")
    assert pace is not None
    pace.book(0.0, request_rate=1.0, token_rate=None, tokens=0)
    pace.close()
    (path,) = tmp_path.iterdir()
    assert path.name == endpoint_file_name("openai", "https://api.example.test/v1", "sk-live-SECRET123")
    assert "SECRET" not in path.name and b"SECRET" not in path.read_bytes()
    assert path.stat().st_mode & 0o077 == 0
    assert endpoint_file_name("openai", None, "sk-a") != endpoint_file_name("openai", None, "sk-b")


_BOOKER = """
import sys, time
from pathlib import Path
from report_pipeline.providers.shared_pace import SharedPace
pace = SharedPace(Path(sys.argv[1]))
now = time.monotonic()
for _ in range(25):
    print(pace.book(now, request_rate=200.0, token_rate=None, tokens=0) - now + time.time() - time.monotonic() + now)
"""


def test_processes_that_book_at_once_never_share_a_slot(tmp_path: Path) -> None:
    path = tmp_path / "pace.json"
    children = [subprocess.Popen([sys.executable, "-c", _BOOKER, str(path)], stdout=subprocess.PIPE, text=True)
                for _ in range(3)]
    sends = sorted(float(line) for child in children for line in child.communicate(timeout=60)[0].split())
    assert all(child.returncode == 0 for child in children)
    assert len(sends) == 75
    gaps = [later - earlier for earlier, later in zip(sends, sends[1:])]
    assert min(gaps) >= 1 / 200 - 1e-3  # one interval apart, whichever process booked


def _two_runs_at_once(tmp_path: Path, sim, *, shared: bool, per_window: int = 10, objectives: int = 2) -> list:
    results: list = []
    sheets = [simple_workbook(tmp_path / f"wb{n}", objectives, 10 if objectives == 2 else 20) for n in range(2)]

    def one(n: int) -> None:
        config = openai_config(sim, tmp_path / f"out{n}", requests_per_minute=60 * per_window,
                               max_concurrent_requests=8, shared_pacing=shared,
                               shared_pacing_dir=str(tmp_path / "pace"), concurrency="fixed")
        results.append(run(sheets[n], config))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_two_runs_on_one_key_keep_its_limit_together(tmp_path, make_simulator):
    """The issue's cron case: two workbooks at once, each with requests_per_minute at the key's limit."""
    sim = make_simulator(requests_per_window=10, window_s=1.0)
    results = _two_runs_at_once(tmp_path, sim, shared=True)
    assert [r.exit_code for r in results] == [0, 0]
    stats = sim.stats()
    assert stats["rate_limited"] <= 0.02 * stats["calls"] + 1


def test_without_sharing_the_same_two_runs_keep_the_limit_by_the_servers_count(tmp_path, make_simulator):
    # each run sees the other in `remaining` and takes its share (issue 24, point 3). 200 calls at
    # 40 a second, so that the steady pace decides, not where the two start-up bursts happen to
    # land (with 40 calls at 10 a second the count was 2-9 with or without the fix): 1-2 refused
    # here, 8-16 before the fix
    sim = make_simulator(requests_per_window=40, window_s=1.0)
    results = _two_runs_at_once(tmp_path, sim, shared=False, per_window=40, objectives=5)
    assert [r.exit_code for r in results] == [0, 0]
    stats = sim.stats()
    assert stats["rate_limited"] <= 0.02 * stats["calls"]


def test_a_folder_that_cannot_be_made_leaves_the_run_pacing_alone_and_says_so(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level("WARNING"):
        assert SharedPace.open(blocker / "pace", "openai", None, "sk-x") is None
    assert "will not share its rate limit" in caplog.text and "sk-x" not in caplog.text
