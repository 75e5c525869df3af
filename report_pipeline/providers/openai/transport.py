"""An httpx2 transport whose connection pool costs the same per call at 200 connections as at 2.

Why not httpx2's own pool: `httpcore2.ConnectionPool` re-examines *every* connection
it holds on each request and on each response close (`_assign_requests_to_connections`),
and `has_expired()` on an idle connection polls its socket, so a call costs
O(connections) of Python and system calls. At max_concurrent_requests 200 that was
the largest single item in a call's CPU (benchmarks/RESULTS.md, "CPU per call"),
and in a process whose threads share one GIL, CPU per call caps the calls per second.

`PooledTransport` keeps the protocol work where it was, in httpcore2's
`HTTPConnection` (h11, TLS, keep-alive expiry, a peer's close detected before reuse),
and replaces only the bookkeeping: idle connections wait on a stack per origin, a
request pops one (checking that one socket only), and a closed response pushes it
back. The most recently used connection is reused first, so the rest age out of
the server's keep-alive rather than being reused just as it closes them.

    checked out    at most `max_connections` at once; the next request waits up to
                   the pool timeout, then raises httpx2.PoolTimeout
    idle           at most `max_keepalive_connections` per origin; more are closed
    errors         httpcore2's exceptions become httpx2's (ReadTimeout, ConnectError,
                   RemoteProtocolError...), so the SDK sees what it saw before
    deadline       the request's read timeout also bounds the whole exchange, from
                   connecting to the body's last byte: httpcore2 applies it to each
                   read, so a server sending a byte every few seconds (of its headers,
                   of its body, or whitespace for ever) would otherwise never time out.
                   Every connect, read and write is given at most the time left
                   (`_DeadlineBackend`), so no call overruns it; past it they raise
                   httpx2's ConnectTimeout/ReadTimeout/WriteTimeout, which the SDK
                   reports as a timeout. File uploads and downloads (`/files`, the
                   Batch API's input and output) are bounded per read only: a large
                   file takes as long as it takes while its bytes keep coming
    streamed       inside `stream_deadlines(first_byte_s, gap_s)` a request has two bounds
                   instead: its headers and first body chunk within `first_byte_s` (a
                   one-slot server's queue may hold it that long: waiting is not failing),
                   then each later chunk within `gap_s` of the one before (a stalled
                   server is still cut). A long answer that keeps coming is not cut

It is mounted for `all://` (see `make_http_client`), so httpx2 still routes through a
proxy from HTTP_PROXY/HTTPS_PROXY, and NO_PROXY hosts through its default transport;
only ALL_PROXY is overridden by the explicit mount.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore2
import httpx2

__all__ = ["PooledTransport", "make_http_client", "stream_deadlines"]

# Most specific first: the first match decides (a ReadTimeout is also a TimeoutException).
_ERRORS: tuple[tuple[type[Exception], type[httpx2.HTTPError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
)

_Key = tuple[bytes, bytes, int]  # scheme, host, port

# The exchange under way on this thread: time.monotonic() by which it must be over, or None.
# Set around a request's headers and around each read of its body; a connection is used by
# one exchange at a time, on the thread that reads it.
_exchange = threading.local()


def _time_left(error: type[Exception], timeout: float | None) -> float | None:
    """`timeout` cut to the time left before this thread's exchange deadline; `error` once it is past."""
    deadline = getattr(_exchange, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the answer was not complete within the request's timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore2.NetworkStream):
    """A socket stream whose every read and write ends by the exchange's deadline."""

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(httpcore2.ReadTimeout, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(httpcore2.WriteTimeout, timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        timeout = _time_left(httpcore2.ConnectTimeout, timeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    """httpcore2's sockets, each wrapped in a `_DeadlineStream`."""

    def __init__(self) -> None:
        self._backend = httpcore2.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore2.NetworkStream:
        timeout = _time_left(httpcore2.ConnectTimeout, timeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@contextmanager
def _until(deadline: float | None) -> Iterator[None]:
    previous = getattr(_exchange, "deadline", None)
    _exchange.deadline = deadline
    try:
        yield
    finally:
        _exchange.deadline = previous


@contextmanager
def stream_deadlines(first_byte_s: float, gap_s: float) -> Iterator[None]:
    """Requests sent on this thread within get a first-byte bound and a gap bound, not a whole-exchange one."""
    previous = getattr(_exchange, "stream", None)
    _exchange.stream = (first_byte_s, gap_s)
    try:
        yield
    finally:
        _exchange.stream = previous


def _as_httpx_error(error: Exception) -> Exception:
    for source, target in _ERRORS:
        if isinstance(error, source):
            return target(str(error))
    return error


class _ResponseStream(httpx2.SyncByteStream):
    """The body as httpcore2 yields it; closing it gives the connection back to the pool."""

    def __init__(self, pool: PooledTransport, key: _Key, connection: httpcore2.HTTPConnection,
                 stream: Any, deadline: float | None = None, gap_s: float | None = None) -> None:
        self._pool = pool
        self._key = key
        self._connection = connection
        self._stream = stream
        self._deadline = deadline  # time.monotonic() by which the last byte (or, streamed, the next) must be in
        self._gap_s = gap_s  # streamed: after the first chunk, each next one within this of the last
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._stream)
        while True:
            try:
                with _until(self._deadline):  # each read, on whichever thread reads the body
                    chunk = next(chunks)
                if self._gap_s is not None:
                    self._deadline = time.monotonic() + self._gap_s
            except StopIteration:
                return
            except Exception as error:
                mapped = _as_httpx_error(error)
                if mapped is error:
                    raise
                raise mapped from error
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.close()  # httpcore2 marks the connection idle, or closes it
        finally:
            self._pool._release(self._key, self._connection)


class PooledTransport(httpx2.BaseTransport):
    """HTTP/1.1 over httpcore2 connections, pooled with O(1) work per request (thread-safe)."""

    def __init__(
        self,
        *,
        limits: httpx2.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        limits = limits or httpx2.Limits()
        self._max_connections = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._keepalive_expiry = limits.keepalive_expiry
        self._ssl_context = ssl_context or httpx2.create_ssl_context()
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[httpcore2.HTTPConnection]] = {}
        self._slots = threading.BoundedSemaphore(self._max_connections) if self._max_connections else None
        self._backend = _DeadlineBackend()
        self._on_answer = on_answer  # called as each answer's status line and headers are in
        self._closed = False

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        key: _Key = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        if key[0] not in (b"http", b"https"):
            raise httpx2.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=key[2], target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        self._take_slot(request)
        streamed = getattr(_exchange, "stream", None)
        deadline = time.monotonic() + streamed[0] if streamed is not None else _deadline(request)
        try:
            connection, response = self._send(key, core_request, deadline)
            if self._on_answer is not None:
                self._on_answer()
        except BaseException:
            self._give_slot()
            raise
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(self, key, connection, response.stream, deadline,
                                   gap_s=streamed[1] if streamed is not None else None),
            extensions=response.extensions,
        )

    def _send(self, key: _Key, core_request: httpcore2.Request,
              deadline: float | None) -> tuple[httpcore2.HTTPConnection, httpcore2.Response]:
        """The request sent on a pooled connection, taking the next one while a connection refuses it.

        A connection refuses a request (`ConnectionNotAvailable`, before a byte is sent) when
        the server hung up on it while it was idle: httpcore2 2.17 finds that in
        `handle_request`, where 2.16 found it in `has_expired()` (which `_checkout` asks).
        httpcore2's own pool takes another connection then; so do we. The loop ends: each turn
        takes an idle connection off the stack, or makes a new one, whose refusal is an error."""
        while True:
            connection, reused = self._checkout(key, core_request.url.origin)
            try:
                with _until(deadline):
                    return connection, connection.handle_request(core_request)
            except httpcore2.ConnectionNotAvailable:
                connection.close()
                if not reused:
                    raise httpx2.RemoteProtocolError("a new connection refused the request") from None
            except Exception as error:
                connection.close()
                mapped = _as_httpx_error(error)
                if mapped is error:
                    raise
                raise mapped from error

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [connection for stack in self._idle.values() for connection in stack]
            self._idle.clear()
        for connection in idle:
            connection.close()

    @property
    def idle_connections(self) -> int:
        """Connections waiting for a request (for tests and progress displays)."""
        with self._lock:
            return sum(len(stack) for stack in self._idle.values())

    # -- the pool ------------------------------------------------------------------

    def _take_slot(self, request: httpx2.Request) -> None:
        if self._slots is None:
            return
        timeout = (request.extensions.get("timeout") or {}).get("pool")
        if not self._slots.acquire(timeout=timeout):
            raise httpx2.PoolTimeout("no connection became free within the pool timeout")

    def _give_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _checkout(self, key: _Key, origin: httpcore2.Origin) -> tuple[httpcore2.HTTPConnection, bool]:
        """The most recently used idle connection that is still good (and True), else a new one (and False)."""
        while True:
            with self._lock:
                stack = self._idle.get(key)
                connection = stack.pop() if stack else None
            if connection is None:
                return httpcore2.HTTPConnection(
                    origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry,
                    network_backend=self._backend,
                ), False
            # has_expired: past keep-alive (and before httpcore2 2.17, the server closed it)
            if connection.is_idle() and not connection.has_expired():
                return connection, True
            connection.close()

    def _release(self, key: _Key, connection: httpcore2.HTTPConnection) -> None:
        try:
            if connection.is_idle() and not self._closed:
                with self._lock:
                    stack = self._idle.setdefault(key, [])
                    if self._max_idle is None or len(stack) < self._max_idle:
                        stack.append(connection)
                        return
            connection.close()
        finally:
            self._give_slot()


def _deadline(request: httpx2.Request) -> float | None:
    """When the whole exchange must be over: now plus the request's read timeout (None: no limit).

    None for a file's upload or download, which may be large: bounded per read only."""
    if "/files" in request.url.path:
        return None
    total = (request.extensions.get("timeout") or {}).get("read")
    return None if total is None else time.monotonic() + total


def make_http_client(
    *, limits: httpx2.Limits, timeout: httpx2.Timeout, on_answer: Callable[[], None] | None = None
) -> httpx2.Client:
    """The httpx2 client the SDK is given: `PooledTransport` for every URL a proxy does not claim.

    One SSL context (loading the CA bundle takes milliseconds) serves both it and
    httpx2's own transport, which stays for the hosts NO_PROXY names.

    Redirects are not followed, for any call made through this client (chat,
    models, batch files and batches): httpx2 turns a POST answered with 301/302
    into a GET, which reached the server as "405 method GET not allowed", and a
    redirect loop cost 20 requests an attempt. A 3xx reaches the SDK as an
    APIStatusError, and the provider says where it points (set base_url to it).
    """
    ssl_context = httpx2.create_ssl_context()
    return httpx2.Client(
        limits=limits,
        timeout=timeout,
        follow_redirects=False,
        verify=ssl_context,
        mounts={"all://": PooledTransport(limits=limits, ssl_context=ssl_context, on_answer=on_answer)},
    )
