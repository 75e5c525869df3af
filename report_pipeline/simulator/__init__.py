"""An OpenAI-compatible HTTP server for tests and benchmarks.

Why a real server: the pipeline's concurrency, rate limiting, retry and
cool-down logic only mean something against real sockets, real status codes
and real headers, driven by the real ``openai`` SDK. A mock at the Python level
would test our assumptions about the SDK, not the SDK.

Why aiohttp on one event loop: a benchmark must be able to park 1,000+ slow
requests at once without the simulator becoming the bottleneck. One coroutine
per request costs a few kilobytes; one thread per connection would not scale
and would fight the client for the GIL.

Endpoints::

    POST /v1/chat/completions   OpenAI chat.completion shape, usage estimate; with
                                stream: true, server-sent chunks (headers at once,
                                the text after the latency; usage with
                                stream_options.include_usage)
    GET  /v1/models             OpenAI list shape, models from the config
    GET  /v1/models/{id}        one model (404 if unknown)
    GET  /_sim/stats            counters (``SimulatorStats``, ``BatchCounters``)
    POST /_sim/reset            zero counters, rate windows, directive counters, RNG
    GET  /_sim/config           the live ``SimulatorConfig`` as JSON
    POST /_sim/config           update any config field live (JSON object body)
    POST /_sim/release          open a named gate: {"gate": "NAME"}
    POST /_sim/batches/advance  move batches: {"batch_id": ID|null, "steps": N|null}

    POST   /v1/files                  upload (multipart: file, purpose); batch inputs
                                      must be *.jsonl within batch_max_bytes
    GET    /v1/files                  list (purpose, limit, after, order)
    GET    /v1/files/{id}             OpenAI FileObject
    GET    /v1/files/{id}/content     the bytes (inputs, batch output and error files)
    DELETE /v1/files/{id}             {"id", "object": "file", "deleted": true}
    POST   /v1/batches                input_file_id, endpoint, completion_window, metadata
    GET    /v1/batches                list, newest first (limit, after)
    GET    /v1/batches/{id}           OpenAI Batch: status, request_counts, files, usage
    POST   /v1/batches/{id}/cancel    cancelling, then cancelled with partial results

Batches walk validating -> in_progress -> finalizing -> completed (or failed,
expired, cancelled) over ``batch_delay_s``, answering each request as the
real-time endpoint would; ``batch_manual`` makes them move only when a test
advances them. The rules and line shapes are in ``_batch``, the pacing in
``_batches``.

Per-prompt directives (anywhere in the concatenated message text) stage
behaviour deterministically, so tests need no sleeps::

    sim:latency=0.35      answer after exactly 0.35 s (instead of latency + jitter)
    sim:status=500        always answer that 4xx/5xx status with an OpenAI error body
    sim:retry_after=0.2   with sim:status=429: send retry-after(-ms) of 0.2 s
    sim:fail_first=2      the first 2 accepted requests with these messages get 503
    sim:bad_json=2        the first 2 json_object answers for these messages are
                          the text "not json {" (a model ignoring the format)
    sim:verdict=FAIL      a VERDICT prompt answers "VERDICT: FAIL" instead of PASS
    sim:label=NAME        count this call under stats["calls_by_label"][NAME]
    sim:hold=NAME         wait (after admission) until gate NAME is released:
                          ``handle.release("NAME")`` or POST /_sim/release
    sim:empty=1           answer 200 with empty content (a model that wrote nothing)
    sim:plant=97.3        the answer states 97.3, a figure no data holds (the figures
                          check must flag it)
    sim:fix=41.2          a figures-fix request (UNTRACED FIGURES, a <draft>) is answered
                          with the draft, each flagged figure replaced by 41.2; without
                          it, the sentences stating them are removed

Inside batch bodies, status, fail_first, bad_json, verdict, label, empty, plant and fix apply
(a failing request lands in the error file); latency, retry_after and hold
do not.

Rate limiting (``_ratelimit``) is a sliding-window log, exact under any
concurrency. The package's modules are private; import from here.
"""

from report_pipeline.simulator._batch import BatchProblem, parse_batch_input
from report_pipeline.simulator._chat import (
    Answer,
    ChatRequest,
    Directives,
    Prompt,
    compose_answer,
    estimate_tokens,
    parse_directives,
    summarize,
)
from report_pipeline.simulator._cli import main
from report_pipeline.simulator._config import DEFAULT_MODELS, SimulatorConfig
from report_pipeline.simulator._gates import Gates
from report_pipeline.simulator._ratelimit import (
    RateDecision,
    RateLimiter,
    SlidingWindow,
    format_reset,
)
from report_pipeline.simulator._server import SimulatorServer, SimulatorStats
from report_pipeline.simulator._thread import (
    SimulatorHandle,
    raise_open_file_limit,
    serve_in_thread,
)

__all__ = [
    "Answer",
    "BatchProblem",
    "ChatRequest",
    "DEFAULT_MODELS",
    "Directives",
    "Gates",
    "Prompt",
    "RateDecision",
    "RateLimiter",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorServer",
    "SimulatorStats",
    "SlidingWindow",
    "compose_answer",
    "estimate_tokens",
    "format_reset",
    "main",
    "parse_batch_input",
    "parse_directives",
    "raise_open_file_limit",
    "serve_in_thread",
    "summarize",
]
