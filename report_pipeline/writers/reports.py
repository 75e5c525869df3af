"""The end of a run: report.md, report.docx and report.html here, timeline.png and report.xlsx on the drawing child meanwhile.

The child saves the workbook and draws the timeline while this process writes the
documents; without one (or for what it fails), this process does it, the timeline on a
thread: most of it is the PNG's encoding, which releases the GIL.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..models import CallText, ReportView, Task, TaskResult
from ..workbook.data import DataStore
from .attachments import TaskAttachments, build_attachments
from .docx_out import write_docx
from .html_out import write_html
from .figures.charts import ChartRenderer
from .figures.drawing import (
    FALLBACKS,
    child_failed,
    save_workbook,
    use_drawer,
    write_timeline,
)
from .figures.drawing_process import DrawingProcess, TimelineJob, WorkbookJob
from .figures.timeline import timeline_data
from .markdown import write_markdown
from .xlsx_out import workbook_tables

__all__ = ["write_reports"]


def write_reports(
    view: ReportView,
    outputs: Mapping[str, Path],
    *,
    results: Sequence[TaskResult],
    done_tasks: Sequence[Task],
    data: DataStore,
    charts: ChartRenderer,
    drawer: DrawingProcess | None,
    timeline_title: str,
    objective_titles: Mapping[str, str],
    calls: Mapping[str, Sequence[CallText]] | None = None,
) -> Mapping[str, TaskAttachments]:
    """report.md, report.docx, report.html, report.xlsx and timeline.png at the `outputs` paths of
    those names; `calls` (task key -> its prompts and answers) fill report.html's provenance panels.
    Returns each task's attachments, for a document written after these (writers/changes.py).
    Without a `timeline_png` path (a family's entity: the run draws one timeline) none is drawn."""
    run_dir = outputs["report_md"].parent
    jobs: dict[str, TimelineJob | WorkbookJob] = {"xlsx": WorkbookJob(outputs["report_xlsx"], workbook_tables(view))}
    if "timeline_png" in outputs:
        jobs["timeline"] = TimelineJob(outputs["timeline_png"], timeline_data(results), timeline_title,
                                       dict(objective_titles))
    drawing = drawer if drawer is not None and use_drawer(drawer) else None
    todo = frozenset(jobs)
    if drawing is not None:
        send = functools.partial(drawing.send_reports, timeline=jobs.get("timeline"), workbook=jobs["xlsx"])
        todo = child_failed(send, list(jobs))
    with ThreadPoolExecutor(1, thread_name_prefix="timeline") as here:
        timeline = here.submit(write_timeline, jobs["timeline"]) if "timeline" in todo else None
        attachments = build_attachments(done_tasks, data, run_dir, charts=charts)
        write_markdown(outputs["report_md"], view, attachments=attachments)
        write_docx(outputs["report_docx"], view, attachments=attachments)
        if "report_html" in outputs:
            write_html(outputs["report_html"], view, attachments=attachments, calls=calls)
        if "xlsx" in todo:
            save_workbook(jobs["xlsx"])
        if timeline is not None:
            timeline.result()
    if drawing is not None and not todo:
        for kind in sorted(child_failed(drawing.wait, list(jobs))):
            FALLBACKS[kind](jobs[kind])
    return attachments
