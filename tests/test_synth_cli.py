"""`leuksearch synth`: the synthetic smears as an ImageFolder a user can point --data at."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from leukmodels.data.folder import scan_image_folder


def synth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", "synth", *args], capture_output=True, text=True
    )


def test_synth_writes_an_image_folder_with_masks_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "smears"
    r = synth(str(out), "--classes", "4", "--n", "40", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 40
    names = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert names == ["benign", "early_pre_b", "pre_b", "pro_b"]
    assert sum(len(list((out / n).glob("*.png"))) for n in names) == 40
    with open(out / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and all((out / row["mask"]).is_file() for row in rows)
    # the loader sees the four classes, not the masks folder
    source = scan_image_folder(out)
    assert sorted(source.class_names) == names and len(source) == 40


def test_synth_refuses_a_non_empty_folder_and_bad_class_counts(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    r = synth(str(tmp_path / "full"), "--n", "8")
    assert r.returncode == 2 and "not an empty folder" in r.stderr
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    r = synth(str(tmp_path / "new"), "--classes", "3")
    assert r.returncode == 2
