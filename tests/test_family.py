"""A family of reports (`run --each ENTITIES [--shard I/N]`, `merge-runs`): the expansion is pure and
tested without threads; runs go through the real pipeline (offline, and the real openai SDK to the
simulator), real .xlsx and CSV files, real SQLite."""

from __future__ import annotations

import csv
import json
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from report_pipeline.cli import cli
from report_pipeline.config import load_config
from report_pipeline.errors import ConfigError, PromptSheetError
from report_pipeline.ledger.store import Ledger
from report_pipeline.models import DataSource, Entity
from report_pipeline.pipeline import ReportGenerationPipeline
from report_pipeline.providers.offline import OfflineProvider
from report_pipeline.app import family_sheet, load_run_inputs
from report_pipeline.workbook.data import bind_filter, parse_filter, quote_filter_value
from report_pipeline.workbook.family import (
    entity_sources,
    expand_family,
    family_problems,
    family_selection,
    load_entities,
    select_shard,
    shard_of,
)
from report_pipeline.workbook.reader import load_prompt_sheet
from tests.simulator_support import make_simulator  # noqa: F401
from tests.workbooks import make_workbook

KEY = "sk-test-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
COUNTRIES = ("Germany", "France", "Poland")


# -- fixtures: a tiny workbook whose prompts and one filter name the entity ---------------------------


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def family_workbook(folder: Path, *, prompt: str = "Generation in {{ entity.country }}:\n{{ data.gen }}",
                    gen_filter: str = "country == entity.country") -> Path:
    write_csv(folder / "gen.csv", ["country", "year", "twh"],
              [[c, year, 100 + 7 * i + year % 10] for i, c in enumerate(COUNTRIES) for year in (2020, 2024)])
    return make_workbook(
        folder / "wb.xlsx",
        objectives=[{"objective_id": "sum", "title": "Summary"}, {"objective_id": "gen", "title": "Generation"}],
        tasks=[
            {"objective_id": "sum", "task_id": "t1", "depends_on": "gen",
             "prompt": "Summarise for {{ entity.country }} ({{ objective.objective_id }}):\n{{ results[\"gen\"] }}"},
            {"objective_id": "gen", "task_id": "t1", "prompt": prompt, "data": "gen"},
            {"objective_id": "gen", "task_id": "t2", "depends_on": "gen.t1",
             "prompt": "More on {{ entity.country }}, after:\n{{ results[\"gen.t1\"] }}"},
        ],
        data=[{"name": "gen", "path": "gen.csv", "filter": gen_filter}, {"name": "everyone", "path": "gen.csv"}],
        settings={"project_name": "Outlook"},
    )


def entities_csv(folder: Path, names=COUNTRIES, extra: dict[str, list[str]] | None = None) -> Path:
    header = ["country", *(extra or {})]
    rows = [[name, *(values[i] for values in (extra or {}).values())] for i, name in enumerate(names)]
    return write_csv(folder / "entities.csv", header, rows)


def entity(entity_id: str, **fields: str) -> Entity:
    return Entity(entity_id, tuple({**fields, "entity_id": entity_id}.items()), row=2)


def offline_run(sheet_path: Path, out: Path, *, each: Path | str, provider=None, **overrides):
    sheet, config = load_run_inputs(sheet_path, config_path=None,
                                    overrides={"output_dir": out, "each": str(each), **overrides})
    return ReportGenerationPipeline(config, sheet, provider=provider).run()


class CountingProvider(OfflineProvider):
    """The offline provider, counting the calls it answers (a cache hit never reaches it)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.labels: list[str] = []

    def complete(self, request):
        self.labels.append(request.label)
        return super().complete(request)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


_RUN_ID = re.compile(r"20\d{6}-\d{6}-[0-9a-f]{4}")
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?( UTC)?|\b\d+\.\d+\s*s\b")


def masked(text: str) -> str:
    return _TIMES.sub("<time>", _RUN_ID.sub("<run>", text))


# -- the expansion, pure ----------------------------------------------------------------------------


def test_expansion_prefixes_every_objective_and_rewrites_depends_on_within_its_entity(tmp_path):
    sheet = load_prompt_sheet(family_workbook(tmp_path))
    family = expand_family(sheet, [entity("de", country="Germany"), entity("fr", country="France")])
    assert [o.objective_id for o in family.objectives] == ["de~sum", "de~gen", "fr~sum", "fr~gen"]
    assert [o.index for o in family.objectives] == [0, 1, 0, 1]  # each report numbers its chapters alone
    by_key = {t.key: t for t in family.tasks}
    assert by_key["fr~sum.t1"].depends_on == ("fr~gen",)
    assert by_key["fr~gen.t2"].depends_on == ("fr~gen.t1",)
    assert by_key["fr~gen.t2"].entity.field_map() == {"country": "France", "entity_id": "fr"}
    assert family.data_sources == sheet.data_sources  # bound per entity at run time
    assert family.family_ids == ("de", "fr")


def test_selection_by_workbook_ids_or_positions_means_every_entity(tmp_path):
    family = expand_family(load_prompt_sheet(family_workbook(tmp_path)), [entity("de"), entity("fr")])
    assert family_selection(family, ["2"], ["sum.t1"]) == (("de~gen", "fr~gen"), ("de~sum.t1", "fr~sum.t1"))
    assert family_selection(family, None, ["fr~gen.t1"]) == (None, ("fr~gen.t1",))


@pytest.mark.parametrize(("value", "literal"), [
    ("Germany", '"Germany"'),
    ("2024", "2024"),
    ('Say "hi"', "'Say \"hi\"'"),
    ("x\" or country != \"", "'x\" or country != \"'"),  # an injection attempt stays one literal
])
def test_a_bound_value_is_one_quoted_literal_never_code(value, literal):
    assert quote_filter_value(value) == literal
    text = bind_filter('country == entity.country and note == "entity.country"', {"country": value})
    assert text == f'country == {literal} and note == "entity.country"'  # text in quotes is left alone
    conditions = parse_filter(text).groups
    assert len(conditions) == 1 and conditions[0].conditions[0].value.text == value


def test_a_value_with_both_quote_marks_cannot_be_bound():
    with pytest.raises(ValueError, match="both quote marks"):
        quote_filter_value("""it's "odd\"""")


def test_only_sources_whose_filter_names_the_entity_are_its_own():
    sources = {"own": DataSource("own", Path("a.csv"), filter="country == entity.country and year >= 2020"),
               "shared": DataSource("shared", Path("a.csv"), filter="year >= 2020"),
               "plain": DataSource("plain", Path("a.csv"))}
    own = entity_sources(sources, entity("pl", country="Poland"))
    assert list(own) == ["own"]
    assert own["own"].filter == 'country == "Poland" and year >= 2020'


def test_an_entity_keeps_its_shard_when_rows_are_added():
    ids = [f"entity-{n}" for n in range(200)]
    before = {i: shard_of(i, 4) for i in ids}
    after = {i: shard_of(i, 4) for i in [*ids, *(f"new-{n}" for n in range(50))]}
    assert all(after[i] == before[i] for i in ids)
    entities = [entity(i) for i in ids]
    shards = [select_shard(entities, n, 4) for n in (1, 2, 3, 4)]
    assert sorted(e.entity_id for s in shards for e in s) == sorted(ids)  # each exactly once
    assert min(len(s) for s in shards) > 30  # and roughly equal


# -- reading the entities -----------------------------------------------------------------------------


def test_ids_come_from_an_entity_id_column_else_a_slug_of_the_first_column(tmp_path):
    slugged = load_entities(str(entities_csv(tmp_path, ["Côte d'Ivoire", "United Kingdom"])), tmp_path / "wb.xlsx")
    assert [e.entity_id for e in slugged] == ["cote-d-ivoire", "united-kingdom"]
    own = write_csv(tmp_path / "own.csv", ["name", "entity_id", "year"], [["Germany", "DE", 2024]])
    (only,) = load_entities(str(own), tmp_path / "wb.xlsx")
    assert only.entity_id == "DE" and only.field_map() == {"name": "Germany", "entity_id": "DE", "year": "2024"}


def test_entities_may_be_a_sheet_of_the_workbook(tmp_path):
    path = make_workbook(tmp_path / "wb.xlsx", objectives=[{"objective_id": "a", "title": "A"}],
                         tasks=[{"objective_id": "a", "task_id": "1", "prompt": "On {{ entity.country }}"}],
                         raw_sheets={"entities": [["country"], ["Spain"], ["Italy"]]})
    assert [e.entity_id for e in load_entities("entities", path)] == ["spain", "italy"]


@pytest.mark.parametrize(("rows", "expected"), [
    ([["Germany"], ["germany"]], r"entities\.csv!row 3 \(country\): entity id 'germany' is also row 2's"),
    ([], r"no entities: the file needs a header row"),
    ([["!!!"]], r"row 2 \(country\): the first column \(country\) is '!!!' has no letters or digits"),
])
def test_bad_entities_are_refused_naming_the_row(tmp_path, rows, expected):
    path = write_csv(tmp_path / "entities.csv", ["country"], rows)
    with pytest.raises(PromptSheetError, match=expected):
        load_entities(str(path), tmp_path / "wb.xlsx")


def test_a_bad_entity_id_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "e.csv", ["country", "entity_id"], [["Germany", "de/../x"]])
    with pytest.raises(PromptSheetError, match=r"row 2 \(entity_id\): 'de/../x' cannot name a report folder"):
        load_entities(str(path), tmp_path / "wb.xlsx")


# -- checks before anything runs ------------------------------------------------------------------------


def test_entity_outside_a_family_run_is_named_in_prompts_and_filters(tmp_path):
    problems = [str(p) for p in family_problems(load_prompt_sheet(family_workbook(tmp_path)), None)]
    assert "tasks!row 3 (prompt): entity is set only in a family run" in problems[1]
    assert any(p.startswith("data!row 2 (filter): entity.country is set only in a family run") for p in problems)


def test_an_unknown_entity_field_is_named(tmp_path):
    sheet = load_prompt_sheet(family_workbook(tmp_path, prompt="{{ entity.contry }} {{ data.gen }}",
                                              gen_filter="country == entity.nation"))
    problems = [str(p) for p in family_problems(sheet, load_entities(str(entities_csv(tmp_path)), sheet.path))]
    assert "tasks!row 3 (prompt): entity has no field 'contry' (did you mean 'country'?)" in problems[0]
    assert problems[-1].startswith("data!row 2 (filter): entity has no field 'nation'")


# -- runs -------------------------------------------------------------------------------------------------


def test_a_family_writes_one_folder_per_entity_with_only_its_data(tmp_path, make_simulator):
    sim = make_simulator()
    sheet = family_workbook(tmp_path / "wb")
    config = load_config(overrides={"provider": "openai", "base_url": sim.base_url, "model": "sim-small",
                                    "output_dir": tmp_path / "out", "each": str(entities_csv(tmp_path)),
                                    "max_retries": 1, "request_timeout_s": 5},
                         environ={"OPENAI_API_KEY": KEY})
    result = ReportGenerationPipeline(config, family_sheet(load_prompt_sheet(sheet), config)).run()
    assert result.exit_code == 0 and sim.stats()["calls"] == 9
    folders = sorted(p.name for p in (result.run_dir / "entities").iterdir())
    assert folders == ["france", "germany", "poland"]
    for name in folders:
        own = result.run_dir / "entities" / name
        assert {p.name for p in own.iterdir()} >= {"report.md", "report.docx", "report.xlsx", "report.html", "objectives"}
        assert sorted(p.name for p in (own / "objectives").iterdir()) == ["01_summary.csv", "02_generation.csv"]
        assert rows_of(own / "objectives" / "02_generation.csv")[0]["objective_id"] == "gen"
    with Ledger(config.resolved_ledger_path) as ledger:
        prompts = {key: texts[0].prompt for key, texts in ledger.call_texts(result.run_id).items()}
    assert "| Poland | 2020 |" in prompts["poland~gen.t1"] and "Germany" not in prompts["poland~gen.t1"]
    assert "Summarise for Poland (sum)" in prompts["poland~sum.t1"]  # the workbook's own ids in a prompt
    rows = rows_of(result.run_dir / "results.csv")
    assert sorted({r["entity"] for r in rows}) == folders and {r["objective_id"] for r in rows} == {"sum", "gen"}
    manifest = json.loads((result.run_dir / "run.json").read_text(encoding="utf-8"))
    schema = json.loads((files("report_pipeline.schemas") / "run.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(manifest, schema)
    assert [(e["entity_id"], e["folder"], e["counts"]["done"]) for e in manifest["family"]["entities"]] == [
        ("germany", "entities/germany", 3), ("france", "entities/france", 3), ("poland", "entities/poland", 3)]


def test_a_failed_task_stays_in_its_entity(tmp_path):
    class Refusing(OfflineProvider):
        def complete(self, request):
            if request.label.startswith("france~gen.t1"):
                from report_pipeline.errors import ProviderError

                raise ProviderError("refused", status_code=400)
            return super().complete(request)

    sheet = family_workbook(tmp_path / "wb")
    result = offline_run(sheet, tmp_path / "out", each=entities_csv(tmp_path), provider=Refusing(load_config()))
    assert result.exit_code == 1
    status = {(r["entity"], r["objective_id"], r["task_id"]): r["status"] for r in rows_of(result.run_dir / "results.csv")}
    assert status[("france", "gen", "t1")] == "failed" and status[("france", "sum", "t1")] == "skipped"
    assert all(s == "done" for (e, _, _), s in status.items() if e != "france")


def test_resume_mid_family_pays_only_for_what_was_not_done(tmp_path):
    import threading

    from report_pipeline.run.outcome import RunObserver

    class StopAfter(RunObserver):
        def __init__(self, stop: threading.Event) -> None:
            self.stop, self.seen = stop, 0

        def task_finished(self, result):
            self.seen += 1
            if self.seen == 4:
                self.stop.set()

    sheet_path = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path)
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides={
        "output_dir": tmp_path / "out", "each": str(each), "run_objectives_concurrent": False,
        "run_task_concurrent": False})
    stop = threading.Event()
    first = CountingProvider(config)
    stopped = ReportGenerationPipeline(config, sheet, provider=first, stop=stop, observer=StopAfter(stop)).run()
    assert stopped.exit_code == 130
    done = {r.key for r in stopped.results if r.status == "done"}
    # --resume takes `each` from the ledger: no flag needed
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides={"output_dir": tmp_path / "out"},
                                    resume=stopped.run_id)
    again = CountingProvider(config)
    resumed = ReportGenerationPipeline(config, sheet, provider=again, run_id=stopped.run_id, resume=True).run()
    assert resumed.exit_code == 0 and len(done) == 4
    assert len(again.labels) == 9 - 4 and not {label.rsplit(".", 1)[0] for label in again.labels} & done
    assert sorted(p.name for p in (resumed.run_dir / "entities").iterdir()) == ["france", "germany", "poland"]


def test_a_resume_refuses_an_entities_file_edited_since_the_run_started(tmp_path):
    import threading

    sheet_path = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path)
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides={
        "output_dir": tmp_path / "out", "each": str(each)})
    stop = threading.Event()
    stop.set()  # stopped before its first task: everything left for the resume
    stopped = ReportGenerationPipeline(config, sheet, provider=CountingProvider(config), stop=stop).run()
    assert stopped.exit_code == 130
    each.write_text(each.read_text(encoding="utf-8").replace("Poland", "Polska"), encoding="utf-8")
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides={"output_dir": tmp_path / "out"},
                                    resume=stopped.run_id)
    with pytest.raises(ConfigError, match="or the entities file .* changed since that run started"):
        ReportGenerationPipeline(config, sheet, provider=CountingProvider(config), run_id=stopped.run_id,
                                 resume=True).run()


_TIMING = ("started_at", "finished_at", "duration_s")


def entity_files(run_dir: Path) -> dict[str, str]:
    """Each entity's report.md, report.html and chapter CSVs, run ids and times masked (and the CSVs'
    timing columns blanked): what must not depend on how, or in how many processes, the family ran."""
    found = {}
    for path in sorted((run_dir / "entities").rglob("*")):
        if path.suffix in (".md", ".html"):
            found[path.relative_to(run_dir).as_posix()] = masked(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            rows = [{k: ("" if k in _TIMING else v) for k, v in row.items()} for row in rows_of(path)]
            found[path.relative_to(run_dir).as_posix()] = json.dumps(rows)
    return found


def test_two_shards_together_write_what_one_run_writes(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path, [f"Country {n}" for n in range(8)])
    whole = offline_run(sheet, tmp_path / "one", each=each)
    shards = [offline_run(sheet, tmp_path / "shards", each=each, shard=f"{n}/2") for n in (1, 2)]
    together = {**entity_files(shards[0].run_dir), **entity_files(shards[1].run_dir)}
    assert len(together) == 8 * 4 and together == entity_files(whole.run_dir)
    merged = CliRunner().invoke(cli, ["merge-runs", *(str(s.run_dir) for s in shards), "--out", str(tmp_path / "m")])
    assert merged.exit_code == 0, merged.output
    assert "8 entities, 24 done" in merged.output
    summary = json.loads((tmp_path / "m" / "family.json").read_text(encoding="utf-8"))
    assert summary["status"] == "done" and summary["missing_shards"] == [] and len(summary["entities"]) == 8
    assert len(rows_of(tmp_path / "m" / "results.csv")) == 24


def test_merge_names_a_missing_shard_and_refuses_runs_that_do_not_belong_together(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path, [f"Country {n}" for n in range(8)])
    one, two = (offline_run(sheet, tmp_path / "s", each=each, shard=f"{n}/2") for n in (1, 2))
    runner = CliRunner()
    partial = runner.invoke(cli, ["merge-runs", str(one.run_dir), "--out", str(tmp_path / "m")])
    assert partial.exit_code == 0 and "missing shard(s) 2/2" in partial.output
    other = family_workbook(tmp_path / "other", prompt="Other: {{ entity.country }} {{ data.gen }}")
    stranger = offline_run(other, tmp_path / "s", each=each, shard="2/2")
    refused = runner.invoke(cli, ["merge-runs", str(one.run_dir), str(stranger.run_dir), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "ran another workbook" in refused.output
    twice = runner.invoke(cli, ["merge-runs", str(two.run_dir), str(two.run_dir), "--out", str(tmp_path / "x")])
    assert twice.exit_code == 2 and "give one run per shard" in twice.output
    assert not (tmp_path / "x").exists()


# -- the command line: bad input is exit 2, a message, nothing written ----------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "0/4"], "'0/4' is not a shard: write I/N"),
    (["--shard", "5/4"], "'5/4' is not a shard"),
    (["--shard", "half"], "'half' is not a shard"),
])
def test_a_bad_shard_is_exit_2_naming_it(tmp_path, args, message):
    sheet = family_workbook(tmp_path / "wb")
    outcome = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--each", str(entities_csv(tmp_path)),
                                       "--output", str(tmp_path / "out"), *args])
    assert outcome.exit_code == 2 and message in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "out").exists()


def test_input_errors_of_a_family_are_exit_2_and_write_nothing(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    runner = CliRunner()
    out = ["--provider", "offline", "--output", str(tmp_path / "out")]
    empty = write_csv(tmp_path / "empty.csv", ["country"], [])
    cases = [
        (["--each", str(empty)], "no entities"),
        ([], "entity is set only in a family run"),
        (["--shard", "1/2"], "a shard is a slice of a family of reports"),
        (["--each", str(tmp_path / "missing.csv")], "file not found"),
    ]
    for args, message in cases:
        outcome = runner.invoke(cli, ["run", str(sheet), *out, *args])
        assert outcome.exit_code == 2 and message in outcome.output, (args, outcome.output)
        assert "Traceback" not in outcome.output
    assert not (tmp_path / "out").exists()


def test_an_empty_shard_runs_nothing_and_is_not_a_failure(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path, ["Germany"])
    empty = next(n for n in (1, 2, 3) if shard_of("germany", 3) != n)
    outcome = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--each", str(each),
                                       "--shard", f"{empty}/3", "--output", str(tmp_path / "out")])
    assert outcome.exit_code == 0 and "nothing to run" in outcome.output
    assert not (tmp_path / "out").exists()


def test_dry_run_and_validate_count_the_family(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    each = str(entities_csv(tmp_path))
    runner = CliRunner()
    dry = runner.invoke(cli, ["run", str(sheet), "--each", each, "--dry-run", "--output", str(tmp_path / "out")])
    assert dry.exit_code == 0 and "a family of 3 reports" in dry.output and "9 tasks in all" in dry.output
    checked = runner.invoke(cli, ["validate", str(sheet), "--each", each])
    assert checked.exit_code == 0 and "a family of 3 reports" in checked.output


def test_the_reader_refuses_the_separator_in_objective_ids(tmp_path):
    path = make_workbook(tmp_path / "wb.xlsx", objectives=[{"objective_id": "a~b", "title": "A"}],
                         tasks=[{"objective_id": "a~b", "task_id": "1", "prompt": "Hi"}])
    with pytest.raises(PromptSheetError, match=r"'a~b' contains '~'"):
        load_prompt_sheet(path)


def test_a_family_run_after_another_writes_one_changes_md_naming_each_entitys_chapters(tmp_path):
    sheet_path = family_workbook(tmp_path / "wb")
    each = entities_csv(tmp_path)
    overrides = {"output_dir": tmp_path / "out", "each": str(each)}
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides=overrides)
    ReportGenerationPipeline(config, sheet, provider=CountingProvider(config)).run()
    rows = (tmp_path / "wb" / "gen.csv").read_text(encoding="utf-8").replace("France,2024,111", "France,2024,999")
    (tmp_path / "wb" / "gen.csv").write_text(rows, encoding="utf-8")
    sheet, config = load_run_inputs(sheet_path, config_path=None, overrides=overrides)
    second = ReportGenerationPipeline(config, sheet, provider=CountingProvider(config)).run()
    changes = (second.run_dir / "changes.md").read_text(encoding="utf-8")
    assert "## 4. france: Generation" in changes  # a section for the chapter that changed, the entity named
    assert "## 2. germany: Generation" not in changes and "germany: Generation: unchanged" in changes
    assert "changes_md" in second.outputs


def test_the_plain_progress_lines_name_each_chapters_entity(tmp_path):
    sheet = family_workbook(tmp_path / "wb")
    outcome = CliRunner().invoke(cli, ["run", str(sheet), "--provider", "offline", "--each", str(entities_csv(tmp_path)),
                                       "--output", str(tmp_path / "out"), "--no-progress"])
    assert outcome.exit_code == 0, outcome.output
    finished = [line for line in outcome.output.splitlines() if " done (" in line and "objective " in line]
    assert len(finished) == 6
    assert any('"france: Generation" done' in line for line in finished)
