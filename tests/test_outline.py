"""Outline, then fill: the plan parser as a table, the runner with a scripted call function,
and the whole pipeline with the real openai SDK against the simulator over HTTP."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from report_pipeline.config import load_config
from report_pipeline.errors import AuthError, ProviderError
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.base import ChatRequest, ChatResponse
from report_pipeline.providers.factory import make_provider
from report_pipeline.run.outline import (
    FilledSection,
    Section,
    assemble_sections,
    failed_sections,
    parse_plan,
)
from report_pipeline.run.plan import build_plan
from report_pipeline.run.results import ReportStructureManager
from report_pipeline.run.runner import TaskRunner
from report_pipeline.run.steps import AnswerError, nest_headings
from report_pipeline.workbook.data import DataStore
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook

KEY = "sk-test-outline-0123456789abcdef"
PLAN = {"sections": [{"title": "Demand", "brief": "How demand moved."},
                     {"title": "Supply", "brief": "What was built."},
                     {"title": "Prices", "brief": "Where prices went."}]}


# -- the plan parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, titles, dropped",
    [
        (json.dumps(PLAN), ["Demand", "Supply", "Prices"], 0),
        ("```json\n" + json.dumps(PLAN) + "\n```", ["Demand", "Supply", "Prices"], 0),
        ('{"sections": [{"title": "Only one"}]}', ["Only one"], 0),
        ('{"sections": [{"title": "  ## Spread\\n  out  ", "brief": null}]}', ["Spread out"], 0),
        (json.dumps({"sections": [{"title": f"S{n}", "brief": ""} for n in range(1, 10)]}), ["S1", "S2", "S3", "S4"], 5),
    ],
    ids=["plain", "fenced", "no-brief", "messy-title", "too-many-are-cut"],
)
def test_parse_plan_accepts_good_plans(answer, titles, dropped):
    plan = parse_plan(answer, max_sections=4)
    assert [s.title for s in plan.sections] == titles
    assert [s.number for s in plan.sections] == list(range(1, len(titles) + 1))
    assert plan.dropped == dropped


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("not json {", "not valid JSON"),
        ("", "empty answer"),
        ('[{"title": "A"}]', "JSON list instead of an object"),
        ('{"plan": []}', 'no "sections" list'),
        ('{"sections": "Demand, Supply"}', 'no "sections" list'),
        ('{"sections": []}', "is empty"),
        ('{"sections": ["Demand"]}', "section 1 is not an object"),
        ('{"sections": [{"title": "A"}, {"brief": "no title"}]}', "section 2 has no title"),
        ('{"sections": [{"title": "   "}]}', "section 1 has no title"),
        ('{"sections": [{"title": "A", "brief": 3}]}', "brief must be text"),
    ],
)
def test_parse_plan_refuses_bad_answers_saying_why(answer, reason):
    with pytest.raises(AnswerError, match=re.escape(reason)):
        parse_plan(answer, max_sections=6)


def test_sections_are_assembled_in_plan_order_with_a_note_where_one_failed():
    a, b, c = (Section(n, t, "") for n, t in [(1, "Demand"), (2, "Supply"), (3, "Prices")])
    filled = [FilledSection(c, text="# Big\nPrices rose."), FilledSection(a, text="Demand fell."), FilledSection(b, error="HTTP 500: boom")]
    text = assemble_sections(filled)
    assert re.findall(r"^### (.*)$", text, re.M) == ["Demand", "Supply", "Prices"]
    assert '[section 2 "Supply" failed: HTTP 500: boom]' in text
    assert "#### Big" in text  # a section's own heading never outranks the section's
    assert failed_sections(filled) == 'section 2 "Supply" failed: HTTP 500: boom'


@pytest.mark.parametrize(
    "text, level, expected",
    [
        ("# A\n## B", 4, "#### A\n##### B"),
        ("### A", 4, "#### A"),
        ("##### A", 4, "##### A"),
        ("# A\n```\n# not a heading\n```", 5, "##### A\n```\n# not a heading\n```"),
        ("# A\n###### F", 4, "#### A\n###### F"),
        ("no headings", 4, "no headings"),
    ],
)
def test_nest_headings(text, level, expected):
    assert nest_headings(text, level) == expected


# -- the runner with a scripted call function -------------------------------------------------


def outline_sheet(tmp_path: Path, *, tasks=None, **kwargs):
    return load_prompt_sheet(make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "mkt", "title": "Market", "mode": "outline"}],
        tasks=tasks or [{"objective_id": "mkt", "task_id": "view", "prompt": "Write the market view."}],
        **kwargs,
    ))


def make_runner(tmp_path: Path, call, *, sheet=None, **overrides) -> tuple[TaskRunner, object]:
    sheet = sheet or outline_sheet(tmp_path)
    config = load_config(overrides={"output_dir": tmp_path / "out", **overrides}, environ={})
    plan = build_plan(sheet)
    runner = TaskRunner(
        config=config, sheet=sheet, plan=plan, data=DataStore(sheet.data_sources),
        results=ReportStructureManager(plan), call=call,
    )
    return runner, plan.tasks["mkt.view"]


def answer(text: str, model: str = "m") -> ChatResponse:
    return ChatResponse(text=text, model=model, prompt_tokens=10, completion_tokens=5, cost_usd=0.001)


class Scripted:
    """A call function: the plan answers come from a list, sections by a rule; every request is kept."""

    def __init__(self, plans=(json.dumps(PLAN),), section=lambda request: answer(f"Body of {request.label}.")):
        self.plans = list(plans)
        self.section = section
        self.requests: list[ChatRequest] = []
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.requests.append(request)
            self.threads.append(threading.current_thread().name)
        step = request.label.split(".")[-1]
        if step.startswith("outline"):
            return answer(self.plans.pop(0) if len(self.plans) > 1 else self.plans[0])
        if step.startswith("section"):
            return self.section(request)
        return answer(f"{step} of the draft")


def test_a_failed_section_leaves_the_others_and_is_listed_in_the_error(tmp_path):
    def section(request):
        if request.label.endswith("section-2"):
            raise ProviderError("the model refused", status_code=400)
        return answer(f"Body of {request.label}.")

    runner, task = make_runner(tmp_path, Scripted(section=section))
    with runner:
        result = runner(task)
    assert result.status == "done"
    assert re.findall(r"^### (.*)$", result.text, re.M) == ["Demand", "Supply", "Prices"]
    assert "Body of mkt.view.section-1." in result.text and "Body of mkt.view.section-3." in result.text
    assert '[section 2 "Supply" failed: HTTP 400: the model refused]' in result.text
    assert result.error == 'section 2 "Supply" failed: HTTP 400: the model refused'
    assert [c.step for c in result.calls].count("section") == 2  # the failed call was not paid


def test_an_outline_task_whose_sections_all_fail_fails_naming_its_objective(tmp_path):
    def section(request):
        raise ProviderError("server error", status_code=500)

    runner, task = make_runner(tmp_path, Scripted(section=section))
    with runner:
        result = runner(task)
    assert result.status == "failed"
    assert 'objective mkt "Market"' in result.error and "every section failed" in result.error
    assert [c.step for c in result.calls] == ["outline"]


def test_an_auth_error_in_a_section_stops_the_run(tmp_path):
    def section(request):
        raise AuthError("bad key", status_code=401)

    runner, task = make_runner(tmp_path, Scripted(section=section))
    with runner, pytest.raises(AuthError):
        runner(task)


def test_sections_are_written_at_the_same_time_on_their_own_threads(tmp_path):
    all_three = threading.Barrier(3, timeout=10)  # passes only if three section calls wait together

    def section(request):
        all_three.wait()
        return answer(f"Body of {request.label}.")

    scripted = Scripted(section=section)
    runner, task = make_runner(tmp_path, scripted)
    with runner:
        result = runner(task)
    assert result.status == "done", result.error
    section_threads = {t for r, t in zip(scripted.requests, scripted.threads) if ".section-" in r.label}
    assert len(section_threads) == 3 and all(t.startswith("section") for t in section_threads)


def test_sequential_mode_writes_the_sections_one_by_one_on_the_task_thread(tmp_path):
    scripted = Scripted()
    runner, task = make_runner(tmp_path, scripted, run_task_concurrent=False, run_objectives_concurrent=False)
    with runner:
        result = runner(task)
    assert result.status == "done"
    assert set(scripted.threads) == {threading.current_thread().name}
    assert [r.label for r in scripted.requests] == ["mkt.view.outline", *(f"mkt.view.section-{n}" for n in (1, 2, 3))]


def test_a_bad_plan_is_asked_again_with_a_request_the_cache_cannot_answer(tmp_path):
    scripted = Scripted(plans=["not json {", '{"sections": []}', json.dumps(PLAN)])
    runner, task = make_runner(tmp_path, scripted, outline_retries=2, temperature=0.2)
    with runner:
        result = runner(task)
    assert result.status == "done"
    plans = [r for r in scripted.requests if ".outline" in r.label]
    assert len(plans) == 3
    assert all(r.response_format == {"type": "json_object"} for r in plans)
    assert len({json.dumps(r.sampling(), sort_keys=True) for r in plans}) == 3  # three cache keys
    assert all(r.messages == plans[0].messages for r in plans)  # the same question each time
    assert [c.step for c in result.calls] == ["outline"] * 3 + ["section"] * 3


def test_a_long_plan_is_cut_to_outline_max_sections_with_a_warning(tmp_path, caplog):
    long_plan = json.dumps({"sections": [{"title": f"Part {n}", "brief": "b"} for n in range(1, 9)]})
    runner, task = make_runner(tmp_path, Scripted(plans=[long_plan]), outline_max_sections=2)
    with runner:
        result = runner(task)
    assert re.findall(r"^### (.*)$", result.text, re.M) == ["Part 1", "Part 2"]
    assert "kept the first 2" in caplog.text


def test_the_prompts_sheet_can_replace_the_outline_prompt(tmp_path):
    sheet = outline_sheet(tmp_path, prompts={"outline": "PLAN at most {{ max_sections }} for: {{ prompt }}"})
    scripted = Scripted()
    runner, task = make_runner(tmp_path, scripted, sheet=sheet, outline_max_sections=4)
    with runner:
        runner(task)
    assert scripted.requests[0].messages[-1]["content"] == "PLAN at most 4 for: Write the market view."


def test_refine_and_check_apply_to_the_assembled_text(tmp_path):
    sheet = outline_sheet(tmp_path, tasks=[
        {"objective_id": "mkt", "task_id": "view", "prompt": "Write the market view.", "steps": "generate, refine, check"},
    ])
    scripted = Scripted()
    runner, task = make_runner(tmp_path, scripted, sheet=sheet)
    with runner:
        result = runner(task)
    refine = next(r for r in scripted.requests if r.label == "mkt.view.refine")
    assert "### Demand" in refine.messages[-1]["content"] and "### Prices" in refine.messages[-1]["content"]
    assert result.text == "refine of the draft"
    assert [c.step for c in result.calls][-2:] == ["refine", "check"]


# -- the whole pipeline over HTTP ------------------------------------------------------------


def openai_config(sim, out: Path, **overrides):
    settings = {"provider": "openai", "base_url": sim.base_url, "model": "sim-small", "output_dir": out,
                "max_retries": 1, "request_timeout_s": 5, **overrides}
    return load_config(overrides=settings, environ={"OPENAI_API_KEY": KEY})


def two_chapters(path: Path, outline_prompt: str) -> Path:
    return make_workbook(
        path,
        objectives=[{"objective_id": "mkt", "title": "Market", "mode": "outline"},
                    {"objective_id": "ops", "title": "Operations"}],
        tasks=[{"objective_id": "mkt", "task_id": "view", "prompt": outline_prompt, "title": "Market view"},
               {"objective_id": "ops", "task_id": "fleet", "prompt": "Describe the fleet.", "title": "Fleet"}],
    )


def plan_titles(out: Path) -> list[str]:
    """The titles of the plan the simulator finally gave, read back from the ledger."""
    with sqlite3.connect(out / "ledger.sqlite") as db:
        answers = [row[0] for row in db.execute(
            "SELECT response FROM calls WHERE task_key = 'mkt.view' AND step LIKE 'outline%' AND status = 'ok' ORDER BY rowid"
        )]
    return [s["title"] for s in json.loads(answers[-1])["sections"]]


def test_bad_json_twice_then_a_good_plan_fills_every_section_in_plan_order(tmp_path, simulator):
    sheet = two_chapters(tmp_path / "wb", "Write the market view. sim:bad_json=2")
    out = tmp_path / "out"
    result = ReportGenerationPipeline(openai_config(simulator, out, outline_retries=2), load_prompt_sheet(sheet)).run()
    assert result.exit_code == 0, [r.error for r in result.results]
    view = next(r for r in result.results if r.key == "mkt.view")
    assert [c.step for c in view.calls] == ["outline"] * 3 + ["section"] * 3
    titles = plan_titles(out)
    assert re.findall(r"^### (.*)$", view.text, re.M) == titles
    assert view.text.count("Simulated answer from sim-small") == 3
    report = (result.run_dir / "report.md").read_text(encoding="utf-8")
    assert [f"#### {t}" for t in titles] == re.findall(r"^#### .*$", report, re.M)[:3]
    assert simulator.stats()["calls"] == 3 + 3 + 1

    simulator.reset()  # a re-run pays for nothing: the retries are cached under their own keys
    again = ReportGenerationPipeline(openai_config(simulator, out, outline_retries=2), load_prompt_sheet(sheet)).run()
    assert simulator.stats()["calls"] == 0
    assert next(r for r in again.results if r.key == "mkt.view").text == view.text


def test_an_outline_that_never_gets_a_plan_fails_alone(tmp_path, simulator):
    sheet = two_chapters(tmp_path / "wb", "Write the market view. sim:bad_json=99")
    result = ReportGenerationPipeline(openai_config(simulator, tmp_path / "out", outline_retries=2), load_prompt_sheet(sheet)).run()
    assert result.exit_code == 1
    status = {r.key: r for r in result.results}
    assert status["ops.fleet"].status == "done"
    failed = status["mkt.view"]
    assert failed.status == "failed"
    assert 'objective mkt "Market"' in failed.error and "no usable section plan after 3 answer(s)" in failed.error
    assert failed.error.count("not valid JSON") == 3
    assert len(failed.calls) == 3  # the three paid plan calls stay on the bill


class FailSection:
    """The real OpenAIProvider; a section whose label ends with `label_end` carries `sim:status=500`,
    so the simulator answers it with real 500s over HTTP."""

    def __init__(self, inner, label_end: str) -> None:
        self._inner = inner
        self._label_end = label_end
        self.name = inner.name

    def complete(self, request: ChatRequest) -> ChatResponse:
        if request.label.endswith(self._label_end):
            *rest, last = request.messages
            request = dataclasses.replace(request, messages=(*rest, {**last, "content": last["content"] + " sim:status=500"}))
        return self._inner.complete(request)

    def list_models(self) -> list[str]:
        return self._inner.list_models()

    def close(self) -> None:
        self._inner.close()


def test_a_section_answered_with_500s_leaves_a_note_and_the_others(tmp_path, simulator):
    sheet = two_chapters(tmp_path / "wb", "Write the market view.")
    config = openai_config(simulator, tmp_path / "out")
    provider = FailSection(make_provider(config), ".section-2")
    try:
        result = ReportGenerationPipeline(config, load_prompt_sheet(sheet), provider=provider).run()
    finally:
        provider.close()
    view = next(r for r in result.results if r.key == "mkt.view")
    assert view.status == "done"
    assert re.search(r'\[section 2 ".+" failed: .*500', view.text)
    assert view.text.count("Simulated answer from sim-small") == 2
    assert view.error.startswith('section 2 "') and "500" in view.error
    assert simulator.stats()["status_counts"]["500"] == 2  # the first try and its retry


def test_a_full_task_pool_does_not_deadlock_the_sections(tmp_path, simulator):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "mkt", "title": "Market", "mode": "outline"}],
        tasks=[{"objective_id": "mkt", "task_id": f"t{n}", "prompt": f"Part {n} of the market view."} for n in range(1, 5)],
    )
    config = openai_config(simulator, tmp_path / "out", max_objective_workers=1, max_task_workers=1, max_concurrent_requests=2)
    pipeline = ReportGenerationPipeline(config, load_prompt_sheet(sheet))
    results: list = []
    runner = threading.Thread(target=lambda: results.append(pipeline.run()), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the run hung"
    assert results[0].exit_code == 0
    assert all(r.text.count("### ") == 3 for r in results[0].results)
