"""A module imported on first use, for the heavy libraries a run may not need at all.

pandas costs ~0.35 s to import, and a workbook without a `data` sheet never
touches it; neither does `report-pipeline --version`. `pd = lazy_module("pandas")`
at module level keeps `pd.read_csv(...)` as written, and the import happens on the
first attribute looked up (then Python's module cache answers). The stdlib's
`importlib.util.LazyLoader` would do it by replacing pandas in `sys.modules` for
every importer; this leaves `sys.modules` alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)  # thread-safe; cached after the first
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for `import name` whose first attribute access imports it."""
    return _LazyModule(name)
