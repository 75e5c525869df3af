"""Output writers: objective CSVs, results.csv, report.md, report.docx, report.xlsx.

Every file is written atomically (temp file in the same folder, fsync,
`os.replace`) except results.csv, which is appended and flushed row by row.
report.md and report.docx take a task's attachments (data tables, charts: see
`report_pipeline.writers.attachments`) and place them after its text.
File names come from `slugify`, never from raw titles, and every spreadsheet
cell passes through `neutralise_cell`.

Each name is imported on first use (PEP 562): a process that needs only
`atomic_path` (the timeline's child process) does not load python-docx and
openpyxl with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from report_pipeline.writers.atomic import (
        atomic_path,
        atomic_write_bytes,
        atomic_write_text,
    )
    from report_pipeline.writers.csv_out import ResultsCsvAppender, write_objective_csv
    from report_pipeline.writers.docx_out import write_docx
    from report_pipeline.writers.markdown import render_markdown, write_markdown
    from report_pipeline.writers.rows import (
        ResultColumns,
        format_timestamp,
    )
    from report_pipeline.writers.safety import (
        neutralise_cell,
        objective_csv_name,
        slugify,
    )
    from report_pipeline.writers.xlsx_out import write_xlsx

_MODULE_OF = {
    "atomic_path": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    "ResultsCsvAppender": "csv_out",
    "write_objective_csv": "csv_out",
    "write_docx": "docx_out",
    "render_markdown": "markdown",
    "write_markdown": "markdown",
    "format_timestamp": "rows",
    "ResultColumns": "rows",
    "neutralise_cell": "safety",
    "objective_csv_name": "safety",
    "slugify": "safety",
    "write_xlsx": "xlsx_out",
}

__all__ = [
    "ResultColumns",
    "ResultsCsvAppender",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_timestamp",
    "neutralise_cell",
    "objective_csv_name",
    "render_markdown",
    "slugify",
    "write_docx",
    "write_markdown",
    "write_objective_csv",
    "write_xlsx",
]



def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value
