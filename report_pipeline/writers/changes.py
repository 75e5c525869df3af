"""changes.md, and with `track_changes` a report.docx of tracked changes: what moved since the last run.

The job regenerates the same report every week; its reader wants to start with what moved.
After a run has written its reports, `write_changes` looks in the ledger for the run to
compare with (`--compare-to RUN_ID`, else the latest earlier finished run of the same
workbook in the same ledger) and, when there is one, writes beside report.md:

- `changes.md`: chapter by chapter, most significant first (a changed data row, a changed
  answer, inputs alone, cost alone), as `report-pipeline diff BASE RUN` would list them;
- with `track_changes: true`, `report.docx` carrying each task's change against the base
  run's text as Word tracked changes, and the clean document as `report.clean.docx`.

A ledger that cannot be read costs these files, never the run: every answer is paid for by now.
"""

from __future__ import annotations

import logging
import os
import shlex
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..compare.load import find_base, read_side
from ..compare.render import as_markdown
from ..compare.runs import compare_runs
from ..config import RunConfig
from ..errors import LedgerError
from ..ledger.store import Ledger
from ..models import ReportView
from .atomic import atomic_write_text
from .tracked import write_tracked_docx

if TYPE_CHECKING:
    from .attachments import TaskAttachments

__all__ = ["CHANGES_NAME", "CLEAN_DOCX_NAME", "write_changes"]

log = logging.getLogger(__name__)

CHANGES_NAME = "changes.md"
#: With track_changes, report.docx carries the tracked changes (the file a director opens, as the
#: contract names it) and the clean document keeps this name beside it.
CLEAN_DOCX_NAME = "report.clean.docx"


def write_changes(
    config: RunConfig,
    view: ReportView,
    outputs: Mapping[str, Path],
    *,
    attachments: Mapping[str, TaskAttachments] | None = None,
    base: str | None = None,
) -> dict[str, Path]:
    """changes.md (and the tracked report.docx) for run `view.run_id`, against `base` or the run
    found for it; returns what it wrote by kind (`changes_md`, `report_clean_docx`), {} when
    there is nothing to compare with."""
    ledger_path = config.resolved_ledger_path
    if not config.ledger or not ledger_path.exists():
        return {}
    try:
        with Ledger.for_reading(ledger_path) as ledger:
            found = find_base(ledger, view.run_id, chosen=base)
            current = ledger.run(view.run_id)
            if found is None or current is None:
                return {}
            # a family's chapters repeat per entity: name the entity with each
            chapters = [(c.objective.objective_id,
                         f"{c.objective.entity_id}: {c.objective.title}" if c.objective.entity_id else c.objective.title)
                        for c in view.chapters]
            order = [r.key for r in view.all_results()]
            comparison = compare_runs(
                read_side(ledger, found, Path(config.output_dir) / found.run_id),
                read_side(ledger, current, None, chapters=chapters, order=order),
            )
            base_texts = {t.task_key: t.text for t in ledger.task_rows(found.run_id) if t.status == "done"}
    except (LedgerError, sqlite3.Error) as error:
        log.warning("%s not written: the ledger could not be read (%s)", CHANGES_NAME, error)
        return {}
    run_dir = Path(outputs["report_md"]).parent
    command = (f"report-pipeline diff {shlex.quote(found.run_id)} {shlex.quote(view.run_id)} "
               f"--output {shlex.quote(str(Path(config.output_dir).resolve()))} --html diff.html")
    written = {"changes_md": atomic_write_text(run_dir / CHANGES_NAME, as_markdown(comparison, diff_command=command))}
    log.info("changes since run %s: %d of %d task(s) changed; wrote %s", found.run_id, len(comparison.changed),
             len(comparison.tasks), CHANGES_NAME)
    if config.track_changes and "report_docx" in outputs:
        clean = _tracked_docx(Path(outputs["report_docx"]), view, base_texts, attachments)
        if clean is not None:
            written["report_clean_docx"] = clean
    return written


def _tracked_docx(docx: Path, view: ReportView, base_texts: Mapping[str, str],
                  attachments: Mapping[str, TaskAttachments] | None) -> Path | None:
    """report.docx becomes report.clean.docx, and report.docx is written again with tracked changes.
    Should that fail, the clean document goes back to its name: the run still has its report."""
    clean = docx.with_name(CLEAN_DOCX_NAME)
    os.replace(docx, clean)
    try:
        write_tracked_docx(docx, view, base_texts=base_texts, attachments=attachments)
    except OSError:
        os.replace(clean, docx)
        raise  # the run says which file it could not write
    except Exception as error:  # noqa: BLE001 - a report with no tracked changes beats no report
        os.replace(clean, docx)
        log.error("report.docx with tracked changes not written (%s); report.docx is the clean document", error)
        return None
    return clean
