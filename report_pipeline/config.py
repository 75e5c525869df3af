"""One validated, frozen `RunConfig`, built once from YAML, the `settings` sheet, CLI flags
and the environment (in that order of precedence), then passed into constructors.

This is the only module that reads `os.environ`.

A spreadsheet cell has its own idea of types: `2024` typed as a project name is a
number, `10` typed into a text-formatted cell is text. So a number given for a
text key reads as its text (`2024`, never `2024.0`), and numbers and TRUE/FALSE
given as text (`"10"`, `"yes"`) are read as the key's type, as YAML values are.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .models import STEP_NAMES

ProviderName = Literal["offline", "openai", "azure"]
#: OpenAI's levels (gpt-5.1 adds none; the o-series lacks minimal: a refused level is dropped, once).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)  # prompt tokens the endpoint had cached; default input
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False, cached: int = 0) -> float:
        """Dollars for a call's tokens. `cached` of the prompt tokens go at `cached_input` (reasoning
        tokens are inside `completion_tokens`, billed as output, as OpenAI bills them)."""
        rate_in, rate_out = self.input, self.output
        rate_cached = self.cached_input if self.cached_input is not None else self.input
        if batch:
            rate_in = self.batch_input if self.batch_input is not None else self.input / 2
            rate_out = self.batch_output if self.batch_output is not None else self.output / 2
            rate_cached = min(rate_cached, rate_in)
        cached = min(max(cached, 0), prompt_tokens)
        return ((prompt_tokens - cached) * rate_in + cached * rate_cached + completion_tokens * rate_out) / 1_000_000


#: OpenAI's list prices (US$ per million tokens) when this table was last checked; set `prices`
#: in the config for yours (a contract, another provider, a change since).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, output=0.60, cached_input=0.075),
    "gpt-4o": Price(input=2.50, output=10.00, cached_input=1.25),
    "gpt-4.1-mini": Price(input=0.40, output=1.60, cached_input=0.10),
    "gpt-4.1": Price(input=2.00, output=8.00, cached_input=0.50),
    "gpt-5": Price(input=1.25, output=10.00, cached_input=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.00, cached_input=0.025),
    "gpt-5-nano": Price(input=0.05, output=0.40, cached_input=0.005),
    "o3": Price(input=2.00, output=8.00, cached_input=0.50),
    "o4-mini": Price(input=1.10, output=4.40, cached_input=0.275),
}


def _number_text(value: Any) -> Any:
    """A number as the text a user typed: `2024` for 2024 and 2024.0 (Excel stores every number as a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _split_list(value: Any) -> Any:
    """Accept `a, b` from a spreadsheet cell or a CLI flag as well as a YAML list."""
    value = _number_text(value)
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: No cap on chapters or tasks in progress: only the in-flight limit bounds the run.
UNCAPPED = 1 << 30


class RunConfig(BaseModel):
    """Everything a run needs to know. Frozen: build a new one with `with_overrides`."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # what the report is
    project_name: str = "Report"
    # print each objective's `description` under its heading when it has no `lead` (an old sheet's
    # habit); off by default, since a description is often an analyst's note not meant for readers
    description_as_lead: bool = False
    # report.docx marks each task's change against the base run (the one changes.md compares
    # with) as Word tracked changes; the clean document is written as report.clean.docx
    track_changes: bool = False
    # which model, where
    provider: ProviderName = "offline"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    azure_api_version: str | None = None
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int = Field(default=800, ge=1, le=200_000)
    # how hard a reasoning model (gpt-5*, o-series) thinks; sent to models that take it
    reasoning_effort: ReasoningEffort | None = None
    steps: tuple[str, ...] = ("generate",)
    # outline objectives and model variants
    outline_max_sections: int = Field(default=6, ge=1, le=50)
    outline_retries: int = Field(default=2, ge=0, le=10)
    judge_model: str | None = None
    # concurrency
    run_objectives_concurrent: bool = True
    run_task_concurrent: bool = True
    # caps on chapters and on tasks of one chapter in progress at once; None (the default): no cap
    # but the in-flight limit, so no call slot idles while any chapter has a ready task
    max_objective_workers: int | None = Field(default=None, ge=1, le=4096)
    max_task_workers: int | None = Field(default=None, ge=1, le=4096)
    max_concurrent_requests: int = Field(default=16, ge=1, le=4096)
    # adaptive: find how many calls each model at the endpoint serves at once (at most the above)
    concurrency: Literal["adaptive", "fixed"] = "adaptive"
    # runs on this machine that share the key and endpoint share its rate budget (a small file
    # per endpoint and key hash in shared_pacing_dir, default ~/.cache/report-pipeline/pace)
    shared_pacing: bool = True
    shared_pacing_dir: str | None = None
    requests_per_minute: float | None = Field(default=None, ge=0)
    tokens_per_minute: float | None = Field(default=None, ge=0)
    # failure handling
    max_retries: int = Field(default=6, ge=0, le=50)
    request_timeout_s: float = Field(default=60.0, gt=0)
    # a streamed call to a server that queues (not OpenAI's own) may wait this long for its first token
    first_token_timeout_s: float = Field(default=300.0, gt=0)
    # auto: every call streamed to servers that may queue, only the first calls (the probe) to OpenAI/Azure;
    # probes: only the probe; all: every call
    streaming: Literal["auto", "probes", "all"] = "auto"
    max_cost_usd: float | None = Field(default=None, ge=0)
    # a for_each task with more items than this is refused before anything is sent (a typo in a
    # filter must not send 10,000 calls)
    max_items: int = Field(default=200, ge=1, le=100_000)
    # every figure in a task's text is traced to its data, dependencies and prompt, without a model:
    # flag marks the untraced ones in the reports, fix asks the model once to correct them, off skips it
    figures_check: Literal["flag", "fix", "off"] = "flag"
    # how the report writes numbers (decimal mark, thousands separator): en, de, fr, ...
    locale: str = "en"
    # the first failed task stops the run: nothing new is sent, calls in flight finish, the rest is skipped
    fail_fast: bool = False
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    # outputs
    output_dir: Path = Path("output")
    cache: bool = True
    ledger: bool = True
    ledger_path: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    progress: Literal["auto", "on", "off"] = "auto"
    progress_interval_s: float = Field(default=10.0, gt=0)
    quiet: bool = False
    rss_warn_mb: float = Field(default=1024.0, gt=0)
    # selection (usually from flags)
    objectives: tuple[str, ...] | None = None
    limit: int | None = Field(default=None, ge=1)
    tasks: tuple[str, ...] | None = None  # OBJ.TASK keys (--task): these and what they depend on
    # a family of reports (--each): a .csv/.xlsx file with a row per report, or a sheet of the workbook
    each: str | None = None
    # with each: only the I-th of N stable slices of the family (--shard I/N, I from 1)
    shard: str | None = None
    # the offline provider: an optional per-call delay, seeded, to make runs visible
    offline_latency_ms: float = Field(default=0.0, ge=0)
    offline_seed: int = 0
    execution: Literal["realtime", "batch"] = "realtime"
    # batch mode (execution: batch / --batch)
    batch_poll_interval_s: float = Field(default=30.0, gt=0)
    batch_max_wait_s: float | None = Field(default=None, gt=0)
    batch_max_requests: int = Field(default=50_000, ge=1, le=50_000)
    batch_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    batch_resubmits: int = Field(default=2, ge=0, le=20)

    @field_validator("steps", "objectives", "tasks", mode="before")
    @classmethod
    def _lists_from_text(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return validate_steps(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("provider", "progress", "execution", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "requests_per_minute", "tokens_per_minute", "max_cost_usd", "limit", "ledger_path", "judge_model",
        "batch_max_wait_s", "each", "shard", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
            return None
        return value

    @model_validator(mode="before")
    @classmethod
    def _numbers_as_text(cls, data: Any) -> Any:
        """`project_name: 2024` (YAML, or a number cell in the settings sheet) is the text "2024"."""
        if not isinstance(data, Mapping):
            return data
        return {key: _number_text(value) if key in _TEXT_FIELDS else value for key, value in data.items()}

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, value: str | None) -> str | None:
        # a field validator, not a model one, so the error names base_url (and its settings cell)
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @field_validator("shard")
    @classmethod
    def _shard_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        index, count = parse_shard(value)
        return f"{index}/{count}"

    @model_validator(mode="after")
    def _shard_needs_family(self) -> RunConfig:
        if self.shard is not None and self.each is None:
            raise ValueError("shard: a shard is a slice of a family of reports — add --each ENTITIES")
        return self

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from .checks.numbers import NumberStyle

        NumberStyle.for_locale(value)  # a ValueError names the languages it knows
        return value

    # -- derived values -------------------------------------------------------------

    @property
    def objective_slots(self) -> int:
        """How many objectives may be active at once (UNCAPPED: as many as have work)."""
        if not self.run_objectives_concurrent:
            return 1
        return self.max_objective_workers or UNCAPPED

    @property
    def task_slots(self) -> int:
        """How many tasks of one objective may run at once (UNCAPPED: as many as are ready)."""
        if not self.run_task_concurrent:
            return 1
        return self.max_task_workers or UNCAPPED

    @property
    def task_threads(self) -> int:
        """Tasks running at once across the run: the in-flight limit (a task makes one call at a
        time), or fewer when the chapter and task caps allow fewer."""
        return max(1, min(self.max_concurrent_requests, self.objective_slots * self.task_slots))

    @property
    def sequential(self) -> bool:
        return not self.run_objectives_concurrent and not self.run_task_concurrent

    @property
    def shard_slice(self) -> tuple[int, int] | None:
        """(I, N) of `shard: I/N`, I from 1; None when the whole family runs."""
        return parse_shard(self.shard) if self.shard is not None else None

    @property
    def resolved_ledger_path(self) -> Path:
        return self.ledger_path or Path(self.output_dir) / "ledger.sqlite"

    def price_for(self, model: str) -> Price | None:
        return self.prices.get(model)

    def with_overrides(self, **changes: Any) -> RunConfig:
        """A new validated config with `changes` applied (a frozen model cannot be edited)."""
        data = self.model_dump()
        data["api_key"] = self.api_key
        data.update(changes)
        return _validate(data, source="override")

    def redacted(self) -> dict[str, Any]:
        """The config as JSON-safe data with every secret removed (for run.json)."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["api_key"] = "***" if self.api_key else None
        return data


def parse_shard(text: str) -> tuple[int, int]:
    """`2/4` -> (2, 4): the I-th of N slices, I from 1 to N (a ValueError says what to write)."""
    index, slash, count = str(text).strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise ValueError(f"{text!r} is not a shard: write I/N with 1 <= I <= N, e.g. 1/4 ... 4/4 "
                         "(in a Kubernetes Indexed Job: $((JOB_COMPLETION_INDEX + 1))/N)")
    return i, n


def _is_text(annotation: Any) -> bool:
    """`str`, `Path`, or either or None: a key whose value is text a user types."""
    if annotation in (str, Path):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [part for part in typing.get_args(annotation) if part is not type(None)]
        return bool(parts) and all(part in (str, Path) for part in parts)
    return False


# the keys whose values are free text (names, paths, URLs): a number given for one is its text
_TEXT_FIELDS = frozenset(name for name, info in RunConfig.model_fields.items() if _is_text(info.annotation))


def validate_steps(steps: tuple[str, ...]) -> tuple[str, ...]:
    """Steps must be known, unique, start with generate and keep chain order."""
    if not steps:
        raise ValueError("steps must list at least `generate`")
    unknown = [s for s in steps if s not in STEP_NAMES]
    if unknown:
        raise ValueError(f"unknown step {unknown[0]!r}: choose from {', '.join(STEP_NAMES)}")
    if steps[0] != "generate":
        raise ValueError("steps must start with `generate`")
    if len(set(steps)) != len(steps):
        raise ValueError("a step is listed twice")
    return tuple(sorted(steps, key=STEP_NAMES.index))


# keys a user may not set from a file or a sheet
_FORBIDDEN_KEYS = {"api_key": "never put a key in a file: set the environment variable named by api_key_env"}


def spelling_hint(key: str) -> str:
    """` — did you mean temperature?` for `temprature`, else where to look the keys up."""
    close = difflib.get_close_matches(key, list(RunConfig.model_fields), n=1)
    return f" — did you mean {close[0]}?" if close else " — check its spelling against config/example.yaml"


def _problem(item: Mapping[str, Any]) -> str:
    """One pydantic error as `key: what is wrong (got value)`."""
    loc = ".".join(str(p) for p in item["loc"]) or "config"
    if item["type"] == "extra_forbidden":
        return f"unknown key {loc!r}{spelling_hint(loc)}"
    value = item.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}{shown}"


def _describe(error: ValidationError, source: str, locations: Mapping[str, str] | None) -> str:
    lines = []
    for item in error.errors():
        key = str(item["loc"][0]) if item["loc"] else ""
        where = (locations or {}).get(key, source)
        lines.append(f"{where}: {_problem(item)}")
    return "\n".join(lines)


def settings_problems(settings: Mapping[str, Any]) -> dict[str, str]:
    """Each known key whose value cannot be used, mapped to why (`max_tokens: ... (got 0)`).

    The settings sheet calls this while it reads, so a bad value is reported with
    the workbook's other problems rather than in a second round. Every check is
    per key, so checking the sheet's keys alone is exact; unknown keys are the
    caller's to report.
    """
    known = {key: value for key, value in settings.items() if key in RunConfig.model_fields}
    try:
        RunConfig.model_validate(known)
    except ValidationError as error:
        found: dict[str, str] = {}
        for item in error.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            found.setdefault(key, _problem(item))
        return found
    return {}


def _validate(
    data: Mapping[str, Any], *, source: str, locations: Mapping[str, str] | None = None
) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_describe(error, source, locations)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file as a mapping, with a message naming the file when it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}: fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of key: value")
    return data


#: What a resumed run may change: how fast, how patiently, how much it may spend, where it
#: writes and how it shows itself. Every other key is the run's identity, recorded when it
#: started: a resumed run keeps it, and a flag that contradicts it is refused.
RESUMABLE_KEYS = frozenset({
    "api_key_env", "run_objectives_concurrent", "run_task_concurrent", "max_objective_workers",
    "max_task_workers", "max_concurrent_requests", "concurrency", "requests_per_minute", "tokens_per_minute", "max_retries",
    "shared_pacing", "shared_pacing_dir", "description_as_lead", "fail_fast", "max_items", "figures_check", "track_changes",
    "request_timeout_s", "first_token_timeout_s", "streaming", "max_cost_usd", "shutdown_grace_s", "prices", "output_dir", "cache", "ledger",
    "ledger_path", "log_level", "progress", "progress_interval_s", "quiet", "rss_warn_mb", "offline_latency_ms",
    "batch_poll_interval_s", "batch_max_wait_s", "batch_max_requests", "batch_max_bytes", "batch_resubmits",
})


@dataclass(frozen=True)
class ResumedRun:
    """The run `--resume` continues: its id and the config it was started with (secrets removed)."""

    run_id: str
    recorded: Mapping[str, Any]


def load_config(
    *,
    config_path: Path | None = None,
    settings: Mapping[str, Any] | None = None,
    settings_locations: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    resuming: ResumedRun | None = None,
) -> RunConfig:
    """Merge YAML < settings sheet < CLI flags < environment (secrets), validate once.

    `settings_locations` maps a settings key to where it sits (`settings!B4`) so a
    bad value names its cell; `overrides` holds only the flags the user gave.

    `resuming`: the config the run was started with is the base instead of the settings
    sheet (which cannot have changed: the workbook's hash is checked); the config file and
    the flags may change only `RESUMABLE_KEYS`, and one that contradicts the rest is refused
    naming the key, where it was set and what the run was started with.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    locations: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, Any], Mapping[str, str] | None]] = []
    if config_path is not None:
        layers.append((str(config_path), _relative_to(read_yaml(config_path), Path(config_path).parent), None))
    if settings and resuming is None:
        layers.append(("settings sheet", settings, settings_locations))
    if overrides:
        layers.append(("command line", {k: v for k, v in overrides.items() if v is not None}, None))
    for source, layer, where in layers:
        for key, value in layer.items():
            if key in _FORBIDDEN_KEYS:
                place = (where or {}).get(key, source)
                raise ConfigError(f"{place}: {key!r}: {_FORBIDDEN_KEYS[key]}")
            merged[key] = value
            locations[key] = (where or {}).get(key, source)
    if resuming is not None:
        merged = _resumed(resuming, merged, locations)
    config = _validate(merged, source="config", locations=locations)
    if config.provider != "offline":
        key = env.get(config.api_key_env)
        if key:
            config = config.model_copy(update={"api_key": SecretStr(key)})
    return config


#: Keys whose value is a path: in a config file, relative to the file (cron starts in another folder).
_PATH_KEYS = ("output_dir", "ledger_path", "each")


def _relative_to(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The config file's relative paths made relative to the file's folder, not the current one."""
    for key in _PATH_KEYS:
        value = data.get(key)
        if key == "each" and isinstance(value, str) and "." not in Path(value).name:
            continue  # `each: entities` names a sheet of the workbook, not a file
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = str(folder / value)
    return data


def _resumed(resuming: ResumedRun, given: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
    """The recorded config with the given resumable keys over it; a given identity key must agree."""
    recorded = {k: v for k, v in resuming.recorded.items() if k in RunConfig.model_fields and k not in _FORBIDDEN_KEYS}
    base = _validate(recorded, source=f"run {resuming.run_id}'s recorded config")
    merged = dict(recorded)
    for key, value in given.items():
        if key in RESUMABLE_KEYS:
            merged[key] = value
            continue
        if key not in RunConfig.model_fields:
            merged[key] = value  # unknown: _validate names it
            continue
        wanted = getattr(_validate({**recorded, key: value}, source="config", locations=locations), key)
        if wanted != getattr(base, key):
            flag = f"--{key.replace('_', '-')}" if locations.get(key) == "command line" else key
            raise ConfigError(
                f"{locations.get(key, 'config')}: {flag} {_shown(wanted)}: run {resuming.run_id} was started with "
                f"{key} {_shown(getattr(base, key))}, and a resumed run stays what it was started as. Drop {flag} "
                "to resume it; or start a new run without --resume (it reuses every unchanged call from the "
                "ledger and pays only for what changed)"
            )
    return merged


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return "(none)" if value is None else str(value)
