"""Reaching a cluster, storage paths and secrets, without starting Ray (fast).

``pytest -k cluster`` selects these with the multi-node tests of ``test_cluster.py``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from leukmodels.errors import UserError
from search.cli import main
from search.cluster import jobs_command, refuse_ray_client
from search.optuna_storage import MaskedRDBStorage
from search.storage import experiment_path, split_experiment, storage_root
from search.store import credentials
from search.store.engine import create_store_engine
from search.store.migrations import MIGRATIONS, migrate, schema_version
from search.store.records import StudyRecord
from search.store.store import Store
from search.store.url import resolve_url
from search.tune_callback import node_update

SECRET = "S3cretPw"
TINY = """
study: tiny
data: {dataset: synthetic, n: 60, image_size: 32}
search: {algorithm: random, num_samples: 1, metric: val_f1, resources: {cpu: 1}}
space: {backbone: resnet18, epochs: 1, batch_size: 8}
"""


def with_password(url: str) -> str:
    """The test server is trust-auth: any password connects, so a planted one is harmless."""
    return make_url(resolve_url(url)).set(password=SECRET).render_as_string(hide_password=False)


# -- the three ways to reach a cluster ---------------------------------------------------


def test_cluster_ray_client_refused_with_the_jobs_line(tmp_path: Path, capsys) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    argv = ["run", str(space), "--db", db, "--address", "ray://10.0.0.5:10001", "--study", "s1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Ray Client" in err and "Traceback" not in err
    line = (
        f"ray job submit --address http://10.0.0.5:8265 --working-dir . -- leuksearch run {space}"
    )
    assert line in err
    assert err.count("--address auto") == 1 and "ray://" not in err.split("instead:")[1]
    assert not (tmp_path / "x.db").exists()  # refused before anything was created
    assert main(["resume", "--study", "s1", "--address=ray://h:10001"]) == 2
    assert "ray job submit --address http://h:8265" in capsys.readouterr().err


def test_cluster_jobs_command_rewrites_only_the_address() -> None:
    line = jobs_command("ray://head:10001", ["run", "a b.yaml", "--address", "ray://head:10001"])
    assert line.endswith("-- leuksearch run 'a b.yaml' --address auto")
    assert jobs_command("ray://head", ["run", "s.yaml"]).endswith("run s.yaml --address auto")
    pw = f"postgresql://u:{SECRET}@db:5432/x"
    for argv in (["run", "s.yaml", "--db", pw], ["run", "s.yaml", f"--db={pw}"]):
        line = jobs_command("ray://head:10001", argv)
        assert SECRET not in line and "u:***@db" in line
    refuse_ray_client("auto")  # not Ray Client: nothing to refuse
    with pytest.raises(UserError, match="Ray Client"):
        refuse_ray_client("ray://head:10001")


# -- storage -----------------------------------------------------------------------------


def test_cluster_storage_paths_and_uris(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage_root(None) == str(tmp_path / "runs")
    assert storage_root("rel/dir") == str(tmp_path / "rel" / "dir")
    for uri in ("s3://bucket/leuk", "gs://bucket/a/b", "file:///mnt/runs"):
        assert storage_root(uri + "/") == uri  # unchanged, not ./s3:/bucket
        assert experiment_path(uri, "study-1") == uri + "/study-1"
        assert split_experiment(experiment_path(uri, "study-1")) == (uri, "study-1")
    assert experiment_path(str(tmp_path), "s") == str(tmp_path / "s")
    for bad, why in (
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("s3://", "names no bucket"),
        ("s3://key:secret@bucket/x", "no credentials"),
    ):
        with pytest.raises(UserError, match=why):
            storage_root(bad)
    with pytest.raises(UserError, match="not allowed"):
        experiment_path("s3://bucket", "../escape")


def test_cluster_bad_storage_uri_is_exit_2_before_anything(tmp_path: Path, capsys) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", str(space), "--db", db, "--storage-path", "ftp://h/x"]) == 2
    assert "unknown scheme 'ftp'" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_cluster_resume_honours_storage_path(tmp_path: Path, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with Store.open(db) as store:
        study_id = store.ensure_study(
            StudyRecord(
                name="moved", space_yaml=TINY, space_hash="h", metric="val_f1", mode="max",
                storage_path=str(tmp_path / "old" / "moved"), config={"budget": 0},
            )
        )  # fmt: skip
        store.set_study_status(study_id, "interrupted")
    elsewhere = tmp_path / "elsewhere"
    for given, shown in ((None, str(tmp_path / "old" / "moved")),
                         (str(elsewhere), str(elsewhere / "moved")),
                         (elsewhere.as_uri(), elsewhere.as_uri() + "/moved")):  # fmt: skip
        extra = ["--storage-path", given] if given else []
        # no Ray experiment state is needed (the store says what is left: nothing here)
        assert main(["resume", "--study", "moved", "--db", db, *extra]) == 1
        err = capsys.readouterr().err
        assert f"0 trial(s) to run (0 rerun) in {shown}" in err, err
        with Store.open(db) as store:
            assert store.study("moved").storage_path == shown


# -- secrets -----------------------------------------------------------------------------


def test_cluster_masked_optuna_storage_pickles_without_password(fresh_pg_url: str) -> None:
    url = with_password(fresh_pg_url)
    storage = MaskedRDBStorage(url)
    optuna.create_study(study_name="p", storage=storage)
    blob = pickle.dumps(storage)
    assert SECRET.encode() not in blob and b"***" in blob
    again = pickle.loads(blob)  # this process knows the password (registered on pickling)
    assert [s.study_name for s in optuna.get_all_study_summaries(again)] == ["p"]
    assert again.url == url


def test_cluster_store_callback_state_has_no_password(fresh_pg_url: str, tmp_path: Path) -> None:
    from search.space import load_space
    from search.tune_callback import StoreCallback

    url = with_password(fresh_pg_url)
    with Store.open(url) as store:
        study_id = store.ensure_study(
            StudyRecord(name="c", space_yaml=TINY, space_hash="h", metric="val_f1", mode="max")
        )
    space = load_space("tiny.yaml", text=TINY)
    blob = pickle.dumps(StoreCallback(url, "c", study_id, space, {}))
    assert SECRET.encode() not in blob
    state = tmp_path / "callback.pkl"
    state.write_bytes(blob)
    # a new process (a resumed driver) finds the password in $LEUKSEARCH_DB, or says it lacks it
    probe = (
        "import pickle,sys; cb = pickle.load(open(sys.argv[1], 'rb')); "
        "cb.setup(); print('counts', cb.counts)"
    )
    env = {k: v for k, v in os.environ.items() if k != "LEUKSEARCH_DB"}
    for extra, expect in (({"LEUKSEARCH_DB": url}, "counts {"), ({}, "password of the database")):
        run = subprocess.run(
            [sys.executable, "-c", probe, str(state)],
            capture_output=True, text=True, env={**env, **extra}, timeout=120,
        )  # fmt: skip
        assert expect in run.stdout + run.stderr, run.stderr[-2000:]


def test_cluster_credentials_lookup() -> None:
    url = "postgresql+psycopg://u:" + SECRET + "@db.invalid:5432/x"
    key = credentials.register(url)
    assert SECRET not in key and credentials.lookup(key) == url
    plain = "postgresql+psycopg://u@db.invalid:5432/x"
    assert credentials.lookup(plain) == plain  # no password: its own key
    with pytest.raises(UserError, match="password of the database"):
        credentials.lookup("postgresql+psycopg://other:***@db.invalid:5432/x")


# -- where a trial ran -------------------------------------------------------------------


def test_cluster_node_update_names_node_host_ip_and_gpus() -> None:
    update = node_update(
        {"ray_node_id": "ab" * 28, "ray_host": "gpu-7", "ray_ip": "10.1.2.3", "gpu_ids": [0, 1]}
    )
    assert update.node == f"{'ab' * 28}, gpu-7 (10.1.2.3)"
    assert update.gpu_ids == [0, 1]
    assert node_update({"ray_node_id": "n"}).gpu_ids == []


def test_cluster_gpu_ids_migration_keeps_version_1_rows(store_url: str) -> None:
    engine = create_store_engine(resolve_url(store_url))
    try:
        migrate(engine, MIGRATIONS[:1])
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO ls_studies (name, description, space_yaml, space_hash, metric, "
                    "mode, status, created_at, updated_at) VALUES ('old', '', 'y', 'h', 'val_f1', "
                    "'max', 'completed', :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00+00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO ls_trials (study_id, tune_trial_id, kind, status, node, "
                    "epochs_done, repeat) SELECT id, 't1', 'explore', 'completed', 'h (1.2.3.4)', "
                    "2, 0 FROM ls_studies"
                )
            )
        assert schema_version(engine) == 1
    finally:
        engine.dispose()
    with Store.open(store_url) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
        (trial,) = store.trials(store.study("old").id)
        assert trial.node == "h (1.2.3.4)" and trial.gpu_ids is None and trial.epochs_done == 2
        store.upsert_trial(trial.study_id, "t1", node_update({"ray_node_id": "n", "gpu_ids": [1]}))
        assert store.trial(trial.trial_id).gpu_ids == [1]


def test_cluster_ray_start_timeout_is_one_line_user_error(monkeypatch) -> None:
    """Ray raises a bare Exception when its node times out starting (a loaded machine)."""
    import ray

    from search.cluster import start_ray

    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup. This\n  could happen ...")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    with pytest.raises(UserError) as info:
        start_ray(None, dashboard=False)
    message = str(info.value)
    assert "\n" not in message and "timed out during startup" in message
    assert "a local Ray instance" in message


def test_cluster_retried_trial_records_its_new_node_after_a_checkpoint(store_url: str) -> None:
    """A trial retried elsewhere may go on from its checkpoint: its first epoch on the new
    node is not epoch 1, and ls_trials.node must still name the new node."""
    from types import SimpleNamespace

    from search.optuna_space import KIND, NUMBER, REPEAT, SEED, encode_point
    from search.space import load_space
    from search.tune_callback import StoreCallback

    space = load_space("tiny.yaml", text=TINY)
    with Store.open(store_url) as store:
        study_id = store.ensure_study(
            StudyRecord(name="moved", space_yaml=TINY, space_hash="h", metric="val_f1", mode="max")
        )
    config = {**encode_point(space, space.baseline()), KIND: "explore", REPEAT: 0, SEED: 1,
              NUMBER: 0}  # fmt: skip
    trial = SimpleNamespace(trial_id="t1", config=config, status="RUNNING", last_result=None)
    cb = StoreCallback(store_url, "moved", study_id, space, {})
    cb.setup()

    def report(epoch: int, node: str) -> dict:
        return {"epoch": epoch, "train_loss": 0.5, "val_f1": 0.5, "epoch_time_s": 1.0,
                "ray_node_id": node, "ray_host": "h", "ray_ip": "10.0.0.1", "gpu_ids": []}  # fmt: skip

    cb.on_trial_start(0, [trial], trial)
    cb.on_trial_result(0, [trial], trial, report(1, "node-a"))
    cb.on_trial_result(0, [trial], trial, report(2, "node-a"))
    cb.on_trial_recover(0, [trial], trial)
    cb.on_trial_result(0, [trial], trial, report(3, "node-b"))  # continued from epoch 2
    cb.journal.flush()
    with Store.open(store_url) as store:
        (row,) = store.trials(study_id)
        assert row.node.startswith("node-b,"), row.node
        assert [e.epoch for e in store.epochs(row.trial_id)] == [1, 2, 3]
