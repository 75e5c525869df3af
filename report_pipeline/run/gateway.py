"""Every LLM call of a run goes through one `CallGateway`: cache first, then the provider,
then the ledger, so nothing paid for is ever paid for twice.

The cache key hashes everything that determines the answer (provider, base_url and the
request's sampling parameters), so editing one prompt re-runs exactly that call and
those whose prompts contain its text (its dependents).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from ..errors import LedgerError, ProviderError
from ..ledger.store import CachedCall, Ledger, request_hash
from ..providers.base import ChatRequest, ChatResponse, Provider

log = logging.getLogger("report_pipeline.gateway")


class CallGateway:
    """Cache lookup, provider call and ledger record for one request; shared by every task thread."""

    def __init__(
        self,
        provider: Provider,
        *,
        ledger: Ledger | None,
        run_id: str,
        base_url: str | None,
        use_cache: bool,
        durable: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._provider = provider
        self._ledger = ledger
        self._run_id = run_id
        self._base_url = base_url
        self._use_cache = use_cache and ledger is not None
        # a paid call is on disk before its task goes on, so a kill -9 never makes us pay twice
        self._durable = durable
        self._clock = clock
        # A ledger with no answer yet (a first run) can only serve what this run itself has paid
        # for: those hashes are kept here, and every other lookup, a SQLite read on 50 threads'
        # GIL per call, is skipped.
        self._cache_empty = self._use_cache and ledger is not None and not ledger.has_answers()
        self._paid: set[str] = set()

    def __call__(self, request: ChatRequest) -> ChatResponse:
        task_key, _, step = request.label.rpartition(".")
        if self._ledger is None:
            return self._provider.complete(request)
        key = request_hash(self._provider.name, self._base_url, request.sampling())
        if self._use_cache:
            cached = self._cached(request, key)
            if cached is not None:
                log.debug("call %s served from the cache (first paid in run %s)", request.label, cached.run_id)
                response = cached.to_response()
                if cached.run_id == self._run_id:  # paid by this run before it was stopped: still this run's cost
                    response = dataclasses.replace(response, cost_usd=cached.original_cost_usd)
                self._record(request, task_key, step, key, response, cached=True)
                return response
        started = self._clock()
        try:
            response = self._provider.complete(request)
        except ProviderError as error:
            self._ledger.record_call(
                run_id=self._run_id, task_key=task_key, step=step, request_hash=key,
                provider=self._provider.name, base_url=self._base_url, model=request.model,
                messages=request.messages, response_text=None, prompt_tokens=0, completion_tokens=0,
                cost_usd=0.0, latency_s=self._clock() - started, attempts=error.attempts,
                status="error", error=str(error),
            )
            raise
        self._record(request, task_key, step, key, response, cached=False)
        self._paid.add(key)
        if self._durable:
            self._ledger.flush()
        return response

    def _cached(self, request: ChatRequest, key: str) -> CachedCall | None:
        """The cached answer, if any; a ledger row that cannot be read (a damaged page) is a miss, not a failure."""
        if self._cache_empty and key not in self._paid:
            return None
        try:
            return self._ledger.cached_response(key)
        except LedgerError as error:
            log.warning("call %s: the cache could not be read (%s); calling the model instead", request.label, error)
            return None

    def _record(
        self, request: ChatRequest, task_key: str, step: str, key: str, response: ChatResponse, *, cached: bool
    ) -> None:
        assert self._ledger is not None
        self._ledger.record_call(
            run_id=self._run_id, task_key=task_key, step=step, request_hash=key,
            provider=self._provider.name, base_url=self._base_url, model=response.model or request.model,
            messages=request.messages, response_text=response.text, prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens, cost_usd=response.cost_usd,
            latency_s=response.latency_s, attempts=response.attempts, status="ok", cached=cached,
            reasoning_tokens=response.reasoning_tokens, cached_tokens=response.cached_tokens,
        )
