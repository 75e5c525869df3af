"""Named gates that hold simulated requests until a test opens them."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter


class Gates:
    """Named gates that hold requests until a test opens them.

    Why: a test that needs "N calls in flight right now" (a concurrency proof,
    Ctrl-C with calls outstanding, finishing order) must not guess with
    latencies and sleeps. A request with ``sim:hold=NAME`` waits at gate NAME;
    ``notify_when_held`` wakes a test thread once enough are waiting;
    ``release`` opens the gate for good (until ``clear``). Event-loop only.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._open: set[str] = set()
        self._held: Counter[str] = Counter()
        self._waiters: list[tuple[str, int, threading.Event]] = []

    async def pass_through(self, name: str) -> None:
        """Return at once if ``name`` is open, else wait until it is released."""
        if name in self._open:
            return
        event = self._events.setdefault(name, asyncio.Event())
        self._held[name] += 1
        self._notify(name)
        try:
            await event.wait()
        finally:
            self._held[name] -= 1
            if self._held[name] <= 0:
                del self._held[name]

    def release(self, name: str) -> None:
        self._open.add(name)
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def notify_when_held(self, name: str, count: int, event: threading.Event) -> None:
        """Set ``event`` (a thread's) once ``count`` requests wait at gate ``name``."""
        if self._held[name] >= count:
            event.set()
        else:
            self._waiters.append((name, count, event))

    def held(self) -> dict[str, int]:
        return {name: count for name, count in self._held.items() if count}

    def clear(self) -> None:
        """Let everything held go, then close all gates again."""
        for event in self._events.values():
            event.set()
        self._events.clear()
        self._open.clear()

    def _notify(self, name: str) -> None:
        if not self._waiters:
            return
        held = self._held[name]
        still_waiting = []
        for waiter in self._waiters:
            if waiter[0] == name and held >= waiter[1]:
                waiter[2].set()
            else:
                still_waiting.append(waiter)
        self._waiters = still_waiting
