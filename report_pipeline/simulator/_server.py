"""``SimulatorServer``: the aiohttp application and all mutable simulator state."""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from report_pipeline.simulator._batch import RequestResult
from report_pipeline.simulator._batches import BatchService
from report_pipeline.simulator._chat import (
    BAD_JSON_CONTENT,
    Answer,
    ChatRequest,
    ParamError,
    PromptCache,
    clip_to_tokens,
    completion_payload,
    compose_answer,
    error_payload,
    reasoned,
    stream_events,
)
from report_pipeline.simulator._config import SimulatorConfig, is_int
from report_pipeline.simulator._gates import Gates
from report_pipeline.simulator._http import JSON_HEADERS, read_json_object
from report_pipeline.simulator._ratelimit import (
    RateDecision,
    RateLimiter,
    retry_after_headers,
)

# A listen backlog far above the default 128, so a burst of 1,000+ connects is
# queued by the kernel instead of refused (the kernel caps it at somaxconn).
_BACKLOG = 4096
# Bodies carry whole data tables rendered as Markdown; aiohttp's 1 MiB default
# would reject a big prompt with 413 before we could answer it. (File uploads
# are streamed, and limited by ``batch_max_bytes`` instead.)
_CLIENT_MAX_SIZE = 64 * 1024 * 1024
# How long shutdown waits for in-flight handlers before cancelling them. Short,
# because a test's teardown must not wait out a 30 s "hang" fault.
_SHUTDOWN_GRACE_S = 1.0
_MALFORMED_BODY = b'{"id": "chatcmpl-sim-malformed", "object": "chat.completion", "choi'
_DROPPED_BODY_PREFIX = b'{"id": "chatcmpl-sim-dropped", "object": "chat.completion", "cho'
# A streamed answer that dies mid-event, and one whose event is not JSON.
_DROPPED_EVENT_PREFIX = b'data: {"id": "chatcmpl-sim-dropped", "object": "chat.completion.chunk", "cho'
_MALFORMED_EVENT = b'data: {"id": "chatcmpl-sim-malformed", "object": "chat.completion.chunk", "choi\n\n'
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# The dropped response promises more bytes than it sends, so the client sees
# the connection close mid-body rather than a short but complete response.
_DROPPED_CONTENT_LENGTH = 4096


class _Draws(NamedTuple):
    """The seeded random numbers one request uses."""

    jitter: float
    fault: float
    split: float

    def latency(self, config: SimulatorConfig) -> float:
        """The answer's latency: the median with lognormal tails (`latency_sigma`) or uniform jitter."""
        if config.latency_sigma > 0:
            z = statistics.NormalDist().inv_cdf(min(max(self.jitter, 1e-12), 1 - 1e-12))
            return config.latency_s * math.exp(config.latency_sigma * z)
        return config.latency_s + self.jitter * config.latency_jitter_s

    @classmethod
    def take(cls, rng: random.Random) -> _Draws:
        # Always three draws, whatever the config or outcome, so one seed
        # gives one reproducible sequence.
        return cls(rng.random(), rng.random(), rng.random())


class _Outcome(NamedTuple):
    """What a request will get: "ok", "error" (with status), "hang", "drop",
    "malformed" or "bad_json"."""

    kind: str
    status: int = 200
    message: str = ""

    @property
    def fault(self) -> str | None:
        """The ``stats["faults"]`` key for this outcome, or None when it is not one."""
        if self.kind == "ok":
            return None
        return str(self.status) if self.kind == "error" else self.kind


_OK = _Outcome("ok")
_SERVER_ERROR_MESSAGE = "The server had an error while processing your request (simulated)."


@dataclass
class SimulatorStats:
    """Counters a test or benchmark reads through ``/_sim/stats``.

    ``calls`` is every chat request received (even rejected ones);
    ``completed`` the 200 answers with a valid body; ``faults`` counts by kind
    ("500", "503", "hang", "drop", "malformed", "401", a directive status such
    as "400", "bad_json"). All of them are real-time chat counters: batch
    requests are counted apart (see ``BatchCounters``).
    """

    calls: int = 0
    completed: int = 0
    rate_limited: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    status_counts: Counter[str] = field(default_factory=Counter)
    peak_in_flight: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls_by_label: Counter[str] = field(default_factory=Counter)
    computed: int = 0  # with `slots`: answers the server started computing (a retry of a timed-out call counts again)
    dropped_in_queue: int = 0  # with `slots`: requests abandoned before their turn came (skipped)
    busy_s: float = 0.0  # with `slots`: seconds of computing, summed over the slots
    drawn_latency_s: float = 0.0  # every latency drawn (the least work a client could wait for)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "completed": self.completed,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "status_counts": dict(self.status_counts),
            "peak_in_flight": self.peak_in_flight,
            "in_flight": self.in_flight,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "computed": self.computed,
            "dropped_in_queue": self.dropped_in_queue,
            "busy_s": round(self.busy_s, 3),
            "drawn_latency_s": round(self.drawn_latency_s, 4),
            "calls_by_label": dict(self.calls_by_label),
        }

    def reset(self) -> SimulatorStats:
        """Fresh counters that still know about requests in flight right now."""
        return SimulatorStats(peak_in_flight=self.in_flight, in_flight=self.in_flight)


class SimulatorServer:
    """The aiohttp application and all mutable simulator state.

    All state is touched only on the server's event loop; other threads go
    through ``call_in_loop`` (see ``SimulatorHandle``), so no locks are needed.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config or SimulatorConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = random.Random(self._config.seed)
        self._stats = SimulatorStats()
        self._limiter = RateLimiter()
        self._directive_counts: Counter[tuple[str, str]] = Counter()
        self._prompt_cache = PromptCache()
        self._slots: tuple[int, asyncio.Semaphore] | None = None  # (slots, the queue to them)
        self._computing: set[asyncio.Future[None]] = set()
        self._gates = Gates()
        self._request_serial = 0
        self._models_body = self._render_models(self._config.models)
        self._batches = BatchService(
            config=lambda: self._config, answer=self.answer_batch_request, wall_clock=wall_clock
        )
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- state, for the control endpoints and SimulatorHandle ---------------

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    @property
    def batches(self) -> BatchService:
        """Files and batches, for ``SimulatorHandle``'s batch controls."""
        return self._batches

    def stats(self) -> dict[str, Any]:
        """Counters, the batch counters, and ``held``: requests at each gate now."""
        return {
            **self._stats.as_dict(),
            **self._batches.stats(),
            "held": self._gates.held(),
        }

    def reset(self) -> None:
        """Zero counters, rate windows and directive counters; reseed the RNG.

        Held requests are let go and gates close again, so a reset never
        leaves a request stuck behind a gate nobody will open. Stored files
        and batches stay (a test may still read results); batch counters zero.
        """
        self._stats = self._stats.reset()
        self._batches.reset()
        self._limiter.clear()
        self._directive_counts.clear()
        self._gates.clear()
        self._rng.seed(self._config.seed)

    def release(self, gate: str) -> None:
        """Open gate ``gate``: requests held there proceed, later ones pass."""
        self._gates.release(gate)

    def notify_when_held(self, gate: str, count: int, event: threading.Event) -> None:
        self._gates.notify_when_held(gate, count, event)

    def configure(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """Apply ``changes`` live; a new seed restarts the fault/jitter sequence."""
        new = self._config.updated(changes)
        if new.seed != self._config.seed:
            self._rng.seed(new.seed)
        if new.models != self._config.models:
            self._models_body = self._render_models(new.models)
        self._config = new
        self._batches.config_changed(new)
        return new

    def call_in_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the server's loop from another thread and return its result.

        Never call it from the loop's own thread: it would wait on itself.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    # -- lifecycle ------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=_CLIENT_MAX_SIZE)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._retrieve_model)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_post("/_sim/reset", self._post_reset)
        app.router.add_get("/_sim/config", self._get_config)
        app.router.add_post("/_sim/config", self._post_config)
        app.router.add_post("/_sim/release", self._post_release)
        app.router.add_post("/_sim/batches/advance", self._post_advance)
        self._batches.add_routes(app.router)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False
    ) -> int:
        """Listen on ``host:port`` (0 = a free port) and return the bound port."""
        runner_options: dict[str, Any] = {
            # A client that gives up (timeout, drop) cancels its handler, so a
            # "hang" fault does not keep counting as in flight after the client left.
            "handler_cancellation": True,
            "shutdown_timeout": _SHUTDOWN_GRACE_S,
        }
        if not access_log:
            runner_options["access_log"] = None
        runner = web.AppRunner(self.build_app(), **runner_options)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=_BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        await self._batches.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._loop = None

    # -- control endpoints -----------------------------------------------------

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._config.as_dict())

    async def _post_config(self, request: web.Request) -> web.Response:
        try:
            changes = json.loads(await request.read() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("config body must be a JSON object")
            config = self.configure(changes)
        except ValueError as error:  # JSONDecodeError is a ValueError
            return self._error(400, str(error), None, {})
        return web.json_response(config.as_dict())

    async def _post_release(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            gate = body.get("gate") if isinstance(body, dict) else None
            if not isinstance(gate, str) or not gate:
                raise ValueError('release body must be {"gate": "NAME"}')
        except ValueError as error:
            return self._error(400, str(error), None, {})
        self.release(gate)
        return web.json_response({"released": gate})

    async def _post_advance(self, request: web.Request) -> web.Response:
        """``{"batch_id": ID or null, "steps": N or null}``: see ``BatchService.advance``."""
        try:
            body = await read_json_object(request)
            batch_id, steps = body.get("batch_id"), body.get("steps", 1)
            if batch_id is not None and not isinstance(batch_id, str):
                raise ValueError("batch_id must be a batch id or null (every unfinished batch)")
            if steps is not None and (not is_int(steps) or steps < 1):
                raise ValueError("steps must be a whole number >= 1 or null (to the end)")
            batches = self._batches.advance(batch_id, steps)
        except ValueError as error:
            return self._error(400, str(error), None, {})
        return web.json_response({"batches": batches})

    # -- models ----------------------------------------------------------------

    @staticmethod
    def _render_models(models: Sequence[str]) -> bytes:
        data = [_model_object(name) for name in models]
        return json.dumps({"object": "list", "data": data}).encode()

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.Response(body=self._models_body, headers=JSON_HEADERS)

    async def _retrieve_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self._config.models:
            return self._error(404, f"The model '{name}' does not exist", "model_not_found", {})
        return web.Response(body=json.dumps(_model_object(name)).encode(), headers=JSON_HEADERS)

    # -- chat completions --------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        stats.calls += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_in_flight:
            stats.peak_in_flight = stats.in_flight
        try:
            return await self._answer_chat(request)
        finally:
            # ``reset`` may have swapped in new stats; decrement the live ones.
            self._stats.in_flight -= 1

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        """One request down the ladder: auth, parse, rate limit, outcome, wait, answer."""
        config = self._config
        if config.api_key is not None and not self._authorized(request, config.api_key):
            return self._reject_unauthorized(config)
        try:
            chat = ChatRequest.parse(await request.read(), reasoning_models=config.reasoning_models)
        except ParamError as error:
            headers = self._limiter.headers(self._clock(), config)
            return self._error(400, str(error), error.code, headers, param=error.param)
        except ValueError as error:
            return self._error(400, str(error), None, self._limiter.headers(self._clock(), config))
        if chat.directives.label is not None:
            self._stats.calls_by_label[chat.directives.label] += 1
        too_long = self._past_context(chat, config)
        if too_long is not None:
            if chat.stream and config.stream_errors == "empty":
                return await self._empty_stream(request)
            headers = self._limiter.headers(self._clock(), config)
            return self._error(400, too_long, "context_length_exceeded", headers, param="messages")
        draws = _Draws.take(self._rng)
        answer = self._compose(chat, config)
        cost = chat.token_cost(answer.completion_tokens)
        decision = self._limiter.admit(self._clock(), cost, config)
        if not decision.allowed:
            return self._reject_rate_limited(chat, decision)
        outcome = self._choose_outcome(chat, draws, config)
        if outcome.fault:
            # Counted when chosen: a client that gives up during a hang has
            # still met the fault.
            self._stats.faults[outcome.fault] += 1
        if chat.stream and outcome.kind != "error":
            return await self._stream(request, chat, outcome, draws, answer, decision.headers)
        await self._wait(chat, outcome, draws, config)
        return await self._deliver(request, chat, outcome, answer, decision.headers)

    @staticmethod
    def _past_context(chat: ChatRequest, config: SimulatorConfig) -> str | None:
        """OpenAI's words for a request that does not fit the model's context; None when it fits."""
        limit = config.context_tokens
        asked = chat.prompt.prompt_tokens + (chat.max_tokens or 0)
        if limit is None or asked <= limit:
            return None
        return (f"This model's maximum context length is {limit} tokens. However, you requested {asked} tokens "
                f"({chat.prompt.prompt_tokens} in the messages, {chat.max_tokens or 0} in the completion). "
                "Please reduce the length of the messages or completion.")

    async def _empty_stream(self, request: web.Request) -> web.StreamResponse:
        """What llama.cpp's Python server sends for a streamed request it fails: a 200 stream with no events."""
        self._stats.status_counts["200"] += 1
        response = web.StreamResponse(status=200, headers={**SSE_HEADERS, "x-request-id": self._next_request_id()})
        await response.prepare(request)
        await response.write_eof()
        return response

    def _reject_unauthorized(self, config: SimulatorConfig) -> web.Response:
        self._stats.faults["401"] += 1
        return self._error(
            401,
            "Incorrect API key provided. The simulator expects the key it was configured with.",
            "invalid_api_key",
            self._limiter.headers(self._clock(), config),
            type_="invalid_request_error",
        )

    def _reject_rate_limited(self, chat: ChatRequest, decision: RateDecision) -> web.Response:
        self._stats.rate_limited += 1
        headers = {**decision.headers, **retry_after_headers(decision.retry_after_s)}
        message = (
            f"Rate limit reached for {chat.model} (simulated): "
            f"retry after {decision.retry_after_s:.3f}s."
        )
        return self._error(429, message, "rate_limit_exceeded", headers)

    def _compose(self, chat: ChatRequest, config: SimulatorConfig) -> Answer:
        if chat.directives.empty:
            return Answer("", 0, "stop")
        text = compose_answer(
            model=chat.model,
            prompt=chat.prompt,
            temperature=chat.temperature,
            seed=config.seed,
            json_mode=chat.json_mode,
            verdict=chat.directives.verdict,
            plant=chat.directives.plant,
            fix=chat.directives.fix,
        )
        return reasoned(chat, text) if chat.reasoning else clip_to_tokens(text, chat.max_tokens)

    # -- batch requests ------------------------------------------------------------

    def answer_batch_request(self, body: object, server_error: bool) -> RequestResult:
        """Answer one batch line's ``body`` as the real-time endpoint would.

        Same text and usage for the same body; ``sim:status``,
        ``sim:fail_first``, ``sim:bad_json``, ``sim:verdict`` and
        ``sim:label`` apply, timing directives do not (a batch has no
        connection to hold). ``server_error`` (the ``batch_error_rate`` draw)
        makes it a 500. Counted in the batch stats, not the chat ones.
        """
        request_id = self._next_request_id()
        try:
            chat = ChatRequest.from_body(body, reasoning_models=self._config.reasoning_models)
        except ParamError as error:
            return RequestResult(400, request_id, error_payload(400, str(error), code=error.code, param=error.param))
        except ValueError as error:
            return RequestResult(400, request_id, error_payload(400, str(error)))
        if chat.stream:
            return RequestResult(400, request_id, error_payload(400, "stream is not supported in a batch"))
        label = chat.directives.label
        outcome = self._directive_outcome(chat)
        if outcome is None and server_error:
            outcome = _Outcome("error", 500, _SERVER_ERROR_MESSAGE)
        if outcome is not None:
            payload = error_payload(outcome.status, outcome.message)
            return RequestResult(outcome.status, request_id, payload, label=label)
        answer = self._compose(chat, self._config)
        if self._spoils_json(chat):
            answer = clip_to_tokens(BAD_JSON_CONTENT, chat.max_tokens)
        payload = completion_payload(
            chat, answer, completion_id=self._completion_id(), created=int(self._wall_clock()),
            cached_tokens=self._prompt_cache.cached_tokens(chat.prompt),
        )
        return RequestResult(
            200, request_id, payload, chat.prompt.prompt_tokens, answer.completion_tokens, label
        )

    def _choose_outcome(
        self, chat: ChatRequest, draws: _Draws, config: SimulatorConfig
    ) -> _Outcome:
        """Directives first (they are deterministic), then the seeded fault draw."""
        outcome = self._directive_outcome(chat)
        if outcome is not None:
            return outcome
        threshold = config.error_rate
        if draws.fault < threshold:
            status = 500 if draws.split < 0.5 else 503
            return _Outcome("error", status, _SERVER_ERROR_MESSAGE)
        threshold += config.hang_rate
        if draws.fault < threshold:
            return _Outcome("hang")
        threshold += config.drop_rate
        if draws.fault < threshold:
            return _Outcome("drop")
        threshold += config.malformed_rate
        if draws.fault < threshold:
            return _Outcome("malformed")
        if self._spoils_json(chat):
            return _Outcome("bad_json")
        return _OK

    def _directive_outcome(self, chat: ChatRequest) -> _Outcome | None:
        """The error a ``sim:status`` or ``sim:fail_first`` directive asks for, if any."""
        directives = chat.directives
        if directives.status is not None:
            message = (
                f"Simulated error {directives.status} requested by directive "
                f"sim:status={directives.status}."
            )
            return _Outcome("error", directives.status, message)
        if self._take_directive("fail_first", chat.prompt.key, directives.fail_first):
            return _Outcome("error", 503, "Simulated 503 (directive sim:fail_first).")
        return None

    def _spoils_json(self, chat: ChatRequest) -> bool:
        """True while ``sim:bad_json=N`` still owes this prompt a broken JSON answer."""
        return chat.json_mode and self._take_directive(
            "bad_json", chat.prompt.key, chat.directives.bad_json
        )

    async def _wait(
        self, chat: ChatRequest, outcome: _Outcome, draws: _Draws, config: SimulatorConfig,
        generate: _Generate | None = None,
    ) -> None:
        """Wait at the request's gate if it names one, then take its prompt's time and its latency (or hang);
        `generate` spends the latency writing the answer (a paced stream)."""
        if chat.directives.hold is not None:
            await self._gates.pass_through(chat.directives.hold)
        prompt_s = 0.0
        if outcome.kind == "hang":
            delay = config.hang_s
        else:
            prompt_s = chat.prompt.prompt_tokens * config.prompt_s_per_token
            if chat.directives.latency_s is not None:
                delay = chat.directives.latency_s
            else:
                delay = draws.latency(config)
                self._stats.drawn_latency_s += delay
        if config.slots is not None and outcome.kind != "hang":
            await self._compute_in_a_slot(prompt_s, delay, config.slots, generate)
        else:
            await _compute(prompt_s, delay, generate)

    async def _compute_in_a_slot(self, prompt_s: float, delay: float, slots: int,
                                 generate: _Generate | None = None) -> None:
        """The prompt's time and `delay` of computing in one of `slots`, after the requests ahead of it, as a
        one-slot server does.

        The computing runs as a task of its own: a client that gives up while queued has its
        request skipped; one that gives up while it computes does not stop it."""
        if self._slots is None or self._slots[0] != slots:
            self._slots = (slots, asyncio.Semaphore(slots))
        semaphore = self._slots[1]
        started = asyncio.Event()
        stats = self._stats

        async def compute() -> None:
            async with semaphore:
                started.set()
                stats.computed += 1
                stats.busy_s += prompt_s + delay
                await _compute(prompt_s, delay, generate)

        task = asyncio.ensure_future(compute())
        self._computing.add(task)
        task.add_done_callback(self._computing.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not started.is_set():
                task.cancel()
                stats.dropped_in_queue += 1
            raise

    async def _deliver(
        self,
        request: web.Request,
        chat: ChatRequest,
        outcome: _Outcome,
        answer: Answer,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        kind = outcome.kind
        if kind == "error":
            if outcome.status == 429 and chat.directives.retry_after_s is not None:
                headers.update(retry_after_headers(chat.directives.retry_after_s))
            return self._error(outcome.status, outcome.message, None, headers)
        if kind == "drop":
            return await self._drop(request, headers)
        if kind == "malformed":
            self._stats.status_counts["200"] += 1
            headers["x-request-id"] = self._next_request_id()
            return web.Response(body=_MALFORMED_BODY, headers={**JSON_HEADERS, **headers})
        if kind == "bad_json":
            answer = clip_to_tokens(BAD_JSON_CONTENT, chat.max_tokens)
        return self._completion(chat, answer, headers)

    async def _stream(
        self,
        request: web.Request,
        chat: ChatRequest,
        outcome: _Outcome,
        draws: _Draws,
        answer: Answer,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """A streamed answer: status and headers at once, the events after the latency (with
        `stream_paced`: the text spread over it, after the prompt's time).

        What OpenAI does with `stream: true`, and why a client can learn the
        rate-limit headers from a streamed call long before its text is written.
        The faults happen after the headers: a hang sends nothing more, a drop
        half an event, malformed an event that is not JSON. Errors (5xx, 4xx
        directives) are plain JSON answers before any event, as OpenAI's are.
        """
        headers["x-request-id"] = self._next_request_id()
        response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
        await response.prepare(request)
        config = self._config
        paced: list[bytes] = []
        if config.stream_paced and outcome.kind in ("ok", "bad_json"):
            if outcome.kind == "bad_json":
                answer = clip_to_tokens(BAD_JSON_CONTENT, chat.max_tokens)
            paced = self._stream_events(chat, answer)
        generate = _paced_writer(response, paced, include_usage=chat.include_usage) if paced else None
        await self._wait(chat, outcome, draws, config, generate)
        self._stats.status_counts["200"] += 1
        if outcome.kind == "drop":
            await response.write(_DROPPED_EVENT_PREFIX)
            if request.transport is not None:
                request.transport.close()
            return response
        if outcome.kind == "malformed":
            await response.write(_MALFORMED_EVENT)
            await response.write_eof()
            return response
        if not paced:
            if outcome.kind == "bad_json":
                answer = clip_to_tokens(BAD_JSON_CONTENT, chat.max_tokens)
            await response.write(b"".join(self._stream_events(chat, answer)))
        stats = self._stats
        stats.completed += 1
        stats.prompt_tokens += chat.prompt.prompt_tokens
        stats.completion_tokens += answer.completion_tokens
        await response.write_eof()
        return response

    def _stream_events(self, chat: ChatRequest, answer: Answer) -> list[bytes]:
        return stream_events(chat, answer, completion_id=self._completion_id(), created=int(self._wall_clock()),
                             cached_tokens=self._prompt_cache.cached_tokens(chat.prompt))

    def _take_directive(self, kind: str, key: str, limit: int) -> bool:
        """True while this prompt has used fewer than ``limit`` of ``kind``; counts one use."""
        if limit <= 0:
            return False
        counter_key = (kind, key)
        if self._directive_counts[counter_key] >= limit:
            return False
        self._directive_counts[counter_key] += 1
        return True

    def _completion(
        self, chat: ChatRequest, answer: Answer, headers: dict[str, str]
    ) -> web.Response:
        request_id = self._next_request_id()
        payload = completion_payload(
            chat, answer, completion_id=self._completion_id(), created=int(self._wall_clock()),
            cached_tokens=self._prompt_cache.cached_tokens(chat.prompt),
        )
        stats = self._stats
        stats.completed += 1
        stats.status_counts["200"] += 1
        stats.prompt_tokens += chat.prompt.prompt_tokens
        stats.completion_tokens += answer.completion_tokens
        headers["x-request-id"] = request_id
        return web.Response(body=json.dumps(payload).encode(), headers={**JSON_HEADERS, **headers})

    async def _drop(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        """Send a status line and part of a body, then close the connection.

        The client has already committed to reading a 200 response, so it sees
        a connection that died mid-body: the failure a proxy reset produces.
        """
        response = web.StreamResponse(status=200, headers={**JSON_HEADERS, **headers})
        response.content_length = _DROPPED_CONTENT_LENGTH
        await response.prepare(request)
        await response.write(_DROPPED_BODY_PREFIX)
        transport = request.transport
        if transport is not None:
            transport.close()
        return response

    def _error(
        self,
        status: int,
        message: str,
        code: str | None,
        headers: Mapping[str, str],
        *,
        type_: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        self._stats.status_counts[str(status)] += 1
        body = json.dumps(error_payload(status, message, type_=type_, code=code, param=param)).encode()
        all_headers = {**JSON_HEADERS, **headers, "x-request-id": self._next_request_id()}
        return web.Response(status=status, body=body, headers=all_headers)

    def _next_request_id(self) -> str:
        self._request_serial += 1
        return f"req_sim{self._request_serial:010d}"

    def _completion_id(self) -> str:
        """The completion's id, numbered like the request id just taken."""
        return f"chatcmpl-sim{self._request_serial:010d}"

    @staticmethod
    def _authorized(request: web.Request, api_key: str) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {api_key}"


_Generate = Callable[[float], Awaitable[None]]  # spends the given seconds generating the answer


async def _compute(prompt_s: float, generate_s: float, generate: _Generate | None) -> None:
    """The prompt's evaluation, then the answer's generation: written as it goes (`generate`), or a pause."""
    if prompt_s > 0:
        await asyncio.sleep(prompt_s)
    if generate is not None:
        await generate(generate_s)
    elif generate_s > 0:
        await asyncio.sleep(generate_s)


def _paced_writer(response: web.StreamResponse, events: list[bytes], *, include_usage: bool) -> _Generate:
    """Writes a stream's events over the generation's seconds, as a server generating token by token does:
    the role and the first text at once, each later piece after its share, the end last. A client that
    has gone stops the writing, not the computing (the slot stays busy to the end)."""
    tail = 3 if include_usage else 2  # finish_reason, usage, [DONE]
    pieces, end = events[1:len(events) - tail], events[len(events) - tail:]
    writes = [events[:1] + pieces[:1], *([piece] for piece in pieces[1:])]

    async def generate(seconds: float) -> None:
        step = seconds / max(len(pieces), 1)
        gone = False
        for number, chunk in enumerate([*writes, end]):
            if number:
                await asyncio.sleep(step)
            if not gone:
                try:
                    await response.write(b"".join(chunk))
                except ConnectionError:
                    gone = True

    return generate


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "report-pipeline-simulator"}
