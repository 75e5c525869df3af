"""What every call of a run shares: the budget, the retry policy, the throttle and the in-flight limit.

Built once by the composition root (pipeline.py) from the run's config and handed to the
provider, so the root keeps its own references: it counts a resumed run's earlier spend on
the meter, recalls and remembers the throttle's learned limits, and stops the throttle on
Ctrl-C, without reaching into the provider for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from .budget import CostMeter
from .concurrency import Concurrency, ConcurrencyLimit
from .ratelimit import (
    HeaderPacer,
    RateLimiter,
    Sleeper,
    SleeperLike,
    Throttle,
)
from .retry import RetryPolicy
from .shared_pace import SharedPace, default_directory

__all__ = ["CallControls"]


@dataclass(frozen=True)
class CallControls:
    """The run's shared call machinery (each piece thread-safe)."""

    meter: CostMeter
    policy: RetryPolicy
    throttle: Throttle
    in_flight: ConcurrencyLimit  # every model together: max_concurrent_requests, fixed
    concurrency: Concurrency

    def close(self) -> None:
        """The run is over: let go of the file it shared with other runs on the key."""
        if isinstance(self.throttle.shared, SharedPace):
            self.throttle.shared.close()

    def stop(self) -> None:
        """Nothing more is sent: wake every thread waiting to send, and refuse what it would send."""
        self.throttle.stop()
        self.concurrency.stop()
        self.in_flight.stop()
        self.meter.stop()

    @classmethod
    def for_config(
        cls,
        config: RunConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleeper: SleeperLike | None = None,
        meter: CostMeter | None = None,
        policy: RetryPolicy | None = None,
        pacer: HeaderPacer | None = None,
    ) -> CallControls:
        """The controls a config asks for; a test may put in its own clock, sleeper, policy or pacer."""
        sleeper = sleeper or Sleeper()
        shared = None
        if config.shared_pacing and config.provider != "offline":
            directory = Path(config.shared_pacing_dir) if config.shared_pacing_dir else default_directory()
            key = config.api_key.get_secret_value() if config.api_key else None
            shared = SharedPace.open(directory, config.provider, config.base_url, key)
        return cls(
            meter=meter or CostMeter(config.max_cost_usd),
            policy=policy or RetryPolicy(max_retries=config.max_retries),
            throttle=Throttle(
                limiter=RateLimiter(config.requests_per_minute, config.tokens_per_minute, clock=clock, sleeper=sleeper),
                pacer=pacer or HeaderPacer(clock=clock),
                clock=clock,
                sleeper=sleeper,
                shared=shared,
            ),
            in_flight=ConcurrencyLimit(maximum=config.max_concurrent_requests,
                                       initial=config.max_concurrent_requests, adaptive=False),
            concurrency=Concurrency(maximum=config.max_concurrent_requests, base_url=config.base_url,
                                    mode=config.concurrency, clock=clock),
        )
