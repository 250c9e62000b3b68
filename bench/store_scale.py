"""Benchmark: the PostgreSQL store at 100,000 trials x 10 epochs.

Fills a database of its own (``leuksearch_scale``, dropped and made again unless
``--reuse``) with one study of the quick-start space: ``--trials`` trials (90 % completed
with a test result, 8 % pruned, 2 % failed), each with ``--epochs`` epoch rows. The rows
are bulk-loaded with PostgreSQL ``COPY``; their JSON is that of one real trial (trained
once at 32 px, a few seconds) with the numbers varied per trial and epoch, and their
parameters are points of the space. Then it measures, against the full tables:

- **write**: the driver's real write path, :class:`search.tune_callback.StoreCallback`'s
  hooks with ``--writes`` new trials (start, one ``on_trial_result`` per epoch, complete):
  milliseconds per reported result (epoch), per trial start and per trial end;
- **best**: ``Store.best(study, top=10)``, what ``leuksearch best --top 10`` runs after
  opening the store (median of 7), and the whole command as a process, once;
- **collect**: ``search.report.collect.load_study``, the report's read of every trial
  (wall and this process's CPU seconds);
- **roundtrip**: an empty write transaction (``SELECT 1``) on the same engine, the floor
  a shared machine's load puts under every write.

Run: ``python bench/store_scale.py [--trials 100000] [--epochs 10] [--reuse]``; it prints
one JSON line and exits 1 when a target (< 5 ms per write, < 100 ms best, < 10 s
collect) is missed. Results and the machine's load: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from sqlalchemy import text

from leukmodels.results import TrialResult
from search.optuna_space import KIND, NUMBER, REPEAT, SEED, encode_point
from search.report.collect import load_study
from search.space import Space, load_space
from search.store.records import StudyRecord
from search.store.store import Store, config_values, result_values
from search.trainable import (
    GPUS_KEY,
    HOST_KEY,
    IP_KEY,
    NODE_KEY,
    RESULT_KEY,
    trial_config_for,
)
from search.tune_callback import StoreCallback

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "quickstart.yaml"
STUDY = "scale"
TARGETS = {"write_ms": 5.0, "best_ms": 100.0, "collect_s": 10.0}
PLACEMENT = {NODE_KEY: "0" * 56, HOST_KEY: "bench", IP_KEY: "127.0.0.1", GPUS_KEY: []}
"""What a worker adds to every epoch report (the callback stores it at epoch 1)."""
TEMPLATE_OVERRIDES = {"image_size": 32, "n": 160, "patients": 40}


def recreate_database(admin_url: str, name: str) -> None:
    """Drop and create database ``name`` (the admin URL names another database)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def template_result(space: Space) -> TrialResult:
    """One real trained trial of the space (tiny: 32 px, 160 images, 2 epochs)."""
    from leukmodels.train import run_trial

    point = space.baseline()
    cfg = {**encode_point(space, point), SEED: 0}
    tc = trial_config_for(space, cfg, TEMPLATE_OVERRIDES)
    tc.params.epochs = 2
    with tempfile.TemporaryDirectory() as cache:
        tc.data.cache_dir = cache
        return run_trial(tc)


def sample_points(space: Space, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` completed points: grid points of the categorical factors, lr drawn log-uniform."""
    grid = space.grid()
    lo, hi = 3.0e-4, 3.0e-3
    return [
        space.fill({**rng.choice(grid), "lr": lo * (hi / lo) ** rng.random()}) for _ in range(n)
    ]


def _config(space: Space, point: dict[str, Any], cache: dict[str, dict]) -> dict[str, Any]:
    """The trial's stored TrialConfig as JSON (one pydantic build per grid point, lr patched)."""
    key = json.dumps({k: v for k, v in point.items() if k != "lr"}, sort_keys=True, default=str)
    if key not in cache:
        cfg = {**encode_point(space, point), SEED: 0}
        cache[key] = trial_config_for(space, cfg, {}).model_dump(mode="json")
    config = json.loads(json.dumps(cache[key]))
    config["params"]["lr"] = point["lr"]
    return config


def _copy(conn: psycopg.Connection, table: str, columns: list[str], rows: Any) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


TRIAL_COLUMNS = ["id", "study_id", "tune_trial_id", "optuna_number", "kind", "params", "config",
                 "status", "error", "seed", "split_hash", "fidelity", "epochs_done",
                 "started_at", "ended_at", "duration_s", "repeat", "data_hash",
                 "config_params"]  # fmt: skip
EPOCH_COLUMNS = ["trial_id", "epoch", "metrics", "train_loss", "train_accuracy", "val_loss",
                 "val_accuracy", "val_f1", "lr", "epoch_time_s", "recorded_at"]  # fmt: skip


def trial_rows(space: Space, study_id: int, n: int, n_epochs: int, seed: int) -> Any:
    """ls_trials rows: 90 % completed, 8 % pruned, 2 % failed, ids 1..n."""
    rng = random.Random(seed)
    cache: dict[str, dict] = {}
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, point in enumerate(sample_points(space, n, rng), 1):
        u = rng.random()
        status = "completed" if u < 0.9 else "pruned" if u < 0.98 else "failed"
        began = start + timedelta(seconds=30 * i)
        config = _config(space, point, cache)
        derived = config_values(config)  # what Store.upsert_trial stores beside the config
        yield (
            i, study_id, f"fill_{i:06d}", i - 1, "explore", json.dumps(point),
            json.dumps(config), status,
            "RuntimeError: out of memory" if status == "failed" else None, 0, "s1",
            "full" if status == "completed" else "partial", n_epochs, began,
            began + timedelta(seconds=60), 60.0, 0, derived["data_hash"],
            json.dumps(derived["config_params"]),
        )  # fmt: skip


def epoch_rows(template: TrialResult, n: int, n_epochs: int, seed: int) -> Any:
    """ls_epochs rows: the template's first epoch, its numbers varied per trial and epoch."""
    rng = random.Random(seed + 1)
    base = template.epochs[0].metrics()
    recorded = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for tid in range(1, n + 1):
        skill = rng.random()
        for epoch in range(1, n_epochs + 1):
            m = {k: v * (0.5 + rng.random()) for k, v in base.items()}
            m["val_f1"] = min(1.0, skill * epoch / n_epochs + 0.1 * rng.random())
            yield (
                tid, epoch, json.dumps(m), m.get("train_loss"), m.get("train_accuracy"),
                m.get("val_loss"), m.get("val_accuracy"), m["val_f1"], m.get("lr"),
                m.get("epoch_time_s"), recorded,
            )  # fmt: skip


def result_rows(template: TrialResult, completed: list[int], seed: int) -> Any:
    """ls_results rows of the completed trials: the template's, test metrics varied."""
    rng = random.Random(seed + 2)
    base = result_values(template)
    columns = ["trial_id", *base]
    json_cols = {"metrics", "confusion", "noise", "timings", "profile", "extra"}
    for tid in completed:
        values = dict(base)
        metrics = dict(values["metrics"])
        for name in ("accuracy", "f1", "precision", "recall", "kappa", "mcc"):
            if isinstance(metrics.get(name), float):
                metrics[name] = rng.random()
                values[name] = metrics[name]
        values["metrics"] = metrics
        yield (
            columns,
            (
                tid,
                *(
                    json.dumps(v) if k in json_cols and v is not None else v
                    for k, v in values.items()
                ),
            ),
        )


def fill(store: Store, space: Space, template: TrialResult, n: int, n_epochs: int) -> int:
    """Create the study and COPY its trials, epochs and results in; returns the study id."""
    study_id = store.ensure_study(
        StudyRecord(name=STUDY, space_yaml=space.text, space_hash=space.hash, metric="val_f1",
                    mode="max", space_path=str(SPACE), dataset="synthetic")
    )  # fmt: skip
    raw = store.engine.raw_connection()
    try:
        conn = raw.driver_connection
        trials = list(trial_rows(space, study_id, n, n_epochs, seed=0))
        _copy(conn, "ls_trials", TRIAL_COLUMNS, trials)
        _copy(conn, "ls_epochs", EPOCH_COLUMNS, epoch_rows(template, n, n_epochs, seed=0))
        completed = [row[0] for row in trials if row[7] == "completed"]
        results = list(result_rows(template, completed, seed=0))
        _copy(conn, "ls_results", results[0][0], (row for _, row in results))
        conn.execute("SELECT setval(pg_get_serial_sequence('ls_trials', 'id'), %s)", (n,))
        conn.commit()
        conn.autocommit = True
        for table in ("ls_trials", "ls_epochs", "ls_results"):
            conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.close()
    return study_id


def _ten_epochs(template: TrialResult, n_epochs: int) -> TrialResult:
    first = template.epochs[0]
    rows = [first.model_copy(update={"epoch": e}) for e in range(1, n_epochs + 1)]
    return template.model_copy(update={"epochs": rows, "best_epoch": n_epochs})


def measure_writes(
    store: Store, space: Space, template: TrialResult, study_id: int, n: int, n_epochs: int
) -> dict[str, float]:
    """Milliseconds per callback write (median and 95th percentile) for ``n`` new trials."""
    callback = StoreCallback(store.url, STUDY, study_id, space, {}, summary_every_s=0)
    callback.setup()
    final = _ten_epochs(template, n_epochs)
    result_json = final.model_dump_json()
    times: dict[str, list[float]] = {"start": [], "result": [], "complete": []}
    for i, point in enumerate(sample_points(space, n, random.Random(1))):
        cfg = {**encode_point(space, point), KIND: "explore", SEED: 0, NUMBER: 10**6 + i,
               REPEAT: 0}  # fmt: skip
        trial = SimpleNamespace(trial_id=f"bench_{i:05d}", config=cfg, status="RUNNING")
        t0 = time.perf_counter()
        callback.on_trial_start(0, [trial], trial)
        times["start"].append(time.perf_counter() - t0)
        for row in final.epochs:
            report = {**row.report(), **PLACEMENT}
            t0 = time.perf_counter()
            callback.on_trial_result(0, [trial], trial, report)
            times["result"].append(time.perf_counter() - t0)
        trial.last_result = {"final": True, "epoch": n_epochs, RESULT_KEY: result_json}
        t0 = time.perf_counter()
        callback.on_trial_complete(0, [trial], trial)
        times["complete"].append(time.perf_counter() - t0)
    times["roundtrip"] = []  # the floor: one empty write transaction on the same engine
    for _ in range(200):
        t0 = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        times["roundtrip"].append(time.perf_counter() - t0)
    out: dict[str, float] = {}
    for name, values in times.items():
        ms = sorted(1000 * v for v in values)
        out[f"{name}_median_ms"] = round(statistics.median(ms), 2)
        out[f"{name}_p95_ms"] = round(ms[int(0.95 * (len(ms) - 1))], 2)
    return out


def measure_reads(store: Store, url: str) -> dict[str, float]:
    """``Store.best(top=10)`` (median of 7), the ``best`` command once, ``load_study`` once."""
    store.best(STUDY, top=10)  # warm the connection pool and the server's caches
    best = []
    for _ in range(7):
        t0 = time.perf_counter()
        store.best(STUDY, top=10)
        best.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    cli = [sys.executable, "-m", "search.cli", "best", "--study", STUDY, "--top", "10"]
    subprocess.run([*cli, "--db", url, "--json"], check=True, capture_output=True)
    cli_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    data = load_study(store, STUDY)
    collect_s, collect_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "best_median_ms": round(1000 * statistics.median(best), 1),
        "best_max_ms": round(1000 * max(best), 1),
        "best_command_s": round(cli_s, 2),
        "collect_s": round(collect_s, 2),
        "collect_cpu_s": round(collect_cpu_s, 2),
        "collect_trials": len(data.trials),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="leuksearch_scale")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--writes", type=int, default=100, help="trials written via the callback")
    parser.add_argument("--reuse", action="store_true", help="keep a database filled before")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    url = args.admin_url.rsplit("/", 1)[0] + f"/{args.database}"
    space = load_space(SPACE)
    out: dict[str, Any] = {"trials": args.trials, "epochs": args.epochs, "load": os.getloadavg()}
    template = _ten_epochs(template_result(space), args.epochs)
    if not args.reuse:
        recreate_database(args.admin_url, args.database)
    t0 = time.perf_counter()
    with Store.open(url) as store:  # migrates: on --reuse, new indexes are built here
        out["open_s"] = round(time.perf_counter() - t0, 2)
        found = store.study(STUDY)
        if found is None:
            t0 = time.perf_counter()
            study_id = fill(store, space, template, args.trials, args.epochs)
            out["fill_s"] = round(time.perf_counter() - t0, 1)
        else:
            study_id = found.id
            with store.engine.begin() as conn:  # drop the previous run's measured trials
                conn.execute(text("DELETE FROM ls_trials WHERE tune_trial_id LIKE 'bench_%'"))
        out.update(measure_writes(store, space, template, study_id, args.writes, args.epochs))
        out.update(measure_reads(store, url))
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    missed = [
        out["result_median_ms"] >= TARGETS["write_ms"],
        out["best_median_ms"] >= TARGETS["best_ms"],
        out["collect_s"] >= TARGETS["collect_s"],
    ]
    return 1 if any(missed) else 0


if __name__ == "__main__":
    sys.exit(main())
