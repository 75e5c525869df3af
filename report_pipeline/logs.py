"""Run logging: one `run.log` per run with thread names, and a filter that keeps secrets out.

The filter runs on every handler we attach, so a key inside an exception message or
a URL is replaced before any line is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LOGGER_NAME = "report_pipeline"
LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"
REDACTED = "***"
# Shorter "keys" are placeholders for local servers that want none (OPENAI_API_KEY=x): replacing
# every "x" in a message with *** would hide the message, and hide no secret.
MIN_SECRET_CHARS = 4


class SecretFilter(logging.Filter):
    """Replaces every known secret in a record's final message (args included) with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= MIN_SECRET_CHARS]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    return text


@contextmanager
def run_log(path: Path, *, level: str, secrets: Iterable[str] = ()) -> Iterator[logging.Handler]:
    """Attach a file handler for one run's `run.log`, removed (and flushed) at the end."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(level)
    handler.addFilter(SecretFilter(secrets))
    previous_level = logger.level
    logger.setLevel(min(logging.getLevelName(level), logger.level or logging.WARNING))
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


@contextmanager
def console_log(handler: logging.Handler, *, secrets: Iterable[str] = ()) -> Iterator[logging.Handler]:
    """Warnings and errors on the console while a run lasts (the progress display's own
    console on a terminal, so they print above the live bars instead of through them)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler.setLevel(logging.WARNING)
    handler.addFilter(SecretFilter(secrets))
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        handler.close()


def plain_console_handler(stream) -> logging.Handler:
    """Warnings and errors on standard error, each line with the local time (as the plain progress lines)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    return handler


def url_without_credentials(url: str | None) -> str | None:
    """`https://user:pass@host/v1` -> `https://***@host/v1`: a base URL may carry a key."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))
