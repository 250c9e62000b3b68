"""`leuksearch trial` on real image folders: mixed JPEG sizes, a 3-image class, a truncated file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukmodels.data.synthetic import generate

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "spaces" / "quickstart.yaml"


def write_folder(root: Path, counts: dict[str, int]) -> Path:
    """An ImageFolder of JPEG cell crops of mixed sizes (synthetic cells, resized)."""
    rng = np.random.default_rng(0)
    data = generate(n=sum(counts.values()) * 2, classes=2, size=96, seed=1)
    by_class = {c: iter(np.flatnonzero(data.labels == i)) for i, c in enumerate(data.class_names)}
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        source = by_class["all" if name == "blast" else "normal"]
        for i in range(n):
            img = Image.fromarray(data.images[next(source)])
            w, h = (int(v) for v in rng.integers(60, 160, size=2))
            img.resize((w, h)).save(root / name / f"cell_{i:03d}.jpg", quality=90)
    return root


def trial(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEUKSEARCH_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "search.cli", "trial", str(QUICKSTART), "--profile", "smoke", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )


def test_trial_on_a_folder_with_mixed_sizes_and_a_three_image_class(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "cells", {"blast": 30, "normal": 30, "rare": 3})
    r = trial("--data", str(folder), "--epochs", "1", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["class_names"] == ["blast", "normal", "rare"]
    assert len(out["test"]["confusion"]) == 3
    assert "rare" in r.stderr and "warning" in r.stderr.lower()  # too small to split: kept in train
    assert out["data_report"]["class_counts"]["rare"] == 3
    lines = r.stderr.splitlines()
    assert "epoch 1/1" in r.stderr and len(lines) == len(set(lines))  # every message once


def test_truncated_jpeg_is_named_and_can_be_skipped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "cells", {"blast": 20, "normal": 20})
    bad = folder / "normal" / "cell_007.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    r = trial("--data", str(folder), "--epochs", "1", "--json", cwd=tmp_path)
    assert r.returncode == 2
    assert "cell_007.jpg" in r.stderr and "Traceback" not in r.stderr
    assert "--skip-bad-images" in r.stderr
    assert r.stdout == ""
    r = trial(
        "--data", str(folder), "--epochs", "1", "--skip-bad-images", "--json", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 1/1" not in r.stderr  # --quiet: no progress
    out = json.loads(r.stdout)
    assert out["data_report"]["n_bad_images"] == 1
    assert "cell_007.jpg" in out["data_report"]["bad_images"][0]


def test_missing_dataset_is_exit_2_with_where_it_looked(tmp_path: Path) -> None:
    r = trial("--data", "all_idb2", "--data-root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "nowhere") in r.stderr and "ALL_IDB2" in r.stderr


def test_bad_params_json_is_exit_2(tmp_path: Path) -> None:
    r = trial("--params", '{"attention": "scabb"}', cwd=tmp_path)
    assert r.returncode == 2 and "scabb" in r.stderr and "Traceback" not in r.stderr
    r = trial("--params", "{attention: scab", cwd=tmp_path)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
