"""The import rules of `[tool.importlinter]` in pyproject.toml, and no private library names
outside the event store package.

`lint-imports` finds a package's modules in its folder, but ours are spread over the layer
folders by setuptools' `package-dir` mapping (the editable install resolves them with an import
hook that import-linter does not consult). So the test runs `lint-imports` on typecheck/, the
checked-in tree of symbolic links that lays the package out as installed
(`typecheck/dianabot/domain -> domain`, ...; mypy reads it too), with the project's own
configuration, one contract at a time. By hand: `cd typecheck && lint-imports --config
../pyproject.toml`.

Private names: the application must reach the library through its public API only (see
`application/ports.py`); everything that needs the library's internals lives in
`adapters/eventstore`. Checked simply, on the source: an attribute whose name is private in the
library (a method, class or instance attribute the library defines with a leading underscore)
may be used outside that package only by a module that defines the same name itself (its own
attribute), and no module imports a private name from the library.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import eventsourcing
import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
EVENT_STORE = ROOT / "adapters" / "eventstore"


def _lint_imports(contract: str, tree: Path) -> str:
    """Runs one contract on the installed layout of the package; returns the report."""
    executable = Path(sys.executable).with_name("lint-imports")
    command = str(executable) if executable.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is missing: install the dev extras (pip install -e '.[dev]')"
    done = subprocess.run(
        [command, "--no-cache", "--contract", contract, str(PYPROJECT)],
        cwd=tree,  # not the repository root, whose dianabot/ holds only __init__.py
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = done.stdout + done.stderr
    analysed = re.search(r"Analyzed (\d+) files", report)
    assert analysed, report
    ours = sum(1 for _ in _our_sources())
    assert int(analysed.group(1)) > ours, report  # ours and the library's were all read
    assert done.returncode == 0, report
    return report


@pytest.fixture(scope="module")
def installed() -> Path:
    """`dianabot/` as installed: typecheck/ links the layer folders in under their package
    names (the same tree mypy reads); it must follow pyproject's package-dir mapping."""
    tree = ROOT / "typecheck"
    package_dirs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in package_dirs.items():
        linked = tree.joinpath(*name.split("."))
        if name == "dianabot":
            linked = linked / "__init__.py"
            folder = f"{folder}/__init__.py"
        assert linked.resolve() == (ROOT / folder).resolve(), f"typecheck/ lacks {name}"
    return tree


def test_layers_point_one_way(installed: Path) -> None:
    assert "KEPT" in _lint_imports("layers", installed)


def test_domain_and_application_import_no_driver_and_no_persistence_module(
    installed: Path,
) -> None:
    assert "KEPT" in _lint_imports("core-no-drivers", installed)


def test_projections_import_no_driver_and_no_persistence_module(installed: Path) -> None:
    assert "KEPT" in _lint_imports("projections-no-drivers", installed)


# ----- private names of the library ----------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.AST) -> set[str]:
    """Every name a module defines: functions, classes, assigned names and attributes,
    parameters."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


@cache
def _library_private_names() -> frozenset[str]:
    library = Path(eventsourcing.__file__).parent
    names: set[str] = set()
    for source in library.rglob("*.py"):
        if "tests" not in source.relative_to(library).parts:
            names |= {n for n in _defined(ast.parse(source.read_text())) if _private(n)}
    assert {"_record", "_insert_events", "_decode_obj"} <= names  # the scan sees them
    return frozenset(names)


def _our_sources(*layers: str) -> Iterator[Path]:
    for layer in layers or ("domain", "application", "projections", "adapters", "content"):
        yield from (ROOT / layer).rglob("*.py")


def _private_uses(*layers: str) -> list[str]:
    """`file:line name` for each use of a library private name outside the event store."""
    library = _library_private_names()
    found: list[str] = []
    for source in _our_sources(*layers):
        if source.is_relative_to(EVENT_STORE):
            continue
        tree = ast.parse(source.read_text())
        own = _defined(tree)
        where = source.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in library and node.attr not in own:
                found.append(f"{where}:{node.lineno} .{node.attr}")
            elif (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] == "eventsourcing"
            ):
                found += [
                    f"{where}:{node.lineno} import {alias.name}"
                    for alias in node.names
                    if _private(alias.name)
                ]
    return found


def test_the_private_name_check_finds_a_private_call() -> None:
    """The check below would have caught the application calling the library's `_record`."""
    tree = ast.parse("class A:\n    def save(self, e):\n        return self.app._record(e)\n")
    own = _defined(tree)
    uses = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in _library_private_names()
        and node.attr not in own
    ]
    assert uses == ["_record"]


def test_no_private_library_name_outside_the_event_store() -> None:
    assert _private_uses("domain", "application", "adapters", "content") == []


def test_no_private_library_name_in_projections() -> None:
    assert _private_uses("projections") == []
