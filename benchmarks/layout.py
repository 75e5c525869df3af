"""The package's shape, measured from its imports: rooms, import cycles, imports that go up, largest classes.

    python benchmarks/layout.py            # the table, the cycles and the upward imports
    python benchmarks/layout.py --classes 10

An import is read from the source (every `import`/`from` statement, those inside functions
and under TYPE_CHECKING included), so nothing is imported to measure it. tests/test_layout.py
asserts what this prints: no cycle, no import up a layer.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "report_pipeline"

#: The layers, lowest first. A module may import its own room and any room of a lower layer;
#: two rooms of one layer do not import each other, but for the leaves (config reads errors and
#: models), which the cycle check keeps honest. A room is a subpackage, or a top-level module.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "config", "models", "logs", "text", "lazy", "version", "schemas",
     "checks"),                      # leaves every layer may use (checks: pure, is each figure traced)
    ("workbook", "providers"),       # what the analyst wrote; how a model is reached
    ("ledger",),                     # what was paid for
    ("compare",),                    # what changed between two runs (read from the ledger)
    ("writers",),                    # what the reader gets
    ("run",),                        # plan, schedule and run the tasks
    ("batch",),                      # the same run, through the Batch API in waves
    ("watch",),                      # progress on a terminal or in a log, resource samples
    ("pipeline",),                   # the composition root
    ("app", "bench"),                # a run from a command line; the built-in benchmark
    ("cli",),                        # the command line
    ("__main__", ""),                # `python -m report_pipeline`, and the package's face
)
#: Rooms that stand apart: they import nothing of the package and nothing imports them.
APART = ("simulator",)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = ROOT / PACKAGE) -> dict[str, Path]:
    return {module_name(path): path for path in sorted(package.rglob("*.py"))}


def imports(known: dict[str, Path]) -> Iterator[Import]:
    """Every import of a package module by a package module (a name imported from a package counts as
    the submodule when one of that name exists)."""
    for source, path in known.items():
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(package, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith(PACKAGE) and target in known and target != source:
                    yield Import(source, target, node.lineno)


def _absolute(package: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def room(module: str) -> str:
    """`report_pipeline.run.scheduler` -> `run`; `report_pipeline.pipeline` -> `pipeline`; the face -> ''."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def layer(module: str) -> int | None:
    name = room(module)
    for number, rooms in enumerate(LAYERS):
        if name in rooms:
            return number
    return None


def upward(edges: Iterable[Import]) -> list[str]:
    """Imports that go to a higher layer, or to another room of the same layer."""
    wrong = []
    for edge in edges:
        source_room, target_room = room(edge.source), room(edge.target)
        if source_room == target_room:
            continue
        source_layer, target_layer = layer(edge.source), layer(edge.target)
        if source_room in APART or target_room in APART:
            wrong.append(f"{edge.source}:{edge.line} -> {edge.target} (the {source_room or target_room} stands apart)")
        elif source_layer is None or target_layer is None:
            wrong.append(f"{edge.source}:{edge.line} -> {edge.target} (a room in no layer: add it to LAYERS)")
        elif target_layer > source_layer or (target_layer == source_layer and source_layer > 0):
            wrong.append(f"{edge.source}:{edge.line} -> {edge.target} (layer {source_layer} importing layer {target_layer})")
    return wrong


def unplaced(known: Iterable[str]) -> list[str]:
    """Modules whose room is in no layer and not apart."""
    return sorted(m for m in known if layer(m) is None and room(m) not in APART)


def largest_classes(known: dict[str, Path], count: int) -> list[tuple[int, int, str]]:
    """(lines, methods, module.Class), longest first."""
    sizes = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
                sizes.append((node.end_lineno - node.lineno + 1, methods, f"{name}.{node.name}"))
    return sorted(sizes, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=5, help="how many of the largest classes to list")
    args = parser.parse_args(argv)
    known = modules()
    edges = list(imports(known))
    rooms: dict[str, list[str]] = {}
    for name in known:
        rooms.setdefault(room(name) or "(face)", []).append(name)
    print("| room | layer | modules | lines |\n| --- | --- | --- | --- |")
    for name, members in sorted(rooms.items(), key=lambda item: (layer(item[1][0]) or 0, item[0])):
        lines = sum(len(known[m].read_text().splitlines()) for m in members)
        where = "apart" if name in APART else layer(members[0])
        print(f"| {name} | {where} | {len(members)} | {lines:,} |")
    top_level = [m for m in known if m.count(".") == 1 and known[m].name != "__init__.py"]
    print(f"\n{len(known)} modules, {len(top_level)} of them at the top level, {len(edges)} imports")
    found = cycles(edges)
    print(f"\nimport cycles: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    wrong = upward(edges)
    print(f"imports up a layer or sideways: {len(wrong)}")
    for line in wrong:
        print("  " + line)
    print(f"\nlargest classes (lines, methods):")
    for lines, methods, name in largest_classes(known, args.classes):
        print(f"  {lines:4d} {methods:3d}  {name}")
    return 1 if found or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
