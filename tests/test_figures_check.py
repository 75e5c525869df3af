"""Specification of the figures check: every number a reader sees is traced to the data, or flagged.

Pure functions over real DataFrames and texts: no model, no threads, no files. Each
case names the figure it is about and the step that must trace it (None: flagged), so
a rule that loosens or tightens fails here by name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from report_pipeline.checks import (
    ENGLISH,
    Figure,
    FigureCheck,
    NumberStyle,
    Sources,
    SourceTable,
    Trace,
    find_figures,
    trace_figures,
)
from report_pipeline.checks.derived import MAX_NAMED_ROWS
from report_pipeline.config import RunConfig
from report_pipeline.providers.base import ChatRequest
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.workbook.data import to_markdown

GENERATION = pd.DataFrame({
    "year": [2015, 2020, 2024, 2030],
    "basis": ["historical", "historical", "historical", "projection"],
    "coal": [650.0, 340.0, 270.0, 100.0],
    "wind": [300.0, 417.3, 470.4, 820.0],
    "renewable_share_pct": [32.4, 39.9, 48.7, 64.8],
    "solar_share": [0.036, 0.053, 0.111, 0.215],
})
CAPACITY = pd.DataFrame({
    "country": ["Germany", "Germany", "France", "France"],
    "year": [2020, 2030, 2020, 2030],
    "wind_mw": [62_000.0, 115_000.0, 17_500.0, 40_000.0],
    "price_eur_mwh": [41.237, 85.0, 38.5, 70.2],
})
PRICES = pd.DataFrame({"2025": [55.0, 48.3], "2030": [41.2, 39.0]}, index=pd.Index(["Germany", "France"], name="country"))
DEPENDENCY = "Nuclear output was 610 TWh in 2022, its lowest in decades."
PROMPT = "Write 250-300 words on the outlook. Policy aims at a 42.5% renewable share by 2030."
SOURCES = Sources(
    tables=(SourceTable("generation", GENERATION), SourceTable("capacity", CAPACITY), SourceTable("prices", PRICES)),
    dependencies={"gen.t1": DEPENDENCY},
    prompt=PROMPT,
)
GERMAN = NumberStyle.for_locale("de_DE")


def trace_of(text: str, figure_text: str, sources: Sources = SOURCES, style: NumberStyle = ENGLISH) -> Trace | None:
    """The trace of the figure written `figure_text` in `text` (None when it is flagged)."""
    check = trace_figures(text, sources, style)
    traced = {item.figure.text: item.trace for item in check.traced}
    flagged = {figure.text for figure in check.untraced}
    assert figure_text in traced or figure_text in flagged, f"{figure_text!r} not found in {text!r}"
    return traced.get(figure_text)


# -- what traces a figure -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "figure", "step"),
    [
        pytest.param("Coal produced 650 TWh in 2015.", "650 TWh", "cell", id="exact cell"),
        pytest.param("Germany's price was 41.2 EUR/MWh in 2020.", "41.2 EUR/MWh", "rounded cell",
                     id="rounded cell: 41.237 written to one decimal"),
        pytest.param("Germany's price was about 41 EUR/MWh in 2020.", "41 EUR/MWh", "rounded cell",
                     id="rounded cell: 41.237 written whole"),
        pytest.param("Germany's price was 42 EUR/MWh in 2020.", "42 EUR/MWh", None,
                     id="a rounding the text's precision does not allow is flagged"),
        pytest.param("Coal fell 85% between 2015 and 2030.", "85%", "percent change",
                     id="percent change between two cells of a column"),
        pytest.param("Coal output fell by 85% over the period.", "85%", "percent change",
                     id="percent change from the first row to the last"),
        pytest.param("Coal fell by 550 TWh between 2015 and 2030.", "550 TWh", "difference",
                     id="difference between two cells of a column"),
        pytest.param("In 2030 wind produced 720 TWh more than coal.", "720 TWh", "difference",
                     id="difference between two cells of a row"),
        pytest.param("Wind produced 2.7x as much in 2030 as in 2015.", "2.7x", "ratio", id="ratio"),
        pytest.param("Coal produced 1,360 TWh over the four years.", "1,360 TWh", "sum", id="column sum"),
        pytest.param("Coal produced 1,260 TWh in the historical years.", "1,260 TWh", "sum",
                     id="sum over the rows with one label"),
        pytest.param("Wind averaged 501.9 TWh a year.", "501.9 TWh", "mean", id="column mean"),
        pytest.param("Germany had 115 GW of wind in 2030.", "115 GW", "unit change", id="unit change MW to GW"),
        pytest.param("Solar's share reached 21.5% in 2030.", "21.5%", "unit change", id="share written as %"),
        pytest.param("The renewable share rose 16.3 percentage points from 2015 to 2024.", "16.3 percentage points",
                     "difference", id="percentage points between two share cells"),
        pytest.param("Germany's price will be 41.2 EUR/MWh in 2030.", "41.2 EUR/MWh", "cell",
                     id="a cell of a wide table"),
        pytest.param("Coal output was 777 TWh in 2019.", "777 TWh", None, id="a made-up figure is flagged"),
        pytest.param("Nuclear produced 610 TWh in 2022.", "610 TWh", "dependency text", id="a dependency's figure"),
        pytest.param("The target share is 42.5% by 2030.", "42.5%", "prompt", id="a figure from the prompt"),
        pytest.param("The table covers 4 years.", "4", "count", id="the number of rows"),
        pytest.param("Something rose 85% in the period.", "85%", None,
                     id="a derived step counts only over cells the sentence names"),
    ],
)
def test_a_figure_is_traced_by_the_step_a_reader_accepts(text: str, figure: str, step: str | None) -> None:
    trace = trace_of(text, figure)
    assert (trace.step if trace else None) == step


def test_a_trace_names_its_cells_and_step() -> None:
    assert str(trace_of("Coal produced 650 TWh in 2015.", "650 TWh")) == "cell: generation[2015, coal] = 650"
    assert str(trace_of("Germany had 115 GW of wind in 2030.", "115 GW")) == (
        "unit change MW->GW: capacity[Germany 2030, wind_mw] = 115000"
    )
    assert str(trace_of("Germany's price will be 41.2 EUR/MWh in 2030.", "41.2 EUR/MWh")) == (
        "cell: prices[Germany, 2030] = 41.2"
    )
    change = trace_of("Coal fell 85% between 2015 and 2030.", "85%")
    assert [str(cell) for cell in change.cells] == ["generation[2015, coal] = 650", "generation[2030, coal] = 100"]
    assert change.value == pytest.approx(-84.615, abs=1e-3)


def test_a_small_bare_integer_is_traced_exactly_never_by_a_derived_step() -> None:
    steps = pd.DataFrame({"year": [2015, 2020], "wind": [300.0, 303.0]})
    sources = Sources(tables=(SourceTable("steps", steps),))
    assert trace_of("Wind rose by 3 TWh between 2015 and 2020.", "3 TWh", sources).step == "difference"
    assert trace_of("Wind rose by 3 between 2015 and 2020.", "3", sources) is None
    assert trace_of("The table has 2 rows.", "2", sources).step == "count"


def test_a_figure_in_another_kind_of_unit_than_its_column_is_flagged() -> None:
    sources = Sources(tables=(SourceTable("generation", GENERATION, unit="TWh"),))
    assert trace_of("Coal produced 650 TWh in 2015.", "650 TWh", sources).step == "cell"
    assert trace_of("Coal produced 650 GW in 2015.", "650 GW", sources) is None  # power, not energy
    assert trace_of("Coal had a 45% share in 2015.", "45%", sources) is None  # coal is no share


def test_a_german_text_is_read_with_comma_decimals() -> None:
    trace = trace_of("Der Anteil der Erneuerbaren lag 2030 bei 64,8 %.", "64,8 %", style=GERMAN)
    assert trace is not None and trace.step == "cell"
    assert trace_of("Die Windleistung lag 2030 bei 115.000 MW.", "115.000 MW", style=GERMAN).step == "cell"


def test_the_check_lists_flagged_figures_with_their_sentences_and_sums_up() -> None:
    check = trace_figures("Coal produced 650 TWh in 2015. It was 777 TWh in 2019.", SOURCES)
    assert isinstance(check, FigureCheck)
    assert (check.found_count, check.traced_count, check.untraced_count) == (2, 1, 1)
    [flagged] = check.untraced
    assert (flagged.text, flagged.sentence) == ("777 TWh", "It was 777 TWh in 2019.")
    assert check.summary() == "2 figures, 1 traced, 1 flagged"
    assert trace_figures("No numbers here.", SOURCES).summary() == "0 figures, 0 traced, 0 flagged"


# -- what a figure is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        pytest.param("1,234,567 people", "en", [("1,234,567", 1_234_567, 0, False, None)], id="en thousands"),
        pytest.param("1.234.567 Menschen", "de", [("1.234.567", 1_234_567, 0, False, None)], id="de thousands"),
        pytest.param("1 234,5 MWh", "fr", [("1 234,5 MWh", 1234.5, 1, False, "MWh")], id="fr thousands by space"),
        pytest.param("ein Anteil von 41,2 %", "de", [("41,2 %", 41.2, 1, True, "%")], id="de comma decimal percent"),
        pytest.param("12.5% and 12.5 percent and 3 per cent", "en",
                     [("12.5%", 12.5, 1, True, "%"), ("12.5 percent", 12.5, 1, True, "%"),
                      ("3 per cent", 3, 0, True, "%")], id="percent spellings"),
        pytest.param("1.2 million homes", "en", [("1.2 million", 1_200_000, 1, False, None)], id="million"),
        pytest.param("€2.1bn and $450m and 3 bn", "en",
                     [("€2.1bn", 2.1e9, 1, False, "€"), ("$450m", 450e6, 0, False, "$"), ("3 bn", 3e9, 0, False, None)],
                     id="money magnitudes"),
        pytest.param("3,5 Mrd. EUR", "de", [("3,5 Mrd. EUR", 3.5e9, 1, False, "EUR")], id="de Mrd"),
        pytest.param("450 GW and 12 TWh", "en", [("450 GW", 450, 0, False, "GW"), ("12 TWh", 12, 0, False, "TWh")],
                     id="units"),
        pytest.param("a 40-45% share", "en", [("40", 40, 0, True, "%"), ("45%", 45, 0, True, "%")],
                     id="a range shares its percent"),
        pytest.param("2.1 to 2.4 GW", "en", [("2.1", 2.1, 1, False, "GW"), ("2.4 GW", 2.4, 1, False, "GW")],
                     id="a range shares its unit"),
        pytest.param("fell -3.2% then −4 TWh", "en", [("-3.2%", -3.2, 1, True, "%"), ("−4 TWh", -4, 0, False, "TWh")],
                     id="signs"),
    ],
)
def test_figures_are_read_as_the_locale_writes_them(text: str, locale: str, expected: list[tuple]) -> None:
    found = find_figures(text, NumberStyle.for_locale(locale))
    assert [(f.text, f.value, f.decimals, f.percent, f.unit) for f in found] == [
        (t, pytest.approx(v), d, p, u) for t, v, d, p, u in expected
    ]


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        pytest.param("In 2030 coal falls; by 2030 it is gone; 2015-2020 and 2015-30 and the 2030s.", [], id="years"),
        pytest.param("Generation reached 2030 TWh.", ["2030 TWh"], id="a year-shaped value with a unit is a claim"),
        pytest.param("1. Coal fell.\n2) Gas rose 12%.\n- 3 items", ["12%", "3"], id="list numbering"),
        pytest.param("## 3. Prices rose 12%\n### 2.1 Outlook", ["12%"], id="heading numbers"),
        pytest.param("See Table 2, Section 3 and Figure 4; Scope 1 and 2 emissions; item #5.", [], id="references"),
        pytest.param("Output rose 12%[1] as noted[^2].", ["12%"], id="footnote markers"),
        pytest.param("On 12 April 2023 and May 3 the 1st and 2nd plants opened.", [], id="dates and ordinals"),
        pytest.param("CO2, PM2.5, gpt-5, Q3, v1.2.3 and 4o.", [], id="numbers inside names"),
        pytest.param("See `max_tokens=800` at https://example.com/2024/12.", [], id="code and links"),
        pytest.param('The brief says "a 42.5% renewable share" and “use 99 sources”.', ["99"],
                     id="a quotation from the prompt is not a claim, a made-up quotation is"),
    ],
)
def test_what_is_not_a_claim(text: str, claims: list[str]) -> None:
    assert [figure.text for figure in find_figures(text, prompt=PROMPT)] == claims


def test_each_figure_keeps_its_span_and_sentence() -> None:
    text = "Coal fell. Wind reached 820 TWh in 2030! Solar too."
    [figure] = find_figures(text)
    assert isinstance(figure, Figure)
    assert text[figure.start:figure.end] == "820 TWh"
    assert figure.sentence == "Wind reached 820 TWh in 2030!"
    assert figure.tolerance == pytest.approx(0.5)


def test_an_unknown_locale_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'xx'"):
        NumberStyle.for_locale("xx")


# -- bounded work ----------------------------------------------------------------------------


def _sites(rows: int) -> pd.DataFrame:
    numbers = np.arange(rows)
    return pd.DataFrame({"site": [f"s{n:04d}" for n in numbers], "coal": numbers * 1.5 + 0.25,
                         "gas": numbers * 0.7 + 3.0, "wind": numbers * 0.3, "solar": numbers * 0.1})


def test_derived_work_depends_on_what_sentences_name_not_on_the_table_size() -> None:
    """50 figures over a 500-cell table, then over 5,000 cells: the same derived values are tried."""
    table = _sites(100)
    sentences = []
    for n in range(25):
        start, end = n, n + 40
        gas = (table.gas[end] - table.gas[start]) / table.gas[start] * 100
        sentences.append(f"At s{n + 10:04d} coal was {table.coal[n + 10]:,.2f} and gas rose {gas:.1f}% "
                         f"from s{start:04d} to s{end:04d}.")
    text = " ".join(sentences)
    small = trace_figures(text, Sources(tables=(SourceTable("sites", table),)))
    large = trace_figures(text, Sources(tables=(SourceTable("sites", _sites(1000)),)))
    assert small.found_count == large.found_count == 50
    assert small.untraced == large.untraced == ()
    assert small.work == large.work
    assert small.work <= 25 * (MAX_NAMED_ROWS * (MAX_NAMED_ROWS - 1) + 2) * 4 * 4  # pairs x steps x columns


# -- the offline provider writes figures the check traces ---------------------------------------


def test_offline_drafts_write_figures_the_check_traces_and_plain_years() -> None:
    frame = CAPACITY.assign(coal_twh=[272.0, 40.0, 9.0, 0.0])
    prompt = f"Write the section on wind.\n\n{to_markdown(frame)}\n"
    provider = OfflineProvider(RunConfig(provider="offline"))
    answer = provider.complete(ChatRequest(model="offline", messages=({"role": "user", "content": prompt},))).text

    check = trace_figures(answer, Sources(tables=(SourceTable("capacity", frame),), prompt=prompt))
    assert check.untraced == (), [f"{f.text}: {f.sentence}" for f in check.untraced]
    assert {item.trace.step for item in check.traced} >= {"cell", "count", "difference", "percent change"}
    assert "year ranges" not in answer
    assert not [f.text for f in find_figures(answer) if "," in f.text and 1800 <= f.value <= 2100]  # no "2,030"


def test_a_column_named_by_its_unit_alone_is_named_by_that_unit() -> None:
    """`twh` says only what the values are measured in; a sentence that says TWh names it (found in a
    family run: every percent change over such a column was flagged)."""
    frame = pd.DataFrame({"year": [2020, 2024], "twh": [100, 112]})
    check = trace_figures("twh went from 100 in 2020 to 112 in 2024, a difference of +12 (+12.0%).",
                          Sources(tables=(SourceTable("gen", frame),)))
    assert check.untraced == ()
    assert [t.trace.step for t in check.traced][-2:] == ["difference", "percent change"]
