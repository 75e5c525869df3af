"""Two runs of a workbook side by side: per task what changed, why, and how much; per chapter a line.

Pure: everything here is a function of rows already read from the ledger (`RunRow`,
`TaskRow`, the call rows of `Ledger.call_rows`), so it is tested without threads or files.
`compare/load.py` reads the rows; `compare/render.py` and the writers print the result.

A task is *changed* when its text, its status, its inputs (the rendered prompt of its first
step, which holds its data tables and the text of the tasks it depends on), its model, or
what it cost in tokens differ. A for_each task sends one prompt per item (`generate#3`):
item N's prompt is compared with item N's, whatever order the calls were made in. Changes
are ranked for a reader: a changed row in a data table first, then a changed answer, then
inputs that changed without changing the answer, then cost alone.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import RESUMABLE_KEYS, RunConfig
from ..ledger.store import RunRow, TaskRow, messages_text, prompt_messages
from ..workbook.items import item_number
from .tables import RowChange, merge_tables, row_changes, split_prompt
from .words import Piece, changed_words, word_diff

__all__ = [
    "ChapterChange", "RunComparison", "RunSide", "Significance", "TaskChange", "TaskSide",
    "base_run", "compare_runs", "run_side", "settings_changes",
]

Significance = Literal["data", "answer", "input", "cost", "none"]
Status = Literal["changed", "unchanged", "added", "removed"]

#: Most significant first: what a Monday reader should look at before the rest.
RANKS: dict[str, int] = {"data": 0, "answer": 1, "input": 2, "cost": 3, "none": 4}
#: The steps whose prompt is the task's own rendered prompt (later steps carry the draft too).
_FIRST_STEPS = re.compile(r"^(generate|outline)")
_DIGITS = re.compile(r"(\d+)")
#: Data rows a task lists before `and N more`: the reader wants the few that moved, not the table.
_MOST_ROWS = 5
#: A dependency's text shorter than this is not looked for inside another task's prompt.
_MIN_UPSTREAM_CHARS = 20
_SETTING_WIDTH = 60


@dataclass(frozen=True)
class TaskSide:
    """One task in one run, as the comparison needs it."""

    key: str
    objective_id: str
    title: str
    status: str
    error: str
    text: str
    model: str
    prompt: str  # the messages its first step sent, each under its role ("" when it sent none)
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    from_cache: bool  # every call it made was answered from the cache
    # (part, prompt) of each prompt it sent, in item order: ("#1", ...), ("#2", ...) for a for_each
    # task, one ("", prompt) for the others; empty: `prompt` is its one part
    prompts: tuple[tuple[str, str], ...] = ()

    @property
    def parts(self) -> tuple[tuple[str, str], ...]:
        return self.prompts or (("", self.prompt),)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class RunSide:
    """A run's row, its tasks in report order and its chapters (objective id, title) in sheet order."""

    run: RunRow
    tasks: tuple[TaskSide, ...]
    chapters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TaskChange:
    """What became of one task from the base run to the new one."""

    key: str
    objective_id: str
    title: str
    status: Status
    significance: Significance
    before: TaskSide | None
    after: TaskSide | None
    text: tuple[Piece, ...] = ()  # word diff of the task's text, old to new
    prompt: tuple[Piece, ...] = ()  # word diff of its prompt's own words (tables and dependencies' texts left out)
    rows: tuple[RowChange, ...] = ()  # changed rows of the data tables in its prompt
    upstream: tuple[str, ...] = ()  # changed tasks whose text its prompt carries
    position: int = 0  # in report order: ties keep the sheet's order

    @property
    def tokens_delta(self) -> int:
        return (self.after.tokens if self.after else 0) - (self.before.tokens if self.before else 0)

    @property
    def cost_delta(self) -> float:
        return (self.after.cost_usd if self.after else 0.0) - (self.before.cost_usd if self.before else 0.0)

    @property
    def text_changed(self) -> bool:
        return any(p.op != "equal" for p in self.text)

    @property
    def words_changed(self) -> int:
        return changed_words(self.text)

    @property
    def model_change(self) -> tuple[str, str] | None:
        if self.before and self.after and self.before.model != self.after.model:
            return self.before.model, self.after.model
        return None

    @property
    def state_change(self) -> tuple[str, str] | None:
        if self.before and self.after and self.before.status != self.after.status:
            return self.before.status, self.after.status
        return None

    def reasons(self, *, rows: bool = True) -> list[str]:
        """Short phrases, most significant first: why this task is listed (without its changed
        data rows when `rows` is false: changes.md puts them one a line under the task)."""
        if self.status == "added":
            return ["new task in this run"]
        if self.status == "removed":
            return ["not in this run"]
        said = self.row_reasons() if rows else []
        if self.state_change:
            before, after = self.state_change
            error = f" ({self.after.error})" if self.after and self.after.error and after != "done" else ""
            said.append(f"status {before} → {after}{error}")
        if self.text_changed:
            said.append(f"answer changed ({self.words_changed} word{'s' if self.words_changed != 1 else ''})")
        elif self.significance != "none":
            said.append("answer unchanged")
        said.extend(f"uses the changed text of {key}" for key in self.upstream)
        if any(p.op != "equal" for p in self.prompt):
            said.append("prompt edited")
        if self.before and self.after and len(self.before.parts) != len(self.after.parts):
            said.append(f"sends {len(self.after.parts)} prompt{_s(len(self.after.parts))} "
                        f"(was {len(self.before.parts)})")
        if self.model_change:
            said.append(f"model {self.model_change[0] or '-'} → {self.model_change[1] or '-'}")
        if self.significance == "cost":
            said.append(f"tokens {self.tokens_delta:+,}, cost {_money(self.cost_delta)}")
        return said

    def row_reasons(self, most: int = _MOST_ROWS) -> list[str]:
        """`data row "Germany, 2024" of table 1: coal 101 → 105` for the first `most` changed rows
        (a table added or removed whole is one), then `and 13 more data rows`."""
        said = [f"data {row.describe()}" for row in self.rows[:most]]
        if len(self.rows) > most:
            more = len(self.rows) - most
            said.append(f"and {more} more data row{_s(more)}")
        return said


def _s(count: int) -> str:
    return "" if count == 1 else "s"


@dataclass(frozen=True)
class ChapterChange:
    """A chapter's tasks, most significant change first."""

    objective_id: str
    title: str
    number: int  # 1-based in the sheet's order (as the report numbers chapters)
    tasks: tuple[TaskChange, ...]

    @property
    def changed(self) -> tuple[TaskChange, ...]:
        return tuple(t for t in self.tasks if t.status != "unchanged")

    @property
    def rank(self) -> int:
        return min((RANKS[t.significance] for t in self.tasks), default=RANKS["none"])

    def summary(self) -> str:
        """`3 of 4 tasks changed: 1 data, 2 answers; tokens +120, cost +$0.0012`, or `unchanged (4 tasks)`."""
        changed = self.changed
        if not changed:
            return f"unchanged ({len(self.tasks)} task{'s' if len(self.tasks) != 1 else ''})"
        kinds: dict[str, int] = {}
        for task in changed:
            name = {"added": "added", "removed": "removed"}.get(task.status, task.significance)
            kinds[name] = kinds.get(name, 0) + 1
        words = {"data": "data", "answer": "answer", "input": "input only", "cost": "cost only",
                 "added": "added", "removed": "removed"}
        parts = ", ".join(f"{count} {words[kind]}" + ("s" if kind == "answer" and count != 1 else "")
                          for kind, count in sorted(kinds.items(), key=lambda kv: _KIND_ORDER.index(kv[0])))
        tokens = sum(t.tokens_delta for t in self.tasks)
        cost = sum(t.cost_delta for t in self.tasks)
        return (f"{len(changed)} of {len(self.tasks)} task{'s' if len(self.tasks) != 1 else ''} changed: {parts}; "
                f"tokens {tokens:+,}, cost {_money(cost)}")


_KIND_ORDER = ["data", "answer", "added", "removed", "input", "cost"]


@dataclass(frozen=True)
class RunComparison:
    """Run `before` (the base) against run `after`: settings, then chapters most significant first."""

    before: RunRow
    after: RunRow
    chapters: tuple[ChapterChange, ...]
    settings: tuple[tuple[str, str, str], ...] = ()  # (key, before, after) of settings that shape answers
    counts: Mapping[str, int] = field(default_factory=dict)  # changed / unchanged / added / removed

    @property
    def tasks(self) -> tuple[TaskChange, ...]:
        """Every task, chapter by chapter in the comparison's order."""
        return tuple(t for chapter in self.chapters for t in chapter.tasks)

    @property
    def changed(self) -> tuple[TaskChange, ...]:
        return tuple(t for t in self.tasks if t.status != "unchanged")

    @property
    def workbook_edited(self) -> bool:
        before, after = self.before.sheet_hash, self.after.sheet_hash
        return bool(before and after and before != after)


# -- sides ------------------------------------------------------------------------------


def run_side(run: RunRow, tasks: Sequence[TaskRow], calls: Sequence[Mapping[str, Any]], *,
             chapters: Sequence[tuple[str, str]] = (), order: Sequence[str] = ()) -> RunSide:
    """A run as the comparison sees it. `order` lists task keys in report order (from run.json or
    the report); tasks it does not name follow in chapter order, then as the ledger lists them."""
    own: dict[str, tuple[tuple[str, str], ...]] = {}
    every_call: dict[str, list[Mapping[str, Any]]] = {}
    for call in calls:
        every_call.setdefault(call["task_key"], []).append(call)
    for key, made in every_call.items():
        own[key] = _own_prompts(made)
    sides = [
        TaskSide(
            key=t.task_key, objective_id=t.objective_id, title=t.title, status=t.status, error=t.error,
            text=t.text or "", model=t.model or "",
            prompt="\n\n".join(prompt for _, prompt in own.get(t.task_key, ())),
            prompt_tokens=t.prompt_tokens, completion_tokens=t.completion_tokens, cost_usd=t.cost_usd,
            from_cache=bool(every_call.get(t.task_key)) and all(c["cached"] for c in every_call[t.task_key]),
            prompts=own.get(t.task_key, ()),
        )
        for t in tasks
    ]
    chapter_at = {objective_id: index for index, (objective_id, _) in enumerate(chapters)}
    place = {key: index for index, key in enumerate(order)}
    listed = {side.key: index for index, side in enumerate(sides)}
    sides.sort(key=lambda s: (place.get(s.key, len(place)), chapter_at.get(s.objective_id, len(chapter_at)),
                              listed[s.key]))
    return RunSide(run=run, tasks=tuple(sides), chapters=tuple(chapters))


def _own_prompts(calls: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """What a task's first step sent, (part, prompt) per prompt: the rendered prompt with its data
    and its dependencies' texts. One call per step label (an item of a for_each task, a model of
    its variants has its own), the answered one where a retry failed before it; a task that made
    no such call, its first call. Parts in item order (`#2` before `#10`), not the order the calls
    were made in, which a pool shuffles; a prompt sent twice (one per variant model) counts once."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for call in calls:
        step = call["step"] or ""
        if _FIRST_STEPS.match(step) and (step not in chosen or call["status"] == "ok"):
            chosen[step] = call
    if not chosen and calls:
        chosen[""] = calls[0]
    parts: dict[str, str] = {}
    for step in sorted(chosen, key=_natural):
        name, prompt = _FIRST_STEPS.sub("", step, count=1), messages_text(prompt_messages(chosen[step]["prompt"]))
        if (name.startswith("#") and item_number(name) is not None) or prompt not in parts.values():
            parts[name] = prompt
    return tuple(parts.items())


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """`generate#2` before `generate#10`."""
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(text))


def base_run(runs: Iterable[RunRow], current: RunRow) -> RunRow | None:
    """The run to compare `current` with: the latest run of the same workbook that finished its
    tasks (done, or done with some failed) and started before it. Paths compare as written and
    as resolved (`runs` keeps the path a run was given)."""
    candidates = [
        r for r in runs
        if r.run_id != current.run_id and r.status in ("done", "failed") and r.finished_at
        and r.started_at <= current.started_at and _same_sheet(r.sheet_path, current.sheet_path)
    ]
    return max(candidates, key=lambda r: (r.started_at, r.run_id), default=None)


def _same_sheet(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


# -- the comparison -------------------------------------------------------------------------


def compare_runs(before: RunSide, after: RunSide) -> RunComparison:
    """Every task of either run, classified; chapters and tasks most significant first."""
    old = {t.key: t for t in before.tasks}
    new = {t.key: t for t in after.tasks}
    keys = [t.key for t in after.tasks] + [t.key for t in before.tasks if t.key not in new]
    text_changed = [k for k in keys if k in old and k in new and old[k].text != new[k].text]  # report order
    changes = [_task_change(key, old.get(key), new.get(key), old, new, text_changed, position)
               for position, key in enumerate(keys)]
    titles = dict(before.chapters) | dict(after.chapters)
    sheet = [objective_id for objective_id, _ in after.chapters]
    sheet += [objective_id for objective_id, _ in before.chapters if objective_id not in sheet]
    sheet += [c.objective_id for c in changes if c.objective_id not in sheet]
    chapters = []
    for number, objective_id in enumerate(sheet, start=1):
        mine = sorted((c for c in changes if c.objective_id == objective_id), key=_task_order)
        if mine:
            chapters.append(ChapterChange(objective_id, titles.get(objective_id, objective_id), number, tuple(mine)))
    chapters.sort(key=lambda c: (c.rank, -len(c.changed), c.number))
    counts = {status: sum(c.status == status for c in changes)
              for status in ("changed", "unchanged", "added", "removed")}
    return RunComparison(before=before.run, after=after.run, chapters=tuple(chapters),
                         settings=settings_changes(before.run, after.run), counts=counts)


def _task_order(change: TaskChange) -> tuple[int, int, int]:
    return RANKS[change.significance], -change.words_changed - 10 * len(change.rows), change.position


def _task_change(key: str, before: TaskSide | None, after: TaskSide | None, old: Mapping[str, TaskSide],
                 new: Mapping[str, TaskSide], text_changed: Sequence[str], position: int) -> TaskChange:
    either = after or before
    assert either is not None
    who = {"key": key, "objective_id": either.objective_id, "title": either.title, "before": before, "after": after,
           "position": position}
    if before is None or after is None:
        text = word_diff(before.text if before else "", after.text if after else "")
        return TaskChange(status="added" if before is None else "removed", significance="answer", text=text, **who)
    upstream: tuple[str, ...] = ()
    if before.prompt != after.prompt:  # only then can a dependency's new text be in it
        upstream = tuple(k for k in text_changed if k != key and len(old[k].text.strip()) >= _MIN_UPSTREAM_CHARS
                         and old[k].text.strip() in before.prompt and new[k].text.strip() in after.prompt)
    rows: list[RowChange] = []
    prose: list[Piece] = []
    reshaped = _reshaped(before.parts, after.parts)
    pairs = [("", before.prompt, after.prompt)] if reshaped else _paired(before.parts, after.parts)
    for item, old_prompt, new_prompt in pairs:
        old_parts = split_prompt(_without(old_prompt, [old[k].text.strip() for k in upstream]))
        new_parts = split_prompt(_without(new_prompt, [new[k].text.strip() for k in upstream]))
        old_tables, new_tables = old_parts.tables, new_parts.tables
        if reshaped:  # the same rows, sent in other prompts: compare the rows, not how they were split
            old_tables, new_tables = merge_tables(old_tables), merge_tables(new_tables)
        rows += row_changes(old_tables, new_tables, item=item)
        if old_parts.prose != new_parts.prose:
            if prose:
                prose.append(Piece("equal", "\n\n"))  # between two items' prompts
            prose.extend(word_diff(old_parts.prose, new_parts.prose))
    prompt = tuple(prose)
    text = word_diff(before.text, after.text)
    significance = _significance(before, after, rows=rows, prompt=prompt, upstream=upstream, text=text)
    return TaskChange(status="unchanged" if significance == "none" else "changed", significance=significance,
                      text=text, prompt=prompt, rows=tuple(rows), upstream=upstream, **who)


def _reshaped(old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]) -> bool:
    """The task split its prompt otherwise: one prompt then, one per item now (or back), so no
    prompt of one run has a counterpart of the same name in the other."""
    return (len(old) > 1 or len(new) > 1) and not {name for name, _ in old} & {name for name, _ in new}


def _paired(old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(item, old prompt, new prompt) of each prompt a task sent: item N with item N, a prompt only
    one run sent with "", one prompt each (of other variant models) with each other. `item` names
    the prompt for a reader (`item 3`), "" for a task's one prompt."""
    before, after = dict(old), dict(new)
    if len(old) == 1 and len(new) == 1:
        return [("", old[0][1], new[0][1])]
    names = [name for name, _ in new] + [name for name, _ in old if name not in after]
    return [(_part_name(name), before.get(name, ""), after.get(name, "")) for name in names]


def _part_name(name: str) -> str:
    """`#3` → `item 3`; another label as it is (`@gpt-4o`); "" for a task's one prompt."""
    item = item_number(name) if name.startswith("#") else None
    return f"item {item}" if item is not None else name


def _without(prompt: str, texts: Sequence[str]) -> str:
    """The prompt with the dependencies' texts cut out (longest first): what is the task's own."""
    for text in sorted(texts, key=len, reverse=True):
        prompt = prompt.replace(text, "")
    return prompt


def _significance(before: TaskSide, after: TaskSide, *, rows: Sequence[RowChange], prompt: Sequence[Piece],
                  upstream: Sequence[str], text: Sequence[Piece]) -> Significance:
    if rows:
        return "data"
    if before.status != after.status or any(p.op != "equal" for p in text):
        return "answer"
    if prompt or upstream or before.model != after.model or before.prompt != after.prompt:
        return "input"
    # a task answered from the cache costs nothing the second time: that is not a change
    paid_both = not before.from_cache and not after.from_cache
    if before.tokens != after.tokens or (paid_both and abs(before.cost_usd - after.cost_usd) > 1e-9):
        return "cost"
    return "none"


def settings_changes(before: RunRow, after: RunRow) -> tuple[tuple[str, str, str], ...]:
    """(key, before, after) of each recorded setting that shapes the answers and differs: the
    model, temperature, steps, selection... not how fast, where or how the run showed itself
    (`RESUMABLE_KEYS`), which cannot change a word of the report. A key only one run recorded
    (a setting newer code added) is a change only when it is set away from its default: an
    older run behaved as the default, so `locale (none) → en` tells a reader nothing."""
    if before.config_hash and before.config_hash == after.config_hash:
        return ()
    old, new = before.recorded_config() or {}, after.recorded_config() or {}
    defaults = _recorded_defaults()
    found = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_KEYS or key == "api_key" or old.get(key) == new.get(key):
            continue
        if _new_at_default(key, old, new, defaults):
            continue
        found.append((key, _shown(old.get(key)), _shown(new.get(key))))
    return tuple(found)


def _new_at_default(key: str, old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any]) -> bool:
    """Only one run recorded `key`, and at its default: the other ran with that default too."""
    if (key in old) == (key in new) or key not in defaults:
        return False
    return (old if key in old else new)[key] == defaults[key]


@functools.cache
def _recorded_defaults() -> dict[str, Any]:
    """Each setting's default as a run records it (`RunConfig.redacted()`: JSON values)."""
    return RunConfig().redacted()


def _shown(value: Any) -> str:
    text = "(none)" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _SETTING_WIDTH else text[: _SETTING_WIDTH - 1] + "…"


def _money(amount: float) -> str:
    sign = "-" if amount < -5e-5 else "+"
    return f"{sign}${abs(amount):.4f}"
