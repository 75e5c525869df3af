"""The package's imports show its design: no cycle (and, once regrouped, no import up a layer)."""

from __future__ import annotations

from benchmarks.layout import Import, cycles, imports, modules, unplaced, upward


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(imports(modules())) == []


def test_no_module_imports_a_higher_layer_or_a_room_beside_its_own() -> None:
    assert upward(imports(modules())) == []


def test_every_module_belongs_to_a_layer() -> None:
    assert unplaced(modules()) == []


def test_an_import_up_a_layer_or_sideways_is_reported() -> None:
    edges = [
        Import("report_pipeline.providers.base", "report_pipeline.run.plan", 3),  # up
        Import("report_pipeline.ledger.store", "report_pipeline.writers.atomic", 4),  # sideways
        Import("report_pipeline.run.runner", "report_pipeline.workbook.templates", 5),  # down: fine
        Import("report_pipeline.config", "report_pipeline.errors", 6),  # leaf to leaf: fine
    ]
    assert [line.split(" ")[0] for line in upward(edges)] == [
        "report_pipeline.providers.base:3", "report_pipeline.ledger.store:4",
    ]


def test_cycles_are_found_through_several_modules() -> None:
    edges = [Import("p.a", "p.b", 1), Import("p.b", "p.c", 1), Import("p.c", "p.a", 1), Import("p.c", "p.d", 1)]
    assert cycles(edges) == [["p.a", "p.b", "p.c"]]


def test_imports_inside_functions_and_from_packages_are_read() -> None:
    found = {(edge.source, edge.target) for edge in imports(modules())}
    assert ("report_pipeline.cli", "report_pipeline.workbook.starter") in found or any(
        source == "report_pipeline.cli" and target.endswith(".starter") for source, target in found
    )  # cli imports the starter inside its `init` command
