"""A family of reports: one workbook run once per row of an entities file (`--each ENTITIES`).

The family is expanded into ONE sheet before the run, so everything that covers a run (the
concurrency limits, the pacer, the ledger and its cache, the budget, resume, fail_fast, the run
lock) covers the whole family without knowing it is one: every objective id becomes
`<entity_id>~<objective_id>` (models.ENTITY_SEPARATOR), every depends_on is rewritten within its
entity, and every task carries its entity, whose fields its prompt reads as `{{ entity.FIELD }}`
and its data filters as `entity.FIELD` values. Pure functions, tested without threads; reading
the entities file is the one step that touches the disk.

A shard (`--shard I/N`) is a stable slice: an entity falls in shard `sha256(id) mod N`, whatever
the other rows, so adding or removing a row never moves another entity to another shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataSourceError, PromptSheetError, SheetProblem
from ..models import ENTITY_SEPARATOR, DataSource, Entity, PromptSheet, split_entity
from .data import (
    CSV_SUFFIXES,
    EXCEL_SUFFIXES,
    DataStore,
    bind_filter,
    filter_entity_fields,
    load_frame,
    parse_filter,
    read_table,
)
from .items import task_table_names
from .templates import analyse_template

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENTITIES_SHEET",
    "ENTITY_ID_COLUMN",
    "FamilyData",
    "entity_fields",
    "entity_sources",
    "expand_family",
    "family_problems",
    "family_selection",
    "load_entities",
    "local_keys",
    "entities_file",
    "select_shard",
    "shard_of",
]

#: `--each entities` (no file suffix) names a sheet of the workbook itself
ENTITIES_SHEET = "entities"
#: the column that names each entity's report folder; without it, a slug of the first column
ENTITY_ID_COLUMN = "entity_id"
_ENTITY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}\Z")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


# -- reading the entities ---------------------------------------------------------------------


def load_entities(spec: str, workbook: Path) -> tuple[Entity, ...]:
    """The entities `--each SPEC` names: a .csv/.xlsx file (relative to the current folder, else to
    the workbook's), or, for a name without such a suffix, that sheet of the workbook.

    Every problem at once (PromptSheetError, exit 2): no rows, an empty first cell, a bad or
    duplicate id, each naming the file, row and column."""
    path, sheet = _where(spec, Path(workbook))
    label = f"{path.name}:{sheet}" if sheet and path == Path(workbook) else path.name
    try:
        frame = read_table(path, sheet)
    except DataSourceError as error:
        raise PromptSheetError(path, [SheetProblem(label, f"--each {spec}: {error}")]) from None
    return _entities(frame, path, label)


def entities_file(spec: str, workbook: Path) -> Path:
    """The file `--each SPEC` reads (the workbook itself for a sheet of it): what a resume checks."""
    return _where(spec, Path(workbook))[0]


def _where(spec: str, workbook: Path) -> tuple[Path, str | None]:
    suffix = Path(spec).suffix.lower()
    if suffix in CSV_SUFFIXES + EXCEL_SUFFIXES:
        path = Path(spec).expanduser()
        if not path.is_absolute() and not path.exists() and (workbook.parent / path).exists():
            path = workbook.parent / path
        return path, None
    return workbook, spec


def _entities(frame: pd.DataFrame, path: Path, label: str) -> tuple[Entity, ...]:
    columns = [str(c) for c in frame.columns]
    if not len(frame) or not columns:
        raise PromptSheetError(path, [SheetProblem(label, "no entities: the file needs a header row and a row per "
                                                          "report (e.g. country, Germany)")])
    problems: list[SheetProblem] = []
    entities: list[Entity] = []
    seen: dict[str, int] = {}
    own_ids = ENTITY_ID_COLUMN in columns
    for offset, values in enumerate(frame.itertuples(index=False, name=None)):
        row = offset + 2  # the header is row 1
        fields = {name: _cell_text(value) for name, value in zip(columns, values, strict=True)}
        if not any(fields.values()):
            continue  # a blank line
        entity_id, problem = _entity_id(fields, columns[0], own_ids)
        if problem:
            problems.append(SheetProblem(label, problem, row=row, column=ENTITY_ID_COLUMN if own_ids else columns[0]))
            continue
        if entity_id in seen:
            problems.append(SheetProblem(label, f"entity id {entity_id!r} is also row {seen[entity_id]}'s: each report "
                                                "needs its own id (add an entity_id column, or make the rows differ)",
                                         row=row, column=ENTITY_ID_COLUMN if own_ids else columns[0]))
            continue
        seen[entity_id] = row
        fields[ENTITY_ID_COLUMN] = entity_id
        entities.append(Entity(entity_id, tuple(fields.items()), row=row))
    if problems:
        raise PromptSheetError(path, problems)
    if not entities:
        raise PromptSheetError(path, [SheetProblem(label, "no entities: every row is blank")])
    return tuple(entities)


def _cell_text(value: Any) -> str:
    """A cell as the text a template prints: `2024` for 2024.0, "" for a blank."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _entity_id(fields: Mapping[str, str], first: str, own_ids: bool) -> tuple[str, str]:
    """(id, "") or ("", why not)."""
    if own_ids:
        given = fields.get(ENTITY_ID_COLUMN, "")
        if not _ENTITY_ID.match(given):
            shown = repr(given) if given else "an empty entity_id"
            return "", (f"{shown} cannot name a report folder: use letters, digits, - and _ (at most 60), "
                        "starting with a letter or digit")
        return given, ""
    value = fields.get(first, "")
    slug = _slug(value)
    if not slug:
        shown = f"{value!r} has no letters or digits" if value else "empty"
        return "", f"the first column ({first}) is {shown}: it names the entity — fill it, or add an entity_id column"
    return slug, ""


def _slug(text: str) -> str:
    """`Côte d'Ivoire` -> `cote-d-ivoire`: ASCII letters and digits joined by `-` (at most 60)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_SLUG.sub("-", ascii_text).strip("-")[:60].rstrip("-")


def entity_fields(entities: Sequence[Entity]) -> tuple[str, ...]:
    """The fields every entity has (the file's columns, and entity_id)."""
    return tuple(name for name, _ in entities[0].fields) if entities else ()


# -- shards -----------------------------------------------------------------------------------------


def shard_of(entity_id: str, count: int) -> int:
    """The 1-based shard an entity falls in: a hash of its id alone, so rows added or removed
    elsewhere never move it (contiguous slices of the sorted ids would shift at every insert)."""
    digest = hashlib.sha256(entity_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(entities: Sequence[Entity], index: int, count: int) -> tuple[Entity, ...]:
    """The entities of shard `index` of `count` (1-based), in file order."""
    return tuple(e for e in entities if shard_of(e.entity_id, count) == index)


# -- the expansion -------------------------------------------------------------------------------


def expand_family(sheet: PromptSheet, entities: Sequence[Entity], *, family_ids: Sequence[str] = ()) -> PromptSheet:
    """One sheet holding every entity's copy of the workbook, entity after entity.

    Ids become `<entity_id>~<objective_id>`, depends_on stays within the entity, every task
    carries its entity; the data sources stay the workbook's (each entity's own filters are
    bound at run time by `entity_sources`). An objective keeps its position in the workbook
    (`index`), so each entity's report numbers its chapters as a report of its own would.
    `family_ids`: every id of the file when `entities` is one shard of it (a merge checks the set)."""
    objectives = []
    tasks = []
    for entity in entities:
        prefix = entity.entity_id + ENTITY_SEPARATOR
        objectives.extend(dataclasses.replace(o, objective_id=prefix + o.objective_id, entity_id=entity.entity_id)
                          for o in sheet.objectives)
        tasks.extend(dataclasses.replace(t, objective_id=prefix + t.objective_id,
                                         depends_on=tuple(prefix + ref for ref in t.depends_on), entity=entity)
                     for t in sheet.tasks)
    return dataclasses.replace(sheet, objectives=tuple(objectives), tasks=tuple(tasks), family=tuple(entities),
                               family_ids=tuple(family_ids) or tuple(e.entity_id for e in entities))


def family_selection(
    sheet: PromptSheet, objectives: Sequence[str] | None, tasks: Sequence[str] | None,
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """`--objectives` and `--task` as the workbook names them, for every entity of an expanded sheet:
    `gen` or `2` is each entity's `gen`; `gen.t1` each entity's `gen.t1`; a full `de~gen.t1` stays."""
    if not sheet.family:
        return (tuple(objectives) if objectives else None), (tuple(tasks) if tasks else None)
    first = sheet.family[0].entity_id
    local_ids = [split_entity(o.objective_id)[1] for o in sheet.objectives if o.entity_id == first]
    ids = [e.entity_id for e in sheet.family]

    def each(token: str) -> list[str]:
        token = token.strip()
        if ENTITY_SEPARATOR in token:
            return [token]
        if token not in local_ids and token.isdigit() and 1 <= int(token) <= len(local_ids):
            token = local_ids[int(token) - 1]
        return [f"{entity_id}{ENTITY_SEPARATOR}{token}" for entity_id in ids]

    chosen_objectives = tuple(k for token in objectives for k in each(token)) if objectives else None
    chosen_tasks = tuple(k for token in tasks for k in each(token)) if tasks else None
    return chosen_objectives, chosen_tasks


def entity_sources(sources: Mapping[str, DataSource], entity: Entity) -> dict[str, DataSource]:
    """The sources whose filter names `entity.FIELD`, with this entity's values bound in (quoted as
    literals of the filter language, never evaluated); the others are left out: they are shared."""
    values = entity.field_map()
    return {name: dataclasses.replace(source, filter=bind_filter(source.filter, values))
            for name, source in sources.items() if source.filter and filter_entity_fields(source.filter)}


# -- checks --------------------------------------------------------------------------------------


def family_problems(sheet: PromptSheet, entities: Sequence[Entity] | None) -> list[SheetProblem]:
    """Every use of `entity` the run cannot satisfy, located in the workbook: in a prompt or a filter
    outside a family run (`entities` None), or naming a field the entities file lacks; and a filter
    an entity's value cannot be bound into (a value holding both quote marks)."""
    fields = entity_fields(entities) if entities is not None else None
    problems: list[SheetProblem] = []
    for task in sheet.tasks:
        if not task.enabled or not task.prompt:
            continue
        problems.extend(SheetProblem("tasks", message, row=task.row, column="prompt")
                        for message in analyse_template(task.prompt).entity_problems(fields))
    used = {name for task in sheet.tasks if task.enabled for name in task_table_names(task)}
    for name, source in sheet.data_sources.items():
        if not source.filter or name not in used:
            continue
        try:
            named = filter_entity_fields(source.filter)
        except ValueError:
            continue  # the data sheet's own check says what is wrong with it
        if not named:
            continue
        if fields is None:
            problems.append(SheetProblem("data", f"entity.{named[0]} is set only in a family run — run with --each "
                                                 "ENTITIES, or write the value itself", row=source.row, column="filter"))
            continue
        unknown = [key for key in named if key not in fields]
        if unknown:
            problems.append(SheetProblem("data", f"entity has no field {unknown[0]!r} — the entities file has: "
                                                 f"{', '.join(fields)}", row=source.row, column="filter"))
            continue
        for entity in entities or ():
            try:
                parse_filter(bind_filter(source.filter, entity.field_map()))
            except ValueError as error:
                problems.append(SheetProblem("data", f"entity {entity.entity_id} (row {entity.row}): {error}",
                                             row=source.row, column="filter"))
                break
    return problems


# -- the family's data ----------------------------------------------------------------------------


class FamilyData:
    """Each entity's tables: a source whose filter names `entity.FIELD` is the entity's own, every
    other source is shared by all of them (loaded and turned into Markdown once). A file is read
    once for the whole family, however many entities filter it."""

    def __init__(self, sources: Mapping[str, DataSource], entities: Sequence[Entity], **options: Any) -> None:
        self._files: dict[tuple[Path, str | None], pd.DataFrame] = {}
        self._file_locks: dict[tuple[Path, str | None], threading.Lock] = {}
        self._registry = threading.Lock()
        loader: Callable[[DataSource], pd.DataFrame] = partial(load_frame, read=self._read)
        self.shared = DataStore(sources, loader=loader, **options)
        self._stores = {e.entity_id: self.shared.with_sources(entity_sources(sources, e)) for e in entities}

    def for_entity(self, entity_id: str) -> DataStore:
        """The entity's store ("" or an unknown id: the shared one)."""
        return self._stores.get(entity_id, self.shared)

    def _read(self, path: Path, sheet: str | None) -> pd.DataFrame:
        key = (Path(path), sheet)
        with self._registry:
            lock = self._file_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._files:
                self._files[key] = read_table(path, sheet)
            return self._files[key]


def local_keys(texts: Mapping[str, str]) -> dict[str, str]:
    """`{"de~gen.t1": ...}` as `{"gen.t1": ...}`: what `results[...]` means in an entity's prompt."""
    return {split_entity(key)[1]: text for key, text in texts.items()}
