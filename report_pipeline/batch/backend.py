"""Where batches go: the provider's Batch API through the `openai` SDK, or an offline stand-in.

`BatchBackend` is the five calls batch mode needs (upload a file, create, retrieve and
find a batch, download a file) plus `check()`, which refuses an endpoint without a
Batch API before anything is sent. Errors come back typed: AuthError stops the run,
TransientProviderError is worth trying again, anything else is a ProviderError.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..config import RunConfig
from ..errors import AuthError, ConfigError, ProviderError, TransientProviderError
from ..providers.base import ChatRequest, Provider
from ..providers.openai.dialect import Dialects

if TYPE_CHECKING:
    from ..providers.openai.client import Endpoint

log = logging.getLogger("report_pipeline.batch")

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Statuses that mean the endpoint has no Batch API, when a probe gets them.
_NO_BATCH_STATUS = frozenset({404, 405, 501})


@dataclass(frozen=True)
class BatchState:
    """A batch as the server reports it."""

    batch_id: str
    status: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: str | None = None  # why a batch failed validation, from `errors.data`

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class BatchBackend(Protocol):
    """What batch mode needs from a provider; thread-safe enough for one wave thread."""

    name: str
    url: str  # the `url` of every input line

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """A request's line body, as the endpoint wants it (the body a real-time call would carry)."""
        ...

    def resend_after(self, model: str, param: str, why: str) -> bool:
        """A line was refused for a parameter the model does not take: True when a corrected line
        can be sent (the correction is learned for real-time calls too)."""
        ...

    def check(self) -> None:
        """Raise ConfigError when the endpoint has no Batch API (nothing is sent)."""
        ...

    def upload(self, filename: str, content: bytes) -> str:
        """Upload a JSONL input file (purpose `batch`); its file id."""
        ...

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchState:
        ...

    def retrieve(self, batch_id: str) -> BatchState:
        ...

    def find(self, input_file_id: str) -> BatchState | None:
        """The batch made from this input file, if one exists (a crash between upload and record)."""
        ...

    def download(self, file_id: str) -> str:
        ...


def make_batch_backend(
    config: RunConfig, provider: Provider, endpoint: Endpoint | None, *, scrub: Callable[[str], str]
) -> BatchBackend:
    """The backend for `execution: batch`: the endpoint's Batch API, or the offline stand-in."""
    if config.provider == "offline":
        return OfflineBatchBackend(provider)
    if endpoint is None:
        raise ConfigError(f"execution: batch: provider {config.provider!r} needs its endpoint to send batches")
    return OpenAIBatchBackend(endpoint.sdk, provider_name=config.provider, base_url=endpoint.base_url, scrub=scrub,
                              dialects=endpoint.dialects)


class OpenAIBatchBackend:
    """OpenAI's (and Azure OpenAI's) /files and /batches, through the run's one SDK client."""

    def __init__(
        self, client: Any, *, provider_name: str, base_url: str, scrub: Callable[[str], str],
        dialects: Dialects | None = None,
    ) -> None:
        self._client = client
        self._dialects = dialects or Dialects(base_url, name=provider_name)
        self.name = provider_name
        self._base_url = base_url
        self._scrub = scrub
        # Azure's batch lines name the deployment's path without the version prefix
        self.url = "/chat/completions" if provider_name == "azure" else "/v1/chat/completions"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return self._dialects.body(request)

    def resend_after(self, model: str, param: str, why: str) -> bool:
        return self._dialects.resend_after(model, param, self._scrub(why))

    def check(self) -> None:
        import openai

        try:
            self._client.batches.list(limit=1)
        except openai.APIStatusError as error:
            if error.status_code in _NO_BATCH_STATUS:
                raise ConfigError(
                    f"execution: batch: {self.name} at {self._base_url} has no Batch API "
                    f"(GET /batches answered HTTP {error.status_code}); Ollama, LM Studio and a plain vLLM "
                    "or llama.cpp server have none. Run in real-time mode (drop --batch, or set execution: realtime)"
                ) from None
            raise self._error(error) from None
        except openai.APIError as error:
            raise ConfigError(
                f"execution: batch: cannot reach {self._base_url} to check its Batch API: {self._scrub(str(error))}"
            ) from None

    def upload(self, filename: str, content: bytes) -> str:
        return self._call(lambda: self._client.files.create(
            file=(filename, content, "application/jsonl"), purpose="batch",
        )).id

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchState:
        return _state(self._call(lambda: self._client.batches.create(
            input_file_id=input_file_id, endpoint=self.url, completion_window="24h", metadata=metadata,
        )))

    def retrieve(self, batch_id: str) -> BatchState:
        return _state(self._call(lambda: self._client.batches.retrieve(batch_id)))

    def find(self, input_file_id: str) -> BatchState | None:
        def search() -> BatchState | None:
            for batch in self._client.batches.list(limit=100):  # the SDK pages on
                if batch.input_file_id == input_file_id:
                    return _state(batch)
            return None

        return self._call(search)

    def download(self, file_id: str) -> str:
        return self._call(lambda: self._client.files.content(file_id)).text

    def _call(self, fn: Callable[[], Any]) -> Any:
        import openai

        try:
            return fn()
        except openai.APIError as error:
            raise self._error(error) from None

    def _error(self, error: Exception) -> ProviderError:
        import openai

        if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return AuthError(self._scrub(_message(error)), status_code=error.status_code)
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            kind = TransientProviderError if status == 429 or status >= 500 or status in (408, 409) else ProviderError
            return kind(self._scrub(_message(error)), status_code=status)
        return TransientProviderError(self._scrub(f"{type(error).__name__}: {error}"))


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", "") or error)


def _state(batch: Any) -> BatchState:
    counts = getattr(batch, "request_counts", None)
    errors = getattr(batch, "errors", None)
    problems = getattr(errors, "data", None) or []
    text = "; ".join(
        " ".join(str(part) for part in (getattr(p, "code", None), getattr(p, "message", None)) if part)
        for p in problems
    )
    return BatchState(
        batch_id=batch.id,
        status=batch.status,
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        total=getattr(counts, "total", 0) or 0,
        completed=getattr(counts, "completed", 0) or 0,
        failed=getattr(counts, "failed", 0) or 0,
        errors=text or None,
    )


class OfflineBatchBackend:
    """Batches answered at once by the offline provider, so `--batch` works with no key and no server."""

    name = "offline"
    url = "/v1/chat/completions"

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self._files: dict[str, str] = {}
        self._batches: dict[str, BatchState] = {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return request.sampling()

    def resend_after(self, model: str, param: str, why: str) -> bool:
        return False

    def check(self) -> None:
        return None

    def upload(self, filename: str, content: bytes) -> str:
        with self._lock:
            file_id = f"file-offline-{len(self._files) + 1}"
            self._files[file_id] = content.decode("utf-8")
        return file_id

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchState:
        lines = []
        for raw in self._files[input_file_id].splitlines():
            item = json.loads(raw)
            body = item["body"]
            request = ChatRequest(
                model=body["model"], messages=tuple(body["messages"]), temperature=body.get("temperature", 0.2),
                max_tokens=body.get("max_tokens", 800), response_format=body.get("response_format"),
            )
            answer = self._provider.complete(request)
            lines.append(json.dumps({"custom_id": item["custom_id"], "response": {"status_code": 200, "body": {
                "model": answer.model, "choices": [{"message": {"role": "assistant", "content": answer.text},
                                                    "finish_reason": answer.finish_reason}],
                "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens},
            }}, "error": None}))
        output_id = self.upload("output.jsonl", "\n".join(lines).encode("utf-8"))
        with self._lock:
            batch_id = f"batch-offline-{len(self._batches) + 1}"
            state = BatchState(batch_id, "completed", input_file_id, output_file_id=output_id,
                               total=len(lines), completed=len(lines))
            self._batches[batch_id] = state
        return state

    def retrieve(self, batch_id: str) -> BatchState:
        return self._batches[batch_id]

    def find(self, input_file_id: str) -> BatchState | None:
        return next((b for b in self._batches.values() if b.input_file_id == input_file_id), None)

    def download(self, file_id: str) -> str:
        return self._files[file_id]
