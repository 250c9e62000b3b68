"""``leuksearch best --study NAME``: the best completed trials, best first."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.store.store import Store


def main(args: argparse.Namespace) -> int:
    with Store.open(args.db) as store:
        rows = store.best(args.study, metric=args.metric, top=args.top)
    if args.json:
        emit_json([r.model_dump(mode="json") for r in rows])
        return 0
    if not rows:
        print(f"study {args.study} has no completed trials yet")
        return 0
    for i, r in enumerate(rows, 1):
        m = r.metrics
        params = " ".join(f"{k}={v}" for k, v in r.params.items())
        print(
            f"{i}. trial {r.trial_id}  {r.metric} {r.value:.4f}  test acc "
            f"{m.get('accuracy', float('nan')):.4f} f1 {m.get('f1', float('nan')):.4f}\n   {params}"
        )
    return 0
