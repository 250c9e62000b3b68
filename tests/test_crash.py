"""Crash-proof studies: SIGKILL the driver (and a trial's worker) at points read from the
database, resume, and check that every budgeted trial ended exactly once, with no trial
run again after it completed, no duplicate epoch rows, and Optuna agreeing with our store.

Real local Ray, real PostgreSQL, real training of a tiny model on 32 px synthetic smears.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, text

from search.store.store import Store
from search.store.url import optuna_url, resolve_url
from search.trial_state import EPOCH_FILE, STATE_FILE

pytestmark = pytest.mark.slow

SPACE = """
study: crash
data:
  dataset: synthetic
  n: 60
  patients: 12
  image_size: 32
  split: {kind: holdout, train: 0.6, val: 0.2, test: 0.2}
search:
  algorithm: tpe
  num_samples: 2
  metric: val_f1
  max_concurrent: 1
  max_failures: 2
  resources: {cpu: 1}
  checkpoint: {every_epochs: 1}  # epochs here take a second: the default would wait 60 s
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
BUDGET = 5


def _env(cwd: Path) -> dict[str, str]:
    return {**os.environ, "LEUKSEARCH_CACHE": str(cwd / "cache")}


def start(cwd: Path, *args: str) -> subprocess.Popen:
    """The CLI in its own session, so a kill can reach what the driver leaves behind."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args],
        cwd=cwd,
        env=_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def scalar(url: str, sql: str) -> int:
    engine = create_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:  # tables not made yet
        return 0
    finally:
        engine.dispose()


def wait_for(proc: subprocess.Popen, check: Callable[[], bool], what: str, limit: float = 240):
    """Poll ``check`` until it holds; False when the process ended first."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if check():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.3)
    kill(proc)
    pytest.fail(f"{what} did not happen within {limit} s")


def kill(proc: subprocess.Popen) -> str:
    """SIGKILL the driver, then whatever of its session is left (Ray's own processes)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if os.environ.get("CRASH_LOG_DIR"):
        (Path(os.environ["CRASH_LOG_DIR"]) / f"{time.time():.0f}.log").write_text(err)
    return err


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def trial_worker(driver: int) -> int | None:
    """The pid of the Ray worker running a trial under ``driver``."""
    for pid in descendants(driver):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::ImplicitFunc"):
            return pid
    return None


ENDED = "select count(*) from ls_trials where status in ('completed', 'pruned', 'failed')"
COMPLETED = "select count(*) from ls_trials where status = 'completed'"
RUNNING_EPOCHS = (
    "select count(*) from ls_epochs e join ls_trials t on t.id = e.trial_id "
    "where t.status = 'running'"
)


def cut_short_copy(experiment: Path, url: str) -> None:
    """Leave a newer checkpoint of the running trial whose state file a kill cut in half
    (Tune copies a checkpoint's files in parallel): the resume must pass it over."""
    with Store.open(url) as store:
        key = next(t.tune_trial_id for t in store.trials(store.study("C").id, "running"))
    (folder,) = experiment.glob(f"*_{key}")
    whole = sorted(folder.glob("checkpoint_*"))[-1]
    cut = folder / "checkpoint_999999"
    cut.mkdir()
    data = (whole / STATE_FILE).read_bytes()
    (cut / STATE_FILE).write_bytes(data[: len(data) // 2])
    (cut / EPOCH_FILE).write_text(json.dumps({"epoch": 99}))


def completed_ends(url: str) -> dict[str, str]:
    with Store.open(url) as store:
        study = store.study("C")
        if study is None:
            return {}
        return {t.tune_trial_id: t.ended_at for t in store.trials(study.id, "completed")}


def test_sigkill_at_every_point_then_resume_finishes_exactly_once(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    url = fresh_pg_url
    (tmp_path / "space.yaml").write_text(SPACE)
    resume = ("resume", "--study", "C", "--db", url)

    # 1. killed before the first trial started: no Ray experiment state yet
    proc = start(tmp_path, "run", "space.yaml", "--db", url, "--study", "C")
    wait_for(proc, lambda: scalar(url, "select count(*) from ls_studies") == 1, "study row")
    kill(proc)
    assert scalar(url, "select count(*) from ls_trials") == 0

    # 2. a trial's worker killed mid-trial: Tune retries it into the same row; then the
    #    driver killed mid-trial
    proc = start(tmp_path, *resume)
    wait_for(proc, lambda: scalar(url, RUNNING_EPOCHS) >= 1, "a first epoch")
    worker = trial_worker(proc.pid)
    assert worker is not None, "no trial worker found"
    os.kill(worker, signal.SIGKILL)
    wait_for(proc, lambda: scalar(url, COMPLETED) >= 1, "a completed trial")
    wait_for(proc, lambda: scalar(url, RUNNING_EPOCHS) >= 1, "a second trial's epoch")
    err = kill(proc)
    assert "failed and will be retried" in err, err[-3000:]
    done = completed_ends(url)
    cut_short_copy(tmp_path / "runs" / "C", url)

    # 3. killed just after a trial ended (before Tune's next experiment checkpoint)
    proc = start(tmp_path, *resume)
    n = len(done)
    wait_for(proc, lambda: scalar(url, COMPLETED) > n, "another completed trial")
    err = kill(proc)
    # the trial cut mid-trial went on from its last checkpoint, not from scratch
    assert "resume: trial " in err and "continues from " in err, err[-3000:]
    assert all(completed_ends(url)[k] == v for k, v in done.items())  # never rerun
    done = completed_ends(url)

    # 4. killed once every trial has ended (the final summary), unless it finished first
    proc = start(tmp_path, *resume)
    if wait_for(proc, lambda: scalar(url, ENDED) >= BUDGET, "the whole budget"):
        kill(proc)
    else:
        proc.communicate(timeout=60)
    assert all(completed_ends(url)[k] == v for k, v in done.items())

    # 5. resume (if the study is not completed yet) finishes it
    with Store.open(url) as store:
        status = store.study("C").status
    if status != "completed":
        r = subprocess.run(
            [sys.executable, "-m", "search.cli", *resume, "--json"],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        assert json.loads(r.stdout)["status"] == "completed"
    _check_consistent(url, done)


def _check_consistent(url: str, done: dict[str, str]) -> None:
    with Store.open(url) as store:
        study = store.study("C")
        trials = store.trials(study.id)
        epochs = {t.trial_id: store.epochs(t.trial_id) for t in trials}
    assert study.status == "completed"
    assert len(trials) == BUDGET, [(t.tune_trial_id, t.status) for t in trials]
    assert all(t.status in ("completed", "pruned") for t in trials), [
        (t.tune_trial_id, t.status, (t.error or "")[-1500:]) for t in trials
    ]
    for t in trials:
        assert [e.epoch for e in epochs[t.trial_id]] == list(range(1, t.epochs_done + 1))
    assert all(
        {t.tune_trial_id: t.ended_at for t in trials}[k] == v for k, v in done.items()
    )  # trials completed before a kill were never run again
    assert scalar(url, "select count(*) from (select trial_id, epoch from ls_epochs "
                  "group by trial_id, epoch having count(*) > 1) d") == 0  # fmt: skip
    ostudy = optuna.load_study(study_name="C", storage=optuna_url(url))
    states = {t.number: t.state for t in ostudy.trials}
    expect = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}
    assert {t.optuna_number: expect[t.status] for t in trials}.items() <= states.items()
    left = [n for n, s in states.items() if s in (TrialState.RUNNING, TrialState.WAITING)]
    assert left == [], states
    assert len({t.optuna_number for t in trials}) == BUDGET


def test_every_trial_failing_is_exit_1_with_one_line_each_and_no_retry(tmp_path: Path) -> None:
    """A UserError inside a trial (unreadable weights) is not retried; the study fails."""
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"")
    space = (
        SPACE.replace("num_samples: 2", "num_samples: 0")
        .replace("[none, se, scab]", "[none, se]")
        .replace("  optimizer: adam\n", f"  optimizer: adam\n  pretrained: {bad}\n")
    )
    (tmp_path / "space.yaml").write_text(space)
    r = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", "space.yaml", "--study", "F", "--json"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["status"] == "failed"
    assert "could not be read as a state dict" in summary["error"]
    assert "Traceback" not in r.stderr and "will be retried" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("FAILED: UserError: pretrained weights") == 2, r.stderr[-3000:]
    with Store.open(f"sqlite:///{tmp_path / 'leuksearch.db'}") as store:
        trials = store.trials(store.study("F").id)
    assert [t.status for t in trials] == ["failed", "failed"]
    assert all("Traceback" in t.error and "state dict" in t.error for t in trials)


def test_empty_test_split_is_exit_2_before_ray_starts(tmp_path: Path) -> None:
    """80 images of 8 patients split 60/20/20 by patient leave the test set empty."""
    space = SPACE.replace("n: 60", "n: 80").replace("patients: 12", "patients: 8")
    (tmp_path / "space.yaml").write_text(space)
    r = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", "space.yaml", "--study", "E"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-3000:]
    assert "split of synthetic is empty" in r.stderr and "Traceback" not in r.stderr
    assert "Ray" not in r.stderr  # it stopped before starting Ray
    with Store.open(f"sqlite:///{tmp_path / 'leuksearch.db'}") as store:
        assert store.studies() == []
