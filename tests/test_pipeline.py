"""The whole pipeline on real workbooks, real files and the offline provider."""

from __future__ import annotations

import csv
import json
import re
import threading
from pathlib import Path

import pytest

from report_pipeline.config import load_config
from report_pipeline.errors import ProviderError
from report_pipeline.models import FIGURE_COLUMNS, RESULT_COLUMNS
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.run.outcome import RunObserver
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook, simple_workbook


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def report_body(run_dir: Path) -> str:
    """report.md without the lines that name the run or its time."""
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not re.match(r"- (Generated|Run):", line))


def run_pipeline(sheet_path: Path, tmp_path: Path, *, provider=None, observer=None, **overrides):
    sheet = load_prompt_sheet(sheet_path)
    config = load_config(settings=sheet.settings, overrides={"output_dir": tmp_path / "out", **overrides}, environ={})
    pipeline = ReportGenerationPipeline(config, sheet, provider=provider, observer=observer)
    return pipeline.run()


class FailingProvider(OfflineProvider):
    """The offline provider, except that calls whose label starts with `fail_prefix` raise."""

    def __init__(self, config, fail_prefix: str) -> None:
        super().__init__(config)
        self.fail_prefix = fail_prefix

    def complete(self, request):
        if request.label.startswith(self.fail_prefix):
            raise ProviderError("the model refused this prompt", status_code=400)
        return super().complete(request)


def test_report_keeps_sheet_order_when_tasks_finish_out_of_order(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", n_objectives=4, n_tasks=5)
    concurrent = run_pipeline(sheet, tmp_path / "a", offline_latency_ms=30, offline_seed=7)
    finished_order = [r["task_id"] for r in read_csv(concurrent.run_dir / "results.csv")]
    keys = [f"O{i}.T{j}" for i in range(1, 5) for j in range(1, 6)]
    assert [r.key for r in concurrent.results] == keys
    rows = read_csv(concurrent.run_dir / "results.csv")
    assert sorted(f"{r['objective_id']}.{r['task_id']}" for r in rows) == sorted(keys)
    assert [f"{r['objective_id']}.{r['task_id']}" for r in rows] != keys or len(set(finished_order)) < 2
    for i in range(1, 5):
        csv_rows = read_csv(next((concurrent.run_dir / "objectives").glob(f"0{i}_*.csv")))
        assert [r["task_id"] for r in csv_rows] == [f"T{j}" for j in range(1, 6)]
    headings = re.findall(r"^## \d+\. (.*)$", (concurrent.run_dir / "report.md").read_text(), re.M)
    assert headings == [f"Chapter {i}" for i in range(1, 5)]


def test_results_csv_rows_arrive_in_completion_order_not_sheet_order(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", n_objectives=3, n_tasks=6)
    result = run_pipeline(sheet, tmp_path, offline_latency_ms=40, offline_seed=3, max_task_workers=6)
    rows = read_csv(result.run_dir / "results.csv")
    assert list(rows[0].keys()) == list(RESULT_COLUMNS + FIGURE_COLUMNS)  # the figures check is on by default
    assert len(rows) == 18
    assert [f"{r['objective_id']}.{r['task_id']}" for r in rows] != [r.key for r in result.results]


def test_concurrent_and_sequential_runs_give_identical_report_content(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", n_objectives=3, n_tasks=4)
    concurrent = run_pipeline(sheet, tmp_path / "c", offline_latency_ms=20, offline_seed=1)
    sequential = run_pipeline(
        sheet, tmp_path / "s", run_objectives_concurrent=False, run_task_concurrent=False
    )
    assert report_body(concurrent.run_dir) == report_body(sequential.run_dir)
    for a, b in zip(sorted((concurrent.run_dir / "objectives").iterdir()), sorted((sequential.run_dir / "objectives").iterdir())):
        assert a.name == b.name
        assert [r["text"] for r in read_csv(a)] == [r["text"] for r in read_csv(b)]


def test_failed_task_leaves_every_other_task_done_and_its_csv_written(tmp_path):
    sheet_path = simple_workbook(tmp_path / "wb", n_objectives=3, n_tasks=3)
    sheet = load_prompt_sheet(sheet_path)
    config = load_config(overrides={"output_dir": tmp_path / "out"}, environ={})
    provider = FailingProvider(config, "O2.T2.")
    result = ReportGenerationPipeline(config, sheet, provider=provider).run()
    assert result.exit_code == 1
    assert result.counts == {"done": 8, "failed": 1, "skipped": 0, "total": 9}
    rows = read_csv(next((result.run_dir / "objectives").glob("02_*.csv")))
    assert [(r["task_id"], r["status"]) for r in rows] == [("T1", "done"), ("T2", "failed"), ("T3", "done")]
    assert "refused" in rows[1]["error"]
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["exit_code"] == 1
    assert "failed or skipped" in (result.run_dir / "report.md").read_text().lower()


def test_objective_csv_exists_while_other_objectives_are_still_running(tmp_path):
    sheet_path = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    sheet = load_prompt_sheet(sheet_path)
    config = load_config(overrides={"output_dir": tmp_path / "out"}, environ={})
    gate = threading.Event()
    seen: dict[str, object] = {}

    class HoldSecondChapter(OfflineProvider):
        def complete(self, request):
            if request.label.startswith("O2."):
                assert gate.wait(timeout=30), "the first chapter never finished"
            return super().complete(request)

    pipeline: ReportGenerationPipeline

    class Watch(RunObserver):
        def objective_finished(self, objective_id, results):
            if objective_id == "O1":
                seen["csv_files"] = sorted(p.name for p in (pipeline.run_dir / "objectives").iterdir())
                seen["o2_results"] = pipeline.results.objective_results("O2")
                gate.set()

    pipeline = ReportGenerationPipeline(config, sheet, provider=HoldSecondChapter(config), observer=Watch())
    result = pipeline.run()
    assert result.exit_code == 0
    assert seen["csv_files"] == ["01_chapter-1.csv"]
    assert seen["o2_results"] == ()


def test_thread_count_stays_bounded_on_a_2000_task_workbook(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", n_objectives=100, n_tasks=20)
    peak = [0]
    before = threading.active_count()

    class CountThreads(OfflineProvider):
        def complete(self, request):
            peak[0] = max(peak[0], threading.active_count())
            return super().complete(request)

    sheet_obj = load_prompt_sheet(sheet)
    config = load_config(overrides={"output_dir": tmp_path / "out", "max_objective_workers": 4, "max_task_workers": 5}, environ={})
    result = ReportGenerationPipeline(config, sheet_obj, provider=CountThreads(config)).run()
    assert result.counts["done"] == 2000
    # 4 objective threads + 16 task threads (capped by max_concurrent_requests) + the monitor
    assert peak[0] <= before + 4 + 20 + 2
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["resources"]["peak_threads"] <= before + 4 + 20 + 3


def test_disabled_rows_are_skipped_and_objectives_subset_runs_only_those(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[
            {"objective_id": "a", "title": "A"},
            {"objective_id": "b", "title": "B", "enabled": False},
            {"objective_id": "c", "title": "C"},
        ],
        tasks=[
            {"objective_id": "a", "task_id": "1", "prompt": "one"},
            {"objective_id": "a", "task_id": "2", "prompt": "two", "enabled": False},
            {"objective_id": "b", "task_id": "1", "prompt": "three"},
            {"objective_id": "c", "task_id": "1", "prompt": "four"},
        ],
    )
    everything = run_pipeline(sheet, tmp_path / "all")
    assert [r.key for r in everything.results] == ["a.1", "c.1"]
    subset = run_pipeline(sheet, tmp_path / "sub", objectives=("3",))
    assert [r.key for r in subset.results] == ["c.1"]
    assert [p.name for p in (subset.run_dir / "objectives").iterdir()] == ["03_c.csv"]


def test_dependency_texts_reach_the_summary_prompt(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "sum", "title": "Summary"}, {"objective_id": "ch", "title": "Chapter"}],
        tasks=[
            {"objective_id": "sum", "task_id": "1", "prompt": 'Summarise: {{ results["ch"] }}', "depends_on": "ch"},
            {"objective_id": "ch", "task_id": "1", "prompt": "First part"},
            {"objective_id": "ch", "task_id": "2", "prompt": "Second part"},
        ],
    )
    prompts = {}

    class Capture(OfflineProvider):
        def complete(self, request):
            prompts[request.label] = request.messages[-1]["content"]
            return super().complete(request)

    sheet_obj = load_prompt_sheet(sheet)
    config = load_config(overrides={"output_dir": tmp_path / "out"}, environ={})
    result = ReportGenerationPipeline(config, sheet_obj, provider=Capture(config)).run()
    assert result.exit_code == 0
    texts = {r.key: r.text for r in result.results}
    assert texts["ch.1"] in prompts["sum.1.generate"] and texts["ch.2"] in prompts["sum.1.generate"]
    assert [r.key for r in result.results][0] == "sum.1"


def test_step_chain_passes_the_draft_on_and_records_the_check(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "O"}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "Write it", "steps": "generate, refine, check"}],
    )
    result = run_pipeline(sheet, tmp_path)
    (task,) = result.results
    assert [c.step for c in task.calls] == ["generate", "refine", "check"]
    assert task.check_verdict == "pass"
    row = read_csv(result.run_dir / "results.csv")[0]
    assert row["check_verdict"] == "pass" and row["steps"] == "generate,refine,check"


def test_run_json_counts_match_results_csv_and_hide_the_key(tmp_path):
    sheet = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    result = run_pipeline(sheet, tmp_path)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    rows = read_csv(result.run_dir / "results.csv")
    assert manifest["counts"]["done"] == sum(r["status"] == "done" for r in rows) == 4
    assert manifest["config"]["api_key"] is None
    assert {"report_md", "report_docx", "report_xlsx", "results_csv", "run_log"} <= set(manifest["outputs"])
    log = (result.run_dir / "run.log").read_text()
    assert re.search(r"\[task_\d+\]", log)  # worker thread names are in the log


@pytest.mark.parametrize("title", ["../../etc/x", "CON", "a/b\\c"])
def test_objective_titles_cannot_escape_the_output_folder(tmp_path, title):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": title}],
        tasks=[{"objective_id": "o", "task_id": "t", "prompt": "Write it", "title": "+cmd|' /C calc'!A0"}],
    )
    result = run_pipeline(sheet, tmp_path)
    (csv_file,) = list((result.run_dir / "objectives").iterdir())
    assert csv_file.parent == result.run_dir / "objectives"
    assert ".." not in csv_file.name and "/" not in csv_file.name
    assert read_csv(csv_file)[0]["title"].startswith("'+cmd")  # formula injection neutralised


def test_a_key_inside_an_error_message_reaches_no_output(tmp_path):
    key = "sk-live-0123456789abcdef0123"
    sheet_path = simple_workbook(tmp_path / "wb", n_objectives=2, n_tasks=2)
    config = load_config(overrides={"output_dir": tmp_path / "out", "provider": "openai"}, environ={"OPENAI_API_KEY": key})

    class LeakyProvider(OfflineProvider):
        """A proxy that echoes the key in its error message, and a crash that carries it."""

        def complete(self, request):
            if request.label.startswith("O1.T1"):
                raise ProviderError(f"proxy refused Authorization: Bearer {key}", status_code=400)
            if request.label.startswith("O2.T2"):
                raise RuntimeError(f"unexpected failure at https://api.example/v1?key={key}")
            return super().complete(request)

    result = ReportGenerationPipeline(config, load_prompt_sheet(sheet_path), provider=LeakyProvider(config)).run()
    assert result.counts["failed"] == 2
    assert all(key not in r.error for r in result.results)
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_offline_provider_runs_outline_chapters_and_judged_variants(tmp_path):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "o", "title": "Outlined", "mode": "outline"}, {"objective_id": "v", "title": "Variants"}],
        tasks=[
            {"objective_id": "o", "task_id": "t", "prompt": "Cover the market", "title": "Market"},
            {"objective_id": "v", "task_id": "t", "prompt": "Compare", "model": "m-one, m-two", "merge": "best"},
        ],
    )
    result = run_pipeline(sheet, tmp_path)
    assert result.exit_code == 0, [r.error for r in result.results]
    outlined, judged = result.results
    assert [c.step for c in outlined.calls].count("section") == 3
    assert outlined.text.index("### Overview") < outlined.text.index("### Implications")
    assert "judge" in [c.step for c in judged.calls] and "Chosen by the judge" in judged.text


# -- the cache on a first run ----------------------------------------------------------------


def test_a_first_run_reads_the_cache_only_for_what_it_has_paid_itself(tmp_path, monkeypatch):
    """An empty ledger can serve nothing else: no SQLite read per call. A prompt met twice
    in the same run is still paid once."""
    from report_pipeline.config import RunConfig
    from report_pipeline.ledger.store import Ledger
    from report_pipeline.providers.base import ChatRequest
    from report_pipeline.run.gateway import CallGateway

    reads: list[str] = []
    lookup = Ledger.cached_response
    monkeypatch.setattr(Ledger, "cached_response", lambda self, key: reads.append(key) or lookup(self, key))
    provider = OfflineProvider(RunConfig(provider="offline"))  # counts its calls
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        gateway = CallGateway(provider, ledger=ledger, run_id="r1", base_url=None, use_cache=True, durable=True)
        ask = [ChatRequest(model="gpt-4o-mini", messages=({"role": "user", "content": f"q{i % 3}"},), label=f"O1.T{i}.generate")
               for i in range(6)]
        answers = [gateway(request) for request in ask]
        assert provider.calls == 3  # q0, q1, q2 paid once each
        assert [a.extra.get("cached", False) for a in answers] == [False, False, False, True, True, True]
        assert len(reads) == 3  # only the repeats looked in the ledger
        # a second run on this ledger looks up every call, and pays for none
        again = CallGateway(provider, ledger=ledger, run_id="r2", base_url=None, use_cache=True, durable=True)
        assert all(again(request).extra.get("cached") for request in ask)
        assert provider.calls == 3 and len(reads) == 9


def test_a_short_runs_resource_figures_catch_its_peak_threads_and_rss(tmp_path):
    """Sampled once a second, a 1.4 s run reported 4 threads while 16 task threads ran."""
    sheet = simple_workbook(tmp_path / "wb", 4, 8)
    result = run_pipeline(sheet, tmp_path, offline_latency_ms=150, max_concurrent_requests=16,
                          max_objective_workers=4, max_task_workers=8)
    resources = json.loads((result.run_dir / "run.json").read_text())["resources"]
    assert result.duration_s < 10
    assert resources["peak_threads"] >= 16
    import resource as os_resource

    assert resources["peak_rss_mb"] >= os_resource.getrusage(os_resource.RUSAGE_SELF).ru_maxrss / 1024 * 0.5
