"""``python -m report_pipeline.simulator``: serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from report_pipeline.simulator._config import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_REQUESTS,
    DEFAULT_MODELS,
    SimulatorConfig,
)
from report_pipeline.simulator._server import SimulatorServer
from report_pipeline.simulator._thread import raise_open_file_limit

# (flags, config field, type, default, help) for every SimulatorConfig flag.
_CONFIG_FLAGS: tuple[tuple[tuple[str, ...], str, Callable[[str], Any], Any, str], ...] = (
    (("--latency",), "latency_s", float, 0.0, "seconds before each answer"),
    (("--jitter",), "latency_jitter_s", float, 0.0, "extra uniform 0..N seconds per answer"),
    (("--latency-sigma",), "latency_sigma", float, 0.0, "lognormal tails: --latency is the median, this the log-sd"),
    (("--seed",), "seed", int, 0, "seed for jitter and fault draws"),
    (("--rpm", "--requests-per-window"), "requests_per_window", int, None,
     "requests allowed per --window (default unlimited)"),
    (("--tpm", "--tokens-per-window"), "tokens_per_window", int, None,
     "tokens allowed per --window (default unlimited)"),
    (("--window",), "window_s", float, 60.0, "rate-limit window in seconds (default 60)"),
    (("--error-rate",), "error_rate", float, 0.0, "share of 500/503 answers (0..1)"),
    (("--hang-rate",), "hang_rate", float, 0.0, "share of answers delayed by --hang-s"),
    (("--hang-s",), "hang_s", float, 30.0, "delay of a hanging answer (default 30)"),
    (("--drop-rate",), "drop_rate", float, 0.0, "share of connections dropped mid-body"),
    (("--malformed-rate",), "malformed_rate", float, 0.0, "share of 200s with invalid JSON"),
    (("--api-key",), "api_key", str, None, "require 'Authorization: Bearer KEY'"),
    (("--models",), "models", str, ",".join(DEFAULT_MODELS), "comma-separated model ids"),
    (("--batch-delay",), "batch_delay_s", float, 1.0,
     "seconds a batch takes from validating to its end (default 1)"),
    (("--batch-steps",), "batch_steps", int, 4,
     "chunks a batch's requests are processed in (default 4)"),
    (("--batch-error-rate",), "batch_error_rate", float, 0.0,
     "share of batch requests answered 500 in the error file (0..1)"),
    (("--batch-expire",), "batch_expire", float, None,
     "batches expire after processing this share of their requests (0..1)"),
    (("--batch-max-requests",), "batch_max_requests", int, DEFAULT_BATCH_MAX_REQUESTS,
     f"requests allowed per batch (default {DEFAULT_BATCH_MAX_REQUESTS})"),
    (("--batch-max-bytes",), "batch_max_bytes", int, DEFAULT_BATCH_MAX_BYTES,
     f"bytes allowed per batch input file (default {DEFAULT_BATCH_MAX_BYTES})"),
)

# (flag, config field, help) for every on/off SimulatorConfig field.
_CONFIG_SWITCHES: tuple[tuple[str, str, str], ...] = (
    ("--batch-manual", "batch_manual", "batches move only when advanced via /_sim/batches/advance"),
    ("--batch-fail", "batch_fail", "every batch fails validation (enqueued token limit)"),
    ("--batch-validate-upload", "batch_validate_upload",
     "reject bad batch input lines at upload with 400 (OpenAI fails the batch later)"),
    ("--no-batch-api", "no_batch_api", "answer /v1/files and /v1/batches with 404, like a server without a Batch API"),
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m report_pipeline.simulator",
        description="OpenAI-compatible simulator for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    for flags, dest, kind, default, text in _CONFIG_FLAGS:
        parser.add_argument(*flags, dest=dest, type=kind, default=default, help=text)
    for flag, dest, text in _CONFIG_SWITCHES:
        parser.add_argument(flag, dest=dest, action="store_true", help=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; print the base URL once listening."""
    args = _build_parser().parse_args(argv)
    options = vars(args)
    host, port, access_log = options.pop("host"), options.pop("port"), options.pop("access_log")
    try:
        config = SimulatorConfig(**options)
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    raise_open_file_limit(8192)
    if access_log:
        logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve_until_signalled(SimulatorServer(config), host, port, access_log))
    return 0


async def _serve_until_signalled(
    server: SimulatorServer, host: str, port: int, access_log: bool
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (exit status 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(signum, stop.set)
    bound = await server.start(host, port, access_log=access_log)
    try:
        print(f"simulator listening on http://{host}:{bound}/v1", flush=True)
        await stop.wait()
    finally:
        await server.stop()
