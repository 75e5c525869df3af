"""The package's imports show its design: no cycle (and, once regrouped, no import up a layer)."""

from __future__ import annotations

from benchmarks.layout import Import, cycles, imports, modules


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(imports(modules())) == []


def test_cycles_are_found_through_several_modules() -> None:
    edges = [Import("p.a", "p.b", 1), Import("p.b", "p.c", 1), Import("p.c", "p.a", 1), Import("p.c", "p.d", 1)]
    assert cycles(edges) == [["p.a", "p.b", "p.c"]]


def test_imports_inside_functions_and_from_packages_are_read() -> None:
    found = {(edge.source, edge.target) for edge in imports(modules())}
    assert ("report_pipeline.cli", "report_pipeline.starter") in found or any(
        source == "report_pipeline.cli" and target.endswith(".starter") for source, target in found
    )  # cli imports the starter inside its `init` command
