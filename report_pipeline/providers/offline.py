"""A deterministic provider with no network and no key, so a new user can run the whole job at once.

It reads the Markdown tables in the prompt and writes a clearly marked draft that
states their size, columns and notable values, and a few figures derived from them
(a change from first to last row, a total) as a model would, so the figures check has
something to trace without a key: a demo report worth reading, and a fixed point for
tests (the same request always gives the same text).
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


_YEAR_NAME = re.compile(r"year|jahr|ann[ée]e", re.I)
_FIGURE_SENTENCE = re.compile(r"[^.\n]*\d[^.\n]*(?:\.\d[^.\n]*)*\.")


def _is_label(name: str, values: list[float | None], col: int) -> bool:
    """Text and years name rows: a year column is not a range of values ("2,015 to 2,030")."""
    present = [v for v in values if v is not None]
    if len(present) < max(1, len(values) // 2):
        return True
    years = all(v.is_integer() and 1800 <= v <= 2100 for v in present)
    return years and (col == 0 or bool(_YEAR_NAME.search(name)))


def _row_names(table: _Table, labels: list[int]) -> list[str]:
    """What to call each row: its first label that tells rows apart, else its varying labels together."""
    cells = [[row[col] if col < len(row) else "" for col in labels] for row in table.rows]
    varying = [i for i in range(len(labels)) if len({cell[i] for cell in cells}) > 1]
    for i in varying:
        if len({cell[i] for cell in cells}) == len(cells):
            return [cell[i] for cell in cells]
    if varying:
        return [" ".join(cell[i] for i in varying) for cell in cells]
    return [f"row {n}" for n in range(1, len(cells) + 1)]


def _format(value: float) -> str:
    """A value as a model writes it: thousands separated, at most two decimals, no trailing zeros."""
    if value.is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _describe_table(table: _Table, number: int) -> str:
    """One paragraph about a table, with figures a model would write: its shape, the range of
    up to three value columns, and for the first the change from first to last row and its total
    (or average, for a share, rate or price)."""
    n_rows, n_cols = len(table.rows), len(table.columns)
    shown = ", ".join(table.columns[:8]) + (" …" if n_cols > 8 else "")
    parts = [f"Table {number} has {n_rows} rows and {n_cols} columns ({shown})."]
    columns = [[_number(row[col]) if col < len(row) else None for row in table.rows] for col in range(n_cols)]
    labels = [col for col in range(n_cols) if _is_label(table.columns[col], columns[col], col)]
    names = _row_names(table, labels)
    measures = [col for col in range(n_cols) if col not in labels][:3]
    notes = []
    for col in measures:
        numeric = [(v, names[i]) for i, v in enumerate(columns[col]) if v is not None]
        low_value, low_name = min(numeric, key=lambda item: item[0])
        high_value, high_name = max(numeric, key=lambda item: item[0])
        notes.append(
            f"{table.columns[col]} ranges from {_format(low_value)} ({low_name}) to {_format(high_value)} ({high_name})"
        )
    if notes:
        parts.append("; ".join(notes) + ".")
    if measures:
        parts.extend(_trend(table.columns[measures[0]], columns[measures[0]], names))
    return " ".join(parts)


def _trend(name: str, values: list[float | None], names: list[str]) -> list[str]:
    """Figures derived from one column, as a model derives them: first-to-last change, total or mean."""
    if len(values) < 2 or values[0] is None or values[-1] is None:
        return []
    first, last = values[0], values[-1]
    difference = ("+" if last >= first else "-") + _format(round(abs(last - first), 2))
    change = (f"{name} went from {_format(first)} in {names[0]} to {_format(last)} in {names[-1]}, "
              f"a difference of {difference}")
    if first:
        change += f" ({(last - first) / abs(first) * 100:+.1f}%)"
    present = [v for v in values if v is not None]
    counted = f"over the {len(present)} rows with a value, {name}"
    if re.search(r"share|pct|percent|rate|price", name, re.IGNORECASE):
        total = f"Averaged {counted} is {_format(round(sum(present) / len(present), 2))}."
    else:
        total = f"Summed {counted} comes to {_format(round(sum(present), 2))}."
    return [change + ".", total]


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


def _figures_given(lines: list[str]) -> str:
    """For a prompt without a table: a figure from the texts it was given, as a summary would repeat it.

    A sentence with a percentage first (a change is what a summary repeats), else any with a number.
    """
    found = [
        match.group(0).strip()
        for line in lines if not line.startswith(("[", "|", "#")) and "“" not in line
        for match in _FIGURE_SENTENCE.finditer(line) if not match.group(0).strip().startswith("Table ")
    ]
    if not found:
        return "The prompt carries no data table, so this draft states no figures."
    chosen = next((sentence for sentence in found if "%" in sentence), found[0])
    return f"The prompt carries no data table; among the figures it gives: {chosen}"


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
        if draft:  # a refine or figures-fix step: offline, the best it can do is keep the draft as it is
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
            paragraphs.append(_figures_given(lines[1:]))
        paragraphs.append(
            "Re-run with a real provider (for example `--provider openai`) to replace this draft with model-written text."
        )
        return "\n\n".join(paragraphs)

    def list_models(self) -> list[str]:
        return [self._model]

    def close(self) -> None:
        return None
