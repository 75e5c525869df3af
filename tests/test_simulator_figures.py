"""The simulator plants a wrong figure the figures check flags, and corrects it when asked to fix it.

Driven through the real ``openai`` SDK over HTTP, as every simulator test is; the check
runs on the answers exactly as a task's text would be checked.
"""

from __future__ import annotations

import re

import openai
import pandas as pd
import pytest

from report_pipeline.checks import FigureCheck, Sources, SourceTable, trace_figures
from report_pipeline.run.steps import DEFAULT_STEP_PROMPTS
from report_pipeline.simulator import Directives, SimulatorHandle, parse_directives
from report_pipeline.workbook.data import to_markdown
from report_pipeline.workbook.templates import render_prompt
from tests.simulator_support import open_client, simulator  # noqa: F401

COAL = pd.DataFrame({"year": [2015, 2020, 2030], "coal": [650.0, 340.0, 100.0]})
PROMPT = f"Write a paragraph on coal output.\n\n{to_markdown(COAL)}\n"
SOURCES = Sources(tables=(SourceTable("generation", COAL),), prompt=PROMPT)


def fix_request(draft: str, check: FigureCheck) -> str:
    """The `fix` step's prompt as the runner renders it (no tables: the task's prompt carries them)."""
    flagged = [{"figure": f.text, "sentence": f.sentence} for f in check.untraced]
    return render_prompt(DEFAULT_STEP_PROMPTS["fix"], {"draft": draft, "flagged": flagged, "tables": [], "title": "T"})


def answer(client: openai.OpenAI, messages: list[dict[str, str]]) -> str:
    completion = client.chat.completions.create(model="sim-small", messages=messages)
    return completion.choices[0].message.content or ""


def test_plant_and_fix_directives_are_read_and_checked() -> None:
    assert parse_directives("sim:plant=97.3 sim:fix=-650") == Directives(plant="97.3", fix="-650")
    with pytest.raises(ValueError, match="sim:plant=lots"):
        parse_directives("sim:plant=lots")


def test_a_planted_figure_is_flagged_and_a_fix_call_corrects_it(simulator: SimulatorHandle) -> None:  # noqa: F811
    prompt = PROMPT + "sim:plant=97.3 sim:fix=650"
    with open_client(simulator) as client:
        draft = answer(client, [{"role": "user", "content": prompt}])
        first = trace_figures(draft, Sources(tables=SOURCES.tables, prompt=prompt))
        assert [figure.text for figure in first.untraced] == ["97.3"]
        assert first.summary() == "1 figure, 0 traced, 1 flagged"

        fixed = answer(client, [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": draft},
            {"role": "user", "content": fix_request(draft, first)},
        ])

    second = trace_figures(fixed, Sources(tables=SOURCES.tables, prompt=prompt))
    assert second.untraced == ()
    [traced] = second.traced
    assert str(traced.trace) == "cell: generation[2015, coal] = 650"
    assert fixed == draft.replace("97.3", "650")


def test_without_a_correction_the_fix_call_removes_the_flagged_sentence(simulator: SimulatorHandle) -> None:  # noqa: F811
    prompt = PROMPT + "sim:plant=97.3"
    with open_client(simulator) as client:
        draft = answer(client, [{"role": "user", "content": prompt}])
        check = trace_figures(draft, Sources(tables=SOURCES.tables, prompt=prompt))
        fixed = answer(client, [{"role": "user", "content": prompt}, {"role": "user", "content": fix_request(draft, check)}])

    assert check.untraced_count == 1
    assert "97.3" not in fixed and re.search(r"headline figure", fixed) is None
    assert fixed.startswith("[Simulated answer from sim-small")
    assert trace_figures(fixed, Sources(tables=SOURCES.tables, prompt=prompt)).found_count == 0
