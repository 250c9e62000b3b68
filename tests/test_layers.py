"""Layering and hygiene: leukmodels runs a trial without Ray, Optuna or a database; ruff is clean."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE_ONLY = ("ray", "optuna", "sqlalchemy", "psycopg", "search")

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
"""

TRIAL = """
import json, sys
from leukmodels.config import TrialConfig, DataSpec, TrialParams, SplitSpec
from leukmodels.train import run_trial
cfg = TrialConfig(
    data=DataSpec(dataset="synthetic", n=64, patients=8, image_size=32,
                  split=SplitSpec(train=0.5, val=0.25, test=0.25), cache_dir=sys.argv[1]),
    params=TrialParams(backbone="resnet18", attention="scab", epochs=1, batch_size=16,
                       optimizer="adam", lr=1e-3, test_noise=[0, 5]),
    threads=1,
)
result = run_trial(cfg)
blocked = [m for m in sys.modules if m.split('.')[0] in {blocked!r}]
print(json.dumps({{"accuracy": result.test.accuracy, "noise": sorted(result.noise),
                  "loaded": blocked}}))
"""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_leukmodels_never_imports_the_service_layer() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & set(SERVICE_ONLY))
        for p in (ROOT / "leukmodels").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.slow
def test_leukmodels_runs_a_trial_with_ray_optuna_and_sqlalchemy_unavailable(tmp_path: Path) -> None:
    blocked = ["ray", "optuna", "sqlalchemy", "psycopg", "search"]
    code = BLOCKER.format(blocked=blocked) + TRIAL.format(blocked=blocked)
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = __import__("json").loads(r.stdout.strip().splitlines()[-1])
    assert 0.0 <= out["accuracy"] <= 1.0
    assert out["noise"] == ["0", "5"]
    assert out["loaded"] == []


def _modules(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (``from a import b``: a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_only_the_command_line_imports_the_command_line() -> None:
    """Core modules log through ``logging``; search.cli is the entry point, not a library."""
    allowed = {ROOT / "search" / "cli.py", *(ROOT / "search" / "commands").glob("*.py")}
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*(ROOT / "search").rglob("*.py"), *(ROOT / "leukmodels").rglob("*.py")]
        if p not in allowed and "search.cli" in _modules(p)
    ]
    assert offenders == []


def test_no_private_attributes_of_ray_or_asha_are_read() -> None:
    """Tune's and ASHA's internals change between Ray releases; we keep our own state.
    (Attribute access or ``getattr(obj, "_name")`` alike.)"""
    private = re.compile(r"\b_(local_tuner|run_config|max_t)\b")
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in [*(ROOT / "search").rglob("*.py"), *(ROOT / "leukmodels").rglob("*.py")]
        for m in private.finditer(p.read_text())
    ]
    assert offenders == []


def test_importing_the_service_leaves_the_environment_alone() -> None:
    code = (  # Ray's own import sets variables: ours are compared after it
        "import json, os, ray, ray.tune, optuna, torch; before = dict(os.environ)\n"
        "import search.cli, search.runner, search.tune_callback, search.trainable, search.asha\n"
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    code = BLOCKER.format(blocked=["optuna"]) + "import optuna\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and "blocked in this test" in r.stderr


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
    reason="ruff not installed",
)
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        r = subprocess.run([ruff, *args], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


MAX_FUNCTION_LINES = 80
"""Issue 10: no function in leukmodels/ or search/ is longer (aim: 60)."""


def _long_functions(paths: list[Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` of every def longer than `limit` lines, from the ``def``
    line to its last line (decorators excluded; nested defs counted on their own too)."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in sorted(defs, key=lambda n: n.lineno):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_length_check_counts_from_def_to_the_last_line(tmp_path: Path) -> None:
    lines = "".join(f"x{i} = {i}\n" for i in range(79))
    code = (
        "@decorator\n@other\ndef fits():\n"  # def + 79 lines: 80, decorators not counted
        + textwrap.indent(lines, "    ")
        + "class A:\n    async def method(self):\n"  # def + 80 lines: 81
        + textwrap.indent(lines + "return 1\n", "        ")
        + "def outer():\n    def inner():\n"  # inner 81, outer 82
        + textwrap.indent(lines + "return 1\n", "        ")
    )
    path = tmp_path / "sample.py"
    path.write_text(code)
    assert _long_functions([path]) == [
        f"{path}:84 method (81 lines)",
        f"{path}:165 outer (82 lines)",
        f"{path}:166 inner (81 lines)",
    ]
    assert _long_functions([path], limit=82) == []


def test_no_function_is_longer_than_80_lines() -> None:
    paths = sorted([*(ROOT / "leukmodels").rglob("*.py"), *(ROOT / "search").rglob("*.py")])
    assert len(paths) > 50  # the walk found the packages
    long = [s.replace(f"{ROOT}/", "") for s in _long_functions(paths)]
    assert long == [], "split these functions into helpers (issue 10): " + "; ".join(long)
