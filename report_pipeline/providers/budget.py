"""A run's spending, shared by every thread: each call's worst case is reserved before it is sent.

`max_cost_usd` is a hard cap. Counting a call only once it is answered let a run pass its
cap by every call already in flight (with $10,000 per million tokens, two in flight and a
$3 cap, a run spent $5.21). So a call is sent only once its worst case fits: its prompt at
one token per byte (a byte-level tokenizer never makes more) plus `max_tokens` of output,
at the model's price, on top of what was spent and what the calls in flight reserved. When
its usage comes back the reservation is settled at the real cost and the rest is freed; a
call that fails frees all of it. A call that would fit once the calls in flight have
settled waits for them (they usually cost far less than their worst case); one that would
not fit even then stops the run (BudgetExceeded).
"""

from __future__ import annotations

import threading

from ..errors import BudgetExceeded
from .ratelimit import Stopped

__all__ = ["CostMeter", "Reservation"]

# Costs are sums of float products: a reservation that fits exactly must not be refused by rounding.
_EPSILON = 1e-12


class CostMeter:
    """Dollars spent so far and dollars reserved by calls in flight, against `max_cost_usd`."""

    def __init__(self, max_cost_usd: float | None = None) -> None:
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError("max_cost_usd must be >= 0")
        self.max_cost_usd = max_cost_usd
        self._lock = threading.Condition()
        self._spent = 0.0
        self._reserved = 0.0
        self._stopped = False

    @property
    def spent(self) -> float:
        return self._spent

    @property
    def reserved(self) -> float:
        """What the calls in flight may still cost at most."""
        return self._reserved

    def check(self) -> None:
        """Raise BudgetExceeded if nothing more may be sent."""
        limit = self.max_cost_usd
        spent = self._spent
        if limit is not None and spent >= limit:
            raise BudgetExceeded(
                f"budget reached: ${spent:.4f} spent of max_cost_usd ${limit:.2f}; "
                "nothing more is sent. Raise max_cost_usd and re-run (completed calls are cached)."
            )

    def reserve(self, worst_usd: float, *, what: str = "the next call") -> Reservation:
        """Hold `worst_usd` for a call about to be sent, waiting for calls in flight to settle if that makes
        room; BudgetExceeded (nothing sent) when it cannot fit, Stopped when the run stops meanwhile."""
        limit = self.max_cost_usd
        with self._lock:
            while limit is not None and self._spent + self._reserved + worst_usd > limit + _EPSILON:
                if self._spent + worst_usd > limit + _EPSILON or self._reserved <= 0:
                    raise BudgetExceeded(self._refusal(worst_usd, limit, what))
                if self._stopped:
                    raise Stopped("the run is stopping")
                self._lock.wait()
            self._reserved += worst_usd
        return Reservation(self, worst_usd)

    def stop(self) -> None:
        """Wake every call waiting for room: the run is stopping."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def add(self, cost_usd: float) -> float:
        """Record a cost that had no reservation (a resumed run's earlier spend); returns the new total."""
        if cost_usd < 0:
            raise ValueError("a cost cannot be negative")
        with self._lock:
            self._spent += cost_usd
            return self._spent

    def _settle(self, reserved: float, cost_usd: float) -> None:
        if cost_usd < 0:
            raise ValueError("a cost cannot be negative")
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            self._spent += cost_usd
            self._lock.notify_all()

    def _refusal(self, worst: float, limit: float, what: str) -> str:
        if worst > limit:
            return (f"budget: {what} could cost up to ${worst:.4f} (its prompt and max_tokens at the model's "
                    f"price), more than max_cost_usd ${limit:.2f} on its own: nothing is sent. Lower max_tokens "
                    "or raise max_cost_usd")
        left = max(0.0, limit - self._spent)
        return (f"budget reached: ${self._spent:.4f} spent of max_cost_usd ${limit:.2f}; {what} could cost up to "
                f"${worst:.4f} (its prompt and max_tokens at the model's price), more than the ${left:.4f} left, "
                "so nothing more is sent. Raise max_cost_usd and re-run (completed calls are cached).")


class Reservation:
    """One call's hold on the budget: settled at its real cost, or released, exactly once."""

    def __init__(self, meter: CostMeter, amount: float) -> None:
        self._meter = meter
        self.amount = amount
        self._open = True
        self._lock = threading.Lock()

    def settle(self, cost_usd: float) -> None:
        """The call was answered (or billed without an answer): its real cost replaces the hold."""
        self._close(cost_usd)

    def release(self) -> None:
        """The call cost nothing (it failed, or was never sent): the hold goes."""
        self._close(0.0)

    def _close(self, cost_usd: float) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._meter._settle(self.amount, cost_usd)
