"""Run the test suite against the newest releases of every dependency, so drift is found here.

The README's commands and CI install the exact releases in `constraints.txt`: a release
published tomorrow cannot turn a fresh clone red. The price is that a user who installs the
package into their own environment gets whatever is newest. This script is how we find out
first: it builds a fresh virtual environment, installs the project with the newest releases
its ranges allow (`--newest`, the default) or the floors `pyproject.toml` declares for its
direct dependencies (`--oldest`), prints each release that differs from constraints.txt, and
runs the suite there.

    python benchmarks/dependency_drift.py                  # newest releases; constraints.txt untouched
    python benchmarks/dependency_drift.py --write          # ... and rewrite constraints.txt if the suite passes
    python benchmarks/dependency_drift.py --oldest         # the declared floors of the direct dependencies
    python benchmarks/dependency_drift.py -- -x -k openai  # arguments after -- go to pytest

Exit code: 0 when the suite passed, 1 when it failed (the failures are printed), 2 when the
environment could not be built.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
HEADER_LINES = 7  # the comment block atop constraints.txt, kept when it is rewritten


def pinned(text: str) -> dict[str, str]:
    """`name==version` lines as {normalised name: version}; comments and blank lines skipped."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (`Jinja2` = `jinja2`, `python_docx` = `python-docx`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(pyproject: Path) -> list[str]:
    """`name==floor` for each direct dependency declared as `name>=floor` (runtime and test)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("test", []))
    pins = []
    for requirement in declared:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)\s*", requirement)
        if match:
            pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Markdown rows for every package whose release differs between two pin sets."""
    rows = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, "-"), after.get(name, "-")
        if old != new:
            rows.append(f"| {name} | {old} | {new} |")
    return rows


def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, text=True, **options)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--newest", action="store_true", help="the newest releases the ranges allow (default)")
    which.add_argument("--oldest", action="store_true", help="the floors declared in pyproject.toml")
    parser.add_argument("--write", action="store_true",
                        help="rewrite constraints.txt with the releases installed, if the suite passes (--newest only)")
    parser.add_argument("--keep", metavar="DIR", help="build the environment in DIR and keep it")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (put them after --)")
    args = parser.parse_args(argv)
    if args.write and args.oldest:
        parser.error("--write records the newest releases; it does not go with --oldest")

    with tempfile.TemporaryDirectory(prefix="drift-") as scratch:
        venv = Path(args.keep or scratch) / "venv"
        python = venv / "bin" / "python"
        if run([sys.executable, "-m", "venv", str(venv)]).returncode:
            return 2
        install = [str(python), "-m", "pip", "install", "-q", "--upgrade", "-e", f"{ROOT}[test]"]
        if args.oldest:
            floor_file = Path(scratch) / "floors.txt"
            floor_file.write_text("\n".join(floors(ROOT / "pyproject.toml")) + "\n")
            install += ["-c", str(floor_file)]
        else:
            install += ["--upgrade-strategy", "eager"]
        if run(install).returncode:
            print("could not install the project with these releases (see pip's message above)", file=sys.stderr)
            return 2
        frozen = run([str(python), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True).stdout
        rows = changes(pinned(CONSTRAINTS.read_text()), pinned(frozen))
        print("\n| package | constraints.txt | installed |\n| --- | --- | --- |")
        print("\n".join(rows) if rows else "| (none) | | |")
        tests = run([str(python), "-m", "pytest", "-p", "no:cacheprovider", *args.pytest_args], cwd=ROOT)
        passed = tests.returncode == 0
        print(f"\nsuite {'passed' if passed else 'FAILED'} with {'the declared floors' if args.oldest else 'the newest releases'}"
              f" ({len(rows)} release(s) differ from constraints.txt)")
        if passed and args.write and rows:
            header = "\n".join(CONSTRAINTS.read_text().splitlines()[:HEADER_LINES])
            lines = sorted((line for line in frozen.splitlines() if line and not line.startswith("#")), key=str.lower)
            CONSTRAINTS.write_text(header + "\n" + "\n".join(lines) + "\n")
            print(f"wrote {CONSTRAINTS.relative_to(ROOT)}: commit it with the table above in the message")
        return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
