"""The results store on real databases: a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import setuptools
from factories import trial_result
from pydantic import ValidationError
from sqlalchemy import UniqueConstraint, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url

from leukmodels.errors import UserError
from leukmodels.results import EpochRow, Predictions
from search.cli import main as cli_main
from search.store import Store, mask_url, optuna_url, queries, ranking, resolve_url, schema
from search.store.engine import create_store_engine
from search.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    applied_versions,
    migrate,
    schema_version,
)
from search.store.records import (
    EpochRecord,
    ResultRecord,
    StudyInfo,
    StudyRecord,
    TrialRecord,
    TrialUpdate,
)
from search.store.store import config_values

SPACE = "study: demo\nspace:\n  lr: {loguniform: [1.0e-4, 1.0e-1]}\n"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def make_study(store: Store, name: str = "demo", **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "space_yaml": SPACE,
        "space_hash": "hash-1",
        "space_path": "spaces/demo.yaml",
        "profile": "smoke",
        "dataset": "synthetic",
        "metric": "val_f1",
        "mode": "max",
        "code_version": "abc123",
    }
    fields.update(overrides)
    return store.ensure_study(StudyRecord(name=name, **fields))


def class_dict(f1: float, support: Any) -> dict[str, Any]:
    return {"precision": 0.7, "recall": 0.6, "specificity": 0.9, "f1": f1, "npv": 0.5,
            "support": support, "auc": None}  # fmt: skip


def metric_dict(f1: float, accuracy: float | None = None) -> dict[str, Any]:
    """Test metrics with numpy values, a NaN and Nones (the store writes plain JSON)."""
    return {
        "accuracy": f1 if accuracy is None else accuracy,
        "precision": np.float64(0.7),
        "recall": 0.6,
        "specificity": 0.9,
        "f1": f1,
        "npv": np.float32(0.5),
        "kappa": 0.4,
        "mcc": float("nan"),
        "balanced_accuracy": 0.6,
        "auc": None,
        "auc_reason": "class(es) ['hem'] absent from y_true",
        "confusion": np.array([[5, 1], [2, 7]]),
        "n": np.int64(15),
        "class_names": ["hem", "ALL"],
        "per_class": {"ALL": class_dict(0.8, np.int64(7)), "hem": class_dict(0.7, 8)},
        "binary": None,
    }


def add_trial(
    store: Store,
    study_id: int,
    tune_id: str,
    *,
    status: str = "completed",
    test_f1: float | None = None,
    val_f1s: tuple[float, ...] = (),
    params: dict[str, Any] | None = None,
) -> int:
    update = TrialUpdate(params=params or {"name": tune_id}, config={"epochs": 3})
    trial_id = store.upsert_trial(study_id, tune_id, update)
    for epoch, value in enumerate(val_f1s):
        store.record_epoch(trial_id, EpochRow(epoch=epoch, val_f1=value, val_loss=1.0 - value))
    if status == "completed" and test_f1 is not None:
        store.record_result(trial_id, trial_result(metric_dict(test_f1), epochs=len(val_f1s)))
    else:
        store.finish_trial(trial_id, status, error="boom" if status == "failed" else None)
    return trial_id


def table_names(url: str) -> set[str]:
    engine = create_store_engine(resolve_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> Any:
    engine = create_store_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


# -- URLs ----------------------------------------------------------------------------


def test_resolve_url_default_env_and_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEUKSEARCH_DB", raising=False)
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'leuksearch.db'}"
    monkeypatch.setenv("LEUKSEARCH_DB", "postgres://u:pw@db.example:5433/runs")
    assert resolve_url(None) == "postgresql+psycopg://u:pw@db.example:5433/runs"
    assert resolve_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert resolve_url("runs/my.sqlite") == f"sqlite:///{tmp_path / 'runs' / 'my.sqlite'}"
    assert resolve_url("sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert resolve_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    odd = resolve_url(str(tmp_path / "a?b #c" / "x.db"))
    assert resolve_url(odd) == odd  # resolving is idempotent, odd characters survive
    assert Path(make_url(odd).database) == tmp_path / "a?b #c" / "x.db"
    monkeypatch.setenv("LEUKSEARCH_DB", "  ")
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'leuksearch.db'}"


@pytest.mark.parametrize(
    "bad",
    ["mysql://u:hunter2@h/d", "results.csv", "http://u:hunter2@example.com/x", "sqlite://"],
)
def test_resolve_url_rejects_unsupported(bad: str):
    with pytest.raises(UserError) as info:
        resolve_url(bad)
    message = str(info.value)
    assert "postgresql://" in message and "sqlite:///" in message
    assert "hunter2" not in message
    assert "\n" not in message


def test_mask_and_optuna_url():
    assert mask_url("postgresql://bob:s3cret@h:5432/d") == "postgresql://bob:***@h:5432/d"
    assert "s3cret" not in mask_url("not a url bob:s3cret@x")
    assert optuna_url("postgres://bob:s3cret@h/d") == "postgresql+psycopg://bob:s3cret@h/d"
    # Optuna str.format()s its URL: literal braces must survive that.
    url = optuna_url("sqlite:////tmp/{study}/x.db")
    assert url.format() == resolve_url("sqlite:////tmp/{study}/x.db")


# -- migrations ----------------------------------------------------------------------


def test_open_creates_prefixed_tables_and_records_version(store_url: str):
    with Store.open(store_url) as store:
        assert store.schema_version() == LATEST_VERSION
    assert table_names(store_url) == {
        "ls_schema_version",
        "ls_studies",
        "ls_trials",
        "ls_epochs",
        "ls_results",
    }


def test_migrate_twice_is_a_noop(store_url: str):
    with Store.open(store_url) as store:
        study_id = make_study(store)
        history = applied_versions(store.engine)
        assert [h["version"] for h in history] == list(range(1, LATEST_VERSION + 1))
        assert migrate(store.engine) == LATEST_VERSION
        assert applied_versions(store.engine) == history
    with Store.open(store_url) as store:
        assert applied_versions(store.engine) == history
        assert store.study("demo").id == study_id


def test_migrated_schema_matches_schema_module(store_url: str):
    with Store.open(store_url) as store:
        inspector = inspect(store.engine)
        for table in schema.metadata.sorted_tables:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert set(columns) == set(table.columns.keys()), table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, column.name
            uniques = {
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)
            }
            uniques |= {
                tuple(i["column_names"]) for i in inspector.get_indexes(table.name) if i["unique"]
            }
            expected = {
                tuple(c.columns.keys())
                for c in table.constraints
                if isinstance(c, UniqueConstraint)
            }
            expected |= {(c.name,) for c in table.columns if c.unique}
            assert expected <= uniques, table.name
            indexes = {i["name"] for i in inspector.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= indexes, table.name


def _add_note_column(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE ls_trials ADD COLUMN note TEXT"))
    conn.execute(text("UPDATE ls_trials SET note = 'migrated'"))


def test_later_migration_upgrades_version_1_without_data_loss(store_url: str):
    with Store.open(store_url) as store:
        study_id = make_study(store)
        trial_id = add_trial(store, study_id, "t1", test_f1=0.8, val_f1s=(0.5, 0.7))
        before = store.trial(trial_id)
        nxt = LATEST_VERSION + 1
        steps = (*MIGRATIONS, Migration(nxt, "test only: trial notes", _add_note_column))
        assert migrate(store.engine, steps) == nxt
        assert migrate(store.engine, steps) == nxt  # second run: nothing to do
        assert [h["version"] for h in applied_versions(store.engine)] == list(range(1, nxt + 1))
        assert store.trial(trial_id) == before
        with store.engine.connect() as conn:
            note = conn.execute(text("SELECT note FROM ls_trials WHERE id = :i"), {"i": trial_id})
            assert note.scalar() == "migrated"
        # this code only knows up to LATEST_VERSION: a newer database is refused, not damaged
        with pytest.raises(UserError, match=f"schema version {nxt}"):
            migrate(store.engine)
        assert schema_version(store.engine) == nxt


def _v2_rows(conn: Connection) -> tuple[int, int]:
    """Two studies as version 2 stored them (no ls_trials.value): one ranked by val_f1
    (max), one by val_loss (min); three trials each, epochs and results."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = []
    for name, metric, mode in (("v", "val_f1", "max"), ("l", "val_loss", "min")):
        sid = conn.execute(
            schema.studies.insert().values(
                name=name,
                space_yaml="",
                space_hash="h",
                metric=metric,
                mode=mode,
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        ).inserted_primary_key[0]
        ids.append(sid)
        for k, f1s in enumerate(((0.2, 0.9), (0.5, 0.6), (0.7,))):
            tid = conn.execute(
                schema.trials.insert().values(
                    study_id=sid, tune_trial_id=f"t{k}", status="completed"
                )  # fmt: skip
            ).inserted_primary_key[0]
            for epoch, f1 in enumerate(f1s, 1):
                m = {"val_f1": f1, "val_loss": 1 - f1}
                conn.execute(schema.epochs.insert().values(trial_id=tid, epoch=epoch,
                             metrics=m, recorded_at=now, **m))  # fmt: skip
    return ids[0], ids[1]


def test_version_3_fills_the_value_of_stored_trials(store_url: str):
    engine = create_store_engine(resolve_url(store_url))
    try:
        assert migrate(engine, MIGRATIONS[:2]) == 2
        with engine.begin() as conn:
            _v2_rows(conn)
        assert migrate(engine) == LATEST_VERSION
    finally:
        engine.dispose()
    with Store.open(store_url) as store:
        assert [(t.tune_trial_id, t.value) for t in store.trials(store.study("v").id)] == [
            ("t0", 0.9), ("t1", 0.6), ("t2", 0.7)]  # fmt: skip
        assert [t.tune_trial_id for t in store.best("l")] == ["t0", "t2", "t1"]
        assert [pytest.approx(t.value) for t in store.best("l")] == [0.1, 0.3, 0.4]
        assert store.study("v").best_value == 0.9


_DATA = {"dataset": "synthetic", "n": 64, "split": {"kind": "kfold", "fold": 1, "k": 3}}
_CONFIGS: dict[str, dict[str, Any] | None] = {
    "a": {"data": _DATA, "params": {"epochs": 4, "head_bn": False, "drdb_dilations": [1, 2]},
          "device": "cpu"},
    "b": {"data": dict(reversed(_DATA.items())), "params": {"epochs": 6, "lr": 0.01}},
    "c": {"data": {"dataset": "other", "split": None}, "params": {"epochs": 2}},
    "d": None,
    "e": {"device": "cpu"},
}  # fmt: skip


def test_version_4_fills_the_config_columns_of_stored_trials(store_url: str):
    """A version-3 database gets the config's params and data hash for stored trials,
    the same a version-4 writer stores; the report's read gives what the config holds."""
    engine = create_store_engine(resolve_url(store_url))
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    try:
        assert migrate(engine, MIGRATIONS[:3]) == 3
        with engine.begin() as conn:
            sid = conn.execute(
                schema.studies.insert().values(name="c", space_yaml="", space_hash="h",
                    metric="val_f1", mode="max", created_at=now, updated_at=now)
            ).inserted_primary_key[0]  # fmt: skip
            for name, config in _CONFIGS.items():
                conn.execute(schema.trials.insert().values(study_id=sid, tune_trial_id=name,
                                                           status="completed", config=config))  # fmt: skip
        assert migrate(engine) == LATEST_VERSION
    finally:
        engine.dispose()
    t = schema.trials
    with Store.open(store_url) as store:
        with store.engine.connect() as conn:
            rows = conn.execute(select(t.c.tune_trial_id, t.c.data_hash, t.c.config_params))
            stored = {name: {"data_hash": h, "config_params": p} for name, h, p in rows}
        assert stored == {name: config_values(config) for name, config in _CONFIGS.items()}
        assert stored["a"]["data_hash"] == stored["b"]["data_hash"] != stored["c"]["data_hash"]
        assert stored["d"] == stored["e"] == {"data_hash": None, "config_params": None}
        fields = ("epochs", "head_bn", "drdb_dilations", "absent")
        for summary in store.trial_summaries(sid, fields):
            name = store.trial(summary.trial_id).tune_trial_id
            config = _CONFIGS[name] or {}
            assert summary.data == config.get("data"), name
            params = config.get("params") or {}
            assert summary.trial_params == {f: params.get(f) for f in fields}, name
        # a version-4 writer stores the same, and a changed config changes both columns
        new = store.upsert_trial(sid, "new", TrialUpdate(config=_CONFIGS["a"]))
        store.upsert_trial(sid, "new", TrialUpdate(config=_CONFIGS["c"]))
        with store.engine.connect() as conn:
            row = conn.execute(select(t.c.data_hash, t.c.config_params).where(t.c.id == new))
            assert dict(row.one()._mapping) == stored["c"]


def test_stored_value_ranks_as_the_epoch_and_result_rows_do(store: Store):
    """ls_trials.value for a JSON-only epoch metric and for a test metric agrees with
    ranking the stored rows (the path of any other --metric)."""
    for name, metric in (("json", "val_mcc"), ("test", "npv"), ("col", "f1")):
        study_id = make_study(store, name, metric=metric, mode="max")
        for k in range(4):
            tid = add_trial(store, study_id, f"t{k}", test_f1=0.5 + k / 10, val_f1s=(0.3, 0.4))
            store.record_epoch(tid, EpochRow(epoch=9, val_mcc=(k * 7 % 4) / 4, val_f1=0.1))
        with store.engine.connect() as conn:
            slow = ranking.rank(ranking.trial_values(conn, study_id, metric, "max"), "max")
        fast = [(t.trial_id, t.value) for t in store.best(name, top=None)]
        assert fast == slow and len(fast) == 4, name
        assert store.study(name).best_trial_id == slow[0][0]


def test_concurrent_migrations_apply_each_step_once(store_url: str):
    url = resolve_url(store_url)
    engines = [create_store_engine(url) for _ in range(2)]
    barrier = threading.Barrier(len(engines))
    outcomes: list[Any] = [None] * len(engines)

    def run(index: int) -> None:
        barrier.wait(timeout=60)
        try:
            outcomes[index] = migrate(engines[index])
        except Exception as exc:  # reported below
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert outcomes == [LATEST_VERSION] * len(engines)
        versions = [h["version"] for h in applied_versions(engines[0])]
        assert versions == list(range(1, LATEST_VERSION + 1))
    finally:
        for engine in engines:
            engine.dispose()


def test_package_includes_migration_steps():
    root = Path(__file__).resolve().parents[1]
    packages = setuptools.find_packages(str(root), include=["search*", "leukmodels*"])
    assert "search.store.versions" in packages


# -- Optuna in the same database -----------------------------------------------------


def test_optuna_tables_coexist_untouched(store_url: str):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(optuna_url(store_url))
    study = optuna.create_study(storage=storage, study_name="demo", direction="maximize")
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    study.tell(trial, 0.75)
    optuna_version = scalar(store_url, "SELECT version_num FROM alembic_version")
    optuna_tables = table_names(store_url)
    assert {"studies", "trials", "alembic_version"} <= optuna_tables

    with Store.open(store_url) as store:
        add_trial(store, make_study(store), "t1", test_f1=0.8)
    with Store.open(store_url) as store:  # migrate again
        assert store.schema_version() == LATEST_VERSION
    ours = table_names(store_url) - optuna_tables
    assert ours == {"ls_schema_version", "ls_studies", "ls_trials", "ls_epochs", "ls_results"}
    assert all(not name.startswith("ls_") for name in optuna_tables)
    assert scalar(store_url, "SELECT version_num FROM alembic_version") == optuna_version
    assert scalar(store_url, "SELECT count(*) FROM alembic_version") == 1

    storage.remove_session()
    storage.engine.dispose()
    again = optuna.load_study(
        study_name="demo", storage=optuna.storages.RDBStorage(optuna_url(store_url))
    )
    assert again.best_value == 0.75
    assert len(again.trials) == 1


# -- writes --------------------------------------------------------------------------


def test_ensure_study_is_get_or_create_and_refuses_another_space(store: Store):
    study_id = make_study(store)
    assert make_study(store) == study_id
    assert len(store.studies()) == 1
    with pytest.raises(UserError) as info:
        make_study(store, space_hash="hash-2", space_path="spaces/other.yaml")
    message = str(info.value)
    assert "'demo' already exists" in message and "different" in message
    assert "--study" in message and "same file" in message
    assert store.study("demo").space_hash == "hash-1"


def test_study_status(store: Store):
    study_id = make_study(store)
    store.set_study_status(study_id, "interrupted")
    study = store.study("demo")
    assert study.status == "interrupted"
    assert study.space_yaml == SPACE
    with pytest.raises(ValueError, match="running, completed"):
        store.set_study_status(study_id, "paused")
    with pytest.raises(LookupError):
        store.set_study_status(study_id + 99, "completed")


def test_upsert_trial_twice_keeps_one_row(store: Store):
    study_id = make_study(store)
    first = store.upsert_trial(
        study_id,
        "abc_00001",
        TrialUpdate(params={"lr": 0.01}, config={"lr": 0.01}, node="n1", seed=3),
    )
    second = store.upsert_trial(
        study_id, "abc_00001", TrialUpdate(params={"lr": 0.01}, optuna_number=4)
    )
    assert first == second
    trials = store.trials(study_id)
    assert len(trials) == 1
    assert store.trial_ids(study_id) == {"abc_00001": first}
    trial = trials[0]
    assert (trial.node, trial.seed, trial.optuna_number) == ("n1", 3, 4)
    assert trial.config == {"lr": 0.01}  # None left it alone
    assert (trial.kind, trial.repeat) == ("explore", 0)  # a new trial's defaults
    assert trial.status == "running" and trial.started_at is not None
    retrain = store.upsert_trial(
        study_id, "abc_00002", TrialUpdate(params={"lr": 0.01}, config={}, kind="retrain",
                                           parent_trial_id=first, repeat=1),
    )  # fmt: skip
    assert store.trial(retrain).parent_trial_id == first
    with pytest.raises(ValueError, match="unknown trial kind"):
        store.upsert_trial(study_id, "abc_00003", TrialUpdate(kind="exploit"))


def test_record_epoch_twice_updates_the_same_row(store: Store):
    study_id = make_study(store)
    trial_id = store.upsert_trial(study_id, "t1", TrialUpdate(params={}, config={}))
    store.record_epoch(trial_id, EpochRow(epoch=1, val_f1=0.5, train_loss=2.0, lr=0.1))
    store.record_epoch(trial_id, EpochRow(epoch=1, val_f1=0.6, train_loss=1.5, val_mcc=-0.2))
    store.record_epoch(trial_id, EpochRow(epoch=2, val_f1=0.7))
    epochs = store.epochs(trial_id)
    assert [e.epoch for e in epochs] == [1, 2]
    assert epochs[0].metrics == {"val_f1": 0.6, "train_loss": 1.5, "val_mcc": -0.2}
    assert (epochs[0].val_f1, epochs[0].train_loss, epochs[0].lr) == (0.6, 1.5, None)
    assert store.trial(trial_id).epochs_done == 2
    with pytest.raises(LookupError):
        store.record_epoch(trial_id + 99, EpochRow(epoch=1, val_f1=0.5))
    with pytest.raises(ValidationError, match="val_f2"):
        EpochRow(epoch=1, val_f2=0.5)  # an epoch row names only known metrics


def test_failed_trial_keeps_its_error_and_the_study_goes_on(store: Store):
    study_id = make_study(store)
    failed = store.upsert_trial(study_id, "t1", TrialUpdate(params={"lr": 1.0}, config={}))
    store.record_epoch(failed, EpochRow(epoch=0, val_f1=0.1))
    store.finish_trial(failed, "failed", error="RuntimeError: loss is NaN\n  at epoch 1")
    store.finish_trial(failed, "failed")  # delivered again without the error
    ok = add_trial(store, study_id, "t2", test_f1=0.9, val_f1s=(0.8,))
    trial = store.trial(failed)
    assert trial.status == "failed"
    assert trial.error == "RuntimeError: loss is NaN\n  at epoch 1"
    assert trial.ended_at is not None and trial.result is None
    assert store.study("demo").counts["failed"] == 1
    assert [t.trial_id for t in store.trials(study_id, status="completed")] == [ok]
    # Tune restarting the failed trial clears its end and error
    store.upsert_trial(study_id, "t1", TrialUpdate(status="running"))
    restarted = store.trial(failed)
    assert (restarted.status, restarted.error, restarted.ended_at) == (
        "running",
        None,
        None,
    )


def test_record_result_twice_changes_nothing(store: Store):
    study_id = make_study(store)
    trial_id = store.upsert_trial(study_id, "t1", TrialUpdate(params={}, config={}))
    result = trial_result(
        metric_dict(0.8),
        noise={"0.05": metric_dict(0.7), "0.1": metric_dict(0.6)},
        profile={"params": 11_200_000, "flops": 1.8e9, "macs": 9.1e8, "size_mb": 42.7,
                 "latency_ms": 3.5},
        best_epoch=2,
        checkpoint_path="/ckpt/t1.pt",
    )  # fmt: skip
    store.record_result(trial_id, result)
    first = store.trial(trial_id)
    store.record_result(trial_id, result)
    assert store.trial(trial_id) == first
    r = first.result
    assert (r.f1, r.precision, r.mcc, r.auc) == (0.8, 0.7, None, None)
    assert r.metrics.confusion == r.confusion == [[5, 1], [2, 7]]
    assert r.metrics.per_class["ALL"].support == 7
    assert r.metrics.npv == pytest.approx(0.5)
    assert r.noise["0.05"].f1 == 0.7
    assert (r.params_count, r.flops, r.macs) == (11_200_000, 1_800_000_000, 910_000_000)
    assert (r.latency_ms, r.checkpoint_path) == (3.5, "/ckpt/t1.pt")
    assert r.profile.size_mb == 42.7 and r.timings == result.timings
    assert r.extra["best_epoch"] == 2 and r.extra["split"] == {"hash": "s1", "warnings": []}
    assert set(r.extra) == {"class_names", "best_epoch", "best_value", "monitor", "split",
                            "data_report", "seed", "device", "threads", "epochs_done"}  # fmt: skip
    assert (first.fidelity, first.epochs_done, first.error) == ("full", 3, None)
    assert (first.split_hash, first.duration_s) == ("s1", result.timings.total_s)
    json.dumps(first.model_dump(mode="json"), allow_nan=False)  # plain JSON all the way down


def test_stored_json_is_what_the_metrics_computed(store: Store, store_url: str):
    """ls_results.metrics holds classification_metrics' dict (plus uncertain_fraction) as it
    was, so SQL over the JSON (README) keeps working."""
    from leukmodels import metrics

    test = metrics.classification_metrics(
        np.array([0, 1, 1, 0, 1]),
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]]),
        ["hem", "ALL"],
    )
    study_id = make_study(store)
    trial_id = store.upsert_trial(study_id, "t1", TrialUpdate(params={}, config={}))
    store.record_result(trial_id, trial_result({**test, "uncertain_fraction": 0.2}))
    stored = store.trial(trial_id).result
    assert stored.accuracy == pytest.approx(float(test["accuracy"]))
    assert stored.class_names == ["hem", "ALL"]
    assert np.array_equal(np.array(stored.confusion), np.asarray(test["confusion"]))
    raw = scalar(store_url, f"SELECT metrics FROM ls_results WHERE trial_id = {trial_id}")
    raw = json.loads(raw) if isinstance(raw, str) else raw
    assert raw == {**test, "uncertain_fraction": 0.2}


def test_records_cover_every_column():
    """A migration that adds a column adds the record field that reads it."""
    columns = {t: set(t.columns.keys()) for t in schema.metadata.sorted_tables}
    summary = {"counts", "n_trials", "best_value", "best_trial_id"}
    assert set(StudyInfo.model_fields) - summary == columns[schema.studies]
    assert set(StudyRecord.model_fields) == columns[schema.studies] - {
        "id", "status", "created_at", "updated_at"}  # fmt: skip
    trial_columns = columns[schema.trials] - {"id", *schema.CONFIG_COLUMNS} | {"trial_id"}
    assert set(TrialRecord.model_fields) - {"result", "epochs"} == trial_columns
    assert set(EpochRecord.model_fields) == columns[schema.epochs] - {"id"}
    assert set(ResultRecord.model_fields) == columns[schema.results] - {"id", "trial_id"}


def test_studies_json_lists_studies_without_their_space(store_url: str, capsys):
    with Store.open(store_url) as store:
        make_study(store)
    assert cli_main(["studies", "--db", store_url, "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "demo" and listed["n_trials"] == 0
    assert "space_yaml" not in listed and "config" not in listed


# -- queries -------------------------------------------------------------------------


def test_best_orders_completed_trials_by_test_and_validation_metrics(store: Store):
    study_id = make_study(store)
    a = add_trial(store, study_id, "a", test_f1=0.70, val_f1s=(0.2, 0.9, 0.4))
    b = add_trial(store, study_id, "b", test_f1=0.90, val_f1s=(0.5, 0.6))
    c = add_trial(store, study_id, "c", test_f1=0.80, val_f1s=(0.3, 0.7))
    add_trial(store, study_id, "pruned", status="pruned", test_f1=0.99, val_f1s=(0.95,))
    add_trial(store, study_id, "failed", status="failed", val_f1s=(0.99,))
    store.upsert_trial(study_id, "running", TrialUpdate(params={}, config={}))

    by_val = store.best("demo")  # the study's metric: val_f1, max, best epoch per trial
    assert [(i.trial_id, i.value) for i in by_val] == [(a, 0.9), (c, 0.7), (b, 0.6)]
    assert store.values("demo") == {a: 0.9, c: 0.7, b: 0.6}  # completed trials only
    assert by_val[0].metric == "val_f1" and by_val[0].params == {"name": "a"}
    assert by_val[0].metrics["f1"] == 0.70
    assert [i.trial_id for i in store.best("demo", "f1")] == [b, c, a]
    assert [i.trial_id for i in store.best("demo", "test_f1", "min", top=2)] == [a, c]
    assert [i.value for i in store.best("demo", "val_loss", "min")] == [
        pytest.approx(0.1),
        pytest.approx(0.3),
        pytest.approx(0.4),
    ]
    assert [i.trial_id for i in store.best("demo", "npv")] == [a, b, c]  # JSON-only key
    assert len(store.best("demo", top=1)) == 1

    listed = store.studies()[0]
    assert (listed.best_value, listed.best_trial_id) == (0.9, a)
    assert listed.counts == {
        "pending": 0,
        "running": 1,
        "completed": 3,
        "pruned": 1,
        "failed": 1,
        "terminated": 0,
    }
    assert listed.n_trials == 6

    with pytest.raises(UserError, match="val_f1"):
        store.best("demo", "val_f2")
    with pytest.raises(UserError, match="max, min"):
        store.best("demo", mode="up")


def test_trial_summaries_match_the_full_records(store: Store):
    """The report's one-query read gives what the full records hold."""
    study_id = make_study(store)
    noisy = trial_result(metric_dict(0.8), noise={"0.1": metric_dict(0.6)})
    config = {"data": {"split": {"kind": "kfold", "fold": 2}}, "params": {"epochs": 4,
              "backbone": "resnet18", "lr": 0.01}}  # fmt: skip
    for k, (status, result) in enumerate(
        (("completed", noisy), ("completed", trial_result(metric_dict(0.7))), ("failed", None))
    ):
        tid = store.upsert_trial(study_id, f"t{k}", TrialUpdate(params={"k": k}, config=config))
        if result is None:
            store.finish_trial(tid, status, error="boom")
        else:
            store.record_result(tid, result)
    store.upsert_trial(study_id, "bare", TrialUpdate())
    fields, keys = ("epochs", "backbone", "placement"), ("npv", "balanced_accuracy")
    summaries = store.trial_summaries(study_id, fields, keys)
    records = store.trials(study_id)
    assert [s.trial_id for s in summaries] == [r.trial_id for r in records] and len(records) == 4
    for s, r in zip(summaries, records, strict=True):
        config = r.config or {}
        assert (s.kind, s.status, s.fidelity, s.seed, s.repeat, s.params) == (
            r.kind, r.status, r.fidelity, r.seed, r.repeat, r.params)  # fmt: skip
        assert s.data == config.get("data")
        assert s.trial_params == {f: (config.get("params") or {}).get(f) for f in fields}
        assert s.has_result == (r.result is not None)
        if r.result is None:
            assert s.class_names is None and s.noise is None and s.confusion is None
            continue
        res = r.result
        for c in schema.RESULT_METRIC_COLUMNS:
            assert s.metrics[c] == getattr(res, c), c
        assert s.metrics["npv"] == res.metrics.npv == 0.5
        assert s.metrics["balanced_accuracy"] == res.metrics.balanced_accuracy
        assert (s.class_names, s.confusion, s.noise) == (res.class_names, res.confusion, res.noise)
        assert (s.params_count, s.flops, s.latency_ms, s.size_mb) == (
            res.params_count, res.flops, res.latency_ms, res.profile.size_mb)  # fmt: skip
    assert summaries[0].noise["0.1"].f1 == 0.6 and not summaries[1].noise


def test_trial_summaries_read_predictions_only_for_the_asked_kinds(store: Store):
    """Per-image predictions come only with completed full-fidelity trials of the kinds
    asked for (the report's cells); others get None (the database never sends them)."""
    study_id = make_study(store)
    result = trial_result(metric_dict(0.8))
    result.predictions = Predictions(y_true=[0, 1, 1], y_pred=[0, 1, 0], test_set="s1")
    ids = {}
    for kind in ("ablation", "explore", "grid"):
        ids[kind] = store.upsert_trial(study_id, kind, TrialUpdate(params={}, kind=kind))
        store.record_result(ids[kind], result)
    pruned = store.upsert_trial(study_id, "cut", TrialUpdate(params={}, kind="ablation"))
    store.finish_trial(pruned, "pruned", fidelity="partial")
    asked = store.trial_summaries(study_id, (), predictions_for=("ablation", "grid"))
    every = store.trial_summaries(study_id, ())
    got = {s.trial_id: s.predictions for s in asked}
    assert got[ids["explore"]] is None and got[pruned] is None
    for kind in ("ablation", "grid"):
        assert Predictions.model_validate(got[kind_id := ids[kind]]).y_pred == [0, 1, 0]
        assert {s.trial_id: s.predictions for s in every}[kind_id] == got[kind_id]
    assert {s.trial_id: s.predictions for s in every}[ids["explore"]] == got[ids["grid"]]
    assert {"y_true", "y_pred"} <= set(got[ids["grid"]])  # as stored: packed


def test_streamed_rows_are_the_rows_and_leaving_early_keeps_the_connection(store: Store):
    """PostgreSQL streams the rows in chunks; a stream left early (psycopg cancels its
    query) leaves the connection usable."""
    study_id = make_study(store)
    for k in range(7):
        store.upsert_trial(study_id, f"t{k}", TrialUpdate(params={"k": k}))
    t = schema.trials
    stmt = select(t.c.id, t.c.params).where(t.c.study_id == study_id).order_by(t.c.id)
    with store.engine.connect() as conn:
        expected = [tuple(row) for row in conn.execute(stmt)]
        assert [tuple(r) for r in queries.streamed_rows(conn, stmt, size=3)] == expected
        for n, _ in enumerate(queries.streamed_rows(conn, stmt, size=2)):
            if n == 2:
                break
        rows = queries.streamed_rows(conn, stmt, size=2)
        next(rows)
        rows.close()
        assert conn.execute(select(func.count()).select_from(t)).scalar() == 7
    assert len(expected) == 7 and expected[0][1] == {"k": 0}


def test_best_of_an_unknown_study_lists_the_known_ones(store: Store):
    make_study(store, "alpha")
    make_study(store, "beta")
    with pytest.raises(UserError, match="'gamma'.*alpha, beta"):
        store.best("gamma")
    with pytest.raises(UserError, match="alpha, beta"):
        store.require_study("gamma")
    assert store.study("gamma") is None
    assert store.best("alpha") == []  # no completed trials yet


# -- connections ---------------------------------------------------------------------


def test_unreachable_postgres_is_a_user_error_with_masked_password():
    with pytest.raises(UserError) as info:
        Store.open("postgresql://bob:s3cret@127.0.0.1:1/leuksearch", connect_timeout=2)
    message = str(info.value)
    assert "s3cret" not in message and "bob:***@127.0.0.1:1" in message
    assert "\n" not in message


def test_missing_postgres_database_is_a_user_error(pg_admin_url: str):
    url = make_url(pg_admin_url).set(database="leuksearch_no_such_db").render_as_string(False)
    with pytest.raises(UserError, match="leuksearch_no_such_db"):
        Store.open(url)


def test_bad_sqlite_paths_are_user_errors(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        Store.open(str(tmp_path / "missing" / "x.db"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="junk.db"):
        Store.open(str(junk))


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str):
    with Store.open(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_concurrent_record_epoch_on_sqlite(sqlite_url: str):
    with Store.open(sqlite_url) as setup:
        study_id = make_study(setup)
        shared = setup.upsert_trial(study_id, "shared", TrialUpdate(params={}, config={}))
    stores = [Store.open(sqlite_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        store = stores[index]
        try:
            own = store.upsert_trial(study_id, f"own{index}", TrialUpdate(params={}, config={}))
            barrier.wait(timeout=60)
            for epoch in range(40):
                store.record_epoch(own, EpochRow(epoch=epoch, val_f1=epoch / 40))
                store.record_epoch(shared, EpochRow(epoch=epoch, val_f1=index))
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        by_tune_id = {t.tune_trial_id: t for t in stores[0].trials(study_id)}
        assert {k: t.epochs_done for k, t in by_tune_id.items()} == {
            "shared": 40,
            "own0": 40,
            "own1": 40,
        }
        assert len(stores[0].epochs(shared)) == 40
    finally:
        for store in stores:
            store.close()
