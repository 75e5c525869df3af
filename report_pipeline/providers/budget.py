"""A run's spending, shared by every thread, checked before each call is sent."""

from __future__ import annotations

import threading

from ..errors import BudgetExceeded

__all__ = ["CostMeter"]


class CostMeter:
    """Dollars spent so far, and a stop when `max_cost_usd` is reached.

    `check()` runs before a call is sent and `add()` after it is answered, so the
    spend can pass the cap by at most the calls already in flight when it was
    reached (at most `max_concurrent_requests` calls): a call on the wire is paid
    for whatever we decide.
    """

    def __init__(self, max_cost_usd: float | None = None) -> None:
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError("max_cost_usd must be >= 0")
        self.max_cost_usd = max_cost_usd
        self._lock = threading.Lock()
        self._spent = 0.0

    @property
    def spent(self) -> float:
        return self._spent

    def check(self) -> None:
        """Raise BudgetExceeded if nothing more may be sent."""
        limit = self.max_cost_usd
        spent = self._spent
        if limit is not None and spent >= limit:
            raise BudgetExceeded(
                f"budget reached: ${spent:.4f} spent of max_cost_usd ${limit:.2f}; "
                "nothing more is sent. Raise max_cost_usd and re-run (completed calls are cached)."
            )

    def add(self, cost_usd: float) -> float:
        """Record a call's cost; returns the new total."""
        if cost_usd < 0:
            raise ValueError("a cost cannot be negative")
        with self._lock:
            self._spent += cost_usd
            return self._spent
