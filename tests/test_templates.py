"""Prompt templates: the sandbox, the context contract, and the checks made before a run."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from report_pipeline.models import DataSource, Objective, Task
from report_pipeline.workbook.data import DataStore, load_frame
from report_pipeline.workbook.templates import (
    PromptRenderer,
    TemplateRenderError,
    build_context,
    make_environment,
    render_prompt,
    syntax_problem,
    template_problems,
)

OBJECTIVE = Objective(objective_id="MKT", title="Market", description="How the market moved")
TASK = Task(objective_id="MKT", task_id="T1", prompt="", title="Overview")


def context(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "objective": OBJECTIVE,
        "task": TASK,
        "project_name": "Q3 review",
        "data": {"sales": "| a |\n| --- |\n| 1 |"},
        "results": {"MKT.T0": "first text", "OPS.T1": "ops one", "OPS.T2": "ops two"},
        "settings": {"model": "gpt-4o", "tone": "plain"},
    }
    values.update(changes)
    return build_context(**values)


def render(source: str, **changes: Any) -> str:
    return render_prompt(source, context(**changes))


# -- the context contract ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ objective.objective_id }}/{{ objective.title }}: {{ objective.description }}", "MKT/Market: How the market moved"),
        ("{{ task.task_id }} {{ task.title }}", "T1 Overview"),
        ("{{ project.name }}", "Q3 review"),
        ("{{ data.sales }}", "| a |\n| --- |\n| 1 |"),
        ('{{ data["sales"] }}', "| a |\n| --- |\n| 1 |"),
        ('{{ results["MKT.T0"] }}', "first text"),
        ('{{ results["OPS"] }}', "ops one\n\nops two"),
        ("{{ results.OPS }}", "ops one\n\nops two"),
        ("{{ settings.tone }} {{ settings['model'] }}", "plain gpt-4o"),
        ("{% if 'sales' in data %}yes{% endif %}", "yes"),
        ("{% for name in data %}{{ name }}{% endfor %}", "sales"),
        ("{{ task.title | upper }} {{ objective.title | lower | replace('m', 'M') }}", "OVERVIEW Market"),
        ("{% set n = 3 %}{{ n * 2 }}", "6"),
    ],
)
def test_prompt_sees_the_documented_context(source: str, expected: str) -> None:
    assert render(source) == expected


def test_chapter_results_follow_the_order_given() -> None:
    results = {"B.2": "second", "B.1": "first"}  # the caller passes sheet order
    assert render('{{ results["B"] }}', results=results) == "second\n\nfirst"


def test_keys_named_like_dict_methods_are_still_keys() -> None:
    assert render("{{ data.items }}|{{ settings.keys }}", data={"items": "T"}, settings={"keys": "K"}) == "T|K"


def test_data_store_tables_load_only_when_a_prompt_uses_them(tmp_path: Path) -> None:
    used = tmp_path / "used.csv"
    used.write_text("a\n1\n", encoding="utf-8")
    loaded: list[str] = []

    def loader(source: DataSource) -> pd.DataFrame:
        loaded.append(source.name)
        return load_frame(source)

    store = DataStore(
        {"used": DataSource(name="used", path=used), "unused": DataSource(name="unused", path=tmp_path / "gone.csv")},
        loader=loader,
    )
    assert render("{{ data.used }}", data=store) == "| a |\n| ---: |\n| 1 |"
    assert loaded == ["used"]


def test_a_broken_table_fails_the_render_with_its_reason(tmp_path: Path) -> None:
    store = DataStore({"gone": DataSource(name="gone", path=tmp_path / "gone.csv")})
    with pytest.raises(TemplateRenderError, match="data source 'gone': file not found"):
        render("{{ data.gone }}", data=store)


def test_context_values_are_read_only() -> None:
    with pytest.raises(TemplateRenderError):
        render("{% set x = settings.update({'model': 'x'}) %}")
    with pytest.raises(TemplateRenderError):
        render("{% set l = [1] %}{{ l.append(2) }}")


# -- render errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ nope }}", "'nope' is undefined"),
        ("{{ data.salse }}", "data has no 'salse' (known: sales)"),
        ('{{ results["X.1"] }}', "results has no 'X.1'"),
        ("{{ objective.titel }}", "objective has no 'titel' (known: objective_id, title, description)"),
        ("{{ settings.missing }}", "settings has no 'missing'"),
    ],
)
def test_unknown_names_fail_loudly_instead_of_rendering_empty(source: str, says: str) -> None:
    with pytest.raises(TemplateRenderError, match=re.escape(says)):
        render(source)


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateRenderError, match=r"template syntax error on line 2: .* — line 2 reads: \{\{ task.title }"):
        render("first line\n{{ task.title }\nthird")


# -- the sandbox ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ range(3) | list }}",
        "{{ dict(a=1) }}",
        "{{ objective.__class__ }}",
        "{{ data.__dict__ }}",
        "{{ settings._get }}",
        "{{ objective['__class__'] }}",
        "{{ '{0.__class__}'.format(task) }}",
        "{{ task.title.__class__.__base__.__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ 'a' * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{{ objective | pprint }}",
    ],
)
def test_sandbox_escapes_are_errors_not_escapes(source: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(source)


def test_sandbox_error_says_it_was_blocked() -> None:
    with pytest.raises(TemplateRenderError, match="blocked by the template sandbox: access to attribute '__class__'"):
        render("{{ ''.__class__ }}")


def test_render_errors_are_value_errors() -> None:
    assert issubclass(TemplateRenderError, ValueError)


# -- the renderer ---------------------------------------------------------------------------------


def test_each_source_compiles_once() -> None:
    renderer = PromptRenderer()
    assert renderer.compile("{{ task.title }}") is renderer.compile("{{ task.title }}")


def test_compiled_templates_render_directly() -> None:
    renderer = PromptRenderer()
    compiled = renderer.compile("{{ task.title }}!")
    assert render_prompt(compiled, context()) == "Overview!"


def test_one_renderer_serves_many_threads() -> None:
    renderer = PromptRenderer()
    sources = [f"{{{{ task.task_id }}}}-{i}" for i in range(20)]

    def work(i: int) -> str:
        task = Task(objective_id="MKT", task_id=f"T{i}", prompt="")
        return renderer.render(sources[i % 20], context(task=task))

    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(work, range(200)))
    assert outputs == [f"T{i}-{i % 20}" for i in range(200)]


# -- static checks ----------------------------------------------------------------------------------


def problems(source: str, *, data: tuple[str, ...] = ("sales",), deps: tuple[str, ...] = (), settings: tuple[str, ...] | None = None) -> list[str]:
    return template_problems(source, data_names=data, dependency_keys=deps, settings_keys=settings)


def test_a_good_template_has_no_problems() -> None:
    source = (
        "{{ project.name }}: {{ objective.title }} / {{ task.title }}\n"
        "{{ data.sales }}\n"
        '{% for r in [1, 2] %}{{ loop.index }}{% endfor %}{{ results["A.1"] }}{{ results.B }}'
    )
    assert problems(source, deps=("A.1", "B")) == []


def test_syntax_error_gives_the_line_number_and_the_line() -> None:
    assert problems("Hello\n{{ task.title }\nmore") == [
        "template syntax error on line 2: unexpected '}' — line 2 reads: {{ task.title }"
    ]


def test_unclosed_block_points_at_the_line_jinja_names() -> None:
    (found,) = problems("Hello\n{% if task.title %}\nno end")
    assert found.startswith("template syntax error on line 2: Unexpected end of template.")
    assert found.endswith("— line 2 reads: {% if task.title %}")


def test_unknown_variable_is_named_with_a_suggestion() -> None:
    assert problems("{{ objectve.title }}") == [
        "unknown variable 'objectve' (did you mean 'objective'?) — a prompt may use objective, task, data, results, project, settings"
    ]


def test_unknown_filter_is_a_syntax_problem() -> None:
    assert "No filter named 'shout'" in problems("{{ task.title | shout }}")[0]


@pytest.mark.parametrize("source", ["{{ data.sale }}", '{{ data["sale"] }}'])
def test_unknown_data_source_is_named(source: str) -> None:
    assert problems(source) == [
        "unknown data source 'sale' (did you mean 'sales'?) in data.sale — add it to the data sheet (known: sales)"
    ]


@pytest.mark.parametrize("source", ['{{ results["B.2"] }}', "{{ results.B }}"])
def test_result_outside_depends_on_tells_the_analyst_to_add_it(source: str) -> None:
    key = "B.2" if "B.2" in source else "B"
    assert problems(source, deps=("A.1",)) == [f'results["{key}"] is not a dependency of this task — add {key} to its depends_on']


def test_misspelt_field_of_a_record_is_named() -> None:
    assert problems("{{ task.titel }}") == ["task has no field 'titel' (did you mean 'title'?) — use task_id, title"]


def test_settings_keys_are_checked_when_known() -> None:
    assert problems("{{ settings.tone }}") == []
    assert problems("{{ settings.tone }}", settings=("model",)) == [
        "settings.tone is not set in the settings sheet — add a row with key tone and a value (set: model)"
    ]


def test_underscore_access_is_reported_before_the_run() -> None:
    assert problems("{{ task.title.__class__ }}") == [".__class__ is not allowed in a prompt: names starting with _ are blocked"]


def test_computed_keys_cannot_be_checked_and_are_left_to_the_render() -> None:
    assert problems("{% for n in ['a'] %}{{ data[n] }}{% endfor %}") == []


def test_a_template_variable_shadowing_a_context_name_is_not_checked_as_it() -> None:
    assert problems("{% set data = {'x': 1} %}{{ data.x }}") == []


def test_every_problem_is_listed() -> None:
    found = problems("{{ foo }} {{ data.nope }} {{ results['Z.1'] }}")
    assert len(found) == 3


def test_syntax_problem_checks_only_syntax() -> None:
    assert syntax_problem("{{ draft }} and {{ anything }}") is None
    assert syntax_problem("{{ draft }") == "template syntax error on line 1: unexpected '}' — line 1 reads: {{ draft }"


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{% include 'x' %}", "{% include %} is not allowed"),
        ("{% import 'x' as y %}", "{% import %} is not allowed"),
        ("{% extends 'x' %}", "{% extends %} is not allowed"),
        ("{{ objective|attr('__class__') }}", "|attr(...) is not allowed"),
        ("{{ '{0.__class__}'.format(objective) }}", "reaches a name starting with _"),
    ],
)
def test_what_the_sandbox_would_refuse_at_render_time_is_a_problem_before_the_run(source: str, says: str) -> None:
    problems = template_problems(source, data_names=(), dependency_keys=())
    assert any(says in problem for problem in problems), problems


def test_plain_attr_and_format_stay_allowed() -> None:
    assert template_problems("{{ objective|attr('title') }} {{ '{0}'.format(task.title) }}",
                             data_names=(), dependency_keys=()) == []


@pytest.mark.parametrize(
    "source",
    ["{{ 'x'|center(300000000) }}", "{{ '%300000000s'|format('x') }}", "{{ '%300000000s' % 'x' }}",
     "{{ '{:>300000000}'.format('x') }}", "{{ 'x'|indent(300000000, true) }}"],
)
def test_a_huge_width_is_refused_before_it_is_allocated(source: str) -> None:
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError, match="too large for a prompt"):
        make_environment().from_string(source).render()


def test_ordinary_widths_and_percent_still_work() -> None:
    rendered = make_environment().from_string("{{ 'x'|center(5) }}|{{ '%5.1f'|format(2.25) }}|{{ '%d%%' % 7 }}|{{ '{:>4}'.format('a') }}").render()
    assert rendered == "  x  |  2.2|7%|   a"
