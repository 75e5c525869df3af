"""Samples the process's CPU, memory, threads and open files in the background, and keeps the peaks
a sample could miss from where they are known for certain.

Sampling once a second missed a short run's peaks (a 1.4 s run reported 4 threads while 16
task threads ran), so: samples come every 0.1 s for the first 2 s, then every second; the
peak RSS is the operating system's own high-water mark (`getrusage`'s ru_maxrss) where it
keeps one; and the run reports its thread count each time a task starts (`note_threads`),
which is when the pools grow. Peaks and averages go into run.json; a warning is logged once
when RSS passes the limit.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass

import psutil

log = logging.getLogger("report_pipeline.monitor")

#: Fast samples at the start of a run, when pools grow and a short run does all its work.
_FAST_INTERVAL_S = 0.1
_FAST_SAMPLES = 20


def _peak_rss_mb() -> float | None:
    """The process's peak resident set size as the operating system keeps it; None where it keeps none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1_048_576 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


@dataclass
class ResourceStats:
    samples: int = 0
    peak_rss_mb: float = 0.0
    peak_threads: int = 0
    peak_open_files: int = 0
    peak_cpu_percent: float = 0.0
    _cpu_sum: float = 0.0
    _rss_sum: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        n = max(1, self.samples)
        return {
            "samples": self.samples,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "avg_rss_mb": round(self._rss_sum / n, 1),
            "peak_cpu_percent": round(self.peak_cpu_percent, 1),
            "avg_cpu_percent": round(self._cpu_sum / n, 1),
            "peak_threads": self.peak_threads,
            "peak_open_files": self.peak_open_files,
        }


class ResourceMonitor:
    """A daemon thread sampling psutil every `interval_s` until stopped."""

    def __init__(self, *, interval_s: float = 1.0, rss_warn_mb: float = 1024.0) -> None:
        self._interval_s = interval_s
        self._rss_warn_mb = rss_warn_mb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self.stats = ResourceStats()
        self._warned = False

    def __enter__(self) -> ResourceMonitor:
        self._process.cpu_percent(None)  # prime: the first reading is always 0
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        peak = _peak_rss_mb()
        if peak is not None:
            self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, peak)

    def note_threads(self) -> None:
        """Take the thread count now (a task started: the pools may have grown since the last sample)."""
        count = threading.active_count()
        stats = self.stats
        if count > stats.peak_threads:
            stats.peak_threads = count

    def _loop(self) -> None:
        interval = _FAST_INTERVAL_S if self._interval_s > _FAST_INTERVAL_S else self._interval_s
        fast = _FAST_SAMPLES
        while not self._stop.wait(interval):
            self.sample()
            fast -= 1
            if fast == 0:
                interval = self._interval_s

    def sample(self) -> None:
        try:
            with self._process.oneshot():
                rss_mb = self._process.memory_info().rss / 1_048_576
                cpu = self._process.cpu_percent(None)
                threads = self._process.num_threads()
                try:
                    open_files = len(self._process.open_files())
                except (psutil.Error, OSError):
                    open_files = 0
        except psutil.Error:
            return
        s = self.stats
        s.samples += 1
        s.peak_rss_mb = max(s.peak_rss_mb, rss_mb)
        s.peak_threads = max(s.peak_threads, threads)
        s.peak_open_files = max(s.peak_open_files, open_files)
        s.peak_cpu_percent = max(s.peak_cpu_percent, cpu)
        s._cpu_sum += cpu
        s._rss_sum += rss_mb
        if rss_mb > self._rss_warn_mb and not self._warned:
            self._warned = True
            log.warning("memory: RSS %.0f MB passed the limit of %.0f MB (rss_warn_mb)", rss_mb, self._rss_warn_mb)


def process_started_at() -> float:
    """When this process started, as a Unix time to the clock tick.

    psutil's `create_time` adds the tick count to the boot time, which Linux gives in whole
    seconds (up to a second off: it made start-up look 0.5 s slower); the uptime is precise."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, after the name
            up = float(uptime.read().split()[0])
        return time.time() - up + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return psutil.Process().create_time()
