"""Output writers: objective CSVs, results.csv, report.md, report.docx, report.xlsx.

Every file is written atomically (temp file in the same folder, fsync,
`os.replace`) except results.csv, which is appended and flushed row by row.
report.md and report.docx take a task's attachments (data tables, charts: see
`report_pipeline.attachments`) and place them after its text.
File names come from `slugify`, never from raw titles, and every spreadsheet
cell passes through `neutralise_cell`.
"""

from report_pipeline.writers.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from report_pipeline.writers.csv_out import ResultsCsvAppender, write_objective_csv
from report_pipeline.writers.docx_out import write_docx
from report_pipeline.writers.markdown import render_markdown, write_markdown
from report_pipeline.writers.rows import format_timestamp, has_check_step, result_columns, result_row
from report_pipeline.writers.safety import neutralise_cell, objective_csv_name, slugify
from report_pipeline.writers.xlsx_out import write_xlsx

__all__ = [
    "ResultsCsvAppender",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_timestamp",
    "has_check_step",
    "neutralise_cell",
    "objective_csv_name",
    "render_markdown",
    "result_columns",
    "result_row",
    "slugify",
    "write_docx",
    "write_markdown",
    "write_objective_csv",
    "write_xlsx",
]
