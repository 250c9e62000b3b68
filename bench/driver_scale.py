"""Benchmark: what a big study costs the driver (cluster/README.md, "Scale on paper").

Four measurements, each with the real code on a real PostgreSQL:

1. **Store callback per result.** :class:`search.tune_callback.StoreCallback` (the driver's
   only writer) is driven through ``--trials`` trials of ``--epochs`` epochs each: start,
   one epoch report per epoch (with the placement keys a trial reports), the final report
   with a real TrialResult (one real training run of the quick-start baseline at 32 px
   makes it), completion. The hooks get Tune's list of all trials, as Tune passes it.
   The stand-in trial objects carry what Tune's ``Trial`` gives the callback (trial_id,
   config, last_result, status).
2. **Database writes per second**: the INSERT/UPDATE statements the callback issued (counted
   with a SQLAlchemy event on its engine) over the time it spent.
3. **Optuna's ask + tell** (TPE on the same PostgreSQL, through MaskedRDBStorage, with the
   quick-start space's distributions) as the study grows: the driver asks once per trial.
4. **Experiment-state size per trial**: a real Tune run (local Ray) of ``--tune-trials``
   trials whose function reports the same epoch and final dicts as ``train_trial``
   (without training), then the size of ``experiment_state-*.json`` and of the whole
   experiment folder, per trial.

Run: ``python bench/driver_scale.py [--db postgresql://postgres@127.0.0.1:5432/test]
[--trials 300] [--epochs 10] [--optuna-sizes 0,500,2000] [--tune-trials 60]``
(creates and drops its own database). Results: bench/README.md and cluster/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import psycopg
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def temp_database(admin: str) -> Iterator[str]:
    """A new PostgreSQL database for the run, dropped afterwards; yields its URL."""
    plain = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bench_scale_{secrets.token_hex(4)}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(plain).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def real_result(space: Any) -> tuple[dict[str, Any], str]:
    """The baseline's Tune config and a real TrialResult JSON (one 32 px training run)."""
    from leukmodels.train import run_trial
    from search.optuna_space import KIND, NUMBER, REPEAT, SEED, encode_point

    point = space.baseline()
    overrides = {"image_size": 32, "n": 2000, "patients": 40}
    tc = space.trial_config(point, overrides=overrides)
    tc = tc.model_copy(update={"params": tc.params.model_copy(update={"epochs": 1})})
    result = run_trial(tc)
    config = {**encode_point(space, point), KIND: "explore", REPEAT: 0, SEED: 1, NUMBER: 0}
    return config, result.model_dump_json()


def epoch_report(epoch: int) -> dict[str, Any]:
    return {
        "epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.4,
        "val_accuracy": 0.85, "val_f1": 0.84, "lr": 1e-3, "epoch_time_s": 30.0,
        "ray_node_id": "f" * 56, "ray_host": "gpu-node-17", "ray_ip": "10.0.3.17",
        "gpu_ids": [1], "hostname": "gpu-node-17", "node_ip": "10.0.3.17",
    }  # fmt: skip


def drive_callback(
    url: str, space: Any, real: tuple[dict, str], trials: int, epochs: int
) -> dict[str, float]:
    """Measurements 1 and 2: per-hook times (ms) and write statements per second."""
    from search.store.records import StudyRecord
    from search.store.store import Store
    from search.trainable import RESULT_KEY
    from search.tune_callback import StoreCallback

    config, result_json = real
    with Store.open(url) as store:
        study_id = store.ensure_study(
            StudyRecord(name="scale", space_yaml=space.text, space_hash=space.hash,
                        metric="val_f1", mode="max")
        )  # fmt: skip
    cb = StoreCallback(url, "scale", study_id, space, {}, summary_every_s=20.0)
    cb.setup()
    writes = [0]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        writes[0] += statement.lstrip().upper().startswith(("INSERT", "UPDATE"))

    event.listen(cb.store.engine, "after_cursor_execute", count)
    times: dict[str, list[float]] = {"start": [], "result": [], "complete": []}
    everyone: list[Any] = []
    t_all = time.perf_counter()
    for i in range(trials):
        trial = SimpleNamespace(trial_id=f"t{i:06d}", config=dict(config), status="RUNNING",
                                last_result=None)  # fmt: skip
        everyone.append(trial)
        t0 = time.perf_counter()
        cb.on_trial_start(0, everyone, trial)
        times["start"].append(time.perf_counter() - t0)
        for e in range(1, epochs + 1):
            t0 = time.perf_counter()
            cb.on_trial_result(0, everyone, trial, epoch_report(e))
            times["result"].append(time.perf_counter() - t0)
        trial.last_result = {"epoch": epochs, "final": True, "val_f1": 0.84,
                             RESULT_KEY: result_json}  # fmt: skip
        trial.status = "TERMINATED"
        t0 = time.perf_counter()
        cb.on_trial_complete(0, everyone, trial)
        times["complete"].append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    out = {"results": trials * epochs, "writes": writes[0], "total_s": total,
           "writes_per_s": writes[0] / total, "result_json_bytes": len(result_json)}  # fmt: skip
    for hook, values in times.items():
        ms = sorted(v * 1000 for v in values)
        out[f"{hook}_median_ms"] = statistics.median(ms)
        out[f"{hook}_p95_ms"] = ms[int(0.95 * (len(ms) - 1))]
    return out


def optuna_cost(url: str, space: Any, sizes: list[int], probes: int = 10) -> list[dict]:
    """Measurement 3: ms per TPE ask + tell once the study holds ``size`` finished trials."""
    from search.optuna_space import DefineByRun
    from search.optuna_storage import MaskedRDBStorage
    from search.store.url import optuna_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = MaskedRDBStorage(optuna_url(url))
    study = optuna.create_study(study_name="tpe", storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))  # fmt: skip
    define, rows, have = DefineByRun(space), [], 0
    for size in sizes:
        filler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=size))
        for _ in range(size - have):
            t = filler.ask()
            define(t)
            filler.tell(t, 0.5 + 0.4 * (t.number % 7) / 7)
        study.add_trials(filler.trials)  # one transaction per trial, as tell() would
        have = size
        t0 = time.perf_counter()
        for _ in range(probes):
            t = study.ask()
            define(t)
            study.tell(t, 0.7)
        have += probes
        rows.append({"trials": size, "ask_tell_ms": (time.perf_counter() - t0) * 1000 / probes})
    return rows


def fake_trainable(config: dict[str, Any], epochs: int, result_json: str) -> None:
    """Reports what ``train_trial`` reports (epoch dicts, then the final dict), untrained."""
    from ray import tune

    from search.trainable import RESULT_KEY

    for e in range(1, epochs + 1):
        tune.report(epoch_report(e))
    tune.report({"epoch": epochs, "final": True, "val_f1": 0.84, RESULT_KEY: result_json})


def tune_state_size(real: tuple[dict, str], trials: int, epochs: int) -> dict[str, float]:
    """Measurement 4: bytes of Tune's experiment state per trial (real Tune, local Ray)."""
    import ray
    from ray import tune

    from search.runner import stdout_to_stderr

    config, result_json = real
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=2, log_to_driver=False, include_dashboard=False)
        try:
            tuner = tune.Tuner(
                tune.with_parameters(fake_trainable, epochs=epochs, result_json=result_json),
                param_space={k: tune.choice([v]) for k, v in config.items()},
                tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=2),
                run_config=tune.RunConfig(name="state", storage_path=tmp, verbose=0),
            )
            with stdout_to_stderr():  # Tune's banner; stdout is the JSON report
                tuner.fit()
        finally:
            ray.shutdown()
        folder = Path(tmp) / "state"
        state = sum(p.stat().st_size for p in folder.glob("experiment_state-*.json"))
        every = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"trials": trials, "state_bytes_per_trial": state / trials,
            "folder_bytes_per_trial": every / trials}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from search.space import load_space

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--optuna-sizes", default="0,500,2000")
    ap.add_argument("--tune-trials", type=int, default=60)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    space = load_space(ROOT / "spaces" / "quickstart.yaml", "smoke")
    sizes = [int(s) for s in args.optuna_sizes.split(",")]
    real = real_result(space)
    with temp_database(args.db) as url:
        report = {
            "callback": drive_callback(url, space, real, args.trials, args.epochs),
            "optuna": optuna_cost(url, space, sizes),
        }
    report["tune_state"] = tune_state_size(real, args.tune_trials, args.epochs)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
