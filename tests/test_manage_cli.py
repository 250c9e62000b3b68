"""`trials`, `export` and `delete` on a real store; `export` -> `trial --config` reproduces
a really trained trial's test metrics; `delete` leaves no row in our tables or Optuna's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from factories import trial_result
from sqlalchemy import create_engine, text

from leukmodels.metrics import classification_metrics
from leukmodels.train import run_trial
from search.cli import main
from search.space import load_space
from search.store.records import StudyRecord, TrialUpdate
from search.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "spaces" / "quickstart.yaml"


def _planted_study(url: str, tmp_path: Path, train: bool = True) -> tuple[int, int, int]:
    """A study with one completed trial (really trained, or a planted result), one failed
    and one pruned trial, and its Optuna study; returns (completed, failed, pruned) ids."""
    space = load_space(QUICKSTART, "smoke")
    overrides = {"n": 96, "image_size": 32, "cache_dir": str(tmp_path / "cache")}
    config = space.trial_config(space.baseline(), seed=3, overrides=overrides)
    config.params.epochs = 1
    config.threads = 1
    with Store.open(url) as store:
        sid = store.ensure_study(
            StudyRecord(name="cli-manage", space_yaml=space.text, space_hash=space.hash,
                        metric="val_f1", mode="max", profile="smoke")
        )  # fmt: skip
        done = store.upsert_trial(
            sid, "t1", TrialUpdate(params=space.baseline(), config=config.model_dump(mode="json"),
                                   kind="ablation", seed=3)
        )  # fmt: skip
        if train:
            result = run_trial(config, on_epoch=lambda row: store.record_epoch(done, row))
        else:
            proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
            result = trial_result(
                classification_metrics(np.array([0, 1, 1, 0, 1]), proba, ["a", "b"])
            )
            for row in result.epochs:
                store.record_epoch(done, row)
        store.record_result(done, result)
        failed = store.upsert_trial(sid, "t2", TrialUpdate(params={"attention": "scab"}))
        store.finish_trial(failed, "failed", error="Traceback ...\nRuntimeError: out of memory")
        pruned = store.upsert_trial(sid, "t3", TrialUpdate(params={"attention": "cbam"}))
        store.finish_trial(pruned, "pruned", epochs_done=1)
        optuna.create_study(study_name="cli-manage", storage=store.optuna_url).enqueue_trial({})
    return done, failed, pruned


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_trials_and_delete(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done, failed, pruned = _planted_study(store_url, tmp_path, train=False)
    rows = _json(capsys, "trials", "--study", "cli-manage", "--db", store_url, "--json")
    assert [r["trial_id"] for r in rows] == [done, failed, pruned]
    first = rows[0]
    assert first["status"] == "completed" and first["kind"] == "ablation"
    assert first["metric"] == "val_f1" and 0.0 <= first["value"] <= 1.0
    assert first["duration_s"] > 0 and first["params"]["backbone"] == "resnet18"
    only = _json(capsys, "trials", "--study", "cli-manage", "--db", store_url, "--status",
                 "failed", "--json")  # fmt: skip
    assert [r["trial_id"] for r in only] == [failed]
    assert only[0]["error"].endswith("RuntimeError: out of memory")
    assert main(["trials", "--study", "cli-manage", "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "error: RuntimeError: out of memory" in out and "pruned" in out

    # delete: asked (no terminal here: refused), then --yes; no row is left anywhere
    assert main(["delete", "--study", "cli-manage", "--db", store_url]) == 2
    out = _json(capsys, "delete", "--study", "cli-manage", "--db", store_url, "--yes", "--json")
    assert out["deleted_rows"]["ls_trials"] == 3 and out["optuna_study_deleted"] is True
    _assert_no_rows(store_url)
    assert main(["trials", "--study", "cli-manage", "--db", store_url]) == 2


@pytest.mark.slow
def test_export_then_trial_config_reproduces_the_test_metrics(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done, _, _ = _planted_study(sqlite_url, tmp_path)
    store_url = sqlite_url
    # export -> trial --config on another "machine": a new working folder, no database
    exported = tmp_path / "trial.yaml"
    assert main(["export", str(done), "--db", store_url, "--out", str(exported)]) == 0
    doc = yaml.safe_load(exported.read_text())
    assert doc["config"]["params"]["seed"] == 3 and doc["source"]["trial_id"] == done
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "search.cli", "trial", "--config", str(exported), "--json"],
        capture_output=True, text=True, cwd=elsewhere, timeout=600,
        env={**os.environ, "LEUKSEARCH_CACHE": str(tmp_path / "cache2")},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(r.stdout)["test"]
    stored = doc["source"]["test_metrics"]
    for key in ("accuracy", "f1"):  # same seed, data, threads: the same numbers on one machine
        assert again[key] == pytest.approx(stored[key], abs=1e-6), key
    assert not (elsewhere / "leuksearch.db").exists()
    # retrain --config: the same file, its checkpoint kept, nothing recorded
    out_dir = tmp_path / "ckpt"
    argv = ["retrain", "--config", str(exported), "--out", str(out_dir), "--json"]
    assert main(argv) == 0
    retrained = json.loads(capsys.readouterr().out)
    assert retrained["test"]["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-6)
    assert Path(retrained["checkpoint_path"]).is_file()


def _assert_no_rows(url: str) -> None:
    with Store.open(url) as store:
        engine = create_engine(store.url)
    with engine.connect() as conn:
        for table in ("ls_studies", "ls_trials", "ls_epochs", "ls_results", "studies", "trials"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    engine.dispose()
    assert optuna.get_all_study_names(storage=url) == []


def test_export_and_config_errors_are_one_line(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "999", "--db", sqlite_url]) == 2
    assert "no trial 999" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: something-else\nconfig: {}\n")
    assert main(["trial", "--config", str(bad)]) == 2
    assert "not a trial configuration exported by `leuksearch export`" in capsys.readouterr().err
    assert main(["trial", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["retrain", "--config", str(bad), "7"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["trial"]) == 2
