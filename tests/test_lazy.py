"""lazy_module: the import happens on first use, and a run without data never imports pandas."""

from __future__ import annotations

import subprocess
import sys

from report_pipeline.lazy import lazy_module


def test_a_lazy_module_imports_on_first_attribute_and_answers_as_the_module():
    json_module = lazy_module("json")
    assert json_module.dumps({"a": 1}) == '{"a": 1}'
    assert "lazy module 'json'" in repr(json_module)


def test_a_lazy_module_that_does_not_exist_fails_on_first_use_not_before():
    missing = lazy_module("no_such_module_for_report_pipeline")
    try:
        missing.anything  # noqa: B018 - the access is the test
    except ModuleNotFoundError as error:
        assert "no_such_module_for_report_pipeline" in str(error)
    else:
        raise AssertionError("expected ModuleNotFoundError")


def test_loading_the_pipeline_does_not_import_pandas():
    code = "import sys, report_pipeline.pipeline, report_pipeline.app; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
