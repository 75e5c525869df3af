"""Checks on a generated text that need no model: is every figure traced to the data?

`trace_figures(text, Sources(tables, dependencies, prompt), style)` finds each figure
a reader would take as a claim and says where it comes from (a cell, a unit change,
one step over named cells, a dependency's text, the prompt) or flags it. Pure
functions of their arguments: no I/O, no threads, no model call.
"""

from __future__ import annotations

import importlib
from typing import Any

# names -> the module that holds them; loaded on first use, so that reading the config (which
# checks a locale with NumberStyle) does not import numpy and pandas with the tracer
_HOME = {
    "FigureCheck": "figures", "Sources": "figures", "Trace": "figures", "TracedFigure": "figures",
    "trace_figures": "figures", "ENGLISH": "numbers", "Figure": "numbers", "NumberStyle": "numbers",
    "find_figures": "numbers", "CellRef": "tables", "SourceTable": "tables",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


__all__ = [
    "ENGLISH",
    "CellRef",
    "Figure",
    "FigureCheck",
    "NumberStyle",
    "SourceTable",
    "Sources",
    "Trace",
    "TracedFigure",
    "find_figures",
    "trace_figures",
]
