"""The two paper-001/002 spaces end to end through the CLI: run (real local Ray, SQLite,
real training) and report. Each runs a test-only ``tiny`` profile (the space's smoke
profile on fewer, smaller images for one or two epochs) so that it takes about a minute;
the spaces' own smoke profiles are timed in spaces/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = {"data.n": 120, "data.patients": 40, "data.image_size": 32}


def _space(tmp_path: Path, name: str, **tiny: object) -> Path:
    raw = yaml.safe_load((ROOT / "spaces" / f"{name}.yaml").read_text())
    raw["profiles"]["tiny"] = {**raw["profiles"]["smoke"], **TINY_DATA, **tiny}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEUKSEARCH_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=900, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _run_and_report(tmp_path: Path, space: Path, study: str) -> tuple[str, str]:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    _cli(tmp_path, "run", str(space), "--profile", "tiny", "--db", db, "--study", study)
    out = tmp_path / "report"
    _cli(tmp_path, "report", "--study", study, "--db", db, "--out", str(out))
    return db, (out / "report.md").read_text()


def _completed(db: str) -> list[tuple[dict, dict]]:
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.params, r.extra FROM ls_trials t JOIN ls_results r "
                "ON r.trial_id = t.id WHERE t.status = 'completed'"
            )
        ).all()
    engine.dispose()
    load = lambda v: json.loads(v) if isinstance(v, str) else v  # noqa: E731
    return [(load(p), load(e)) for p, e in rows]


def test_ddrnet_space_runs_the_8_block_combinations_and_reports_table_6(tmp_path: Path) -> None:
    space = _space(tmp_path, "ddrnet_blocks", **{"space.epochs": 1})
    db, report = _run_and_report(tmp_path, space, "ddr")
    done = _completed(db)
    combos = {(p["drdb"], p["glfeb"], p["csab"]) for p, _ in done}
    assert len(combos) == 8 and all(p["backbone"] == "ddrnet" for p, _ in done)
    table = report.split("## Named configurations against the paper")[1].split("###")[0]
    rows = [line for line in table.splitlines() if line.startswith("| conv")]
    assert len(rows) == 8 and "| conv+CSAB (not in the paper) | 1 |" in table
    assert (
        "| conv+DRDB+GLFEB+CSAB | blood_cells_kaggle | predefined | accuracy | value | 91.98"
        in report
    )
    assert "TRAINING accuracy" in report


def test_mta_space_stores_dice_and_reports_segmentation(tmp_path: Path) -> None:
    space = _space(
        tmp_path,
        "mta_multitask",
        **{"space.epochs": 2, "search.repeats": 1, "ablation.factors": ["task"]},
    )
    db, report = _run_and_report(tmp_path, space, "mta")
    done = _completed(db)
    multi = [e["segmentation"] for p, e in done if p["task"] == "multi"]
    single = [e for p, e in done if p["task"] == "single"]
    assert multi and single and all("segmentation" not in e for e in single)
    for seg in multi:
        assert set(seg) == {"dice_macro", "iou_macro", "dice_pooled", "iou_pooled"}
        assert 0 <= seg["iou_macro"] <= seg["dice_macro"] <= 1
    assert "## Nucleus segmentation (multi-task trials)" in report
    assert "### Single- vs multi-task" in report
    assert "| MTA-CNN | all_taleqani | holdout | dice | value | 95.00" in report
