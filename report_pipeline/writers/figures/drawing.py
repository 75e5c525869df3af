"""Drawing with the child process when it works, and in this process when it does not.

The child (drawing_process.py) draws a run's data charts while the calls run and
timeline.png and report.xlsx while the run writes its other reports, so matplotlib never
shares the run's GIL. Whatever it cannot do (it would not start, it died, it could not
write a file) this process does itself, and says so in the log: a figure is never lost to
the child's failure.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..xlsx_out import save_workbook_tables
from .chart_drawing import ChartSpec, draw_chart_png
from .drawing_process import (
    DrawingProcess,
    DrawingProcessError,
    TimelineJob,
    WorkbookJob,
    start_drawing_process,
)
from .timeline import draw_timeline_png

__all__ = [
    "FALLBACKS",
    "MATPLOTLIB_MODULE",
    "child_failed",
    "draw_chart",
    "save_workbook",
    "start_drawer",
    "use_drawer",
    "write_timeline",
]

log = logging.getLogger("report_pipeline.drawing")

#: Loaded once matplotlib has drawn a data chart in this process.
MATPLOTLIB_MODULE = "matplotlib.figure"


def start_drawer() -> DrawingProcess | None:
    """The child that draws a run's data charts; None draws them here.

    Started by the run only when it has charts (the CLI starts one for every run, before
    its own imports), and not when this process has matplotlib loaded already (a second
    run in one process, the tests): drawing here then costs only the drawing, less than
    a new process's import.
    """
    if MATPLOTLIB_MODULE in sys.modules:
        return None
    try:
        return start_drawing_process(charts=True)
    except OSError as error:
        log.debug("drawing process not started (%s): drawing charts and timeline.png in this process", error)
        return None


def draw_chart(drawer: DrawingProcess | None, path: Path, spec: ChartSpec) -> None:
    """A data chart: by the drawing process while it works, else in this process."""
    if drawer is not None and drawer.broken is None:
        try:
            drawer.draw_chart(path, spec)
            return
        except DrawingProcessError as error:
            log.warning("%s; drawing chart %s in this process", error, path.name)
    draw_chart_png(path, spec)


def use_drawer(drawer: DrawingProcess) -> bool:
    """At the run's end: the child, unless it broke (then it is stopped and this process draws).

    Warm or still starting, it is further along than this process, whose GIL the timeline
    would hold while report.md, .docx and .xlsx are written."""
    if drawer.broken is None:
        return True
    drawer.close()
    return False


def child_failed(step: Callable[[], None], asked: Sequence[str]) -> frozenset[str]:
    """One step with the drawing child (send, wait): what of `asked` it did not do, said in the log."""
    try:
        step()
    except DrawingProcessError as error:
        failed = frozenset(asked) if error.failed is None else error.failed & frozenset(asked)
        names = {"timeline": "timeline.png", "xlsx": "report.xlsx"}
        log.warning("%s; writing %s in this process", error, " and ".join(names.get(k, k) for k in sorted(failed)))
        return failed
    return frozenset()


def write_timeline(job: TimelineJob) -> None:
    draw_timeline_png(job.path, job.bars, title=job.title, objective_titles=job.objective_titles)


def save_workbook(job: WorkbookJob) -> None:
    save_workbook_tables(job.path, job.tables)


#: What this process does for a job the child did not.
FALLBACKS: dict[str, Callable[[Any], None]] = {"timeline": write_timeline, "xlsx": save_workbook}
