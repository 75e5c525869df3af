"""Prompt templates: a Jinja sandbox, the context contract, and static checks.

A prompt cell is analyst text, so it renders in `ImmutableSandboxedEnvironment`
with `StrictUndefined`: `{{ ''.__class__ }}` is an error, not an escape, and a
typo is an error, not a silently empty prompt. Jinja's default globals
(`range`, `dict`, `lipsum`, `cycler`, `joiner`, `namespace`) are removed: a
prompt needs none of them and each is surface to attack.

The context (the contract in DESIGN.md), with every value read-only:

    objective   objective_id, title, description
    task        task_id, title
    data        NAME -> that table as Markdown (data.NAME or data["NAME"])
    results     "OBJ.TASK" -> a dependency's text; "OBJ" -> that chapter's texts, joined
    project     name
    settings    the settings sheet's key -> value
    item        for_each tasks only: the item (`{{ item }}` its name, `{{ item.COLUMN }}`, `{{ item.table }}`)
    entity      family runs (`--each`) only: the entity's row (`{{ entity.FIELD }}`, `{{ entity.entity_id }}`)
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import TemplateRenderError
from ..models import Objective, Task

__all__ = [
    "CONTEXT_FIELDS",
    "CONTEXT_NAMES",
    "PromptRenderer",
    "TemplateFacts",
    "TemplateRenderError",
    "TableSource",
    "analyse_template",
    "build_context",
    "item_variable",
    "make_environment",
    "render_prompt",
    "syntax_problem",
    "template_problems",
]

CONTEXT_NAMES: tuple[str, ...] = ("objective", "task", "data", "results", "project", "settings")
ITEM_NAME = "item"  # for_each tasks only: the item a call is for
ENTITY_NAME = "entity"  # family runs only: the row of the entities file a report is for
# the fixed fields of the record-like variables; data/results/settings keys come from the sheet
CONTEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "objective": ("objective_id", "title", "description"),
    "task": ("task_id", "title"),
    "project": ("name",),
}
# HTML-only or internals-dumping filters have no place in a prompt
_REMOVED_FILTERS = ("pprint", "xmlattr", "urlize")
# `"a" * 10**10` would allocate gigabytes; cap what one operator may build
_MAX_PRODUCT_LENGTH = 1_000_000
_MAX_POWER_EXPONENT = 1_000


# A width in a format spec: `%300000000s`, `{:>300000000}`
_FORMAT_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*:[^{}\d]*(\d+)[^{}]*\}")


def _check_widths(text: str) -> None:
    for match in _FORMAT_WIDTH.finditer(text):
        if int(match.group(1) or match.group(2)) > _MAX_PRODUCT_LENGTH:
            raise SecurityError("a format width is too large for a prompt")


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > _MAX_PRODUCT_LENGTH:
        raise SecurityError(f"a width of {width} is too large for a prompt")


class _PromptSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus caps on what one operator, filter or format may build
    (`*`, `**`, `%`, |center, |indent, |format, str.format), so a prompt cannot exhaust memory."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("center", "indent"):
            self.filters[name] = _width_capped(self.filters[name])
        plain_format = self.filters["format"]

        def capped_format(value: Any, *args: Any, **kwargs: Any) -> str:
            _check_widths(str(value))
            return plain_format(value, *args, **kwargs)

        self.filters["format"] = capped_format

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_widths(str(getattr(value, "__self__", "")))
        return wrapped

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "%":
            if isinstance(left, str):
                _check_widths(left)
            return operator.mod(left, right)
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > _MAX_POWER_EXPONENT:
                raise SecurityError(f"exponent {right} is too large for a prompt")
            return operator.pow(left, right)
        for sized, count in ((left, right), (right, left)):
            repeats = isinstance(sized, (str, list, tuple)) and isinstance(count, int)
            if repeats and len(sized) * count > _MAX_PRODUCT_LENGTH:
                raise SecurityError("a repeated value would be too long for a prompt")
        return operator.mul(left, right)


def _width_capped(plain: Any) -> Any:
    def capped(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        _check_width(width)
        return plain(value, width, *args, **kwargs)

    return capped


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one sandbox configuration every prompt is parsed and rendered with."""
    environment = _PromptSandbox(
        undefined=StrictUndefined,
        autoescape=False,
        extensions=(),
        keep_trailing_newline=True,
    )
    environment.globals.clear()
    for name in _REMOVED_FILTERS:
        environment.filters.pop(name, None)
    return environment


# -- the context ----------------------------------------------------------------------


class _ReadOnly:
    """A read-only record or mapping for templates: `x.key` and `x["key"]` both work.

    It has no public methods, so a key such as `items` or `keys` is a key (a
    dict would answer with its method); unknown keys give a StrictUndefined
    whose message names the known ones. Names starting with `_` never reach it:
    the sandbox blocks them first.
    """

    __slots__ = ("_label", "_names", "_get")

    def __init__(self, label: str, names: Collection[str], get: Callable[[str], Any]) -> None:
        self._label = label
        self._names = tuple(names)
        self._get = get

    def _missing(self, key: object) -> StrictUndefined:
        known = ", ".join(self._names) or "none"
        return StrictUndefined(hint=f"{self._label} has no {key!r} (known: {known})", name=str(key))

    def __getitem__(self, key: object) -> Any:
        if isinstance(key, str) and key in self._names:
            return self._get(key)
        return self._missing(key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<{self._label}: {', '.join(self._names)}>"


class _ItemRecord(_ReadOnly):
    """`item` in a for_each task's prompt: prints as the item's name (`{{ item }}`: Germany), holds
    the row's cells (`{{ item.year }}`) and its rows as Markdown (`{{ item.table }}`)."""

    __slots__ = ("_name",)

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        frozen = dict(values)
        super().__init__("item", tuple(frozen), frozen.__getitem__)
        self._name = name

    def __str__(self) -> str:
        return self._name


def item_variable(name: str, fields: Mapping[str, Any], table: str) -> _ReadOnly:
    """The `item` a for_each task's prompt sees; `table` wins over a column of that name."""
    return _ItemRecord(name, {**{str(k): v for k, v in fields.items()}, "table": table})


def _record(label: str, values: Mapping[str, Any]) -> _ReadOnly:
    frozen = dict(values)
    return _ReadOnly(label, tuple(frozen), frozen.__getitem__)


class TableSource(Protocol):
    """What `build_context` needs from a data store: names, and a table as Markdown."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def markdown(self, name: str) -> str: ...


def _with_chapters(results: Mapping[str, str]) -> dict[str, str]:
    """Add `OBJ` -> that objective's texts joined, in the order given (sheet order)."""
    chapters: dict[str, list[str]] = {}
    for key, text in results.items():
        objective_id, _, task_id = key.partition(".")
        if task_id:
            chapters.setdefault(objective_id, []).append(text)
    combined = dict(results)
    for objective_id, texts in chapters.items():
        combined.setdefault(objective_id, "\n\n".join(texts))
    return combined


def build_context(
    *,
    objective: Objective,
    task: Task,
    project_name: str,
    data: TableSource | Mapping[str, str] | None = None,
    results: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    item: _ReadOnly | None = None,
    entity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables one prompt sees.

    `data` is a `DataStore` (tables are turned into Markdown only when a prompt
    uses them, so unused files are never read) or a ready name -> Markdown
    mapping. `results` maps each dependency's `OBJ.TASK` key to its text, in
    sheet order; `results["OBJ"]` is derived from it.
    """
    if data is None:
        tables: _ReadOnly = _record("data", {})
    elif isinstance(data, Mapping):
        tables = _record("data", data)
    else:
        tables = _ReadOnly("data", data.names, data.markdown)
    return {
        "objective": _record(
            "objective",
            {"objective_id": objective.objective_id, "title": objective.title, "description": objective.description},
        ),
        "task": _record("task", {"task_id": task.task_id, "title": task.title}),
        "data": tables,
        "results": _record("results", _with_chapters(results or {})),
        "project": _record("project", {"name": project_name}),
        "settings": _record("settings", settings or {}),
        **({"item": item} if item is not None else {}),
        **({ENTITY_NAME: _record(ENTITY_NAME, entity)} if entity is not None else {}),
    }


# -- compile and render ------------------------------------------------------------------


def _syntax_message(error: TemplateSyntaxError, source: str) -> str:
    line_no = error.lineno or 1
    lines = source.splitlines()
    line = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
    shown = f" — line {line_no} reads: {line}" if line else ""
    return f"template syntax error on line {line_no}: {error.message}{shown}"


class PromptRenderer:
    """Compiles each distinct template once and renders it from any thread.

    Jinja templates are safe to render concurrently; only the cache needs a
    lock, and compiling happens outside it (two threads may both compile a new
    template once; the first stored wins).
    """

    def __init__(self) -> None:
        self._environment = make_environment()
        self._compiled: dict[str, Template] = {}
        self._lock = threading.Lock()

    @property
    def environment(self) -> ImmutableSandboxedEnvironment:
        return self._environment

    def compile(self, source: str) -> Template:
        with self._lock:
            cached = self._compiled.get(source)
        if cached is not None:
            return cached
        try:
            template = self._environment.from_string(source)
        except TemplateSyntaxError as error:
            raise TemplateRenderError(_syntax_message(error, source)) from None
        with self._lock:
            return self._compiled.setdefault(source, template)

    def render(self, template: str | Template, context: Mapping[str, Any]) -> str:
        compiled = self.compile(template) if isinstance(template, str) else template
        try:
            return compiled.render(context)
        except SecurityError as error:
            raise TemplateRenderError(f"blocked by the template sandbox: {error}") from None
        except TemplateError as error:
            raise TemplateRenderError(f"cannot render the prompt: {error.message or error}") from None
        except Exception as error:  # a table that fails to load, 1/0, ...: still this prompt's failure
            raise TemplateRenderError(f"cannot render the prompt: {error}") from error


def render_prompt(
    template: str | Template, context: Mapping[str, Any], *, renderer: PromptRenderer | None = None
) -> str:
    """Render a prompt; pass the run's shared `renderer` so each source compiles once.

    Without a renderer a string compiles afresh (fine for a one-off call); a
    compiled `Template` from `PromptRenderer.compile` needs none.
    """
    return (renderer or PromptRenderer()).render(template, context)


# -- static checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateFacts:
    """What a template refers to, found once per distinct source and checked per task."""

    syntax_error: str | None = None
    unknown_names: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # attributes/keys starting with `_`
    refused: tuple[str, ...] = ()  # whole constructs a prompt may not use ({% include %}, |attr('_x'))
    uses_item: bool = False  # `item`: defined only in a for_each task
    fields: tuple[tuple[str, str], ...] = ()  # (variable, key) of objective/task/project/settings
    data_keys: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()
    uses_entity: bool = False  # `entity`: defined only in a family run
    entity_keys: tuple[str, ...] = ()  # the FIELDs of `entity.FIELD` / `entity["FIELD"]`

    def problems(
        self,
        *,
        data_names: Collection[str],
        dependency_keys: Collection[str],
        settings_keys: Collection[str] | None = None,
        for_each: bool = False,
    ) -> list[str]:
        if self.syntax_error:
            return [self.syntax_error]
        problems = [_unknown_name_message(name) for name in self.unknown_names]
        if self.uses_item and not for_each:
            problems.append("item is set only in a for_each task — name a table (or TABLE.column) in its for_each "
                            "column, or use data.NAME")
        if self.blocked:
            verb = "is" if len(self.blocked) == 1 else "are"
            problems.append(f"{', '.join(self.blocked)} {verb} not allowed in a prompt: names starting with _ are blocked")
        problems.extend(self.refused)
        for variable, key in self.fields:
            known = CONTEXT_FIELDS.get(variable)
            if variable == "settings":
                if settings_keys is not None and key not in settings_keys:
                    problems.append(
                        f"settings.{key} is not set in the settings sheet — add a row with key {key} and a value "
                        f"(set: {', '.join(settings_keys) or 'none'})"
                    )
            elif known is not None and key not in known:
                problems.append(f"{variable} has no field {key!r}{_did_you_mean(key, known)} — use {', '.join(known)}")
        for key in self.data_keys:
            if key not in data_names:
                problems.append(
                    f"unknown data source {key!r}{_did_you_mean(key, data_names)} in data.{key} — "
                    f"add it to the data sheet (known: {', '.join(sorted(data_names)) or 'none'})"
                )
        for key in self.result_keys:
            if key not in dependency_keys:
                problems.append(f'results["{key}"] is not a dependency of this task — add {key} to its depends_on')
        return problems

    def entity_problems(self, entity_fields: Collection[str] | None) -> list[str]:
        """`entity` outside a family run (`entity_fields` None), or a field the entities file lacks.

        Apart from `problems`: the reader does not know the entities (they come with --each,
        after the config); the family check calls this once it does."""
        if self.syntax_error or not self.uses_entity:
            return []
        if entity_fields is None:
            return ["entity is set only in a family run — run with --each ENTITIES (a CSV/XLSX file with a row "
                    "per report), or remove entity from the prompt"]
        return [f"entity has no field {key!r}{_did_you_mean(key, entity_fields)} — the entities file has: "
                f"{', '.join(entity_fields)}" for key in self.entity_keys if key not in entity_fields]


def _did_you_mean(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_name_message(name: str) -> str:
    return f"unknown variable {name!r}{_did_you_mean(name, CONTEXT_NAMES)} — a prompt may use {', '.join(CONTEXT_NAMES)}"


def _key_of(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None  # a computed key (`data[name]`) cannot be checked before the run


def _describe_access(node: nodes.Getattr | nodes.Getitem, key: str) -> str:
    return f".{key}" if isinstance(node, nodes.Getattr) else f"[{key!r}]"


def _in_text_order(node: nodes.Node) -> Iterator[nodes.Node]:
    """Every node, children first and left to right: `a.b.c` yields `a.b` before `a.b.c`,
    so findings are listed in the order the analyst wrote them."""
    for child in node.iter_child_nodes():
        yield from _in_text_order(child)
    yield node


_LOADING_TAGS = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
                 nodes.Extends: "extends"}


def _refused(node: nodes.Node) -> str | None:
    """What the sandbox would refuse only while rendering, said before the run instead."""
    for kind, tag in _LOADING_TAGS.items():
        if isinstance(node, kind):
            return f"{{% {tag} %}} is not allowed in a prompt: a prompt cannot load other templates"
    if isinstance(node, nodes.Filter) and node.name == "attr":
        name = node.args[0].value if node.args and isinstance(node.args[0], nodes.Const) else None
        if not isinstance(name, str) or name.startswith("_"):
            return "|attr(...) is not allowed in a prompt with a name starting with _ or not written out"
    if isinstance(node, nodes.Getattr) and node.attr in ("format", "format_map"):
        text = node.node.value if isinstance(node.node, nodes.Const) else None
        if isinstance(text, str) and re.search(r"\{[^}]*[.\[]_", text):
            return f"{text!r}.{node.attr}(...) reaches a name starting with _, which is blocked in a prompt"
    return None


@functools.lru_cache(maxsize=4096)
def analyse_template(source: str) -> TemplateFacts:
    """Parse once and collect what the template uses (`jinja2.meta` plus an AST walk).

    Kept per text: validation, a family's entity check and the run ask it of the same
    prompts (parsing the example's 56 prompts took 50 ms each time)."""
    environment = make_environment()
    try:
        tree = environment.parse(source)
        # the code generator behind find_undeclared_variables also rejects unknown filters/tests
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as error:
        return TemplateFacts(syntax_error=_syntax_message(error, source))
    # names a template assigns itself ({% set data = ... %}) are not the context's
    assigned = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    blocked: dict[str, None] = {}
    fields: dict[tuple[str, str], None] = {}
    data_keys: dict[str, None] = {}
    result_keys: dict[str, None] = {}
    entity_keys: dict[str, None] = {}
    refused: dict[str, None] = {}
    for node in _in_text_order(tree):
        problem = _refused(node)
        if problem is not None:
            refused[problem] = None
        if not isinstance(node, (nodes.Getattr, nodes.Getitem)):
            continue
        key = _key_of(node)
        if key is None:
            continue
        if key.startswith("_"):
            blocked[_describe_access(node, key)] = None
            continue
        target = node.node
        if not isinstance(target, nodes.Name) or target.name in assigned:
            continue
        if target.name == "data":
            data_keys[key] = None
        elif target.name == "results":
            result_keys[key] = None
        elif target.name == ENTITY_NAME:
            entity_keys[key] = None
        elif target.name in CONTEXT_FIELDS or target.name == "settings":
            fields[(target.name, key)] = None
    return TemplateFacts(
        unknown_names=tuple(sorted(set(undeclared) - set(CONTEXT_NAMES) - {ITEM_NAME, ENTITY_NAME})),
        uses_item=ITEM_NAME in undeclared,
        uses_entity=ENTITY_NAME in undeclared,
        entity_keys=tuple(entity_keys),
        blocked=tuple(blocked),
        refused=tuple(refused),
        fields=tuple(fields),
        data_keys=tuple(data_keys),
        result_keys=tuple(result_keys),
    )


def template_problems(
    source: str,
    *,
    data_names: Collection[str],
    dependency_keys: Collection[str],
    settings_keys: Collection[str] | None = None,
) -> list[str]:
    """Everything wrong with one prompt that can be known before the run.

    `dependency_keys` is the task's expanded depends_on (`OBJ.TASK` keys) plus
    any whole objectives it lists (`OBJ`), which `results["OBJ"]` may use.
    `settings_keys`, when given, also checks `settings.KEY`.
    """
    return analyse_template(source).problems(
        data_names=data_names, dependency_keys=dependency_keys, settings_keys=settings_keys
    )


def syntax_problem(source: str) -> str | None:
    """Only the syntax check: for templates whose variables the caller defines (step prompts)."""
    try:
        make_environment().parse(source)
    except TemplateSyntaxError as error:
        return _syntax_message(error, source)
    return None
