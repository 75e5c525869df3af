"""Samples the process's CPU, memory, threads and open files once a second in the background.

Peaks and averages go into run.json; a warning is logged once when RSS passes the limit.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psutil

log = logging.getLogger("report_pipeline.monitor")


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

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

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
