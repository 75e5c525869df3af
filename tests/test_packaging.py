"""What a fresh clone installs: every import declared, every declared package pinned, the pins inside the ranges."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from benchmarks.dependency_drift import changes, floors, normalise, pinned

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _declared(group: list[str]) -> dict[str, Requirement]:
    return {normalise(Requirement(text).name): Requirement(text) for text in group}


RUNTIME = _declared(PROJECT["dependencies"])
TEST = _declared(PROJECT["optional-dependencies"]["test"])


def _top_level_imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"report_pipeline", "__future__"}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    """{module: the installed distributions that provide it}."""
    provided = importlib.metadata.packages_distributions()
    return {module: {normalise(name) for name in provided.get(module, [])} for module in modules}


def test_every_package_the_code_imports_is_declared_as_a_dependency() -> None:
    missing = {module: dists for module, dists in _distributions(_top_level_imports(ROOT / "report_pipeline")).items()
               if not dists & set(RUNTIME)}
    assert missing == {}, "imported by report_pipeline but not in [project] dependencies"


def test_every_package_the_tests_import_is_declared_for_the_tests() -> None:
    modules = _top_level_imports(ROOT / "tests") - {"tests", "benchmarks"}
    missing = {module: dists for module, dists in _distributions(modules).items()
               if not dists & (set(RUNTIME) | set(TEST) | {"packaging"})}  # packaging comes with pytest
    assert missing == {}, "imported by the tests but not declared in the test extra"


def test_constraints_pin_every_declared_package_inside_its_declared_range() -> None:
    pins = pinned((ROOT / "constraints.txt").read_text())
    outside = {name: (str(requirement.specifier), pins.get(name))
               for name, requirement in {**RUNTIME, **TEST}.items()
               if pins.get(name) is None or not requirement.specifier.contains(pins[name], prereleases=True)}
    assert outside == {}


def test_the_readme_commands_and_ci_install_from_the_constraints_file() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)
    assert len(commands) == 2
    assert all("-c constraints.txt" in command for command in commands)
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_drift_helpers_read_pins_and_list_what_moved() -> None:
    before = pinned("# header\nJinja2==3.1.6\nhttpcore2==2.16.2  # the last good one\n\n")
    after = pinned("jinja2==3.1.6\nhttpcore2==2.17.0\nnew_pkg==1.0\n")
    assert before == {"jinja2": "3.1.6", "httpcore2": "2.16.2"}
    assert changes(before, after) == ["| httpcore2 | 2.16.2 | 2.17.0 |", "| new-pkg | - | 1.0 |"]


def test_oldest_mode_pins_each_declared_floor(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pandas>=2.0", "click"]\n'
                         '[project.optional-dependencies]\ntest = ["pytest>=8.0"]\n')
    assert floors(pyproject) == ["pandas==2.0", "pytest==8.0"]
