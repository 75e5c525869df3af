"""Read two runs from a ledger for `compare_runs`: the one place this layer touches SQLite or files.

Read-only, as `runs` and `show` are (`Ledger.for_reading`): `diff` works on another user's
output folder, a read-only copy, or during a run. The sheet's order of chapters and tasks,
which the ledger does not keep, comes from each run's run.json when it is there.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ledger.store import DEFAULT_LEDGER_NAME, Ledger, RunRow
from .runs import RunComparison, RunSide, base_run, compare_runs, run_side

__all__ = ["check_base", "find_base", "load_comparison", "open_ledger", "read_side", "require_run"]

#: How many of the newest runs are searched for the base of a run (one folder, one ledger).
_RECENT_RUNS = 1_000


def open_ledger(output_dir: Path, ledger_path: Path | None = None) -> Ledger:
    """The output folder's ledger, to read only; a folder without one is bad input (exit 2)."""
    path = Path(ledger_path) if ledger_path is not None else Path(output_dir) / DEFAULT_LEDGER_NAME
    if not path.exists():
        raise ConfigError(f"no runs recorded under {output_dir} (no {path.name}): pass the runs' --output")
    return Ledger.for_reading(path)


def require_run(ledger: Ledger, run_id: str, output_dir: Path) -> RunRow:
    """The run's row, or a ConfigError that says what ids exist (exit 2)."""
    row = ledger.run(run_id)
    if row is not None:
        return row
    known = [r.run_id for r in ledger.recent_runs(50)]
    close = difflib.get_close_matches(run_id, known, n=1)
    hint = f": did you mean {close[0]}?" if close else ": `report-pipeline runs` lists them"
    raise ConfigError(f"no run {run_id!r} under {output_dir}{hint}")


def check_base(output_dir: Path, ledger_path: Path, run_id: str) -> None:
    """`run --compare-to RUN_ID`: the run must be in this output folder's ledger, or the new run
    does not start (exit 2), rather than paying for a run and then finding nothing to compare with."""
    if not Path(ledger_path).exists():
        raise ConfigError(f"--compare-to {run_id}: no runs recorded under {output_dir} (no {Path(ledger_path).name}): "
                          "compare with a run of this output folder, or pass its --output")
    with Ledger.for_reading(Path(ledger_path)) as ledger:
        try:
            require_run(ledger, run_id, output_dir)
        except ConfigError as error:
            raise ConfigError(f"--compare-to: {error}") from None


def read_side(ledger: Ledger, run: RunRow, run_dir: Path | None, *,
              chapters: Sequence[tuple[str, str]] | None = None, order: Sequence[str] | None = None) -> RunSide:
    """A run's tasks and first-step prompts from the ledger; its sheet order from `chapters` and
    `order` when given (a run writing its report), else from its run.json."""
    if chapters is None or order is None:
        found_chapters, found_order = _sheet_order(run_dir / "run.json") if run_dir is not None else ((), ())
        chapters = found_chapters if chapters is None else chapters
        order = found_order if order is None else order
    return run_side(run, ledger.task_rows(run.run_id), ledger.call_rows(run.run_id), chapters=chapters, order=order)


def load_comparison(output_dir: Path, run_a: str, run_b: str) -> RunComparison:
    """`report-pipeline diff RUN_A RUN_B`: run A is the base, run B the newer one."""
    output_dir = Path(output_dir)
    with open_ledger(output_dir) as ledger:
        before = require_run(ledger, run_a, output_dir)
        after = require_run(ledger, run_b, output_dir)
        return compare_runs(read_side(ledger, before, output_dir / before.run_id),
                            read_side(ledger, after, output_dir / after.run_id))


def find_base(ledger: Ledger, run_id: str, *, chosen: str | None = None) -> RunRow | None:
    """The run `run_id` is compared with: `chosen` (`--compare-to`), else the latest earlier
    finished run of the same workbook in this ledger, else None."""
    current = ledger.run(run_id)
    if current is None:
        return None
    if chosen is not None:
        base = ledger.run(chosen)
        return base if base is not None and base.run_id != run_id else None
    return base_run(ledger.recent_runs(_RECENT_RUNS), current)


def _sheet_order(run_json: Path) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(objective id, title) of each chapter and the task keys, in the sheet's order, from run.json."""
    try:
        manifest: Any = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (), ()
    if not isinstance(manifest, dict):
        return (), ()
    chapters = tuple((str(o.get("objective_id")), str(o.get("title") or o.get("objective_id")))
                     for o in manifest.get("objectives") or [] if isinstance(o, dict) and o.get("objective_id"))
    order = tuple(f"{t.get('objective_id')}.{t.get('task_id')}"
                  for t in manifest.get("tasks") or [] if isinstance(t, dict) and t.get("task_id"))
    return chapters, order
