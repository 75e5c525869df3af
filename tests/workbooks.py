"""Build real .xlsx prompt sheets with openpyxl for tests (no mocks of the file format)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook

OBJECTIVE_COLUMNS = ["objective_id", "title", "description", "enabled", "system_prompt"]
TASK_COLUMNS = ["objective_id", "task_id", "prompt", "title", "data", "depends_on", "steps", "model", "temperature", "max_tokens", "enabled"]
DATA_COLUMNS = ["name", "path", "sheet", "columns", "filter"]


def _write_sheet(wb: Workbook, name: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None) -> None:
    rows = [dict(r) for r in rows]
    if columns is None:
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
    ws = wb.create_sheet(name)
    ws.append(list(columns))
    for row in rows:
        ws.append([row.get(c) for c in columns])


def make_workbook(
    path: Path,
    *,
    objectives: Iterable[Mapping[str, Any]] = (),
    tasks: Iterable[Mapping[str, Any]] = (),
    data: Iterable[Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    prompts: Mapping[str, str] | None = None,
    objective_columns: Sequence[str] | None = None,
    task_columns: Sequence[str] | None = None,
    data_columns: Sequence[str] | None = None,
    omit_sheets: Sequence[str] = (),
    raw_sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None,
    merges: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write a workbook; columns default to the union of the given rows' keys (in order).

    Pass `objective_columns=[...]` etc. to control the header exactly (e.g. drop a
    required column), and `omit_sheets=["tasks"]` to leave a sheet out.
    `raw_sheets={"Tasks": [header, row, ...]}` writes sheets cell for cell (odd
    headers, blank rows, notes), after the others; a name given here replaces
    the generated sheet of the same name. `merges={"tasks": ["A2:A4"]}` merges
    those ranges as Excel does (the top-left cell keeps its value, the rest are cleared).
    """
    path = Path(path)
    if path.suffix != ".xlsx":
        path = path / "sheet.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    if "objectives" not in omit_sheets:
        _write_sheet(wb, "objectives", objectives, objective_columns)
    if "tasks" not in omit_sheets:
        _write_sheet(wb, "tasks", tasks, task_columns)
    if data is not None and "data" not in omit_sheets:
        _write_sheet(wb, "data", data, data_columns)
    if settings is not None and "settings" not in omit_sheets:
        _write_sheet(wb, "settings", ({"key": k, "value": v} for k, v in settings.items()), ["key", "value"])
    if prompts is not None:
        _write_sheet(wb, "prompts", ({"name": k, "template": v} for k, v in prompts.items()), ["name", "template"])
    for name, rows in (raw_sheets or {}).items():
        if name in wb.sheetnames:
            wb.remove(wb[name])
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    for name, ranges in (merges or {}).items():
        for cell_range in ranges:
            wb[name].merge_cells(cell_range)
    if not wb.sheetnames:
        wb.create_sheet("Sheet1")
    wb.save(path)
    return path


def simple_workbook(path: Path, n_objectives: int = 3, n_tasks: int = 2, **kwargs: Any) -> Path:
    """`n_objectives` chapters of `n_tasks` prompts each, ids O1..On and T1..Tm."""
    objectives = [{"objective_id": f"O{i}", "title": f"Chapter {i}"} for i in range(1, n_objectives + 1)]
    tasks = [
        {"objective_id": f"O{i}", "task_id": f"T{j}", "prompt": f"Write part {j} of {{{{ objective.title }}}}.", "title": f"Part {j}"}
        for i in range(1, n_objectives + 1)
        for j in range(1, n_tasks + 1)
    ]
    return make_workbook(path, objectives=objectives, tasks=tasks, **kwargs)
