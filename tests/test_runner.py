"""`leuksearch run` end to end: a real local Ray, real PostgreSQL and SQLite, real training.

The spaces are tiny (32 px synthetic smears, two epochs) so each study takes well under a
minute on two CPUs; everything else is the real thing, driven through the CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy import create_engine, text

from leukmodels.results import Predictions
from search.store.store import Store
from search.store.url import optuna_url, resolve_url

pytestmark = pytest.mark.slow

TINY = """
study: tiny
data:
  dataset: synthetic
  n: 120
  patients: 12
  image_size: 32
  split: {kind: holdout, train: 0.6, val: 0.2, test: 0.2}
search:
  algorithm: tpe
  num_samples: 2
  metric: val_f1
  scheduler: {kind: asha, max_epochs: 2, grace_epochs: 1}
  resources: {cpu: 1}
  max_concurrent: 2
ablation:
  baseline: {attention: none}
  factors: [attention]
space:
  backbone: resnet18
  attention: {choice: [none, se, scab]}
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  optimizer: adam
  epochs: 2
  batch_size: 16
"""


def leuksearch(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEUKSEARCH_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def count(url: str, sql: str, **params: object) -> int:
    engine = create_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar())
    finally:
        engine.dispose()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_run_on_postgres_then_best_and_retrain(tiny: Path, fresh_pg_url: str) -> None:
    cwd = tiny.parent
    r = leuksearch("run", str(tiny), "--db", fresh_pg_url, "--study", "S", "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)  # stdout holds the JSON and nothing else
    assert summary["status"] == "completed"
    assert "trial 1 started" in r.stderr and "completed" in r.stderr
    status = [line for line in r.stderr.splitlines() if line.startswith("-- ")]
    assert status[-1].startswith("-- 5/5 done | running 0 | completed "), status[-1]
    assert "ETA 0s" in status[-1] and "elapsed " in status[-1]
    after_first = [line for line in status if not line.startswith("-- 0/")]
    assert all("| ETA -" not in line for line in after_first)  # from the first trial's end on
    lines = [line for line in r.stderr.splitlines() if not line.startswith("-- ")]
    assert len(lines) == len(set(lines))  # every event once

    with Store.open(fresh_pg_url) as store:
        study = store.study("S")
        assert study.space_hash and study.metric == "val_f1"
        trials = store.trials(study.id)
        # 3 ablation trials (none, se, scab) then 2 TPE trials
        assert len(trials) == 5
        ablation = [t for t in trials if t.kind == "ablation"]
        assert sorted(t.params["attention"] for t in ablation) == ["none", "scab", "se"]
        assert all(t.status == "completed" and t.fidelity == "full" for t in ablation)
        # exploration trials: seeds of their own, none a repeat seed of the ablation set
        explore = [t.seed for t in trials if t.kind == "explore"]
        assert len(set(explore)) == len(explore) == 2
        assert not set(explore) & {t.seed for t in ablation}
        for t in trials:
            assert t.params["backbone"] == "resnet18"
            assert t.status in ("completed", "pruned")
            epochs = store.epochs(t.trial_id)
            assert len(epochs) == t.epochs_done >= 1
            assert [e.epoch for e in epochs] == list(range(1, len(epochs) + 1))
            if t.status == "completed":
                assert t.result.accuracy is not None
                assert len(t.result.confusion) == 2
                assert t.result.params_count > 1_000_000
                assert t.result.extra["epochs_done"] == t.epochs_done
                assert t.result.metrics.class_names == ["normal", "all"]
                # per-image test predictions travel from the worker to the store
                p = Predictions.model_validate(t.result.extra["predictions"])
                assert len(p.y_pred) == sum(map(sum, t.result.confusion)) == len(p.index)
    n_results = count(
        fresh_pg_url,
        "select count(*) from ls_results r join ls_trials t on t.id = r.trial_id "
        "where t.status = 'completed'",
    )
    assert n_results == sum(1 for t in trials if t.status == "completed")
    ostudy = optuna.load_study(study_name="S", storage=optuna_url(fresh_pg_url))
    assert len(ostudy.trials) == len(trials)

    r = leuksearch("best", "--study", "S", "--db", fresh_pg_url, "--top", "3", "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    best = json.loads(r.stdout)
    assert len(best) == 3
    values = [b["value"] for b in best]
    assert values == sorted(values, reverse=True)
    assert all(b["metrics"]["accuracy"] is not None for b in best)

    first = best[0]["trial_id"]
    r = leuksearch(
        "retrain", str(first), "--db", fresh_pg_url, "--json", "--out", str(cwd / "ck"), cwd=cwd
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["retrained_from"] == first
    assert 0.0 <= out["test"]["accuracy"] <= 1.0
    assert Path(out["checkpoint_path"]).is_file()
    with Store.open(fresh_pg_url) as store:
        new = store.trial(out["trial_id"])
        assert new.kind == "retrain" and new.parent_trial_id == first
        assert new.status == "completed" and new.params == store.trial(first).params
        assert [e.epoch for e in new.epochs] == list(range(1, new.epochs_done + 1))


def test_embedded_sqlite_default_and_failed_trial(tiny: Path) -> None:
    cwd = tiny.parent
    bad = tiny.read_text().replace(
        "  backbone: resnet18\n",
        "  backbone: resnet18\n  pretrained: {choice: [null, /nonexistent/weights.pt]}\n",
    )
    bad = bad.replace("num_samples: 2", "num_samples: 1").replace(
        "search:\n", "search:\n  max_failures: 0\n"
    )
    tiny.write_text(bad)
    r = leuksearch("run", str(tiny), "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (cwd / "leuksearch.db").is_file()
    assert "FAILED" in r.stderr
    url = f"sqlite:///{cwd / 'leuksearch.db'}"
    with Store.open(url) as store:
        study = store.study("tiny")
        trials = store.trials(study.id)
        failed = [t for t in trials if t.status == "failed"]
        assert failed, [t.status for t in trials]
        assert all("/nonexistent/weights.pt" in t.params.get("pretrained", "") for t in failed)
        assert all("/nonexistent/weights.pt" in (t.error or "") for t in failed)
        assert study.status == "completed"
    r = leuksearch("best", "--study", "tiny", "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert all(b["params"].get("pretrained") is None for b in json.loads(r.stdout))


def test_interrupted_study_resumes_without_rerunning(tiny: Path, fresh_pg_url: str) -> None:
    cwd = tiny.parent
    slow = (
        tiny.read_text().replace("epochs: 2", "epochs: 4").replace("max_epochs: 2", "max_epochs: 4")
    )
    slow = slow.replace("max_concurrent: 2", "max_concurrent: 1")
    tiny.write_text(slow)
    env = {**os.environ, "LEUKSEARCH_CACHE": str(cwd / "cache")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli",
            "run",
            str(tiny),
            "--db",
            fresh_pg_url,
            "--study",
            "R",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    done_sql = "select count(*) from ls_trials where status = 'completed'"
    while time.time() < deadline:
        time.sleep(2)
        try:
            if count(fresh_pg_url, done_sql) >= 1:
                break
        except Exception:  # tables not created yet
            continue
    else:
        proc.kill()
        pytest.fail("no trial completed within 300 s")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    assert "leuksearch resume --study R" in err

    with Store.open(fresh_pg_url) as store:
        study = store.study("R")
        assert study.status == "interrupted"
        before = {t.tune_trial_id: t for t in store.trials(study.id)}
    completed_before = {k: t for k, t in before.items() if t.status == "completed"}
    assert completed_before

    r = leuksearch("resume", "--study", "R", "--db", fresh_pg_url, "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["status"] == "completed"
    # the resumed callback counts on from the store: the last summary covers all 5 trials
    last = [line for line in r.stderr.splitlines() if line.startswith("-- ")][-1]
    assert last.startswith("-- 5/5 done"), last
    counts = dict(re.findall(r"(completed|pruned|failed) (\d+)", last))
    assert sum(int(n) for n in counts.values()) == 5, last
    with Store.open(fresh_pg_url) as store:
        after = {t.tune_trial_id: t for t in store.trials(store.study("R").id)}
        assert store.study("R").status == "completed"
    assert len(after) == 3 + 2  # the whole budget, each trial once
    for key, t in completed_before.items():
        assert after[key].ended_at == t.ended_at  # not run again
    assert all(t.status in ("completed", "pruned") for t in after.values())


def test_unreachable_cluster_is_exit_2_and_leaves_no_study(tiny: Path) -> None:
    cwd = tiny.parent
    r = leuksearch("run", str(tiny), "--address", "127.0.0.1:1", cwd=cwd, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in r.stderr and "Traceback" not in r.stderr
    with Store.open(f"sqlite:///{cwd / 'leuksearch.db'}") as store:
        assert store.studies() == []


def test_grid_study_runs_every_point_at_full_fidelity(tiny: Path) -> None:
    cwd = tiny.parent
    grid = (
        tiny.read_text()
        .replace("algorithm: tpe", "algorithm: grid")
        .replace("  lr: {loguniform: [1.0e-3, 1.0e-2]}\n", "  lr: 3.0e-3\n")
        .replace("attention: {choice: [none, se, scab]}", "attention: {choice: [none, scab]}")
    )
    tiny.write_text(grid)
    r = leuksearch("run", str(tiny), "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    with Store.open(f"sqlite:///{cwd / 'leuksearch.db'}") as store:
        trials = store.trials(store.study("tiny").id)
    assert sorted(t.params["attention"] for t in trials) == ["none", "scab"]
    assert all(t.kind == "grid" and t.status == "completed" for t in trials)
    assert all(t.fidelity == "full" for t in trials)
