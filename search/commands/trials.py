"""``leuksearch trials --study S [--status failed]``: one line per trial, errors included."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.listing import last_error_line, trial_row
from search.store.store import Store


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
            print(f"      error: {last_error_line(r['error'])}")
    return 0
