"""The `openai` provider: any OpenAI-compatible endpoint through the official SDK, shared by every thread.

One `openai.OpenAI` (or `AzureOpenAI`) client and one connection pool serve all
worker threads; the pool is `_transport.PooledTransport`, whose cost per call does
not grow with the number of connections. The SDK runs with `max_retries=0`: this
class owns retries, so that a 429 slows every thread (a shared cool-down), not
only the one that got it.

`complete()` is a ladder of small steps, one concern each:

    complete            retries: classify each failure, back off, give up with a typed error
    _attempt            one send: in-flight slot → throttle (cool-down, limits, pace) → budget → HTTP
    _post_chat          the HTTP call: `client.post()`, below the SDK's params transform
    _classify           an SDK exception → retryable `Failure` or a final ProviderError
    _read_answer        the JSON body → text, tokens, finish reason (tolerant of thin servers);
                        a 200 without text, or with an `error` object, is not an answer

Secrets: the key is only ever handed to the SDK; every message we raise or log
passes through `_scrub`, which replaces the key's value with `***`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai

from ...config import RunConfig
from ...errors import (
    AuthError,
    ConfigError,
    EndpointUnreachable,
    NotSent,
    ProviderError,
    RateLimited,
    RunAborted,
    TransientProviderError,
)
from ...logs import url_without_credentials
from ..base import ChatRequest, ChatResponse
from ..budget import CostMeter, Reservation
from ..concurrency import ConcurrencyLimit
from ..controls import CallControls
from ..hosts import is_openai_host
from ..ratelimit import (
    HeaderPacer,
    SleeperLike,
    Stopped,
    Throttle,
    Ticket,
    sleep_for,
)
from ..retry import (
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
    should_retry,
)
from ..tokens import call_tokens, prompt_tokens_at_most, text_tokens
from ..tokens import prompt_tokens as estimate_prompt_tokens
from .answers import (
    ChatAnswer,
    NotAnAnswer,
    cut_warning,
    read_body,
    read_message,
    usage,
    usage_details,
)
from .client import Endpoint
from .dialect import Dialect, refused_parameter
from .failures import (
    CHAT_PATH,
    MAX_MESSAGE_CHARS,
    EmptyStream,
    Failure,
    StreamRefused,
    cause_text,
    certificate_rejected,
    error_code,
    json_body,
    malformed,
    redirect_message,
    server_message,
    status_code_of,
)
from .listing import model_ids
from .stopping import StopLatch, auth_failed, unreachable, untrusted
from .streaming import join_stream, on_first_text
from .transport import stream_deadlines

__all__ = ["OpenAIProvider"]

log = logging.getLogger("report_pipeline.provider")


EventHook = Callable[..., None]


# A call is corrected at most this many times (one per parameter a model may refuse).
_MAX_CORRECTIONS = 4


class ParameterRefused(Exception):
    """The endpoint refused a parameter; send again at once with `dialect`."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.dialect = dialect


_Aborted = TypeVar("_Aborted", bound=RunAborted)


@dataclass(frozen=True)
class _Answer:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    request_id: str | None
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    reservation: Reservation | None = None  # the budget held for this call, settled at its cost


class OpenAIProvider:
    """A chat endpoint reached through the `openai` SDK; thread-safe, one per run.

    Build it once and share it: it holds the connection pool, the in-flight
    limit, the rate limiter, the shared cool-down and the cost meter. A 401/403
    stops it for good: that call and every later one raise AuthError without
    sending anything. So does an endpoint no attempt has reached once one call has
    spent its retries on it (EndpointUnreachable): a wrong base_url or a server that
    is down would otherwise cost every task its full backoff, minutes of nothing.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        controls: CallControls | None = None,
        endpoint: Endpoint | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: EventHook | None = None,
        sleeper: SleeperLike | None = None,
        rand: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        meter: CostMeter | None = None,
        policy: RetryPolicy | None = None,
        pacer: HeaderPacer | None = None,
    ) -> None:
        """`controls` and `endpoint` come from the composition root; alone (tests, `models`),
        the provider builds its own from the config, with the clock, sleeper, meter, policy
        and pacer given."""
        if config.provider not in ("openai", "azure"):
            raise ConfigError(
                f"provider: OpenAIProvider serves 'openai' and 'azure', not {config.provider!r}"
            )
        self.name = config.provider
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._rand = rand
        self._on_event = on_event
        controls = controls or CallControls.for_config(
            config, clock=clock, sleeper=sleeper, meter=meter, policy=policy, pacer=pacer
        )
        self._controls = controls
        self._policy = controls.policy
        self._meter = controls.meter
        self._in_flight = controls.in_flight
        self._throttle = controls.throttle
        self._sleeper = controls.throttle.sleeper
        self._own_endpoint = endpoint is None
        self._endpoint = endpoint or Endpoint(config)
        self._client = self._endpoint.sdk
        self._latch = StopLatch()
        self._warn_lock = threading.Lock()
        self._usage_warned = False  # "no usage, cost estimated" is said once a run
        self._stream_probes = True  # until the endpoint refuses a streamed call (a 400)
        # Every call is streamed to a server that may queue (not OpenAI's own): waiting in its queue for
        # the first token is bounded by first_token_timeout_s, a stalled answer by request_timeout_s
        self._stream_every_call = config.streaming == "all" or (
            config.streaming == "auto" and not is_openai_host(config.base_url))
        self._stream_options: dict[str, Any] = {"security": {"bearer_auth": True}}
        if self._stream_every_call:  # the SDK's read timeout must let the first token wait in a queue
            wait = max(config.first_token_timeout_s, config.request_timeout_s)
            self._stream_options["timeout"] = httpx2.Timeout(wait, connect=self._endpoint.timeout.connect)

    # -- public ----------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        """Dollars spent by this provider's calls so far."""
        return self._meter.spent

    @property
    def client(self) -> openai.OpenAI:
        """The shared `openai.OpenAI` (or `AzureOpenAI`) client, read-only.

        Used by batch mode for /v1/files and /v1/batches, on the same connection
        pool and key as the chat calls. Its name and type are part of the API.
        """
        return self._client

    @property
    def meter(self) -> CostMeter:
        return self._meter

    @property
    def throttle(self) -> Throttle:
        return self._throttle

    @property
    def in_flight(self) -> ConcurrencyLimit:
        return self._in_flight

    @property
    def aborted(self) -> bool:
        """True once an auth failure or an unreachable endpoint has stopped the provider."""
        return self._latch.aborted

    def complete(self, request: ChatRequest) -> ChatResponse:
        """Make one call with retries; raise ProviderError (or a subclass) or BudgetExceeded."""
        self._latch.raise_if_stopped()
        tokens = call_tokens(request)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._attempt(request, tokens)
            except Failure as failure:
                self._slow_down(request.model, failure)
                if attempt > self._policy.max_retries:
                    if failure.kind == "connection" and not self._endpoint.reached:
                        raise self._unreachable(failure, attempt) from None
                    raise self._gave_up(failure, attempt) from None
                self._back_off(request.label, request.label or request.model, failure, attempt)
                continue
            except ProviderError as error:
                # `attempts` counts sends; a call refused before sending (the run
                # stopped meanwhile) did not send this time round.
                error.attempts = attempt if error.attempts else attempt - 1
                raise
            return self._response(request, answer, attempt, started)

    def list_models(self) -> list[str]:
        """Model ids the endpoint offers (`report-pipeline models`); 429/5xx/timeouts are retried.

        Read from the JSON rather than the SDK's pager, which tracebacks on an
        HTML login page, a bare list or an event stream. Whatever comes back is
        either ids or a ProviderError saying what came instead; an empty list is
        an error too, since every later call would fail on the model name.
        """
        self._latch.raise_if_stopped()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._models_once()
            except Failure as failure:
                if failure.kind == "malformed":  # a login page will not turn into a list
                    raise ProviderError(f"could not list models: {failure.message}") from None
                if attempt > self._policy.max_retries:
                    error = self._gave_up(failure, attempts=attempt)
                    error.message = f"could not list models: {error.message}"
                    raise error from None
                self._back_off("models", "models", failure, attempt)

    def close(self) -> None:
        """Stop: wake every waiting thread, refuse new calls, close the connection pool."""
        self._latch.stop(ProviderError("the provider was closed; no more calls are sent"))
        self._controls.stop()
        if self._own_endpoint:
            self._endpoint.close()

    def __enter__(self) -> OpenAIProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIProvider(provider={self.name!r}, base_url={str(self._client.base_url)!r})"

    # -- one attempt -----------------------------------------------------------

    def _attempt(self, request: ChatRequest, tokens: int) -> _Answer:
        """One attempt: sent again at once, with the corrected body, when the endpoint refuses a
        parameter (an answered 400 costs nothing, and is not a retry)."""
        limit = self._controls.concurrency.for_model(request.model)
        with limit.slot() as epoch, self._in_flight.slot():  # this model's limit first: no global slot held waiting
            dialect = self._endpoint.dialects.get(request.model)
            for _ in range(_MAX_CORRECTIONS):
                try:
                    return self._attempt_with(request, tokens, dialect, limit, epoch)
                except ParameterRefused as refused:
                    dialect = refused.dialect
            return self._attempt_with(request, tokens, dialect, limit, epoch)

    def _attempt_with(self, request: ChatRequest, tokens: int, dialect: Dialect, limit: ConcurrencyLimit,
                      epoch: int) -> _Answer:
        """Send under a hold on the budget (its worst case), and tell the concurrency limit how long it took."""
        try:
            reservation = self._meter.reserve(self._worst_cost(request), what=f"call {request.label or request.model}")
        except Stopped:
            self._latch.raise_if_stopped()
            raise NotSent("the run is stopping: this call was not sent", attempts=0) from None
        try:
            ticket = self._acquire(tokens)
            sent = self._clock()
            answer: _Answer | None = None
            if (ticket.probe or self._stream_every_call) and self._stream_probes:
                try:
                    answer = self._send_streamed(request, ticket, dialect, limit)
                except StreamRefused:
                    ticket = self._acquire(tokens)
                    sent = self._clock()
            if answer is None:
                answer = self._send(request, ticket, dialect)
        except BaseException:
            reservation.release()  # not answered: it cost nothing (a billed 200 without text was added)
            raise
        limit.record(self._clock() - sent, answer.completion_tokens, epoch)
        return dataclasses.replace(answer, reservation=reservation)

    def _worst_cost(self, request: ChatRequest) -> float:
        """The most a call can cost: its prompt at one token a byte, and max_tokens of output."""
        price = self._config.price_for(request.model)
        if price is None:
            return 0.0
        return price.cost(prompt_tokens_at_most(request.messages), request.max_tokens)

    def _acquire(self, tokens: int) -> Ticket:
        try:
            return self._throttle.acquire(tokens)
        except Stopped:
            self._latch.raise_if_stopped()
            raise NotSent("the run is stopping: this call was not sent", attempts=0) from None

    def _send(self, request: ChatRequest, ticket: Ticket, dialect: Dialect) -> _Answer:
        """Send once; every booked ticket is observed exactly once, answered or not."""
        headers: Mapping[str, str] = {}
        admitted = True
        try:
            self._latch.raise_if_stopped()
            try:
                response = self._post_chat(dialect.body(request))
                self._endpoint.mark_reached()  # also through a proxy, whose transport is httpx2's own
            except openai.APIStatusError as error:
                headers = error.response.headers
                admitted = error.status_code != 429
                self._correct(error, request, dialect)
                raise self._classify(error) from None
            except openai.APIError as error:
                raise self._classify(error) from None
            headers = response.headers
            return self._read_answer(response, request)
        finally:
            self._throttle.observe(headers, ticket, admitted=admitted)

    def _send_streamed(self, request: ChatRequest, ticket: Ticket, dialect: Dialect,
                       limit: ConcurrencyLimit) -> _Answer:
        """Send a probe call streamed, and learn the limits from its headers before its text.

        Until one answer's headers say what the endpoint allows, every thread but
        the probe burst waits (ratelimit.py). Unstreamed, the headers come with
        the whole answer: one full model latency with 8 calls in flight, every
        first run against an endpoint. Streamed, they come with the first token,
        so the waiting threads go that much sooner. The text, finish reason and
        usage (`stream_options.include_usage`) are then read from the events and
        make the same answer as unstreamed. An endpoint that refuses the stream
        (a 400 or 422 naming it, e.g. an older API version without
        `stream_options`) is asked unstreamed, now and for the rest of the run
        (`StreamRefused`); one that ignores it is read as a plain answer.
        """
        headers: Mapping[str, str] = {}
        admitted, observed = True, False
        try:
            self._latch.raise_if_stopped()
            try:
                with self._stream_bounds():
                    stream = self._client.post(
                        CHAT_PATH,
                        body={**dialect.body(request), "stream": True, "stream_options": {"include_usage": True}},
                        cast_to=object,
                        stream=True,
                        stream_cls=openai.Stream[object],
                        options=self._stream_options,
                    )
            except openai.APIStatusError as error:
                headers = error.response.headers
                admitted = error.status_code != 429
                self._correct(error, request, dialect)
                message = self._scrub(server_message(error))
                if error.status_code in (400, 422) and "stream" in message.lower():
                    self._stream_probes = False
                    log.info("%s: the endpoint refused a streamed call (%s); calls go unstreamed",
                             self.name, message[:MAX_MESSAGE_CHARS])
                    raise StreamRefused from None
                raise self._classify(error) from None
            except openai.APIError as error:
                raise self._classify(error) from None
            headers = stream.response.headers
            self._throttle.observe(headers, ticket, admitted=True)  # the waiting threads go now
            observed = True
            with stream:
                if not _is_event_stream(stream.response):  # a server that ignores `stream`
                    self._read_body(stream.response)
                    return self._read_answer(stream.response, request)
                try:
                    return self._read_stream(stream, request, limit)
                except EmptyStream:
                    # llama.cpp's Python server fails the request after its empty stream and resets the
                    # connection: not one for the pool (the call is asked again, unstreamed)
                    _close_connection(stream.response)
                    raise
        finally:
            if not observed:
                self._throttle.observe(headers, ticket, admitted=admitted)

    def _read_stream(self, stream: openai.Stream[object], request: ChatRequest, limit: ConcurrencyLimit) -> _Answer:
        """The answer from a stream's events (streaming.py joins them), read as an unstreamed one is; the
        concurrency limit hears when its text began and ended (what the server serves at once)."""
        response = stream.response
        try:
            with limit.generating() as began:
                data, choice, message = join_stream(on_first_text(stream, began))
        except (openai.APIStatusError, openai.APIConnectionError) as error:  # timeouts are connection errors
            raise self._classify(error) from None
        except openai.APIError as error:  # an `error` event mid-stream (the SDK raises it)
            raise self._error_in_body(error.body if error.body is not None else error.message) from None
        except ValueError:  # an event whose data is not JSON
            raise Failure("malformed", "malformed response", "a streamed event is not JSON") from None
        try:
            answer = read_message(data, choice, message, max_tokens=request.max_tokens)
        except NotAnAnswer as why:
            raise self._refused(why, data, request, response) from None
        return self._answer(answer, request, response, streamed=True)

    def _read_body(self, response: httpx2.Response) -> None:
        """Read a body the SDK left unread, with its errors as the SDK would have reported them."""
        try:
            response.read()
        except httpx2.TimeoutException:
            raise self._classify(openai.APITimeoutError(request=response.request)) from None
        except httpx2.TransportError as error:
            message = f"{type(error).__name__}: {error}"
            raise self._classify(openai.APIConnectionError(message=message, request=response.request)) from None

    def _stream_bounds(self) -> AbstractContextManager[None]:
        """Two bounds for a streamed call to a server that may queue; OpenAI's: the whole-exchange one."""
        if not self._stream_every_call:
            return nullcontext()
        return stream_deadlines(self._config.first_token_timeout_s, self._config.request_timeout_s)

    def _correct(self, error: openai.APIStatusError, request: ChatRequest, sent: Dialect) -> None:
        """A 400 naming a parameter or value the model does not take: `ParameterRefused` with the
        body to send instead, once it is learned (dialect.py); anything else returns."""
        param = refused_parameter(error.status_code, error.body, server_message(error))
        if param is None:
            return
        self._endpoint.mark_reached()
        corrected = self._endpoint.dialects.learn(request.model, param, sent, self._scrub(server_message(error)))
        if corrected is not None and corrected != sent:
            raise ParameterRefused(corrected)

    def _post_chat(self, body: dict[str, Any]) -> httpx2.Response:
        """POST /chat/completions through the SDK client, skipping what we would throw away.

        `chat.completions.create()` first runs the SDK's typed-params transform over
        the body, walking every message against the TypedDict annotations: 0.5 ms
        a call, the largest single item in a call's CPU, to turn plain JSON types
        into the same plain JSON types (benchmarks/RESULTS.md, "CPU per call").
        `client.post()` is the request path below it, unchanged: base URL, auth,
        Azure's `/deployments/{model}` routing (keyed on the JSON body's model),
        `x-stainless-*` headers, timeouts, and an `APIStatusError` subclass for a
        non-2xx answer. `cast_to=httpx2.Response` hands back the read response,
        which `_read_answer` parses, as it did the raw response before.
        """
        return self._client.post(
            CHAT_PATH,
            body=body,
            cast_to=httpx2.Response,
            options={"security": {"bearer_auth": True}},  # what create() asks for
        )

    def _models_once(self) -> list[str]:
        """GET /models once: the ids, a retryable `Failure`, or a final ProviderError."""
        try:
            response = self._client.get(
                "/models", cast_to=httpx2.Response, options={"security": {"bearer_auth": True}}
            )
        except openai.APIError as error:
            raise self._classify(error) from None
        try:
            data = json_body(response)
        except (ValueError, LookupError):
            raise malformed(response, "the model list is not JSON", self._scrub) from None
        try:
            return model_ids(data)
        except ValueError as unreadable:
            raise malformed(response, str(unreadable), self._scrub) from None

    def _read_answer(self, response: httpx2.Response, request: ChatRequest) -> _Answer:
        """Text, tokens and finish reason from a 2xx body (answers.py reads it, as for a batch line).

        A body we cannot read is retried; a readable one without text, or with an `error`
        object, is not an answer (`_refused`).
        """
        try:
            data = json_body(response)
        except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
            raise malformed(response, "the answer is not JSON", self._scrub) from None
        try:
            answer = read_body(data, max_tokens=request.max_tokens)
        except NotAnAnswer as why:
            raise self._refused(why, data, request, response) from None
        return self._answer(answer, request, response)

    def _answer(self, answer: ChatAnswer, request: ChatRequest, response: httpx2.Response, *,
                streamed: bool = False) -> _Answer:
        """The answer with its tokens counted: the body's usage, else the one estimate (tokens.py).

        A stream without usage (servers that ignore `stream_options`, llama.cpp's
        Python server among them) is estimated without the once-a-run warning:
        it says nothing of the plain calls, which are most of them.
        """
        if answer.cut:
            log.warning(cut_warning(request.label or request.model, request.max_tokens))
        prompt_tokens, completion_tokens = answer.prompt_tokens, answer.completion_tokens
        if prompt_tokens is None or completion_tokens is None:
            if streamed:
                log.debug("%s: a streamed answer without usage: its tokens are estimated", request.label or request.model)
            else:
                self._warn_no_usage()
            if prompt_tokens is None:
                prompt_tokens = estimate_prompt_tokens(request.messages)
            if completion_tokens is None:
                completion_tokens = text_tokens(answer.text)
        return _Answer(
            text=answer.text,
            model=answer.model or request.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=answer.finish_reason,
            request_id=response.headers.get("x-request-id"),
            reasoning_tokens=answer.reasoning_tokens,
            cached_tokens=answer.cached_tokens,
        )

    def _refused(self, why: NotAnAnswer, data: Any, request: ChatRequest, response: httpx2.Response) -> Exception:
        """What a body that is not an answer becomes: a retry, an abort, or a failed task (billed all the same)."""
        if why.kind == "malformed":
            return malformed(response, why.message, self._scrub)
        if why.kind == "error":
            return self._error_in_body(why.error)
        if why.kind == "no_text":
            self._bill_unanswered(data, request)
        return ProviderError(why.message)

    def _warn_no_usage(self) -> None:
        """Say once a run, not once a call, that cost and budget rest on an estimate."""
        if self._usage_warned:
            return
        with self._warn_lock:
            if self._usage_warned:
                return
            self._usage_warned = True
        log.warning(
            "%s: the endpoint sends no usable token usage; tokens, cost and max_cost_usd "
            "use an estimate (about 4 characters a token)",
            self.name,
        )

    # -- answers that are not answers ---------------------------------------------

    def _error_in_body(self, error: object) -> Exception:
        """An `error` object in a 200 (OpenRouter): retried if its code is 429, 5xx or missing."""
        if isinstance(error, dict):
            message, code = error.get("message") or json.dumps(error), error.get("code")
        else:
            message, code = error, None
        text = self._scrub(str(message))[:MAX_MESSAGE_CHARS]
        status = status_code_of(code)
        if code is None or (status is not None and should_retry(status, "status")):
            reason = "an error in a 200 answer" if code is None else f"error {code} in a 200 answer"
            return Failure("status", reason, text, 429 if status == 429 else None)
        if status in (401, 403):
            return self._abort(status, text)
        return ProviderError(f"the endpoint answered 200 with error {code}: {text}")

    # -- failures --------------------------------------------------------------

    def _classify(self, error: openai.APIError) -> Failure:
        """Turn an SDK error into a retryable `Failure`, or raise the final ProviderError."""
        if isinstance(error, openai.APIStatusError):
            self._endpoint.mark_reached()
            status = error.status_code
            message = self._scrub(server_message(error))
            if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
                raise self._abort(status, message)
            if 300 <= status < 400:
                raise ProviderError(redirect_message(error.response), status_code=status)
            if status == 429 and error_code(error) == "insufficient_quota":
                raise self._abort(status, message, quota=True)
            if not should_retry(status, "status"):
                raise ProviderError(message, status_code=status)
            retry_after = parse_retry_after(error.response.headers, self._wall_clock())
            return Failure("status", f"HTTP {status}", message, status, retry_after)
        if isinstance(error, openai.APITimeoutError):
            limit = self._config.request_timeout_s
            return Failure("timeout", "timeout", f"no answer within request_timeout_s={limit:g}")
        if isinstance(error, openai.APIConnectionError):
            if certificate_rejected(error):
                raise self._untrusted(error)
            return Failure("connection", "connection error", self._scrub(cause_text(error)))
        if isinstance(error, openai.APIResponseValidationError):
            return Failure("malformed", "malformed response", self._scrub(error.message))
        raise ProviderError(self._scrub(f"{type(error).__name__}: {error}"))

    def _abort(self, status: int, message: str, *, quota: bool = False) -> AuthError:
        """Stop every thread: the key is wrong, lacks access or has no quota left (`message` is scrubbed)."""
        error = auth_failed(message, status, key_env=self._config.api_key_env, model=self._config.model, quota=quota)
        return self._stop_every_call(error, f"HTTP {status}")

    def _unreachable(self, failure: Failure, attempts: int) -> EndpointUnreachable:
        """Stop every thread: no attempt has reached the endpoint, and this call has tried them all."""
        return self._stop_every_call(unreachable(self._shown_url(), failure.message, attempts),
                                     "the endpoint cannot be reached")

    def _untrusted(self, error: openai.APIConnectionError) -> EndpointUnreachable:
        """Stop every thread at once: the certificate will not be trusted in a minute either."""
        return self._stop_every_call(untrusted(self._shown_url(), self._scrub(cause_text(error))), "TLS certificate not trusted")

    def _stop_every_call(self, error: _Aborted, why: str) -> _Aborted:
        self._latch.stop(error)
        log.error("%s: %s, stopping every call", self.name, why)
        self._controls.stop()
        return error

    def _shown_url(self) -> str:
        return url_without_credentials(self._config.base_url or str(self._client.base_url)) or ""

    def _slow_down(self, model: str, failure: Failure) -> None:
        """A timeout or an overloaded server lowers the model's concurrency before anything is sent again."""
        limit = self._controls.concurrency.for_model(model)
        if failure.kind == "timeout":
            limit.timed_out()
        elif failure.status_code in (429, 503):
            limit.overloaded()

    def _back_off(self, label: str, shown: str, failure: Failure, attempt: int) -> None:
        """Wait before the next attempt: a 429 holds every thread, anything else only this one.

        `label` goes to the retry event (the task's, possibly ''), `shown` to the log line.
        """
        delay = backoff_delay(attempt, self._policy, failure.retry_after, self._rand)
        if failure.rate_limited:
            self._throttle.rate_limited(delay)  # every thread's next acquire() waits it out
        log.warning(
            "%s: attempt %d of %d failed (%s); retrying in %.2fs",
            shown, attempt, self._policy.max_retries + 1, failure.reason, delay,
        )
        self._emit("retry", label=label, attempt=attempt, reason=failure.reason, delay=delay)
        if not failure.rate_limited:
            try:
                sleep_for(delay, self._clock, self._sleeper)
            except Stopped:
                pass  # stopped meanwhile: said just below
        self._latch.raise_if_stopped()

    def _gave_up(self, failure: Failure, attempts: int) -> ProviderError:
        what = f"{failure.reason} after {attempts} attempts: {failure.message}"
        if failure.rate_limited:
            return RateLimited(
                f"still rate limited {what}; lower max_concurrent_requests or requests_per_minute",
                status_code=429,
                attempts=attempts,
            )
        return TransientProviderError(what, status_code=failure.status_code, attempts=attempts)

    # -- helpers ---------------------------------------------------------------

    def _cost(self, request: ChatRequest, model: str, prompt_tokens: int, completion_tokens: int,
              cached: int = 0) -> tuple[float, float]:
        """(cost, what the endpoint's prompt cache saved) at the model's price."""
        price = self._config.price_for(request.model) or self._config.price_for(model)
        if price is None:
            return 0.0, 0.0
        cost = price.cost(prompt_tokens, completion_tokens, cached=cached)
        return cost, price.cost(prompt_tokens, completion_tokens) - cost

    def _bill_unanswered(self, data: Mapping[str, Any], request: ChatRequest) -> None:
        """A 200 without text (a content filter, a reasoning model that used max_tokens up) is still
        billed by the server: its usage counts against max_cost_usd, though the task fails."""
        prompt_tokens, completion_tokens = usage(data)
        if prompt_tokens or completion_tokens:
            model = str(data.get("model") or request.model)
            cost, _ = self._cost(request, model, prompt_tokens or 0, completion_tokens or 0, usage_details(data)[1])
            self._meter.add(cost)

    def _response(self, request: ChatRequest, answer: _Answer, attempts: int, started: float) -> ChatResponse:
        cost, saving = self._cost(request, answer.model, answer.prompt_tokens, answer.completion_tokens,
                                  answer.cached_tokens)
        if answer.reservation is not None:
            answer.reservation.settle(cost)
        else:
            self._meter.add(cost)
        return ChatResponse(
            text=answer.text,
            model=answer.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost_usd=cost,
            attempts=attempts,
            latency_s=self._clock() - started,
            finish_reason=answer.finish_reason,
            extra={"request_id": answer.request_id} if answer.request_id else {},
            reasoning_tokens=answer.reasoning_tokens,
            cached_tokens=answer.cached_tokens,
            cache_saving_usd=saving,
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, **fields)
        except Exception:  # a progress display must never fail a call
            log.exception("on_event hook failed for %r", kind)

    def _scrub(self, text: str) -> str:
        """Last line of defence: the key's value never leaves this class in a message."""
        return self._endpoint.scrub(text)


def _close_connection(response: httpx2.Response) -> None:
    """Close the socket under a response, so the pool makes a new connection for the next call."""
    network_stream = response.extensions.get("network_stream")
    if network_stream is not None:
        network_stream.close()


def _is_event_stream(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"
