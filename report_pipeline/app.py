"""The library functions the CLI calls: validate a sheet and build its config, prepare a run, dry-run.

Kept apart from `cli.py` so the commands stay thin and these stay testable without click.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from .config import ResumedRun, RunConfig, load_config
from .errors import ConfigError, DataSourceError, EmptyShard, PromptSheetError, SheetProblem
from .models import PromptSheet
from .workbook.reader import read_prompt_sheet


def load_run_inputs(
    sheet_path: Path, *, config_path: Path | None, overrides: Mapping[str, Any], resume: str | None = None,
) -> tuple[PromptSheet, RunConfig]:
    """The validated sheet and the config merged from YAML < settings sheet < flags < environment.

    A sheet with problems is still checked against the config, so one pass names the
    config's problems with the sheet's (`run`, `--dry-run` and `validate` alike).
    With `resume`, the run's recorded config is the base (see `load_config`).
    """
    reading = read_prompt_sheet(sheet_path)
    if not reading.ok:
        try:
            load_config(config_path=config_path, settings=reading.settings,
                        settings_locations=reading.settings_locations, overrides=overrides)
        except ConfigError as error:
            where = Path(config_path).name if config_path is not None else "config"
            raise PromptSheetError(reading.path, [*reading.problems, SheetProblem(where, str(error))]) from None
    sheet = reading.require()
    config = load_config(
        config_path=config_path,
        settings=sheet.settings,
        settings_locations=reading.settings_locations,
        overrides=overrides,
    )
    recorded = _recorded_config(config, resume) if resume else None
    if recorded is not None:
        config = load_config(config_path=config_path, overrides=overrides,
                             resuming=ResumedRun(resume, recorded))  # type: ignore[arg-type]
    _check_items(sheet, config)
    return family_sheet(sheet, config), config


def family_sheet(sheet: PromptSheet, config: RunConfig) -> PromptSheet:
    """With `each`, the workbook expanded once per entity (of the shard); without, the sheet itself.
    Either way `entity` must be usable wherever a prompt or a filter names it (exit 2 otherwise)."""
    from .workbook.family import expand_family, family_problems, load_entities, select_shard

    entities = load_entities(config.each, sheet.path) if config.each else None
    problems = family_problems(sheet, entities)
    if problems:
        raise PromptSheetError(sheet.path, problems)
    if entities is None:
        return sheet
    if config.shard_slice is not None:
        index, count = config.shard_slice
        chosen = select_shard(entities, index, count)
        if not chosen:
            raise EmptyShard(f"--shard {index}/{count}: none of the family's {len(entities)} entities falls in this "
                             "shard (an entity's shard is a hash of its id): nothing to run")
        return expand_family(sheet, chosen, family_ids=tuple(e.entity_id for e in entities))
    return expand_family(sheet, entities)


def _check_items(sheet: PromptSheet, config: RunConfig) -> None:
    """Each for_each task's table, loaded: its column, that it has rows, and at most `max_items` items."""
    from .workbook.data import DataStore, filter_entity_fields
    from .workbook.items import item_problems, parse_for_each

    def own_to_each_entity(name: str) -> bool:  # bound per entity at run time; the runner checks its rows
        source = sheet.data_sources.get(name)
        try:
            return bool(source and source.filter and filter_entity_fields(source.filter))
        except ValueError:
            return False

    tasks = [t for t in sheet.tasks if t.enabled and t.for_each
             and not own_to_each_entity(parse_for_each(t.for_each).table)]
    if not tasks:
        return
    store = DataStore(sheet.data_sources)
    problems: list[SheetProblem] = []
    for task in tasks:
        spec = parse_for_each(task.for_each or "")
        try:
            frame = store.frame(spec.table)
        except DataSourceError:
            continue  # the data sheet's own check named it
        problems.extend(SheetProblem("tasks", message, row=task.row, column="for_each")
                        for message in item_problems(spec, frame, max_items=config.max_items))
    if problems:
        raise PromptSheetError(sheet.path, problems)


def _recorded_config(config: RunConfig, run_id: str) -> dict[str, Any] | None:
    """The config run `run_id` was started with, from the ledger (read only); None when unknown.

    A missing ledger or run is said by the run itself (with what to do); a run recorded before
    runs kept their identity resumes with this command's config, as it always did."""
    from .ledger.store import Ledger

    path = Path(config.resolved_ledger_path)
    if not config.ledger or not path.is_file():
        return None
    with Ledger.for_reading(path) as ledger:
        row = ledger.run(run_id)
    return row.recorded_config() if row is not None else None


def prepare_run(
    sheet_path: Path,
    *,
    config_path: Path | None,
    overrides: Mapping[str, Any],
    stop: threading.Event | None = None,
    stream: TextIO = sys.stderr,
    out: TextIO | None = None,
    resume: str | None = None,
    drawing_process: Any = None,
    compare_to: str | None = None,
):
    """A ready pipeline (validated sheet, config, provider, progress observer); nothing written yet.

    `drawing_process`: a `drawing_process.DrawingProcess` started early, handed to the run.
    `compare_to`: the run changes.md compares with (else the previous one); checked here.
    """
    from .pipeline import ReportGenerationPipeline
    from .watch.observer import make_observer

    sheet, config = load_run_inputs(sheet_path, config_path=config_path, overrides=overrides, resume=resume)
    if compare_to is not None:
        from .compare.load import check_base

        check_base(config.output_dir, config.resolved_ledger_path, compare_to)
    interactive = {"auto": None, "on": True, "off": False}[config.progress]
    observer = make_observer(
        interactive=interactive, quiet=config.quiet, interval_s=config.progress_interval_s, stream=stream, out=out,
    )
    return ReportGenerationPipeline(
        config, sheet, observer=observer, stop=stop, run_id=resume, resume=resume is not None,
        drawing_process=drawing_process, compare_to=compare_to,
    )


def dry_run(sheet_path: Path, *, config_path: Path | None, overrides: Mapping[str, Any],
            show_prompts: bool = False) -> str:
    """Render every prompt and estimate tokens and cost, sending nothing (and print the prompts, if asked)."""
    from .run.dryrun import estimate_run

    sheet, config = load_run_inputs(sheet_path, config_path=config_path, overrides=overrides)
    return estimate_run(sheet, config, show_prompts=show_prompts)


def console_handler(observer: object, stream: TextIO):
    """Where warnings go during a run: through rich on a live display, plain lines otherwise."""
    from .logs import plain_console_handler

    console = getattr(observer, "console", None)  # the live display's: warnings print above it
    if console is not None:
        from rich.logging import RichHandler

        return RichHandler(console=console, show_path=False, show_time=False)
    return plain_console_handler(stream)
