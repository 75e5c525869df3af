"""What an endpoint taught earlier runs, recalled at the start of a run and kept at its end.

Three lessons, each per endpoint (`provider base_url`) in the ledger, each good for two
weeks (a weekly report's next run included; older, they are learned again):

    rate limits   the `x-ratelimit-*` headers' limits: the next run paces at them from
                  its first call instead of probing (ratelimit.py)
    parameters    what each model takes (`max_completion_tokens` or `max_tokens`, a
                  temperature, `reasoning_effort`): the next run sends the right body first
                  (providers/openai/dialect.py)
    concurrency   how many calls each model served at once when the run ended: the next
                  run starts there (providers/concurrency.py)
"""

from __future__ import annotations

import logging
import time

from ..ledger.store import Ledger
from ..providers.concurrency import Concurrency
from ..providers.openai.dialect import Dialect, Dialects
from ..providers.ratelimit import Throttle

__all__ = ["MEMORY_S", "recall", "remember"]

log = logging.getLogger("report_pipeline.pipeline")

#: How long a lesson serves later runs.
MEMORY_S = 14 * 86_400.0


def recall(ledger: Ledger, provider: str, base_url: str | None, *, throttle: Throttle,
           dialects: Dialects | None, concurrency: Concurrency) -> None:
    """Pace at the limits, send the bodies and start at the concurrency that earlier runs learned."""
    limits_in_flight = ledger.recall_concurrency(provider, base_url, max_age_s=MEMORY_S)
    if limits_in_flight and concurrency.mode == "adaptive":
        concurrency.recall(limits_in_flight)
        log.info("calls in flight as learned before: %s",
                 ", ".join(f"{model} {limit}" for model, limit in sorted(limits_in_flight.items())))
    recalled = ledger.recall_limits(provider, base_url, max_age_s=MEMORY_S)
    if recalled is not None:
        limits, learned_at = recalled
        throttle.pacer.recall(limits)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(learned_at))
        if limits.paced:
            log.info("rate limits as learned on %s: %s; pacing at them from the first call", when, limits.describe())
        else:
            log.info("as learned on %s, the endpoint sends no rate-limit headers: no probe, calls go at once", when)
    if dialects is None:
        return
    known = {model: dialect for model, fields in ledger.recall_params(provider, base_url, max_age_s=MEMORY_S).items()
             if (dialect := Dialect.from_dict(fields)) is not None}
    if known:
        dialects.recall(known)
        log.info("request parameters as learned before, for %s", ", ".join(sorted(known)))


def remember(ledger: Ledger, provider: str, base_url: str | None, *, throttle: Throttle,
             dialects: Dialects | None, concurrency: Concurrency) -> None:
    """Keep what this run learned; what it did not learn (no answer came back) keeps what was known."""
    in_flight = concurrency.learned()
    if in_flight:
        ledger.remember_concurrency(provider, base_url, in_flight)
    limits = throttle.pacer.learned()
    if limits is not None:
        ledger.remember_limits(provider, base_url, limits)
    learned = dialects.learned() if dialects is not None else {}
    if learned:
        ledger.remember_params(provider, base_url, {model: d.as_dict() for model, d in learned.items()})
