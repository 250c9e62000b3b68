"""``leuksearch trials --study S [--status failed]``: one line per trial, errors included."""

from __future__ import annotations

import argparse
from typing import Any

from search.cli import emit_json
from search.store.records import TrialRecord
from search.store.store import Store


def trial_row(t: TrialRecord, metric: str, value: float | None) -> dict[str, Any]:
    """What ``trials --json`` prints for one trial."""
    return {
        "trial_id": t.trial_id,
        "kind": t.kind,
        "status": t.status,
        "params": t.params or {},
        "metric": metric,
        "value": value,
        "test_metrics": _test(t),
        "epochs_done": t.epochs_done,
        "duration_s": t.duration_s,
        "node": t.node,
        "seed": t.seed,
        "repeat": t.repeat,
        "optuna_number": t.optuna_number,
        "parent_trial_id": t.parent_trial_id,
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "error": t.error,
    }


def _test(t: TrialRecord) -> dict[str, float] | None:
    if t.result is None or t.result.metrics is None:
        return None
    m = t.result.metrics
    return {k: getattr(m, k) for k in ("accuracy", "f1", "kappa", "auc") if hasattr(m, k)}


def main(args: argparse.Namespace) -> int:
    with Store.open(args.db) as store:
        study = store.require_study(args.study)
        trials = store.trials(study.id, status=args.status)
        values = store.trial_values(study.id, study.metric, study.mode)
    rows = [trial_row(t, study.metric, values.get(t.trial_id)) for t in trials]
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        which = f" {args.status}" if args.status else ""
        print(f"study {args.study} has no{which} trials")
        return 0
    print(
        f"{'trial':>5} {'kind':<9} {'status':<10} {study.metric:>8} {'ep':>3} {'time':>7}  params"
    )
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        took = "-" if r["duration_s"] is None else f"{r['duration_s']:.0f}s"
        params = " ".join(f"{k}={v}" for k, v in r["params"].items())
        print(
            f"{r['trial_id']:>5} {r['kind']:<9} {r['status']:<10} {value:>8} "
            f"{r['epochs_done']:>3} {took:>7}  {params}"
        )
        if r["error"]:
            print(f"      error: {_last_line(r['error'])}")
    return 0


def _last_line(error: str) -> str:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:300]
