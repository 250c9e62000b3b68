"""pyproject.toml declares exactly what search/ and leukmodels/ import (third-party).

Every top-level import of the two packages (at module level or inside a function) is
mapped to its distribution with ``importlib.metadata.packages_distributions()`` and
compared with ``[project] dependencies``: an undeclared import fails, and so does a
declared distribution nothing imports (optional extras and the few runtime-only
dependencies in :data:`NOT_IMPORTED` excepted).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
OURS = ("search", "leukmodels")
NOT_IMPORTED = {"psycopg": "SQLAlchemy's PostgreSQL driver, chosen by the database URL"}


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(root: Path = ROOT) -> dict[str, set[str]]:
    """Top-level third-party module -> files of search/ and leukmodels/ that import it."""
    found: dict[str, set[str]] = {}
    for package in OURS:
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS:
                        found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalise(Requirement(r).name) for r in project["dependencies"]}


def compare(imported: dict[str, set[str]], declared: set[str]) -> tuple[list[str], list[str]]:
    """(imports whose distribution is not declared, declared distributions never imported)."""
    by_module = packages_distributions()
    missing, used = [], set()
    for module, files in sorted(imported.items()):
        dists = {normalise(d) for d in by_module.get(module, [])}
        if not dists & declared:
            where = ", ".join(sorted(files)[:3])
            missing.append(f"{module} ({'/'.join(sorted(dists)) or 'not installed'}; {where})")
        used |= dists & declared
    unused = sorted(declared - used - set(NOT_IMPORTED))
    return missing, unused


def test_every_import_is_declared_and_every_dependency_imported() -> None:
    missing, unused = compare(imported_modules(), declared())
    assert missing == [], "imported but not in [project] dependencies"
    assert unused == [], "declared in [project] dependencies but never imported"


def test_an_undeclared_import_fails(tmp_path: Path) -> None:
    for package in OURS:
        (tmp_path / package).mkdir()
    (tmp_path / "search" / "new.py").write_text("import pytest\nfrom yaml import safe_load\n")
    missing, unused = compare(imported_modules(tmp_path), {"pyyaml", "torch"})
    assert len(missing) == 1 and missing[0].startswith("pytest (pytest; search/new.py")
    assert unused == ["torch"]
