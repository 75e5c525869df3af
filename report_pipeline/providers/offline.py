"""A deterministic provider with no network and no key, so a new user can run the whole job at once.

It reads the Markdown tables in the prompt and writes a clearly marked draft that
states their size, columns and notable values: a demo report worth reading, and a
fixed point for tests (the same request always gives the same text).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass

from ..config import RunConfig
from .base import ChatRequest, ChatResponse
from .tokens import prompt_tokens, text_tokens

_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}")
_DRAFT = re.compile(r"<draft>(.*?)</draft>", re.S)


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[list[str]]


def _parse_tables(text: str) -> list[_Table]:
    """The Markdown pipe tables in `text`, as header + rows of cells."""
    tables: list[_Table] = []
    block: list[str] = []
    for line in text.splitlines() + [""]:
        if _TABLE_ROW.match(line):
            block.append(line)
            continue
        if len(block) >= 2 and _SEPARATOR.match(block[1]):
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in block]
            tables.append(_Table(columns=cells[0], rows=cells[2:]))
        block = []
    return tables


def _number(cell: str) -> float | None:
    try:
        return float(cell.replace(",", "").replace("%", ""))
    except ValueError:
        return None


def _describe_table(table: _Table, number: int) -> str:
    """One paragraph about a table: its shape and, per numeric column, its range."""
    n_rows, n_cols = len(table.rows), len(table.columns)
    shown = ", ".join(table.columns[:8]) + (" …" if n_cols > 8 else "")
    parts = [f"Table {number} has {n_rows} rows and {n_cols} columns ({shown})."]
    label_col = 0
    notes = []
    for col, name in enumerate(table.columns):
        values = [(_number(row[col]), row) for row in table.rows if col < len(row)]
        numeric = [(v, row) for v, row in values if v is not None]
        if col == label_col or len(numeric) < max(1, len(values) // 2):
            continue
        low_value, low_row = min(numeric, key=lambda item: item[0])
        high_value, high_row = max(numeric, key=lambda item: item[0])
        notes.append(
            f"{name} ranges from {low_value:,.4g} ({low_row[label_col]}) to {high_value:,.4g} ({high_row[label_col]})"
        )
        if len(notes) == 3:
            break
    if notes:
        parts.append("; ".join(notes) + ".")
    return " ".join(parts)


_OFFLINE_PLAN = (
    ("Overview", "What the part covers and its main message."),
    ("What the data shows", "The notable figures in the attached tables."),
    ("Implications", "What the figures mean for the reader's decisions."),
)


def _json_answer(user_text: str) -> str:
    """A fixed, valid answer to a JSON request: a judge's choice, or a section plan."""
    if '"choice"' in user_text:
        return json.dumps({"choice": 1, "reason": "Offline: the first candidate is kept; no model compared them."})
    return json.dumps({"sections": [{"title": title, "brief": brief} for title, brief in _OFFLINE_PLAN]})


class OfflineProvider:
    """Writes marked drafts from the prompt and its data; thread-safe and free."""

    name = "offline"

    def __init__(self, config: RunConfig) -> None:
        self._model = config.model
        self._latency_s = config.offline_latency_ms / 1000.0
        self._seed = config.offline_seed
        self._lock = threading.Lock()
        self.calls = 0

    def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        with self._lock:
            self.calls += 1
        user_text = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        if self._latency_s:
            time.sleep(self._delay_for(request))
        text = self._answer(request, user_text)
        words = text.split()
        if len(words) > request.max_tokens:
            text = " ".join(words[: request.max_tokens])
        return ChatResponse(
            text=text,
            model=request.model or self._model,
            prompt_tokens=prompt_tokens(request.messages),
            completion_tokens=text_tokens(text),
            cost_usd=0.0,
            attempts=1,
            latency_s=time.perf_counter() - started,
            finish_reason="stop",
        )

    def _delay_for(self, request: ChatRequest) -> float:
        """A per-request delay fixed by the seed, so completion order is random but repeatable."""
        digest = hashlib.sha256(f"{self._seed}:{request.label}:{request.messages}".encode()).digest()
        return random.Random(digest).uniform(0, self._latency_s)

    def _answer(self, request: ChatRequest, user_text: str) -> str:
        if request.response_format and request.response_format.get("type") == "json_object":
            return _json_answer(user_text)
        if "VERDICT" in user_text:
            return (
                "VERDICT: PASS\n"
                "NOTES: Offline sense check: the draft was not compared with the data by a model; "
                "run with a real provider for a substantive check."
            )
        draft = _DRAFT.search(user_text)
        if draft:  # a refine step: offline, the best proofreading is to keep the draft as it is
            return draft.group(1).strip()
        lines = [line.strip() for line in user_text.splitlines() if line.strip()]
        # a section of an outline chapter: its own ask is the line that names it
        first_line = next((line for line in lines if line.startswith("Write section ")), lines[0] if lines else "the prompt")
        if len(first_line) > 160:
            first_line = first_line[:157] + "…"
        paragraphs = [
            f"[Offline draft — no model was called] This section answers: “{first_line}”",
        ]
        tables = _parse_tables(user_text)
        for number, table in enumerate(tables, start=1):
            paragraphs.append(_describe_table(table, number))
        if not tables:
            paragraphs.append(
                f"The prompt carries no data table; it is {len(user_text.split())} words long."
            )
        paragraphs.append(
            "Re-run with a real provider (for example `--provider openai`) to replace this draft with model-written text."
        )
        return "\n\n".join(paragraphs)

    def list_models(self) -> list[str]:
        return [self._model]

    def close(self) -> None:
        return None
