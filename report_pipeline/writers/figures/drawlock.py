"""One lock for every matplotlib figure drawn in a process: matplotlib is not thread-safe.

Its FAQ ("Working with threads") asks callers to serialise access themselves. It
lives apart from charts.py and timeline.py so that importing it costs nothing:
the timeline's child process takes it without pandas, which charts.py needs.
"""

from __future__ import annotations

import threading

__all__ = ["DRAW_LOCK"]

DRAW_LOCK = threading.Lock()
