"""The `report-pipeline` command: parse flags, build one RunConfig, call one library function.

Every error this package raises on purpose is turned into a message and an exit
code here, in one place; no traceback reaches a user for bad input.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .errors import (
    EXIT_INTERRUPTED,
    ConfigError,
    EmptyShard,
    PromptSheetError,
    ReportPipelineError,
    exit_code_for,
)


def _handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map our typed errors to a message on stderr and their exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EmptyShard as error:
            click.echo(str(error), err=True)
            sys.exit(error.exit_code)
        except PromptSheetError as error:
            click.echo(f"error: {error}", err=True)
            click.echo("Fix these in the workbook, then run `report-pipeline validate` again.", err=True)
            sys.exit(error.exit_code)
        except ReportPipelineError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(exit_code_for(error))

    return wrapper


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="report-pipeline")
def cli() -> None:
    """Turn an analyst's prompt sheet (.xlsx) into a finished report by running every prompt through an LLM."""


EXIT_CODES = (
    "Exit codes: 0 every task done; 1 some tasks failed or were skipped (or a file could not be written); "
    "2 bad input or config, nothing was run (also a key the endpoint refuses, or one it cannot be reached with); "
    "3 max_cost_usd reached; 130 interrupted (Ctrl-C, SIGTERM). A run that stops with work left prints the "
    "command that continues it."
)


@cli.command(epilog=EXIT_CODES)
@click.argument("sheet", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML run config (see config/example.yaml).")
@click.option("--provider", type=click.Choice(["offline", "openai", "azure"]), help="offline needs no key and no network.")
@click.option("--model", help="Model name sent to the endpoint.")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama.")
@click.option("--sequential", is_flag=True, help="Run one task at a time (same outputs; for debugging).")
@click.option("--objectives", help="Only these objectives: ids or 1-based positions, e.g. 1,3 (and what they depend on).")
@click.option("--max-concurrency", type=int, help="Most LLM calls in flight at once (max_concurrent_requests).")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), help="Output root (default: output/).")
@click.option("--resume", "resume", metavar="RUN_ID", help="Continue an interrupted run (needs the ledger).")
@click.option("--compare-to", "compare_to", metavar="RUN_ID",
              help="Write changes.md against this run (default: the previous finished run of the workbook).")
@click.option("--no-cache", is_flag=True, help="Do not reuse completed calls from the ledger.")
@click.option("--dry-run", is_flag=True, help="Validate, render every prompt, estimate tokens and cost; send nothing.")
@click.option("--show-prompts", is_flag=True, help="With --dry-run: print every task's rendered prompt too.")
@click.option("--no-progress", is_flag=True, help="Plain lines only (the default when not on a terminal).")
@click.option("--quiet", is_flag=True, help="Only warnings, errors and the final line.")
@click.option("--limit", type=int, help="Only the first N enabled tasks in sheet order (and what they depend on).")
@click.option("--task", "tasks", multiple=True, metavar="OBJ.TASK",
              help="Only this task and what it depends on (repeatable): iterate on one prompt.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed task: send nothing new, skip the rest (exit 1).")
@click.option("--each", "each", metavar="ENTITIES",
              help="A family of reports: one per row of this .csv/.xlsx file (or of this sheet of the workbook, "
                   "e.g. `entities`); templates and filters read {{ entity.FIELD }}.")
@click.option("--shard", "shard", metavar="I/N",
              help="With --each: only the I-th of N stable slices of the family (I from 1), for a job runner.")
@click.option("--batch", is_flag=True, help="Send calls through the provider's Batch API in waves (half price, slower).")
@click.option("--poll-interval", type=float, metavar="S", help="Batch mode: seconds between looks at a wave's batches.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="How much run.log records (default INFO; DEBUG adds every call). The console shows warnings.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any config key for this run, over the YAML and the settings sheet (repeatable).")
@_handle_errors
def run(sheet: Path, config_path: Path | None, sequential: bool, objectives: str | None, settings: tuple[str, ...], **flags: Any) -> None:
    """Run every enabled task of SHEET and write the report under OUTPUT/<run_id>/."""
    drawer = None if flags["dry_run"] else _start_drawing_process(sheet)
    try:
        _run(sheet, config_path, sequential, objectives, settings, drawer, **flags)
    finally:
        if drawer is not None:
            drawer.close()


def _start_drawing_process(sheet: Path) -> Any:
    """The child that draws the charts and timeline.png, started before this process's own imports."""
    from .writers.figures.drawing_process import start_drawing_process

    try:
        return start_drawing_process(sheet=sheet)
    except OSError:
        return None  # the run draws the timeline itself


def _run(
    sheet: Path, config_path: Path | None, sequential: bool, objectives: str | None, settings: tuple[str, ...],
    drawer: Any, **flags: Any,
) -> None:
    from .app import console_handler, dry_run, prepare_run
    from .logs import console_log

    overrides: dict[str, Any] = {
        "provider": flags["provider"],
        "model": flags["model"],
        "base_url": flags["base_url"],
        "max_concurrent_requests": flags["max_concurrency"],
        "output_dir": flags["output_dir"],
        "objectives": _split(objectives),
        "limit": flags["limit"],
        "tasks": tuple(flags["tasks"]) or None,
        "log_level": flags["log_level"],
        "batch_poll_interval_s": flags["poll_interval"],
        "each": flags["each"],
        "shard": flags["shard"],
    }
    for key, value in _key_values(settings):  # a dedicated flag, when given, wins over --set
        if overrides.get(key) is None:
            overrides[key] = value
    if sequential:
        overrides.update(run_objectives_concurrent=False, run_task_concurrent=False)
    if flags["no_cache"]:
        overrides["cache"] = False
    if flags["no_progress"]:
        overrides["progress"] = "off"
    if flags["quiet"]:
        overrides["quiet"] = True
    if flags["batch"]:
        overrides["execution"] = "batch"
    if flags["fail_fast"]:
        overrides["fail_fast"] = True
    stop = threading.Event()
    if flags["dry_run"]:
        click.echo(dry_run(sheet, config_path=config_path, overrides=overrides, show_prompts=flags["show_prompts"]))
        return
    pipeline = prepare_run(
        sheet, config_path=config_path, overrides=overrides, stop=stop, stream=sys.stderr, out=sys.stdout,
        resume=flags["resume"],
        drawing_process=drawer, compare_to=flags["compare_to"],
    )
    with _stop_on_signals(stop), console_log(console_handler(pipeline.observer, sys.stderr), secrets=pipeline.secrets):
        result = pipeline.run()
    sys.exit(result.exit_code)


def _key_values(pairs: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: write KEY=VALUE, e.g. --set max_tokens=300")
        yield key.strip(), value.strip()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: stop scheduling and drain. Second: leave at once (outputs are atomic)."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(EXIT_INTERRUPTED)
        stop.set()
        click.echo("stopping: finishing the calls in flight (Ctrl-C again to quit at once)", err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@cli.command()
@click.argument("sheet", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Also check this run config.")
@click.option("--each", "each", metavar="ENTITIES", help="Also check a family run over these entities.")
@_handle_errors
def validate(sheet: Path, config_path: Path | None, each: str | None) -> None:
    """Report every problem in SHEET at once, with sheet, row and column."""
    from .app import load_run_inputs
    from .workbook.reader import describe_sheet

    # the sheet, its settings and the config file, every problem of all three in one pass
    loaded_sheet, _ = load_run_inputs(sheet, config_path=config_path, overrides={"each": each})
    click.echo(f"{sheet}: OK: {describe_sheet(loaded_sheet)}")


@cli.command(epilog="Exit codes: 0 shown; 2 no such run or task, or no ledger under --output.")
@click.argument("run_id")
@click.argument("task", required=False, metavar="[OBJ.TASK]")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="The output root whose ledger to read.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of text.")
@_handle_errors
def show(run_id: str, task: str | None, output_dir: Path, as_json: bool) -> None:
    """A run's chapters (status, calls, cost), or one task's chain: each step's rendered prompt and
    answer, model, tokens, cost, sends, cache hit and time, from the ledger. Read-only."""
    from .ledger.inspect import show as show_text

    click.echo(show_text(output_dir, run_id, task, as_json=as_json))


@cli.command(epilog="Exit codes: 0 listed (or nothing matched); 2 no ledger under --output.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Only this run's calls.")
@click.option("--task", "task_key", metavar="OBJ.TASK", help="Only this task's calls.")
@click.option("-q", "--query", "text", metavar="TEXT", help="Only calls whose prompt or answer holds TEXT.")
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="How many calls, newest first.")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="The output root whose ledger to read.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of text.")
@_handle_errors
def logs(run_id: str | None, task_key: str | None, text: str | None, limit: int, output_dir: Path,
         as_json: bool) -> None:
    """Calls across runs, newest first: when, run, task, step, model, tokens, cost, and the start of
    each prompt and answer. Read-only."""
    from .ledger.inspect import logs as logs_text

    click.echo(logs_text(output_dir, run_id=run_id, task_key=task_key, text=text, limit=limit, as_json=as_json))


@cli.command()
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="The output root whose ledger to read.")
@click.option("--show", "show", metavar="RUN_ID", help="One run in detail, with its failed tasks and their errors.")
@click.option("--limit", type=int, default=20, show_default=True, help="How many recent runs to list.")
@click.option("--diff", "diff_ids", nargs=2, metavar="RUN_A RUN_B", help="Compare two runs (as `diff RUN_A RUN_B`).")
@_handle_errors
def runs(output_dir: Path, show: str | None, limit: int, diff_ids: tuple[str, str] | None) -> None:
    """Recent runs from the ledger: id, sheet, status, tasks, tokens, cost, duration."""
    from .ledger.history import describe_run, list_runs

    if diff_ids:
        _echo_diff(output_dir, *diff_ids)
        return
    click.echo(describe_run(output_dir, show) if show else list_runs(output_dir, limit=limit))


@cli.command(epilog="Exit codes: 0 compared; 2 no such run, no ledger under --output, or --html not writable.")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="The output root whose ledger to read.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write a self-contained page with every insertion and deletion marked.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of text.")
@_handle_errors
def diff(run_a: str, run_b: str, output_dir: Path, html_path: Path | None, as_json: bool) -> None:
    """What changed from run RUN_A to run RUN_B, chapter by chapter, most significant first: per task
    changed / unchanged / added / removed, its text word by word, what changed in its inputs (data
    rows, prompt, the tasks it uses, model), tokens and cost; the settings that differ. Read-only."""
    _echo_diff(output_dir, run_a, run_b, html_path=html_path, as_json=as_json)


def _echo_diff(output_dir: Path, run_a: str, run_b: str, *, html_path: Path | None = None, as_json: bool = False) -> None:
    import json

    from .compare import as_dict, as_text, load_comparison

    comparison = load_comparison(output_dir, run_a, run_b)
    if html_path is not None:
        from .writers.diff_html import write_diff_html

        try:
            write_diff_html(html_path, comparison)
        except OSError as error:
            raise ConfigError(f"--html {html_path}: cannot write it ({error.strerror or error})") from None
        click.echo(f"wrote {html_path}", err=True)
    click.echo(json.dumps(as_dict(comparison), indent=2, ensure_ascii=False) if as_json else as_text(comparison))


@cli.command("merge-runs", epilog="Exit codes: 0 merged; 2 a folder is not a family run, or the runs are of "
                                  "different workbooks, cut into different shards, or report one entity twice.")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("merged"), show_default=True,
              help="Where to write results.csv and family.json.")
@_handle_errors
def merge_runs(run_dirs: tuple[Path, ...], out_dir: Path) -> None:
    """Gather the shards of a family (`run --each E --shard I/N`, each its own run folder, from any
    machine) into one results.csv and family.json: every entity, where its report is, counts, cost,
    and the shards still missing."""
    from .writers.merge import merge_runs as merge

    click.echo(merge(run_dirs, out_dir).describe())


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@_handle_errors
def init(directory: Path, force: bool) -> None:
    """Write a starter workbook and config into DIRECTORY to edit."""
    from .workbook.starter import write_starter

    written = write_starter(directory, force=force)
    for path in written:
        click.echo(f"wrote {path}")
    config = next((p for p in written if p.suffix == ".yaml"), None)
    sheet = shlex.quote(str(written[0].resolve()))  # the command works from any folder
    click.echo(f"next: report-pipeline run {sheet}" + (f" --config {shlex.quote(str(config.resolve()))}" if config else ""))


@cli.command(epilog="Exit codes: 0 listed; 1 the endpoint failed; 2 bad config, a refused key or no endpoint.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML run config whose provider, base_url and api_key_env to use.")
@click.option("--provider", type=click.Choice(["offline", "openai", "azure"]), help="Over the config's provider.")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama.")
@_handle_errors
def models(config_path: Path | None, provider: str | None, base_url: str | None) -> None:
    """List the models the endpoint offers."""
    from .config import load_config
    from .providers.factory import make_provider

    config = load_config(config_path=config_path, overrides={"provider": provider, "base_url": base_url})
    client = make_provider(config)
    try:
        for name in client.list_models():
            click.echo(name)
    finally:
        client.close()


@cli.command()
@click.option("--minutes", type=float, default=1.0, show_default=True, help="Roughly how long to spend.")
@click.option("--latency", "latency_s", type=float, default=0.2, show_default=True, help="Simulated seconds per call.")
@_handle_errors
def bench(minutes: float, latency_s: float) -> None:
    """Sequential vs concurrent, and throughput under a rate limit, on the built-in simulator."""
    from .bench import run_bench

    click.echo(run_bench(minutes=minutes, latency_s=latency_s, stream=sys.stderr))


def main() -> None:
    """The console script: run the command, then leave without Python's own teardown.

    By the time a command returns, everything it owes the user is on disk and
    flushed. Python's finalisation would then collect every object and unload
    every module: 0.6 s after a run that loaded pandas, matplotlib and the SDK,
    a third of a small run's time after its last call. So: what interpreter exit
    would do that matters (join our non-daemon threads, the atexit handlers,
    flushing stdout and stderr), then `os._exit` with the command's status.
    """
    try:
        cli(prog_name="report-pipeline")  # standalone mode: it always ends in SystemExit
        code = 0
    except SystemExit as exit_:
        code = _exit_status(exit_.code)
    _leave(code)


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` would have made of it: None is 0, a message is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# After a run's outputs are written, a thread still alive is a call abandoned after the grace
# period (Ctrl-C, SIGTERM), which may wait on a silent server for request_timeout_s: not waited for.
_LEAVE_JOIN_S = 5.0


def _leave(code: int) -> None:
    current = threading.current_thread()
    deadline = time.monotonic() + _LEAVE_JOIN_S
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    atexit._run_exitfuncs()  # logging.shutdown, concurrent.futures: what exit would have run
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing left to lose
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
