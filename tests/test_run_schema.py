"""run.json against schemas/run.schema.json: real runs validate, drift does not."""

from __future__ import annotations

import copy
import csv
import json
from collections import Counter
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from report_pipeline.config import load_config
from report_pipeline.errors import ProviderError
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook, simple_workbook


def load_schema() -> dict:
    return json.loads((files("report_pipeline.schemas") / "run.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def one_task_manifest(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("one_task")
    _, manifest, _ = run(simple_workbook(tmp_path / "wb", n_objectives=1, n_tasks=1), tmp_path)
    return manifest


class RefusingProvider(OfflineProvider):
    """The offline provider, except that the call labelled `refuse` raises."""

    def __init__(self, config, refuse: str) -> None:
        super().__init__(config)
        self.refuse = refuse

    def complete(self, request):
        if request.label == self.refuse:
            raise ProviderError("the model refused this prompt", status_code=400)
        return super().complete(request)


def run(sheet_path: Path, tmp_path: Path, provider_factory=None, **overrides):
    sheet = load_prompt_sheet(sheet_path)
    config = load_config(overrides={"output_dir": tmp_path / "out", **overrides}, environ={})
    provider = provider_factory(config) if provider_factory else None
    result = ReportGenerationPipeline(config, sheet, provider=provider).run()
    manifest = json.loads((result.run_dir / "run.json").read_text(encoding="utf-8"))
    with open(result.run_dir / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return result, manifest, rows


def test_schema_is_package_data_and_a_valid_draft_2020_12_schema():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_top_level_key_is_documented():
    schema = load_schema()
    undocumented = [key for key, spec in schema["properties"].items() if not spec.get("description")]
    assert undocumented == []
    for name in ("task", "call", "objective"):
        assert [k for k, s in schema["$defs"][name]["properties"].items() if not s.get("description")] == []


def test_run_json_of_a_real_run_validates_and_its_counts_match_results_csv(tmp_path, validator):
    result, manifest, rows = run(simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=3), tmp_path,
                                 steps="generate,refine")
    validator.validate(manifest)

    statuses = Counter(row["status"] for row in rows)
    assert manifest["counts"] == {
        "done": statuses["done"], "failed": statuses["failed"], "skipped": statuses["skipped"], "total": len(rows),
    }
    assert manifest["counts"]["done"] == 6
    assert sorted((t["objective_id"], t["task_id"]) for t in manifest["tasks"]) == sorted(
        (row["objective_id"], row["task_id"]) for row in rows
    )
    assert manifest["tokens"]["prompt"] == sum(int(row["prompt_tokens"]) for row in rows)
    assert manifest["tokens"]["completion"] == sum(int(row["completion_tokens"]) for row in rows)
    assert all(len(t["calls"]) == 2 for t in manifest["tasks"])
    assert manifest["config"]["api_key"] is None
    assert manifest["resources"]["first_request_s"] > 0  # start-up: the process's start to its first call

    again, manifest, _ = run(simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=3), tmp_path,
                             steps="generate,refine")
    assert again.exit_code == 0 and "first_request_s" not in manifest["resources"]  # every answer from the cache


def test_run_json_with_failed_and_skipped_tasks_validates(tmp_path, validator):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "O1", "title": "Chapter 1"}],
        tasks=[
            {"objective_id": "O1", "task_id": "T1", "prompt": "First."},
            {"objective_id": "O1", "task_id": "T2", "prompt": "Second, after the first.", "depends_on": "O1.T1"},
            {"objective_id": "O1", "task_id": "T3", "prompt": "Third."},
        ],
    )
    result, manifest, rows = run(sheet, tmp_path, lambda config: RefusingProvider(config, "O1.T1.generate"))
    validator.validate(manifest)

    assert manifest["status"] == "failed" and manifest["exit_code"] == 1
    assert manifest["counts"] == {"done": 1, "failed": 1, "skipped": 1, "total": 3}
    assert Counter(row["status"] for row in rows) == Counter({"done": 1, "failed": 1, "skipped": 1})
    skipped = next(t for t in manifest["tasks"] if t["status"] == "skipped")
    assert skipped["thread"] is None and skipped["model"] is None and skipped["calls"] == []


@pytest.mark.parametrize(
    "drift",
    [
        pytest.param(lambda m: m.update(surprise=1), id="new top-level key"),
        pytest.param(lambda m: m["tasks"][0].update(prompt="leaked"), id="new task key"),
        pytest.param(lambda m: m["tasks"][0]["calls"][0].update(raw={}), id="new call key"),
        pytest.param(lambda m: m["counts"].pop("total"), id="count removed"),
        pytest.param(lambda m: m.update(status="finished"), id="unknown status"),
        pytest.param(lambda m: m.update(started_at="2026-11-22 14:05:01"), id="timestamp format"),
    ],
)
def test_drift_from_the_documented_layout_fails_validation(one_task_manifest, validator, drift):
    validator.validate(one_task_manifest)
    changed = copy.deepcopy(one_task_manifest)
    drift(changed)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(changed)
