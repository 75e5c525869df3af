"""Variants: one task written by several models, merged by collect_all, first_success or best.
Pure helpers as tables; the pipeline with the real openai SDK against the simulator over HTTP."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from report_pipeline.config import load_config
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.base import ChatRequest, ChatResponse
from report_pipeline.providers.factory import make_provider
from report_pipeline.run.steps import AnswerError
from report_pipeline.run.variants import (
    Choice,
    Variant,
    collect_all_text,
    combined_verdict,
    label_model,
    parse_choice,
)
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.workbooks import make_workbook

KEY = "sk-test-variants-0123456789abcdef"


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, index, reason",
    [
        ('{"choice": 2, "reason": "Uses the data."}', 1, "Uses the data."),
        ('{"choice": "1", "reason": "  Clearer\\n prose. "}', 0, "Clearer prose."),
        ('{"choice": 3.0}', 2, ""),
        ('```json\n{"choice": 1, "reason": "ok"}\n```', 0, "ok"),
    ],
)
def test_parse_choice_reads_the_judges_pick(answer, index, reason):
    assert parse_choice(answer, 3) == Choice(index=index, reason=reason)


@pytest.mark.parametrize(
    "answer, why",
    [
        ("the second one", "not valid JSON"),
        ('{"sections": []}', 'no "choice"'),
        ('{"choice": 0}', "choice 0 is not a candidate"),
        ('{"choice": 4}', "choice 4 is not a candidate"),
        ('{"choice": true}', "no candidate number"),
        ('{"choice": "second"}', "no candidate number"),
    ],
)
def test_parse_choice_refuses_what_it_cannot_use(answer, why):
    with pytest.raises(AnswerError, match=re.escape(why)):
        parse_choice(answer, 3)


def test_collect_all_keeps_each_variant_under_its_model_in_list_order():
    text = collect_all_text([Variant("b-model", text="# Title\nB text"), Variant("a-model", error="HTTP 500"), Variant("c", text="C")])
    assert re.findall(r"^#### (.*)$", text, re.M) == ["b-model", "a-model", "c"]
    assert "##### Title" in text and "[variant a-model failed: HTTP 500]" in text


@pytest.mark.parametrize(
    "verdicts, expected",
    [(["pass", "pass"], "pass"), (["pass", "revise"], "revise"), (["unclear", "pass"], "unclear"), ([], "")],
)
def test_combined_verdict(verdicts, expected):
    assert combined_verdict(verdicts) == expected


def test_a_dotted_model_name_cannot_split_the_label_in_the_wrong_place():
    label = f"OBJ.TASK.generate@{label_model('llama3.1')}"
    assert label.rpartition(".") == ("OBJ.TASK", ".", "generate@llama3_1")


# -- the pipeline over HTTP ----------------------------------------------------------------


def openai_config(sim, out: Path, **overrides):
    settings = {"provider": "openai", "base_url": sim.base_url, "model": "sim-small", "output_dir": out,
                "max_retries": 1, "request_timeout_s": 5, **overrides}
    return load_config(overrides=settings, environ={"OPENAI_API_KEY": KEY})


def variant_sheet(path: Path, *, models: str, merge: str | None = None, prompt: str = "Compare the two fleets.", **task) -> Path:
    return make_workbook(
        path,
        objectives=[{"objective_id": "cmp", "title": "Comparison"}, {"objective_id": "ops", "title": "Operations"}],
        tasks=[
            {"objective_id": "cmp", "task_id": "v", "prompt": prompt, "model": models, "merge": merge or "collect_all", **task},
            {"objective_id": "ops", "task_id": "fleet", "prompt": "Describe the fleet."},
        ],
    )


class Edited:
    """The real OpenAIProvider behind a test's edit: `edit(request, inner)` answers each call."""

    def __init__(self, inner, edit) -> None:
        self._inner = inner
        self._edit = edit
        self.name = inner.name
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def complete(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.requests.append(request)
        return self._edit(request, self._inner)

    def list_models(self) -> list[str]:
        return self._inner.list_models()

    def close(self) -> None:
        self._inner.close()


def failing_model(model: str):
    """An edit that sends `model`'s requests with `sim:status=500`: real 500s over HTTP."""

    def edit(request: ChatRequest, inner) -> ChatResponse:
        if request.model == model:
            *rest, last = request.messages
            request = dataclasses.replace(request, messages=(*rest, {**last, "content": last["content"] + " sim:status=500"}))
        return inner.complete(request)

    return edit


def run_with(sheet: Path, config, edit=None):
    if edit is None:
        return ReportGenerationPipeline(config, load_prompt_sheet(sheet)).run(), None
    provider = Edited(make_provider(config), edit)
    try:
        return ReportGenerationPipeline(config, load_prompt_sheet(sheet), provider=provider).run(), provider
    finally:
        provider.close()


def task(result, key: str = "cmp.v"):
    return next(r for r in result.results if r.key == key)


def ledger_steps(out: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        return sorted(db.execute("SELECT task_key, step, model FROM calls WHERE task_key = 'cmp.v'").fetchall())


def test_collect_all_keeps_both_texts_each_under_its_model(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large")
    out = tmp_path / "out"
    result, _ = run_with(sheet, openai_config(simulator, out))
    v = task(result)
    assert v.status == "done" and v.model == "sim-small,sim-large" and v.error == ""
    assert re.findall(r"^#### (.*)$", v.text, re.M) == ["sim-small", "sim-large"]
    assert "Simulated answer from sim-small" in v.text and "Simulated answer from sim-large" in v.text
    assert sorted((c.step, c.model) for c in v.calls) == [("generate", "sim-large"), ("generate", "sim-small")]
    assert ledger_steps(out) == [("cmp.v", "generate@sim-large", "sim-large"), ("cmp.v", "generate@sim-small", "sim-small")]


def test_collect_all_runs_refine_and_check_on_each_variant_with_its_own_model(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", steps="generate, check", prompt="Compare sim:verdict=FAIL")
    result, _ = run_with(sheet, openai_config(simulator, tmp_path / "out"))
    v = task(result)
    assert sorted((c.step, c.model) for c in v.calls) == [
        ("check", "sim-large"), ("check", "sim-small"), ("generate", "sim-large"), ("generate", "sim-small"),
    ]
    assert v.check_verdict == "revise"
    assert [line.split(":")[0] for line in v.check_notes.splitlines()] == ["sim-small", "sim-large"]


def test_variants_are_sent_at_the_same_time(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", prompt="Compare sim:hold=both")
    results: list = []
    run = threading.Thread(target=lambda: results.append(run_with(sheet, openai_config(simulator, tmp_path / "out"))[0]))
    run.start()
    try:
        simulator.wait_until_held(2, "both", timeout=30)  # both variants are in flight together
    finally:
        simulator.release("both")
        run.join(60)
    assert task(results[0]).status == "done"


def test_first_success_is_not_failed_by_a_model_answering_500s(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-large, sim-small", merge="first_success")
    result, _ = run_with(sheet, openai_config(simulator, tmp_path / "out"), failing_model("sim-large"))
    v = task(result)
    assert v.status == "done" and v.model == "sim-small"
    assert "Simulated answer from sim-small" in v.text and "sim-large" not in v.text
    assert "variant sim-large failed" in v.error and "500" in v.error
    assert simulator.stats()["status_counts"]["500"] == 2  # sim-large's try and retry, over HTTP
    assert result.exit_code == 0


def test_first_success_fails_with_every_models_error_when_all_fail(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", merge="first_success", prompt="Compare sim:status=500")
    result, _ = run_with(sheet, openai_config(simulator, tmp_path / "out"))
    v = task(result)
    assert v.status == "failed" and task(result, "ops.fleet").status == "done"
    assert v.error.startswith("every model failed") and "sim-small:" in v.error and "sim-large:" in v.error


def test_first_success_in_sequential_mode_stops_at_the_first_success(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", merge="first_success")
    config = openai_config(simulator, tmp_path / "out", run_objectives_concurrent=False, run_task_concurrent=False)
    result, _ = run_with(sheet, config)
    v = task(result)
    assert v.model == "sim-small" and [c.model for c in v.calls] == ["sim-small"]
    assert {c.thread for c in v.calls} == {v.thread}  # inline, on the task's own thread
    assert simulator.stats()["calls"] == 2  # this one and the other chapter's


def judge_answers(text: str):
    """An edit that answers the judge with `text` (the simulator's JSON is a section plan)."""

    def edit(request: ChatRequest, inner) -> ChatResponse:
        if request.label.endswith(".judge"):
            return ChatResponse(text=text, model=request.model, prompt_tokens=50, completion_tokens=12)
        return inner.complete(request)

    return edit


def test_best_keeps_the_variant_the_judge_chose_and_says_why(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", merge="best")
    config = openai_config(simulator, tmp_path / "out", judge_model="sim-judge")
    result, provider = run_with(sheet, config, judge_answers('{"choice": 2, "reason": "It cites the data."}'))
    v = task(result)
    assert v.status == "done" and v.model == "sim-large"
    assert "Simulated answer from sim-large" in v.text and "Simulated answer from sim-small" not in v.text
    assert v.text.endswith("_Chosen by the judge: sim-large — It cites the data._")
    judge = next(r for r in provider.requests if r.label == "cmp.v.judge")
    assert judge.model == "sim-judge" and judge.response_format == {"type": "json_object"}
    content = judge.messages[-1]["content"]
    assert '<candidate number="1">' in content and '<candidate number="2">' in content
    assert sorted(c.step for c in v.calls) == ["generate", "generate", "judge"]


def test_best_keeps_the_first_variant_when_the_judges_answer_is_unusable(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", merge="best")
    result, _ = run_with(sheet, openai_config(simulator, tmp_path / "out"))  # the simulator answers with a plan
    v = task(result)
    assert v.status == "done" and v.model == "sim-small"
    assert re.search(r'_Kept sim-small: the judge gave no usable choice \(no "choice" in the JSON.*\)_$', v.text)
    assert [c.step for c in v.calls].count("judge") == 1


def test_refine_after_best_runs_on_the_chosen_text_with_the_chosen_model(tmp_path, simulator):
    sheet = variant_sheet(tmp_path / "wb", models="sim-small, sim-large", merge="best", steps="generate, refine")
    result, provider = run_with(sheet, openai_config(simulator, tmp_path / "out"), judge_answers('{"choice": 2, "reason": "r"}'))
    v = task(result)
    refine = next(r for r in provider.requests if r.label == "cmp.v.refine")
    assert refine.model == "sim-large" and "Simulated answer from sim-large" in refine.messages[-1]["content"]
    assert v.text.startswith("[Simulated answer from sim-large") and v.text.endswith("_Chosen by the judge: sim-large — r_")


def test_variants_of_an_outline_task_each_plan_and_fill_their_own_sections(tmp_path, simulator):
    sheet = make_workbook(
        tmp_path / "wb",
        objectives=[{"objective_id": "cmp", "title": "Comparison", "mode": "outline"}],
        tasks=[{"objective_id": "cmp", "task_id": "v", "prompt": "Compare.", "model": "sim-small, sim-large"}],
    )
    result, _ = run_with(sheet, openai_config(simulator, tmp_path / "out"))
    v = task(result)
    assert v.status == "done"
    assert re.findall(r"^#### (.*)$", v.text, re.M) == ["sim-small", "sim-large"]
    assert len(re.findall(r"^##### (.*)$", v.text, re.M)) == 6  # three planned sections under each model
    assert sorted({(c.step, c.model) for c in v.calls}) == [
        ("outline", "sim-large"), ("outline", "sim-small"), ("section", "sim-large"), ("section", "sim-small"),
    ]
