"""The error tree drawn atop errors.py is the tree of its classes, and every error is under ReportPipelineError."""

from __future__ import annotations

import inspect
import re

from report_pipeline import errors


def _drawn_tree() -> dict[str, str | None]:
    """{class: parent} as the module docstring draws it (by indentation)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z][A-Za-z]+)\s{2,}", line)
        if not match or match.group(2) == "AwaitingBatch":
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(2)))
    return parents


def _classes() -> dict[str, type[BaseException]]:
    return {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__}


def test_the_drawn_tree_names_every_error_class_under_its_real_parent() -> None:
    drawn = _drawn_tree()
    real = {name: next((b.__name__ for b in cls.__bases__ if b.__module__ == errors.__name__), None)
            for name, cls in _classes().items() if name != "AwaitingBatch"}
    assert drawn == real


def test_every_error_is_a_report_pipeline_error_but_the_batch_parking_signal() -> None:
    outside = [name for name, cls in _classes().items() if not issubclass(cls, errors.ReportPipelineError)]
    assert outside == ["AwaitingBatch"]


def test_a_task_input_error_is_still_a_value_error_for_callers_that_catch_one() -> None:
    for cls in (errors.TemplateRenderError, errors.DataSourceError, errors.AnswerError):
        assert issubclass(cls, errors.TaskInputError) and issubclass(cls, ValueError)
