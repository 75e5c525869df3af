"""The provider's stop latch: once a call finds that every call would fail the same way, none is sent again.

An auth failure (401/403, no quota left), an endpoint no attempt has reached, and a TLS
certificate the machine does not trust all mean the same for every later call, so the
first one to see it sets the latch with its error and every thread then raises a copy of
it without sending anything. Closing the provider sets it too.
"""

from __future__ import annotations

import threading
from typing import TypeVar

from ...errors import AuthError, EndpointUnreachable, ProviderError, RunAborted

__all__ = ["StopLatch", "auth_failed", "untrusted", "unreachable"]

_Stop = TypeVar("_Stop", bound=ProviderError)


class StopLatch:
    """The first error that stopped every call, or None (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped: ProviderError | None = None

    @property
    def aborted(self) -> bool:
        """True once an auth failure or an unreachable endpoint has stopped the calls (not a close)."""
        return isinstance(self._stopped, RunAborted)

    def stop(self, error: _Stop) -> _Stop:
        """Set the latch, unless an earlier error set it; returns `error` to be raised."""
        with self._lock:
            if self._stopped is None:
                self._stopped = error
        return error

    def raise_if_stopped(self) -> None:
        """A fresh copy of the stopping error (attempts 0: this call was not sent)."""
        stopped = self._stopped
        if stopped is None:
            return
        if isinstance(stopped, RunAborted):
            raise type(stopped)(stopped.message, status_code=stopped.status_code, attempts=0)
        raise ProviderError(stopped.message, attempts=0)


def auth_failed(message: str, status: int, *, key_env: str, model: str, quota: bool = False) -> AuthError:
    """The key is wrong, lacks access to the model, or the account has no quota left."""
    if quota:
        advice = "the account has no quota left: check the plan and billing, then re-run"
    else:
        advice = f"check the key in ${key_env} and that it may use model {model!r}"
    return AuthError(f"{message} — {advice}; the run stops", status_code=status)


def unreachable(url: str, why: str, attempts: int) -> EndpointUnreachable:
    """No attempt of the run has reached the endpoint, and one call has tried them all."""
    return EndpointUnreachable(
        f"no HTTP answer from {url} in {attempts} attempts ({why}), nor to any other call of this run: "
        "check base_url (scheme, host, port) and that the server is running; the run stops",
        attempts=attempts,
    )


def untrusted(url: str, why: str) -> EndpointUnreachable:
    """A certificate that is not trusted now will not be in a minute."""
    return EndpointUnreachable(
        f"{url}: the server's TLS certificate is not trusted ({why}); if your organisation signs it, "
        "set SSL_CERT_FILE to the CA's certificate (a PEM file) and run again; the run stops"
    )
