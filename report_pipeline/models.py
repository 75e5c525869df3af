"""Plain value types shared by every stage: the parsed sheet and the task results.

They hold data only; reading, planning and writing live in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal, get_args

STEP_NAMES: tuple[str, ...] = ("generate", "refine", "check")
TaskStatus = Literal["done", "failed", "skipped"]
#: In a family run (`--each`) every objective id is `<entity_id>~<objective_id>`. The reader refuses
#: `~` in objective ids and entity ids cannot hold it, so the first `~` always splits the two; it reads
#: well in logs and is safe in file names.
ENTITY_SEPARATOR = "~"


def split_entity(objective_id: str) -> tuple[str, str]:
    """`("de", "gen")` for `de~gen`; `("", "gen")` outside a family run."""
    entity_id, sep, local = objective_id.partition(ENTITY_SEPARATOR)
    return (entity_id, local) if sep else ("", objective_id)


@dataclass(frozen=True)
class Entity:
    """One row of a family's entities file: the report it stands for and the fields its templates see."""

    entity_id: str
    fields: tuple[tuple[str, str], ...]  # (column, value as text), in the file's column order
    row: int = 0  # the file's row number (1 = header), for messages

    def field_map(self) -> dict[str, str]:
        return dict(self.fields)


@dataclass(frozen=True)
class DataSource:
    """A row of the `data` sheet: a table on disk the prompts may attach."""

    name: str
    path: Path  # resolved against the workbook's folder
    sheet: str | None = None
    columns: tuple[str, ...] = ()
    filter: str | None = None
    chart: str | None = None  # "line" or "bar": render a chart of this table
    x: str | None = None  # chart's x column
    y: tuple[str, ...] = ()  # chart's y column(s)
    row: int = 0  # spreadsheet row, for messages
    title: str | None = None  # how captions and chart titles name the table (else its name, readable)
    unit: str | None = None  # the chart's y axis label (e.g. "TWh")
    labels: tuple[tuple[str, str], ...] = ()  # (column, label): from `columns` entries `name: Label`
    shade: tuple[str, str] | None = None  # (column, value): chart rows where it holds are shaded


@dataclass(frozen=True)
class Objective:
    """A chapter of the report (a row of the `objectives` sheet)."""

    objective_id: str
    title: str
    description: str = ""  # the analyst's note on the chapter's scope: prompts see it, readers do not
    enabled: bool = True
    system_prompt: str = ""
    mode: str = "tasks"  # "tasks", or "outline": the model proposes the sections
    index: int = 0  # position in the sheet, 0-based: the report order
    row: int = 0
    lead: str = ""  # printed under the chapter heading, for the reader
    fail_fast: bool = False  # the chapter's first failed task stops the chapter (the rest is skipped)
    entity_id: str = ""  # a family run's entity ("" otherwise); objective_id is then `<entity_id>~<id>`


@dataclass(frozen=True)
class Task:
    """One prompt of a chapter (a row of the `tasks` sheet)."""

    objective_id: str
    task_id: str
    prompt: str
    title: str = ""
    data: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    steps: tuple[str, ...] | None = None  # None: the config's default
    model: tuple[str, ...] | None = None  # None: the config's model
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None  # None: the config's
    enabled: bool = True
    merge: str = "collect_all"  # with several models: collect_all, first_success, best
    include_table: bool = False  # put the attached data tables in the report
    for_each: str | None = None  # `TABLE` (a call per row) or `TABLE.column` (a call per value); see workbook/items
    index: int = 0  # position in the tasks sheet, 0-based
    row: int = 0
    entity: Entity | None = None  # a family run's entity: `{{ entity.FIELD }}` and `entity.FIELD` in filters

    @property
    def key(self) -> str:
        """`OBJ.TASK`: the id dependencies, the ledger and results use."""
        return f"{self.objective_id}.{self.task_id}"


@dataclass(frozen=True)
class PromptSheet:
    """A validated workbook: everything the pipeline needs, nothing more."""

    path: Path
    objectives: tuple[Objective, ...]
    tasks: tuple[Task, ...]
    data_sources: dict[str, DataSource] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)  # optional `prompts` sheet
    family: tuple[Entity, ...] = ()  # a family run (`--each`): its entities, in file order; () otherwise
    family_ids: tuple[str, ...] = ()  # every entity id of the file, when `family` is one shard of it

    def objective(self, objective_id: str) -> Objective:
        for objective in self.objectives:
            if objective.objective_id == objective_id:
                return objective
        raise KeyError(objective_id)

    def tasks_of(self, objective_id: str) -> list[Task]:
        return [t for t in self.tasks if t.objective_id == objective_id]


@dataclass(frozen=True)
class CallRecord:
    """What one LLM call cost: a step of a task's chain."""

    step: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    latency_s: float = 0.0
    cached: bool = False
    started_at: float = 0.0  # unix time
    finished_at: float = 0.0
    thread: str = ""
    reasoning_tokens: int = 0  # of completion_tokens
    cached_tokens: int = 0  # of prompt_tokens, served from the endpoint's prompt cache
    cache_saving_usd: float = 0.0  # what that prompt cache saved


@dataclass(frozen=True)
class CallText:
    """One answered call's words: what a reviewer reads to see why a paragraph says what it says."""

    step: str
    model: str
    prompt: str  # the messages, each under its role
    response: str
    cached: bool


@dataclass(frozen=True)
class FigureMark:
    """A figure in a task's text, and where it came from ("" when nothing it was given holds it):
    what results.csv counts and the writers mark (checks/figures.py finds and traces them)."""

    start: int  # offsets into the task's text
    end: int
    text: str
    sentence: str
    trace: str = ""  # e.g. "percent change: prices[Germany, 2024] = 40; prices[Germany, 2030] = 44.8 = 12"

    @property
    def traced(self) -> bool:
        return bool(self.trace)


@dataclass(frozen=True)
class ItemResult:
    """One item of a for_each task: its text or its error, and the calls its chain made."""

    number: int  # 1-based, in table order
    name: str  # its heading: the group's value, or the row's naming cells
    text: str = ""
    error: str = ""
    calls: tuple[CallRecord, ...] = ()
    verdict: str = ""
    notes: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task, as it goes into results.csv and the report."""

    objective_id: str
    task_id: str
    title: str
    status: TaskStatus
    error: str = ""
    text: str = ""
    model: str = ""
    steps: tuple[str, ...] = ()
    calls: tuple[CallRecord, ...] = ()
    started_at: float = 0.0
    finished_at: float = 0.0
    thread: str = ""
    check_verdict: str = ""
    check_notes: str = ""
    failed_attempts: int = 0  # sends of the call it failed on (a failed call leaves no CallRecord)
    items: tuple[ItemResult, ...] = ()  # a for_each task's items, in table order
    figures: tuple[FigureMark, ...] | None = None  # the figures check's findings (None: not checked)

    @property
    def key(self) -> str:
        return f"{self.objective_id}.{self.task_id}"

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.reasoning_tokens for c in self.calls)

    @property
    def cached_tokens(self) -> int:
        return sum(c.cached_tokens for c in self.calls)

    @property
    def cache_saving_usd(self) -> float:
        return sum(c.cache_saving_usd for c in self.calls)

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.calls) + self.failed_attempts

    @property
    def cached(self) -> bool:
        return bool(self.calls) and all(c.cached for c in self.calls)

    @property
    def untraced_figures(self) -> tuple[FigureMark, ...]:
        return tuple(f for f in self.figures or () if not f.traced)

    @property
    def duration_s(self) -> float:
        if not self.started_at or not self.finished_at:
            return 0.0
        return max(0.0, self.finished_at - self.started_at)


def status_counts(results: Iterable[TaskResult]) -> dict[str, int]:
    """How many of `results` are done, failed and skipped (every status, zeros included)."""
    counts = dict.fromkeys(get_args(TaskStatus), 0)
    for result in results:
        counts[result.status] += 1
    return counts


@dataclass(frozen=True)
class Usage:
    """Calls, tokens and cost summed over some results: a chapter's line in run.json and the progress output."""

    calls: int = 0  # answered calls, cache hits included
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, results: Iterable[TaskResult]) -> Usage:
        return cls.of_calls(c for r in results for c in r.calls)

    @classmethod
    def of_calls(cls, records: Iterable[CallRecord]) -> Usage:
        records = list(records)
        calls = [c for c in records if c.step != "resumed"]  # a task kept from the run resumed sent nothing
        return cls(
            calls=len(calls),
            cached_calls=sum(c.cached for c in calls),
            # tokens and cost over every record, so chapters add up to the run's totals
            prompt_tokens=sum(c.prompt_tokens for c in records),
            completion_tokens=sum(c.completion_tokens for c in records),
            reasoning_tokens=sum(c.reasoning_tokens for c in records),
            cached_tokens=sum(c.cached_tokens for c in records),
            cost_usd=sum(c.cost_usd for c in records),
        )

    def describe(self) -> str:
        """`12 calls, 3,400 tokens, $0.0123`: what a chapter cost, for a log line."""
        cached = f" ({self.cached_calls} cached)" if self.cached_calls else ""
        return f"{self.calls} call{'s' if self.calls != 1 else ''}{cached}, {self.tokens:,} tokens, ${self.cost_usd:.4f}"


@dataclass(frozen=True)
class FiguresTally:
    """The figures check over a run (or a chapter): `412 figures, 398 traced, 14 flagged in 9 tasks`."""

    checked_tasks: int = 0
    found: int = 0
    traced: int = 0
    flagged: int = 0
    flagged_tasks: int = 0

    @classmethod
    def of(cls, results: Iterable[TaskResult]) -> FiguresTally:
        checked = [r for r in results if r.figures is not None]
        return cls(
            checked_tasks=len(checked),
            found=sum(len(r.figures or ()) for r in checked),
            traced=sum(m.traced for r in checked for m in r.figures or ()),
            flagged=sum(len(r.untraced_figures) for r in checked),
            flagged_tasks=sum(bool(r.untraced_figures) for r in checked),
        )

    def describe(self) -> str:
        noun = "figure" if self.found == 1 else "figures"
        where = f" in {self.flagged_tasks} task{'s' if self.flagged_tasks != 1 else ''}" if self.flagged else ""
        return f"{self.found:,} {noun}, {self.traced:,} traced, {self.flagged:,} flagged{where}"


@dataclass(frozen=True)
class Chapter:
    """An objective with its task results, in sheet order: what writers render."""

    objective: Objective
    results: tuple[TaskResult, ...]
    number: int  # 1-based position among the chapters of this run
    lead: str = ""  # the paragraph under its heading ("" for none)


@dataclass(frozen=True)
class ReportView:
    """Everything a report writer needs, already in sheet order."""

    project_name: str
    run_id: str
    generated_at: float  # unix time
    provider: str
    model: str
    chapters: tuple[Chapter, ...]

    def all_results(self) -> list[TaskResult]:
        return [r for chapter in self.chapters for r in chapter.results]

    def written_by(self) -> list[tuple[str, str, int]]:
        """(provider, model, sections) for every provider and model that wrote a section, most first.

        A run keeps one provider (a resumed run keeps the one it was started with, and the
        cache key names the provider), so the sections' models say who wrote what."""
        counts: dict[str, int] = {}
        for result in self.all_results():
            if result.status == "done":
                for model in (result.model or self.model).split(","):
                    counts[model.strip()] = counts.get(model.strip(), 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [(self.provider, model, sections) for model, sections in ranked]


# results.csv and every objective CSV share these columns, in this order (DESIGN.md)
RESULT_COLUMNS: tuple[str, ...] = (
    "objective_id", "task_id", "title", "status", "error", "text", "model", "steps",
    "prompt_tokens", "completion_tokens", "cost_usd", "attempts", "cached",
    "started_at", "finished_at", "duration_s",
)
CHECK_COLUMNS: tuple[str, ...] = ("check_verdict", "check_notes")
ENTITY_COLUMNS: tuple[str, ...] = ("entity",)  # first, in a family run's results.csv: whose report the row is in
ITEM_COLUMNS: tuple[str, ...] = ("items",)  # when the run has a for_each task: how many items it had
# when the figures check ran: what it found in each task's text, and the figures it could not trace
FIGURE_COLUMNS: tuple[str, ...] = ("figures_found", "figures_traced", "figures_untraced", "untraced_figures")
