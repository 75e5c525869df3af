"""What a chat request means to the simulator, and the answer it gets.

Pure functions of the request body and the seed: parsing, ``sim:`` directives,
the token estimate, the deterministic answer text and the ``chat.completion``
body. The real-time endpoint and the Batch API both answer through here, so
one body gets the same answer either way.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from report_pipeline.simulator._config import is_int

# Characters per token for the cheap usage estimate (OpenAI's rule of thumb).
_CHARS_PER_TOKEN = 4
# Per-message overhead in the prompt estimate (role and separators).
_TOKENS_PER_MESSAGE = 4
_SUMMARY_CHARS = 80
BAD_JSON_CONTENT = "not json {"

_DIRECTIVE_RE = re.compile(r"sim:([a-z_]+)=([A-Za-z0-9_.\-]+)")
#: Models that answer as OpenAI's reasoning models do (the gpt-5 family, the o-series): they
#: refuse `max_tokens` (only `max_completion_tokens`) and any temperature but the default,
#: take `reasoning_effort`, and spend reasoning tokens inside `completion_tokens`.
_REASONING_MODEL = re.compile(r"^(?:gpt-5|o1|o3|o4)(?:$|[-.])")
#: Reasoning tokens a simulated reasoning model spends before its text, by effort (default medium).
REASONING_TOKENS = {"minimal": 0, "low": 32, "medium": 96, "high": 256}
_DEFAULT_EFFORT = "medium"
_VERDICT_RE = re.compile(r"\bVERDICT\b")
#: A figures-fix request: the flagged figures under this heading, each `- "97.3" in: <its sentence>`,
#: and the draft in <draft>...</draft> (the format of the `fix` step prompt, run/steps.py).
_FIX_RE = re.compile(r"\bUNTRACED FIGURES\b")
_FLAGGED_RE = re.compile(r'^- "(?P<figure>[^"\n]+)" in:', re.M)
_DRAFT_RE = re.compile(r"<draft>\n?(?P<draft>.*?)\n?</draft>", re.S)
_SENTENCE_RE = re.compile(r"[^.!?\n]*(?:\.\d[^.!?\n]*)*[.!?]?")
_WHITESPACE_RE = re.compile(r"\s+")


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the chars/4 rule: cheap, deterministic, close enough.

    The simulator must not spend CPU on a real tokenizer; tests only need the
    numbers to be stable and roughly proportional to text length.
    """
    return (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN


@dataclass(frozen=True)
class Directives:
    """Per-prompt instructions parsed from ``sim:NAME=VALUE`` markers."""

    latency_s: float | None = None
    status: int | None = None
    retry_after_s: float | None = None
    fail_first: int = 0
    bad_json: int = 0
    verdict: str = "PASS"
    label: str | None = None
    hold: str | None = None
    empty: bool = False  # answer 200 with empty content, as a model sometimes does
    plant: str | None = None  # a figure no data holds, written into the answer (a model inventing one)
    fix: str | None = None  # what a figures-fix call writes in place of each flagged figure


NO_DIRECTIVES = Directives()


def parse_directives(text: str) -> Directives:
    """Read every ``sim:NAME=VALUE`` marker in ``text``; the last of a name wins.

    Unknown names are ignored (prompts may mention "sim:" for other reasons);
    a known name with a bad value raises ValueError, which the server answers
    with 400, because silently ignoring a typo would make a test pass for the
    wrong reason.
    """
    if "sim:" not in text:
        return NO_DIRECTIVES
    values: dict[str, Any] = {}
    for name, raw in _DIRECTIVE_RE.findall(text):
        parser = _DIRECTIVE_PARSERS.get(name)
        if parser is None:
            continue
        try:
            values[name] = parser(raw)
        except ValueError:
            raise ValueError(f"bad simulator directive sim:{name}={raw}") from None
    if not values:
        return NO_DIRECTIVES
    return Directives(
        latency_s=values.get("latency"),
        status=values.get("status"),
        retry_after_s=values.get("retry_after"),
        fail_first=values.get("fail_first", 0),
        bad_json=values.get("bad_json", 0),
        verdict=values.get("verdict", "PASS"),
        label=values.get("label"),
        hold=values.get("hold"),
        empty=bool(values.get("empty", 0)),
        plant=values.get("plant"),
        fix=values.get("fix"),
    )


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError(raw)
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _error_status(raw: str) -> int:
    value = int(raw)
    if not 400 <= value <= 599:
        raise ValueError(raw)
    return value


def _figure(raw: str) -> str:
    """A figure as it is to be written: digits, at most one decimal point, perhaps a minus sign."""
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
        raise ValueError(raw)
    return raw


def _verdict(raw: str) -> str:
    value = raw.upper()
    if value not in ("PASS", "FAIL"):
        raise ValueError(raw)
    return value


_DIRECTIVE_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency": _non_negative_float,
    "status": _error_status,
    "retry_after": _non_negative_float,
    "fail_first": _count,
    "bad_json": _count,
    "verdict": _verdict,
    "label": str,
    "hold": str,
    "empty": _count,
    "plant": _figure,
    "fix": _figure,
}


@dataclass(frozen=True)
class Prompt:
    """The parts of a chat request the simulator reacts to, extracted once."""

    text: str
    last_user: str
    key: str
    prompt_tokens: int

    @classmethod
    def from_messages(cls, messages: object) -> Prompt:
        """Flatten messages (string or text-part content) into one text and a key.

        The key is a hash of roles and contents: the same conversation, sent
        again as a retry, maps to the same per-prompt directive counters.
        """
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty array")
        parts: list[str] = []
        last_user = ""
        prompt_tokens = 0
        digest = hashlib.blake2b(digest_size=8)
        for message in messages:
            if not isinstance(message, dict):
                raise ValueError("each message must be an object")
            role = str(message.get("role", ""))
            content = _content_text(message.get("content"))
            parts.append(content)
            digest.update(role.encode())
            digest.update(b"\x00")
            digest.update(content.encode())
            digest.update(b"\x01")
            prompt_tokens += estimate_tokens(content) + _TOKENS_PER_MESSAGE
            if role == "user":
                last_user = content
        return cls("\n".join(parts), last_user, digest.hexdigest(), prompt_tokens)


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise ValueError("message content must be a string, an array of parts or null")


def summarize(text: str) -> str:
    """The first ~80 characters of ``text`` on one line, so tests can match it."""
    flat = _WHITESPACE_RE.sub(" ", text).strip()
    if len(flat) <= _SUMMARY_CHARS:
        return flat
    return flat[:_SUMMARY_CHARS].rstrip() + "..."


_FINDINGS = (
    "The figures show a steady trend across the period with no sharp breaks.",
    "The largest group accounts for most of the change; the rest move little.",
    "Two segments diverge in the second half, which deserves a closer look.",
    "Growth is concentrated in a few categories while the tail stays flat.",
    "The data is consistent across sources, with minor gaps in recent months.",
    "Seasonal swings dominate the signal; the underlying level is stable.",
    "Outliers are few and do not change the overall picture.",
    "The leading indicators point the same way as the headline numbers.",
)
_IMPLICATIONS = (
    "This suggests keeping the current plan while monitoring the weaker segments.",
    "A targeted follow-up on the diverging groups would reduce the main risk.",
    "Resources could shift toward the categories that are still growing.",
    "The report should flag the data gaps before drawing firm conclusions.",
    "No immediate action is needed, but the trend should be reviewed next quarter.",
    "The result supports the objective as stated, with the caveats noted.",
)
_SECTION_TITLES = (
    "Overview",
    "Key findings",
    "Trends",
    "Risks",
    "Opportunities",
    "Data quality",
    "Recommendations",
    "Next steps",
)


def _answer_digest(model: str, temperature: object, seed: int, prompt: Prompt) -> bytes:
    material = f"{model}\x00{temperature}\x00{seed}\x00{prompt.key}".encode()
    return hashlib.blake2b(material, digest_size=8).digest()


def compose_answer(
    *,
    model: str,
    prompt: Prompt,
    temperature: object,
    seed: int,
    json_mode: bool,
    verdict: str = "PASS",
    plant: str | None = None,
    fix: str | None = None,
) -> str:
    """The answer text: deterministic in (model, messages, temperature, seed).

    Readable and openly simulated, echoing the last user message's summary so
    a test can tell which prompt produced which answer. ``json_mode`` gives the
    sections object a planning step expects; a last user message with the word
    VERDICT gives the sense-check format. ``plant`` adds a sentence stating that
    figure, which no data holds; a figures-fix request (UNTRACED FIGURES and a
    <draft>) is answered with the draft, each flagged figure replaced by ``fix``
    or, without it, its sentence removed, as a model asked to correct or remove.
    """
    digest = _answer_digest(model, temperature, seed, prompt)
    ref = digest.hex()[:8]
    summary = summarize(prompt.last_user)
    if json_mode:
        titles = _pick_distinct(_SECTION_TITLES, digest, 3)
        sections = [
            {"title": title, "brief": f"Simulated brief on {title.lower()} for: {summary[:40]}"}
            for title in titles
        ]
        return json.dumps({"sections": sections})
    if _VERDICT_RE.search(prompt.last_user):
        outcome = "no problems found" if verdict == "PASS" else "the draft contradicts the data"
        return (
            f"VERDICT: {verdict}\n"
            f'NOTES: simulated sense check ({model}, ref {ref}) of "{summary}": {outcome}.'
        )
    if _FIX_RE.search(prompt.last_user) and (draft := _DRAFT_RE.search(prompt.last_user)):
        return fixed_draft(draft.group("draft"), _FLAGGED_RE.findall(prompt.last_user), fix)
    finding = _FINDINGS[digest[0] % len(_FINDINGS)]
    implication = _IMPLICATIONS[digest[1] % len(_IMPLICATIONS)]
    planted = f"\nThe headline figure for the period is {plant}." if plant is not None else ""
    return (
        f"[Simulated answer from {model}, ref {ref}; no language model was called.]\n"
        f'Prompt: "{summary}"\n'
        f"{finding} {implication}{planted}"
    )


def fixed_draft(draft: str, flagged: Sequence[str], fix: str | None) -> str:
    """`draft` with each flagged figure replaced by `fix`, or without the sentences that state one."""
    if fix is not None:
        for figure in flagged:
            draft = re.sub(rf"(?<![\w.]){re.escape(figure)}(?![\w]|\.\d)", fix, draft)
        return draft
    kept = []
    for line in draft.split("\n"):
        sentences = [m.group(0) for m in _SENTENCE_RE.finditer(line) if m.group(0).strip()]
        kept.append("".join(s for s in sentences if not any(figure in s for figure in flagged)).strip())
    return "\n".join(kept)


def _pick_distinct(pool: Sequence[str], digest: bytes, count: int) -> list[str]:
    # The pool has 8 titles: any odd step is coprime with 8, so no repeats.
    start = digest[2] % len(pool)
    step = (digest[3] % len(pool)) | 1
    return [pool[(start + i * step) % len(pool)] for i in range(count)]


class Answer(NamedTuple):
    """The assistant text as sent, its token count (reasoning included), and why it ended."""

    text: str
    completion_tokens: int
    finish_reason: str
    reasoning_tokens: int = 0


def reasoned(chat: ChatRequest, text: str) -> Answer:
    """A reasoning model's answer: its reasoning first, then the text in what is left of the budget.

    As OpenAI's do, a reasoning that uses up max_completion_tokens leaves no text at all
    (finish_reason "length", every token billed as reasoning).
    """
    reasoning = REASONING_TOKENS[chat.reasoning_effort or _DEFAULT_EFFORT]
    budget = chat.max_tokens
    if budget is not None and reasoning >= budget:
        return Answer("", budget, "length", budget)
    answer = clip_to_tokens(text, None if budget is None else budget - reasoning)
    return Answer(answer.text, answer.completion_tokens + reasoning, answer.finish_reason, reasoning)


class ParamError(ValueError):
    """A request parameter the model does not take, as OpenAI names it (answered as 400)."""

    def __init__(self, message: str, *, param: str, code: str) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model))


class PromptCache:
    """OpenAI's prompt caching: a prompt of 1,024 tokens or more whose start was seen recently has
    that start cached, in steps of 128 tokens (`usage.prompt_tokens_details.cached_tokens`).

    Prefixes are hashed block by block (128 tokens = 512 characters by the chars/4 rule);
    the table forgets everything when it grows past `max_entries`.
    """

    MIN_TOKENS = 1024
    BLOCK_TOKENS = 128

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: set[bytes] = set()
        self._max_entries = max_entries

    def cached_tokens(self, prompt: Prompt) -> int:
        """The tokens of this prompt's start seen before; this prompt's start is remembered."""
        if prompt.prompt_tokens < self.MIN_TOKENS:
            return 0
        block_chars = self.BLOCK_TOKENS * _CHARS_PER_TOKEN
        digest = hashlib.blake2b(digest_size=16)
        cached_blocks, hits = 0, True
        keys = []
        for start in range(0, len(prompt.text) - block_chars + 1, block_chars):
            digest.update(prompt.text[start:start + block_chars].encode())
            key = digest.copy().digest()
            keys.append(key)
            if hits and key in self._seen:
                cached_blocks += 1
            else:
                hits = False
        if len(self._seen) + len(keys) > self._max_entries:
            self._seen.clear()
        self._seen.update(keys)
        cached = cached_blocks * self.BLOCK_TOKENS
        return cached if cached >= self.MIN_TOKENS else 0


def clip_to_tokens(text: str, max_tokens: int | None) -> Answer:
    """Cut ``text`` to ``max_tokens`` (finish_reason "length"), as a model would stop."""
    tokens = estimate_tokens(text)
    if max_tokens is None or tokens <= max_tokens:
        return Answer(text, tokens, "stop")
    clipped = text[: max_tokens * _CHARS_PER_TOKEN]
    return Answer(clipped, estimate_tokens(clipped), "length")


@dataclass(frozen=True)
class ChatRequest:
    """A parsed ``/v1/chat/completions`` body: only the fields the simulator uses."""

    model: str
    prompt: Prompt
    directives: Directives
    max_tokens: int | None
    json_mode: bool
    temperature: object
    stream: bool = False  # answer as server-sent events (headers at once, text after the latency)
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the usage
    reasoning: bool = False  # a reasoning model (gpt-5*, o1*, o3*, o4*)
    reasoning_effort: str | None = None

    @classmethod
    def parse(cls, raw: bytes, *, reasoning_models: Sequence[str] = ()) -> ChatRequest:
        """Parse and check a request body; ValueError (answered as 400) says what is wrong."""
        return cls.from_body(json.loads(raw), reasoning_models=reasoning_models)

    @classmethod
    def from_body(cls, body: object, *, reasoning_models: Sequence[str] = ()) -> ChatRequest:
        """Check an already decoded body (a batch line's ``body``); ValueError if wrong.

        `reasoning_models` are names answered as reasoning models beside gpt-5*, o1*, o3*, o4*."""
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("you must provide a model parameter")
        stream, include_usage = _stream_options(body)
        reasoning = is_reasoning_model(model) or model in reasoning_models
        _check_model_parameters(model, body, reasoning)
        prompt = Prompt.from_messages(body.get("messages"))
        response_format = body.get("response_format")
        return cls(
            model=model,
            prompt=prompt,
            directives=parse_directives(prompt.text),
            max_tokens=_max_tokens(body),
            json_mode=isinstance(response_format, dict)
            and response_format.get("type") == "json_object",
            temperature=body.get("temperature"),
            stream=stream,
            include_usage=include_usage,
            reasoning=reasoning,
            reasoning_effort=body.get("reasoning_effort"),
        )

    def token_cost(self, completion_tokens: int) -> int:
        """What the token window is charged: like OpenAI, the prompt plus the
        completion it may produce (max_tokens when given, else the answer)."""
        reserved = self.max_tokens if self.max_tokens is not None else completion_tokens
        return self.prompt.prompt_tokens + reserved


def _check_model_parameters(model: str, body: Mapping[str, Any], reasoning: bool) -> None:
    """What OpenAI refuses, with its words: `max_tokens` and a temperature other than 1 for a
    reasoning model, `reasoning_effort` for a model without reasoning or at a level it lacks."""
    if reasoning and body.get("max_tokens") is not None:
        raise ParamError(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    temperature = body.get("temperature")
    if reasoning and temperature is not None and temperature != 1:
        raise ParamError(
            f"Unsupported value: 'temperature' does not support {temperature} with this model. "
            "Only the default (1) value is supported.", param="temperature", code="unsupported_value")
    effort = body.get("reasoning_effort")
    if effort is None:
        return
    if not reasoning:
        raise ParamError("Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                         param="reasoning_effort", code="unsupported_parameter")
    levels = ("low", "medium", "high") if re.match(r"o\d", model) else ("minimal", "low", "medium", "high")
    if effort not in levels:
        shown = ", ".join(f"'{level}'" for level in levels)
        raise ParamError(
            f"Unsupported value: 'reasoning_effort' does not support {effort!r} with this model. "
            f"Supported values are: {shown}.", param="reasoning_effort", code="unsupported_value")


def _stream_options(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage), checked as OpenAI checks them: booleans, and options only with a stream."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ValueError(f"stream: {stream!r} must be a boolean")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise ValueError("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    if not isinstance(options, dict):
        raise ValueError("stream_options must be an object")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise ValueError(f"stream_options.include_usage: {include_usage!r} must be a boolean")
    return stream, include_usage


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(f"max_tokens: {value!r} must be a whole number >= 1")
    return int(value)


def usage_payload(chat: ChatRequest, answer: Answer, cached_tokens: int = 0) -> dict[str, Any]:
    """`usage` as OpenAI sends it today: the totals and their details (cached prompt, reasoning)."""
    prompt_tokens = chat.prompt.prompt_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": answer.reasoning_tokens, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def completion_payload(
    chat: ChatRequest, answer: Answer, *, completion_id: str, created: int, cached_tokens: int = 0
) -> dict[str, Any]:
    """The ``chat.completion`` body for ``answer``, with its usage."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "system_fingerprint": "fp_simulator",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": usage_payload(chat, answer, cached_tokens),
    }


# A streamed answer's text arrives in this many pieces (fewer for short texts).
_STREAM_PIECES = 4


def stream_events(
    chat: ChatRequest, answer: Answer, *, completion_id: str, created: int, cached_tokens: int = 0
) -> list[bytes]:
    """The server-sent events of a streamed ``chat.completion.chunk`` answer, ``[DONE]`` last.

    As OpenAI sends them: a first chunk with the role, the text in pieces, a
    chunk with the finish_reason, then (with ``include_usage``) one with no
    choices and the usage; every chunk before it carries ``"usage": null``.
    """
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": chat.model,
        "system_fingerprint": "fp_simulator",
    }
    usage_field: dict[str, Any] = {"usage": None} if chat.include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**base, "choices": [choice], **usage_field})

    text = answer.text
    size = max(1, -(-len(text) // _STREAM_PIECES))
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)]
    events.append(chunk({}, answer.finish_reason))
    if chat.include_usage:
        events.append(_event({**base, "choices": [], "usage": usage_payload(chat, answer, cached_tokens)}))
    events.append(b"data: [DONE]\n\n")
    return events


def _event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def error_payload(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {message, type, param, code}}``."""
    return {
        "error": {
            "message": message,
            "type": type_ or error_type(status),
            "param": param,
            "code": code,
        }
    }


def error_type(status: int) -> str:
    """The ``error.type`` OpenAI sends with ``status``."""
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error" if status < 500 else "server_error"
