"""The openai provider against the simulator over real HTTP, driven by the real SDK."""

from __future__ import annotations

import json
import logging
import queue
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import SecretStr

from report_pipeline.config import RunConfig
from report_pipeline.errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    EndpointUnreachable,
    ProviderError,
    RateLimited,
    TransientProviderError,
)
from report_pipeline.providers.base import ChatRequest, Provider
from report_pipeline.providers.openai.provider import OpenAIProvider
from report_pipeline.providers.tokens import call_tokens as estimate_tokens
from report_pipeline.providers.openai.transport import PooledTransport, make_http_client
from report_pipeline.providers.ratelimit import HeaderPacer, LearnedLimits
from report_pipeline.providers.retry import RetryPolicy
from report_pipeline.simulator import SimulatorHandle, serve_in_thread
from tests.simulator_support import TEST_API_KEY, make_simulator, simulator  # noqa: F401

MakeSimulator = Callable[..., SimulatorHandle]

# Retry quickly: the policy's delays are tested as tables in test_retry.py.
FAST = RetryPolicy(max_retries=8, initial_delay=0.01, max_delay=0.05)


def _config(base_url: str, *, key: str = TEST_API_KEY, **changes: Any) -> RunConfig:
    """A provider config for these tests: a fixed in-flight limit, since they stage calls in flight by number
    (test_concurrency.py covers the adaptive limit), and plain calls but for the probe, as to OpenAI
    (test_streaming.py covers every call streamed to a server that queues)."""
    changes.setdefault("concurrency", "fixed")
    changes.setdefault("streaming", "probes")
    return RunConfig(provider="openai", base_url=base_url, api_key=SecretStr(key), model="gpt-4o-mini", **changes)


@contextmanager
def _provider(config: RunConfig, **options: Any) -> Iterator[OpenAIProvider]:
    options.setdefault("policy", FAST)
    provider = OpenAIProvider(config, **options)
    try:
        yield provider
    finally:
        provider.close()


def _ask(text: str, *, label: str = "", model: str = "gpt-4o-mini") -> ChatRequest:
    return ChatRequest(model=model, messages=({"role": "user", "content": text},), max_tokens=200, label=label)


class _Events:
    """Collects on_event calls from every thread."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        with self._lock:
            self.items.append((kind, fields))

    def retries(self) -> list[dict[str, Any]]:
        return [fields for kind, fields in self.items if kind == "retry"]


# -- success ---------------------------------------------------------------------------


def test_completion_returns_text_usage_and_cost(simulator: SimulatorHandle) -> None:  # noqa: F811
    config = _config(simulator.base_url)
    with _provider(config) as provider:
        assert isinstance(provider, Provider)
        response = provider.complete(_ask("Summarise the energy table"))
    assert "Summarise the energy table" in response.text
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    price = config.price_for("gpt-4o-mini")
    assert price is not None
    assert response.cost_usd == pytest.approx(price.cost(response.prompt_tokens, response.completion_tokens))
    assert response.cost_usd > 0
    assert provider.spent_usd == pytest.approx(response.cost_usd)
    assert (response.attempts, response.finish_reason, response.model) == (1, "stop", "gpt-4o-mini")
    assert simulator.stats()["calls"] == 1


def test_token_estimate_matches_what_the_simulator_charges(simulator: SimulatorHandle) -> None:  # noqa: F811
    simulator.configure(tokens_per_window=100_000, window_s=60.0)
    request = _ask("x" * 1001)
    with _provider(_config(simulator.base_url)) as provider:
        response = provider.complete(request)
        limit = provider.throttle.pacer.tokens.limit
    assert estimate_tokens(request) == response.prompt_tokens + request.max_tokens
    assert limit == 100_000  # learned from x-ratelimit-limit-tokens


def test_model_without_a_price_costs_nothing(simulator: SimulatorHandle) -> None:  # noqa: F811
    with _provider(_config(simulator.base_url)) as provider:
        response = provider.complete(_ask("hello", model="sim-small"))
    assert response.cost_usd == 0.0
    assert provider.spent_usd == 0.0


def test_client_is_the_shared_sdk_client_for_batch_mode(simulator: SimulatorHandle) -> None:  # noqa: F811
    with _provider(_config(simulator.base_url)) as provider:
        client = provider.client
        assert isinstance(client, openai.OpenAI)
        assert provider.client is client  # one client, one connection pool
        assert str(client.base_url).rstrip("/") == simulator.base_url.rstrip("/")
        with pytest.raises(AttributeError):
            provider.client = client  # type: ignore[misc]


def test_list_models_lists_the_endpoints_models(simulator: SimulatorHandle) -> None:  # noqa: F811
    with _provider(_config(simulator.base_url)) as provider:
        assert provider.list_models() == sorted(simulator.config.models)


class _ThinServer(BaseHTTPRequestHandler):
    """A server like llama.cpp at its thinnest: no usage, no model, no rate-limit headers."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "plain answer"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_server_without_usage_or_rate_headers_still_works() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThinServer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        config = _config(f"http://127.0.0.1:{server.server_address[1]}/v1")
        with _provider(config) as provider:
            responses = [provider.complete(_ask(f"q{i}")) for i in range(3)]
            assert not provider.throttle.pacer.pacing
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    first = responses[0]
    # No usage: tokens (and so cost) are estimated at 4 characters a token, not counted as 0.
    assert (first.text, first.prompt_tokens, first.completion_tokens) == ("plain answer", 5, 3)
    assert first.cost_usd > 0
    assert (first.model, first.finish_reason) == ("gpt-4o-mini", "stop")


# -- the streamed probe -------------------------------------------------------------------


def test_the_probes_headers_release_the_waiting_calls_before_its_text(make_simulator: MakeSimulator) -> None:  # noqa: F811
    """The first calls to an unknown endpoint are streamed: their headers, limits included, come
    before their text, so the threads waiting on the probe go a whole model latency sooner."""
    sim = make_simulator(api_key=TEST_API_KEY, requests_per_window=1000, window_s=60.0)
    pacer = HeaderPacer(probe_timeout_s=120.0)  # unstreamed, the ninth call would wait 2 minutes
    with _provider(_config(sim.base_url), pacer=pacer) as provider, ThreadPoolExecutor(9) as pool:
        held = [pool.submit(provider.complete, _ask(f"probe {i} sim:hold=text")) for i in range(8)]
        sim.wait_until_held(8, "text")
        free = pool.submit(provider.complete, _ask("a call that waited for the probe")).result(timeout=10)
        # answered while every probe's text is still held: their headers alone ended the probe
        learned = provider.throttle.pacer.learned()
        assert learned is not None and learned.requests_limit == 1000
        assert not any(f.done() for f in held) and sim.stats()["completed"] == 1
        sim.release("text")
        streamed = [f.result(timeout=10) for f in held]
    assert sim.stats()["calls"] == 9
    # a streamed answer is the same answer: same text, usage and finish reason as unstreamed
    with _provider(_config(sim.base_url)) as later:
        later.throttle.pacer.recall(LearnedLimits(requests_limit=1000, requests_window_s=60.0))  # no probe
        again = [later.complete(_ask(f"probe {i} sim:hold=text")) for i in range(8)]
    for one, other in zip(streamed, again, strict=True):
        assert (one.text, one.prompt_tokens, one.completion_tokens, one.finish_reason, one.model) == (
            other.text, other.prompt_tokens, other.completion_tokens, other.finish_reason, other.model)


# -- retries -----------------------------------------------------------------------------


def test_fail_first_is_retried_to_success(simulator: SimulatorHandle, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    events = _Events()
    caplog.set_level(logging.WARNING, logger="report_pipeline.provider")
    with _provider(_config(simulator.base_url), on_event=events) as provider:
        response = provider.complete(_ask("sim:fail_first=2 flaky prompt", label="O1.T1.generate"))
    assert response.attempts == 3
    assert simulator.stats()["faults"] == {"503": 2}
    assert [(e["label"], e["attempt"], e["reason"]) for e in events.retries()] == [
        ("O1.T1.generate", 1, "HTTP 503"),
        ("O1.T1.generate", 2, "HTTP 503"),
    ]
    warnings = [r for r in caplog.records if r.name == "report_pipeline.provider" and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "O1.T1.generate" in warnings[0].getMessage()


def test_mixed_faults_over_100_calls_from_16_threads_all_succeed(make_simulator: MakeSimulator) -> None:  # noqa: F811
    sim = make_simulator(
        seed=7, error_rate=0.10, hang_rate=0.05, hang_s=5.0, drop_rate=0.05, malformed_rate=0.05
    )
    config = _config(sim.base_url, request_timeout_s=0.5, max_concurrent_requests=16)
    with _provider(config) as provider, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: provider.complete(_ask(f"task {i}")), range(100)))
    assert len(responses) == 100 and all(r.text for r in responses)
    stats = sim.stats()
    assert set(stats["faults"]) >= {"hang", "drop", "malformed"}
    assert {"500", "503"} & set(stats["faults"])
    # every attempt reached the server once, and only ours did
    assert sum(r.attempts for r in responses) == stats["calls"]
    assert stats["completed"] == 100


def test_bad_request_fails_with_the_servers_message_and_no_retry(simulator: SimulatorHandle) -> None:  # noqa: F811
    with _provider(_config(simulator.base_url)) as provider, pytest.raises(ProviderError) as caught:
        provider.complete(_ask("sim:status=400 broken request"))
    error = caught.value
    assert type(error) is ProviderError
    assert error.status_code == 400 and error.attempts == 1
    assert "Simulated error 400 requested by directive" in str(error)
    assert simulator.stats()["calls"] == 1


def test_persistent_server_errors_give_up_with_attempts(simulator: SimulatorHandle) -> None:  # noqa: F811
    policy = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
    with _provider(_config(simulator.base_url), policy=policy) as provider:
        with pytest.raises(TransientProviderError) as caught:
            provider.complete(_ask("sim:status=500 always down"))
    assert caught.value.attempts == 3 and caught.value.status_code == 500
    assert simulator.stats()["calls"] == 3


def test_429_retry_after_holds_every_thread(simulator: SimulatorHandle) -> None:  # noqa: F811
    """One thread's 429 (retry-after 0.3 s) makes a call started by another thread wait too."""
    later: dict[str, Any] = {}

    def on_event(kind: str, **fields: Any) -> None:
        if kind == "retry" and "thread" not in later:  # the cool-down is already in force here
            def other_call() -> None:
                later["response"] = provider.complete(_ask("an innocent bystander"))

            later["delay"] = fields["delay"]
            later["thread"] = threading.Thread(target=other_call)
            later["thread"].start()

    policy = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.02)
    with _provider(_config(simulator.base_url), policy=policy, on_event=on_event) as provider:
        with pytest.raises(RateLimited) as caught:
            provider.complete(_ask("sim:status=429 sim:retry_after=0.3 hot key"))
        later["thread"].join(timeout=10)
    assert caught.value.attempts == 2 and caught.value.status_code == 429
    assert later["delay"] == pytest.approx(0.3)  # the server's retry-after, not our 0.01 s backoff
    assert later["response"].latency_s >= 0.25  # the bystander sat out the cool-down


def test_two_clients_sharing_a_limit_back_off_and_all_succeed(make_simulator: MakeSimulator) -> None:  # noqa: F811
    """Like two runs on one key: each paces at the full limit, 429s slow both down."""
    sim = make_simulator(requests_per_window=10, window_s=0.5)
    events = _Events()
    config = _config(sim.base_url, max_concurrent_requests=4)
    with _provider(config, on_event=events) as first, _provider(config, on_event=events) as second:
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit((first, second)[i % 2].complete, _ask(f"shared {i}")) for i in range(24)]
            responses = [job.result() for job in jobs]
        triggers = first.throttle.cool_down.triggers + second.throttle.cool_down.triggers
    assert len(responses) == 24
    stats = sim.stats()
    assert stats["rate_limited"] >= 1
    assert triggers == stats["rate_limited"]
    assert {e["reason"] for e in events.retries()} == {"HTTP 429"}


def test_rate_limit_with_many_threads_all_succeed_with_few_429s(make_simulator: MakeSimulator) -> None:  # noqa: F811
    sim = make_simulator(requests_per_window=20, window_s=1.0, latency_s=0.05)
    config = _config(sim.base_url, max_concurrent_requests=30)
    with _provider(config) as provider, ThreadPoolExecutor(30) as pool:
        responses = list(pool.map(lambda i: provider.complete(_ask(f"paced {i}")), range(60)))
    assert len(responses) == 60
    stats = sim.stats()
    assert stats["completed"] == 60
    assert stats["rate_limited"] <= 6  # a plain pool gets more 429s than answers here


# -- auth, budget, lifecycle ------------------------------------------------------------


def test_wrong_key_raises_auth_error_and_stops_every_thread(make_simulator: MakeSimulator) -> None:  # noqa: F811
    sim = make_simulator(api_key="sk-the-right-key")
    config = _config(sim.base_url, key="sk-a-wrong-key", max_concurrent_requests=4)
    with _provider(config) as provider, ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(provider.complete, _ask(f"call {i}")) for i in range(12)]
        errors = [f.exception(timeout=30) for f in futures]
        assert all(isinstance(e, AuthError) for e in errors)
        assert provider.aborted
        calls = sim.stats()["calls"]
        assert 1 <= calls <= config.max_concurrent_requests
        with pytest.raises(AuthError):
            provider.complete(_ask("one more"))
    assert sim.stats()["calls"] == calls  # nothing more was sent
    message = str(errors[0])
    assert "HTTP 401" in message and "OPENAI_API_KEY" in message


def test_budget_stops_sending_once_reached(simulator: SimulatorHandle) -> None:  # noqa: F811
    # room for one call's worst case (its prompt a token a byte, 200 tokens out), not for a second
    with _provider(_config(simulator.base_url, max_cost_usd=1.5e-4)) as provider:
        provider.complete(_ask("first call"))
        assert provider.spent_usd > 0
        with pytest.raises(BudgetExceeded):
            provider.complete(_ask("second call"))
    assert simulator.stats()["calls"] == 1


def test_closed_provider_sends_nothing(simulator: SimulatorHandle) -> None:  # noqa: F811
    provider = OpenAIProvider(_config(simulator.base_url))
    provider.close()
    with pytest.raises(ProviderError, match="closed"):
        provider.complete(_ask("too late"))
    assert simulator.stats()["calls"] == 0


def test_missing_key_is_a_config_error_naming_the_variable() -> None:
    config = RunConfig(provider="openai", api_key_env="MY_LLM_KEY")
    with pytest.raises(ConfigError) as caught:
        OpenAIProvider(config)
    message = str(caught.value)
    assert "MY_LLM_KEY" in message
    assert "--provider offline" in message
    assert "export MY_LLM_KEY=local" in message


def test_azure_needs_an_api_version_and_uses_the_endpoint() -> None:
    config = RunConfig(provider="azure", base_url="https://example.openai.azure.com", api_key=SecretStr("k"))
    with pytest.raises(ConfigError, match="azure_api_version"):
        OpenAIProvider(config)
    ready = config.with_overrides(azure_api_version="2024-10-21")
    with _provider(ready) as provider:
        assert provider.name == "azure"
        assert "example.openai.azure.com/openai/" in repr(provider)


# -- secrets ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_key_never_appears_in_errors_or_logs(
    make_simulator: MakeSimulator, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    key = "sk-leak-check-7f3a9c"
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx2's included
    policy = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.02)
    errors: list[BaseException] = []
    open_sim = make_simulator()
    with _provider(_config(open_sim.base_url, key=key), policy=policy) as provider:
        for prompt in (f"sim:status={key}", "sim:status=500", "sim:status=429 sim:retry_after=0.01"):
            with pytest.raises(ProviderError) as caught:  # the first is a 400 that echoes the key
                provider.complete(_ask(prompt))
            errors.append(caught.value)
        assert repr(provider).count(key) == 0
    strict_sim = make_simulator(api_key="sk-some-other-key")
    with _provider(_config(strict_sim.base_url, key=key), policy=policy) as provider:
        with pytest.raises(AuthError) as caught:
            provider.complete(_ask("hello"))
        errors.append(caught.value)
    with _provider(_config(f"http://127.0.0.1:{_closed_port()}/v1", key=key), policy=policy) as provider:
        with pytest.raises(EndpointUnreachable) as caught:
            provider.complete(_ask("hello"))
        errors.append(caught.value)
    assert "***" in str(errors[0])  # the echo was scrubbed, not dropped
    for error in errors:
        assert key not in str(error) and key not in repr(error)
    assert caplog.records  # the check below looked at something
    for record in caplog.records:
        assert key not in record.getMessage()


def test_an_endpoint_no_attempt_reached_stops_every_call_once_one_has_tried_them_all() -> None:
    """A wrong port or a server that is down: one call's retries are the grace, then the run stops,
    instead of every task spending its own full backoff on the same refused connection."""
    policy = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with _provider(_config(url), policy=policy) as provider:
        with pytest.raises(EndpointUnreachable) as caught:
            provider.complete(_ask("hello"))
        assert caught.value.attempts == 3 and caught.value.exit_code == 2
        assert f"no HTTP answer from {url}" in caught.value.message and "base_url" in caught.value.message
        assert provider.aborted
        with pytest.raises(EndpointUnreachable) as later:  # the next call is not sent at all
            provider.complete(_ask("again"))
        assert later.value.attempts == 0


def test_a_server_that_hangs_up_on_every_request_is_unreachable_too() -> None:
    """An HTTPS port called with http://, a dead proxy: connected, but never an HTTP answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    policy = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.02)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        with _provider(_config(url), policy=policy) as provider, pytest.raises(EndpointUnreachable) as caught:
            provider.complete(_ask("hello"))
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
    assert f"no HTTP answer from {url} in 2 attempts" in caught.value.message


@contextmanager
def _tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, queue.Queue[str]]]:
    """HTTPS on 127.0.0.1 with a self-signed certificate (made by the openssl tool): its URL, the
    certificate, and what each connection came to ("handshake failed", "answered")."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop, seen = threading.Event(), queue.Queue[str]()
    body = json.dumps({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as connection:
                    connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                seen.put("answered")
            except (ssl.SSLError, OSError):
                seen.put("handshake failed")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/v1", cert, seen
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def test_an_untrusted_certificate_stops_the_run_at_once_saying_how_to_trust_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vLLM behind a company CA: retrying cannot help, and SSL_CERT_FILE is the fix."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    with _tls_server(tmp_path) as (url, cert, seen):
        with _provider(_config(url)) as provider, pytest.raises(EndpointUnreachable) as caught:
            provider.complete(_ask("hello"))
        assert "certificate is not trusted" in caught.value.message and "SSL_CERT_FILE" in caught.value.message
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the message says to do
        with _provider(_config(url)) as provider:
            assert provider.complete(_ask("hello")).text == "over TLS"
        connections = [seen.get(timeout=10)]
        while connections[-1] != "answered":
            connections.append(seen.get(timeout=10))
    assert connections == ["handshake failed", "answered"]  # the untrusted call was not retried


def test_an_endpoint_that_answered_once_and_then_went_down_fails_calls_not_the_run() -> None:
    policy = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.02)
    with serve_in_thread() as sim:
        provider = OpenAIProvider(_config(sim.base_url), policy=policy)
        assert provider.complete(_ask("hello")).text
    with provider:  # the server is gone mid-run: that call is retried, then fails; the run goes on
        with pytest.raises(TransientProviderError) as caught:
            provider.complete(_ask("hello again"))
        assert not isinstance(caught.value, EndpointUnreachable) and not provider.aborted


# -- the request path: Azure routing, the connection pool ------------------------------


_CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
).encode()


class _Recorder(BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 server that answers every POST with a chat body and records what it saw."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]
    close_after: int | None = None  # drop the connection after this many answers on it
    closed: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body),
                          "port": self.client_address[1]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_CHAT_BODY)))
        self.end_headers()
        self.wfile.write(_CHAT_BODY)
        if self.close_after is not None and len(self.seen) >= self.close_after:
            self.close_connection = True  # without saying so: like a server's idle timeout

    def finish(self) -> None:
        super().finish()
        self.closed.set()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _recording_server(**attributes: Any) -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": [], "closed": threading.Event(), **attributes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_azure_calls_go_to_the_deployment_with_the_api_key_header() -> None:
    with _recording_server() as (root, seen):
        config = RunConfig(provider="azure", base_url=root, api_key=SecretStr("az-key"), model="gpt-4o-mini",
                           azure_api_version="2024-10-21")
        with _provider(config) as provider:
            response = provider.complete(_ask("hello azure"))
    assert response.text == "ok"
    (call,) = seen.seen
    assert call["path"] == "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    assert call["headers"]["api-key"] == "az-key"
    assert "authorization" not in call["headers"]
    assert call["body"]["messages"] == [{"role": "user", "content": "hello azure"}]


def test_openai_calls_send_the_plain_body_with_a_bearer_key() -> None:
    request = ChatRequest(model="gpt-4o-mini", messages=({"role": "user", "content": "hi"},), max_tokens=50,
                          response_format={"type": "json_object"})
    with _recording_server() as (root, seen), _provider(_config(f"{root}/v1", streaming="probes")) as provider:
        provider.complete(request)  # the probe: the endpoint's limits are not known yet
        provider.complete(request)
    probe, call = seen.seen
    assert call["path"] == probe["path"] == "/v1/chat/completions"
    assert call["headers"]["authorization"] == f"Bearer {TEST_API_KEY}"
    plain = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
             "temperature": 0.2, "max_tokens": 50, "response_format": {"type": "json_object"}}
    assert call["body"] == plain
    # the probe is streamed, so its rate-limit headers come before its text; this server
    # ignores `stream` and answers plain JSON, which is read as an answer all the same
    assert probe["body"] == {**plain, "stream": True, "stream_options": {"include_usage": True}}


def test_pool_reuses_one_connection_for_calls_one_after_another() -> None:
    transport = PooledTransport()
    with _recording_server() as (root, seen), httpx2.Client(transport=transport) as client:
        for _ in range(3):
            assert client.post(f"{root}/v1/chat/completions", json={}).status_code == 200
        assert transport.idle_connections == 1
    assert len({call["port"] for call in seen.seen}) == 1


def test_pool_replaces_a_connection_the_server_closed_while_idle() -> None:
    transport = PooledTransport()
    with _recording_server(close_after=1) as (root, seen), httpx2.Client(transport=transport) as client:
        assert client.post(f"{root}/v1/chat/completions", json={}).status_code == 200
        assert seen.closed.wait(timeout=10)  # the server has hung up on the idle connection
        assert client.post(f"{root}/v1/chat/completions", json={}).status_code == 200
    first, second = seen.seen
    assert first["port"] != second["port"]  # a new connection, not an error


def test_a_call_after_the_server_closed_its_idle_connection_is_sent_once_without_a_retry() -> None:
    """A real run's case (a server's keep-alive timeout between two calls): httpcore2 2.17 reports
    it from handle_request as ConnectionNotAvailable, which reached the SDK as an unknown error."""
    events = _Events()
    with _recording_server(close_after=1) as (root, seen), \
            _provider(_config(f"{root}/v1"), on_event=events) as provider:
        provider.complete(_ask("first"))
        assert seen.closed.wait(timeout=10)
        response = provider.complete(_ask("second"))
    assert (response.text, response.attempts) == ("ok", 1)
    assert events.retries() == []
    assert len(seen.seen) == 2


def test_pool_waits_at_most_the_pool_timeout_for_a_free_connection() -> None:
    transport = PooledTransport(limits=httpx2.Limits(max_connections=1))
    with _recording_server() as (root, _), httpx2.Client(transport=transport) as client:
        url = f"{root}/v1/chat/completions"
        request = client.build_request("POST", url, json={})
        held = client.send(request, stream=True)  # keeps the only connection checked out
        with pytest.raises(httpx2.PoolTimeout):
            client.post(url, json={}, timeout=httpx2.Timeout(5.0, pool=0.01))
        held.close()
        assert client.post(url, json={}).status_code == 200


def test_pool_reports_a_refused_connection_as_httpx_connect_error() -> None:
    with httpx2.Client(transport=PooledTransport()) as client, pytest.raises(httpx2.ConnectError):
        client.get(f"http://127.0.0.1:{_closed_port()}/v1/models")


def test_http_client_still_routes_through_a_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool is mounted for all://, so HTTP_PROXY (httpx2's own proxy mount) still wins."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with _recording_server() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("http_proxy", proxy)
        client = make_http_client(limits=httpx2.Limits(max_connections=2), timeout=httpx2.Timeout(5.0))
        with client:
            assert client.post("http://api.example.invalid/v1/chat/completions", json={}).status_code == 200
    (call,) = seen.seen
    assert call["path"] == "http://api.example.invalid/v1/chat/completions"  # the proxy's absolute form
