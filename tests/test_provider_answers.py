"""The openai provider against servers that answer oddly: 200s without text, errors in a 200,
bodies that are not the JSON expected, redirects, model listings, bodies that never end.

Each test serves its own aiohttp app on 127.0.0.1 (the `odd_server` fixture) and drives the
real SDK over real HTTP, as tests/test_openai_provider.py does with the simulator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from aiohttp import web
from pydantic import SecretStr

from report_pipeline.config import RunConfig
from report_pipeline.errors import (
    BudgetExceeded,
    ProviderError,
    RateLimited,
    TransientProviderError,
)
from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.openai.provider import OpenAIProvider
from report_pipeline.providers.openai.transport import make_http_client
from report_pipeline.providers.ratelimit import LearnedLimits
from report_pipeline.providers.retry import RetryPolicy

KEY = "sk-answers-test-5e1d"
# Retry quickly, and few times: each test counts the requests the server saw.
FAST = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OddServer:
    """An aiohttp app in a thread; `chat` and `models` answer POST /v1/chat/completions and GET /v1/models."""

    def __init__(self) -> None:
        self.chat: Handler = _json(_ok())
        self.models: Handler = _json({"object": "list", "data": [{"id": "m-b"}, {"id": "m-a"}]})
        self.seen: list[str] = []  # "METHOD /path" of every request
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="odd-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(timeout=10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(f"{request.method} {request.path}")
        if request.path.endswith("/models"):
            return await self.models(request)
        return await self.chat(request)


@pytest.fixture
def odd_server() -> Iterator[OddServer]:
    server = OddServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- helpers -------------------------------------------------------------------------------


def _ok(content: Any = "an answer", finish: str | None = "stop", **message: Any) -> dict[str, Any]:
    return {"id": "x", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50}}


def _json(body: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)
    return handler


def _raw(body: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})
    return handler


def _drip(byte: bytes | None, every_s: float) -> Handler:
    """Headers at once, then the body a byte every `every_s` (`byte` None: the real body; else that byte for ever)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        data = json.dumps(_ok()).encode()
        for i in range(10_000):
            await response.write(byte if byte is not None else data[i:i + 1])
            await asyncio.sleep(every_s)
        return response
    return handler


@contextmanager
def _provider(server: OddServer, *, probe: bool = False, **changes: Any) -> Iterator[OpenAIProvider]:
    """A provider on `server`; without `probe`, as on an endpoint a previous run learned sends no
    rate-limit headers, so every call is plain (the streamed probe has its own tests, section 7; calls
    streamed to a server that queues, test_streaming.py)."""
    changes.setdefault("streaming", "probes")
    config = RunConfig(provider="openai", base_url=server.base_url, api_key=SecretStr(KEY), model="gpt-4o-mini",
                       **changes)
    provider = OpenAIProvider(config, policy=FAST)
    if not probe:
        provider.throttle.pacer.recall(LearnedLimits())
    try:
        yield provider
    finally:
        provider.close()


def _ask(text: str = "hello", *, label: str = "obj.t1.generate") -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=({"role": "user", "content": text},), max_tokens=200,
                       label=label)


def _fails(server: OddServer, **changes: Any) -> ProviderError:
    with _provider(server, **changes) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask())
    assert KEY not in str(caught.value)
    return caught.value


# -- 1. a 200 without text is not an answer ---------------------------------------------------

NO_TEXT = [
    pytest.param(_ok(None, "content_filter"),
                 "the endpoint returned no text (finish_reason content_filter: blocked by the content filter)",
                 id="azure-content-filter-null"),
    pytest.param(_ok("", "content_filter"),
                 "the endpoint returned no text (finish_reason content_filter: blocked by the content filter)",
                 id="azure-content-filter-empty"),
    pytest.param(_ok(None, "stop", reasoning_content="thinking..."),
                 "the endpoint returned no text (finish_reason stop: only reasoning_content came back",
                 id="vllm-reasoning-only"),
    pytest.param(_ok(None, "tool_calls", tool_calls=[{"id": "c", "type": "function",
                                                     "function": {"name": "f", "arguments": "{}"}}]),
                 "the endpoint returned no text (finish_reason tool_calls: the model asked to call a tool",
                 id="tool-calls-only"),
    pytest.param({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}},
                 "the endpoint returned no text (no choices in the answer)", id="empty-choices"),
    pytest.param(_ok(None, "stop"), "the endpoint returned no text (finish_reason stop)", id="null-content"),
    pytest.param(_ok("", "stop"), "the model returned an empty answer (finish_reason stop)", id="empty-string"),
    pytest.param(_ok(None, "length"), "finish_reason length: max_tokens=200 ran out before any text",
                 id="length-before-any-text"),
]


@pytest.mark.parametrize(("body", "message"), NO_TEXT)
def test_answer_without_text_fails_the_call_at_once_naming_the_finish_reason(
    odd_server: OddServer, body: dict[str, Any], message: str
) -> None:
    odd_server.chat = _json(body)
    error = _fails(odd_server)
    assert message in error.message
    assert not isinstance(error, TransientProviderError)
    assert (error.attempts, len(odd_server.seen)) == (1, 1)  # not retried


# -- 2. an error object in a 200 (OpenRouter) -------------------------------------------------


def test_error_in_a_200_with_a_client_code_fails_at_once_with_the_servers_message(odd_server: OddServer) -> None:
    odd_server.chat = _json({"error": {"message": "This model's maximum context length is 8192 tokens", "code": 400}})
    error = _fails(odd_server)
    assert error.message == "the endpoint answered 200 with error 400: This model's maximum context length is 8192 tokens"
    assert len(odd_server.seen) == 1


@pytest.mark.parametrize("error", [
    {"message": "Upstream provider returned error: model overloaded", "code": 502},
    {"message": "Upstream provider returned error: model overloaded", "code": "429"},
    {"message": "Upstream provider returned error: model overloaded"},
], ids=["code-502", "code-429-as-text", "no-code"])
def test_error_in_a_200_with_a_retryable_or_missing_code_is_retried(
    odd_server: OddServer, error: dict[str, Any]
) -> None:
    odd_server.chat = _json({"error": error})
    failure = _fails(odd_server)
    assert isinstance(failure, (TransientProviderError, RateLimited))
    assert failure.attempts == FAST.max_retries + 1
    assert "Upstream provider returned error: model overloaded" in failure.message
    assert len(odd_server.seen) == FAST.max_retries + 1


# -- 3. finish_reason length ------------------------------------------------------------------


def test_cut_answer_keeps_its_text_and_warns_with_the_label_and_max_tokens(
    odd_server: OddServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    odd_server.chat = _json(_ok("The answer was cut", "length"))
    with _provider(odd_server) as provider:
        response = provider.complete(_ask(label="prices.t1.generate"))
    assert (response.text, response.finish_reason) == ("The answer was cut", "length")
    (record,) = [r for r in caplog.records if "max_tokens" in r.getMessage()]
    assert "prices.t1.generate" in record.getMessage() and "max_tokens=200" in record.getMessage()


# -- 4. usage missing or odd ------------------------------------------------------------------


def test_missing_usage_is_estimated_for_cost_and_warned_about_once_a_run(
    odd_server: OddServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    body = _ok("x" * 40)
    del body["usage"]
    odd_server.chat = _json(body)
    with _provider(odd_server) as provider:
        responses = [provider.complete(_ask("y" * 80)) for _ in range(3)]
    assert (responses[0].prompt_tokens, responses[0].completion_tokens) == (20 + 4, 10)
    assert responses[0].cost_usd > 0
    assert len([r for r in caplog.records if "no usable token usage" in r.getMessage()]) == 1


def test_missing_usage_still_counts_against_the_budget(odd_server: OddServer) -> None:
    odd_server.chat = _json({**_ok(), "usage": None})
    # the worst case of a call ("hello": 9 tokens at most in, 200 out) is $1.2135e-4: it fits, and
    # the estimated cost of the first answer (no usage: 4 characters a token) leaves no room for a second
    with _provider(odd_server, max_cost_usd=1.2185e-4) as provider:
        provider.complete(_ask())
        with pytest.raises(BudgetExceeded):
            provider.complete(_ask())
    assert len(odd_server.seen) == 1


def test_usage_as_numeric_strings_and_floats_counts(odd_server: OddServer) -> None:
    odd_server.chat = _json({**_ok(), "usage": {"prompt_tokens": "100", "completion_tokens": 50.0}})
    with _provider(odd_server) as provider:
        response = provider.complete(_ask())
    assert (response.prompt_tokens, response.completion_tokens) == (100, 50)


# -- 5. bodies that are not the JSON expected -------------------------------------------------


@pytest.mark.parametrize(("handler", "shown"), [
    (_raw(b"<html><body>Please log in</body></html>", "text/html"),
     "(text/html; body starts '<html><body>Please log in</body></html>')"),
    (_raw(b"", "application/json"), "(application/json; empty body)"),
    (_json([_ok()]), "(application/json; charset=utf-8; body starts '[{"),
    (_raw(b'data: {"choices": []}\n\n', "text/event-stream"), "(text/event-stream; body starts 'data: "),
], ids=["html-200", "empty-200", "json-list", "sse"])
def test_malformed_answer_says_what_came_back(odd_server: OddServer, handler: Handler, shown: str) -> None:
    odd_server.chat = handler
    error = _fails(odd_server)
    assert "malformed response" in error.message
    assert shown in error.message
    assert "Bearer" not in error.message


def test_json_in_latin1_is_read_by_its_charset(odd_server: OddServer) -> None:
    body = json.dumps(_ok("café"), ensure_ascii=False).encode("latin-1")
    odd_server.chat = _raw(body, "application/json; charset=iso-8859-1")
    with _provider(odd_server) as provider:
        assert provider.complete(_ask()).text == "café"


# -- 6. redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirect_is_not_followed_and_names_the_base_url_to_use(odd_server: OddServer, status: int) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": "/new" + request.path})
    odd_server.chat = moved
    error = _fails(odd_server)
    new = f"http://127.0.0.1:{odd_server.port}/new/v1"
    assert error.message == f"the endpoint redirected to {new}/chat/completions: set base_url to {new}"
    assert odd_server.seen == ["POST /v1/chat/completions"]  # not followed, not retried


def test_redirect_loop_is_sent_once(odd_server: OddServer) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": request.path})
    odd_server.chat = loop
    assert "the endpoint redirected to" in _fails(odd_server).message
    assert len(odd_server.seen) == 1


# -- 7. listing models ------------------------------------------------------------------------


def test_list_models_reads_openai_and_ollama_listings(odd_server: OddServer) -> None:
    with _provider(odd_server) as provider:
        assert provider.list_models() == ["m-a", "m-b"]
        odd_server.models = _json({"models": [{"name": "llama3"}]})
        assert provider.list_models() == ["llama3"]


@pytest.mark.parametrize("handler", [
    _raw(b"<html><body>Please log in</body></html>", "text/html"),
    _json([{"id": "m"}]),
    _raw(b'data: {"id": "m"}\n\n', "text/event-stream"),
    _raw(b"", "application/json"),
    _raw(b'{"data": [{"id": "caf\xff\xfe"}]}', "application/json"),
    _json({"object": "list", "data": [{"object": "model"}]}),
], ids=["html-200", "json-list", "sse", "empty-body", "not-utf8", "no-ids"])
def test_list_models_turns_an_odd_listing_into_a_provider_error(odd_server: OddServer, handler: Handler) -> None:
    odd_server.models = handler
    with _provider(odd_server) as provider, pytest.raises(ProviderError) as caught:
        provider.list_models()
    assert caught.value.message.startswith("could not list models: the model list ")
    assert "body" in caught.value.message
    assert len(odd_server.seen) == 1


@pytest.mark.parametrize("body", [{"object": "list", "data": []}, {"object": "list"}], ids=["empty-data", "no-data"])
def test_list_models_reports_an_empty_listing(odd_server: OddServer, body: dict[str, Any]) -> None:
    odd_server.models = _json(body)
    with _provider(odd_server) as provider, pytest.raises(ProviderError, match="the endpoint lists no models"):
        provider.list_models()


def test_list_models_retries_server_errors(odd_server: OddServer) -> None:
    answers = iter([_json({"error": {"message": "busy"}}, status=503), _json({"data": [{"id": "m"}]})])

    async def flaky(request: web.Request) -> web.StreamResponse:
        return await next(answers)(request)
    odd_server.models = flaky
    with _provider(odd_server) as provider:
        assert provider.list_models() == ["m"]
    assert odd_server.seen == ["GET /v1/models"] * 2


# -- 8. request_timeout_s bounds the whole attempt --------------------------------------------


@pytest.mark.parametrize("handler", [_drip(None, 0.3), _drip(b" ", 0.3)], ids=["drip", "whitespace-for-ever"])
def test_a_body_that_trickles_in_times_out_at_request_timeout_s(odd_server: OddServer, handler: Handler) -> None:
    odd_server.chat = handler
    started = time.monotonic()
    error = _fails(odd_server, request_timeout_s=1.0)
    assert isinstance(error, TransientProviderError)
    assert "timeout" in error.message
    assert len(odd_server.seen) == FAST.max_retries + 1  # a timeout is retried, like any other
    assert time.monotonic() - started < 10  # three attempts of 1 s each, not three of 90 s


class _HeaderDrip:
    """A raw TCP server whose answer's status line comes at once and its headers a byte every `every_s`,
    for ever: what an aiohttp handler cannot send. `base_url` is all `_provider` needs of it."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"
        self._thread = threading.Thread(target=self._serve, name="header-drip", daemon=True)

    def __enter__(self) -> _HeaderDrip:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            self.seen.append(connection.recv(65536).split(b" ", 2)[1].decode())
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self._stop.wait(self.every_s):
                    connection.sendall(b"x")
            except OSError:  # the client gave up and closed
                pass


def test_headers_that_trickle_in_time_out_at_request_timeout_s() -> None:
    """httpcore2 bounds each read, not the header block: a byte every 0.3 s kept a call waiting for ever."""
    with _HeaderDrip(every_s=0.3) as server:
        started = time.monotonic()
        error = _fails(server, request_timeout_s=1.0)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
    assert isinstance(error, TransientProviderError)
    assert "timeout" in error.message
    assert server.seen == ["/v1/chat/completions"] * (FAST.max_retries + 1)
    assert elapsed < 10  # three attempts of about 1 s each


def test_a_server_that_drops_every_answer_after_its_headers_is_reached_not_unreachable(odd_server: OddServer) -> None:
    """Its headers came back: the endpoint is there and the run goes on, each call failing on its own."""
    async def cut_short(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "500"})
        await response.prepare(request)
        await response.write(b'{"id": "x", "choi')
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-body
        return response

    odd_server.chat = cut_short
    with _provider(odd_server) as provider:
        with pytest.raises(ProviderError) as caught:
            provider.complete(_ask())
        assert isinstance(caught.value, TransientProviderError) and not provider.aborted
    assert len(odd_server.seen) == FAST.max_retries + 1


def test_a_file_download_may_outlast_request_timeout_s_while_its_bytes_keep_coming(odd_server: OddServer) -> None:
    """A Batch API output file is large: the whole-exchange deadline is for calls, not for /files."""
    body = b"x" * 15

    async def slow_file(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for byte in body:  # 15 bytes over 1.5 s, against a 1 s timeout
            await response.write(bytes([byte]))
            await asyncio.sleep(0.1)
        return response

    odd_server.chat = slow_file
    client = make_http_client(limits=httpx2.Limits(max_connections=2), timeout=httpx2.Timeout(1.0))
    with client:
        assert client.get(f"{odd_server.base_url}/files/file-1/content").content == body
        with pytest.raises(httpx2.ReadTimeout):  # the same bytes as a call's answer: past its deadline
            client.post(f"{odd_server.base_url}/chat/completions", json={})


# -- 9. the streamed probe --------------------------------------------------------------------
# The first calls to an endpoint whose limits are unknown are streamed, so that their headers
# (and the limits in them) arrive before their text; every other call is plain. A probe that
# fails is retried plain: its headers already ended the probe.


def _event(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


_USAGE_EVENT = {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024", "choices": [],
                "usage": {"prompt_tokens": 120, "completion_tokens": 60}}
_GOOD_STREAM = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "a streamed "}),
                _chunk({"content": "answer"}), _chunk({}, "length"), _USAGE_EVENT, b"[DONE]"]


def _streams(events: list[Any], *, plain: Handler | None = None, status: int = 200) -> Handler:
    """Server-sent `events` to a request with `stream: true`; `plain` (a good answer) to any other."""
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return await (plain or _json(_ok()))(request)
        if status != 200:
            return web.json_response(events[0], status=status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"".join(_event(e) for e in events))
        await response.write_eof()
        return response
    return handler


def test_a_streamed_probe_reads_text_tokens_and_finish_reason_from_its_events(odd_server: OddServer) -> None:
    odd_server.chat = _streams(_GOOD_STREAM)
    with _provider(odd_server, probe=True) as provider:
        response = provider.complete(_ask())
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("a streamed answer", 120, 60)
    assert (response.model, response.finish_reason, response.attempts) == ("gpt-4o-mini-2024", "length", 1)
    assert response.cost_usd > 0


@pytest.mark.parametrize("bad", [
    _event({"error": {"message": "Upstream provider returned error: overloaded", "code": 502}}),
    b"data: {not json\n\n",
], ids=["error-event", "not-json"])
def test_a_probe_whose_stream_breaks_is_retried_plain(odd_server: OddServer, bad: bytes) -> None:
    odd_server.chat = _streams([_chunk({"role": "assistant", "content": "an "}), bad])
    with _provider(odd_server, probe=True) as provider:
        response = provider.complete(_ask())
    assert (response.text, response.attempts) == ("an answer", 2)
    assert len(odd_server.seen) == 2


def test_a_streamed_probe_without_usage_is_estimated_without_blaming_the_endpoint(
    odd_server: OddServer, caplog: pytest.LogCaptureFixture
) -> None:
    """llama.cpp's Python server ignores stream_options: its plain answers do carry usage, so the
    once-a-run warning that the endpoint sends none would be wrong."""
    odd_server.chat = _streams([_chunk({"content": "a streamed answer"}, "stop"), b"[DONE]"])
    with _provider(odd_server, probe=True) as provider:
        response = provider.complete(_ask("x" * 40))
        plain = provider.complete(_ask("x" * 40))
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("a streamed answer", 14, 5)
    assert (plain.prompt_tokens, plain.completion_tokens) == (100, 50)
    assert not any("no usable token usage" in r.getMessage() for r in caplog.records)


def test_a_streamed_probe_with_no_text_fails_naming_the_finish_reason(odd_server: OddServer) -> None:
    odd_server.chat = _streams([_chunk({"role": "assistant", "content": ""}), _chunk({}, "content_filter"), b"[DONE]"])
    with _provider(odd_server, probe=True) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask())
    assert "blocked by the content filter" in caught.value.message
    assert len(odd_server.seen) == 1


def test_an_endpoint_that_refuses_streaming_is_asked_plain_from_then_on(
    odd_server: OddServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="report_pipeline.provider")
    refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options", "code": None}}
    odd_server.chat = _streams([refusal], status=400)
    with _provider(odd_server, probe=True) as provider:
        first = provider.complete(_ask())
        provider.throttle.pacer._probe_answered = False  # as if the limits were still unknown
        second = provider.complete(_ask())
    assert (first.text, first.attempts, second.text) == ("an answer", 1, "an answer")
    assert len(odd_server.seen) == 3  # the refused stream, then two plain calls: streaming is not tried again
    assert any("refused a streamed call" in r.getMessage() for r in caplog.records)


def test_a_400_that_is_not_about_streaming_fails_the_probe_once(odd_server: OddServer) -> None:
    odd_server.chat = _streams([{"error": {"message": "This model's maximum context length is 8192 tokens"}}], status=400)
    with _provider(odd_server, probe=True) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask())
    assert caught.value.status_code == 400 and "maximum context length" in caught.value.message
    assert len(odd_server.seen) == 1


def test_a_streamed_probe_that_trickles_in_times_out_at_request_timeout_s(odd_server: OddServer) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(10_000):
            await response.write(b": keep-alive\n\n")  # an SSE comment: never an event
            await asyncio.sleep(0.2)
        return response
    odd_server.chat = handler
    started = time.monotonic()
    error = _fails_probe(odd_server, request_timeout_s=1.0)
    assert isinstance(error, TransientProviderError) and "timeout" in error.message
    assert len(odd_server.seen) == FAST.max_retries + 1
    assert time.monotonic() - started < 10


def _fails_probe(server: OddServer, **changes: Any) -> ProviderError:
    with _provider(server, probe=True, **changes) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask())
    return caught.value


def test_a_placeholder_key_for_a_local_server_does_not_mangle_messages(odd_server: OddServer) -> None:
    """OPENAI_API_KEY=x for llama.cpp: hiding every "x" would make "ma***imum" of the server's words."""
    odd_server.chat = _json({"error": {"message": "This model's maximum context length is 2048 tokens"}}, status=400)
    config = RunConfig(provider="openai", base_url=odd_server.base_url, api_key=SecretStr("x"), model="gpt-4o-mini")
    with OpenAIProvider(config, policy=FAST) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask())
    assert "This model's maximum context length is 2048 tokens" in caught.value.message


def test_a_200_without_text_is_still_billed_against_the_budget(odd_server: OddServer) -> None:
    """A reasoning model that used max_tokens up on its thoughts: no text, but 4,000 tokens paid."""
    odd_server.chat = _json({**_ok(content=None, finish="length", reasoning_content="thinking..."),
                             "usage": {"prompt_tokens": 1000, "completion_tokens": 4000}})
    with _provider(odd_server, max_cost_usd=1.5e-4) as provider:  # one call's worst case fits
        with pytest.raises(ProviderError, match="only reasoning_content came back"):
            provider.complete(_ask())
        assert provider.spent_usd > 0
        with pytest.raises(BudgetExceeded):
            provider.complete(_ask())
    assert len(odd_server.seen) == 1
