"""``leuksearch studies``: the studies in a store, with their trial counts and best values."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.store.store import Store


def main(args: argparse.Namespace) -> int:
    with Store.open(args.db) as store:
        rows = store.studies()
        if args.json:  # listings leave out the bulky space text and config
            emit_json([s.model_dump(mode="json", exclude={"space_yaml", "config"}) for s in rows])
            return 0
        if not rows:
            print(f"no studies in {store.masked_url}")
            return 0
        print(
            f"{'study':<28} {'status':<12} {'trials':>6} {'done':>5} {'pruned':>6} {'failed':>6}  best"
        )
        for s in rows:
            c = s.counts
            best = (
                "-"
                if s.best_value is None
                else f"{s.metric} {s.best_value:.4f} (trial {s.best_trial_id})"
            )
            print(
                f"{s.name:<28} {s.status:<12} {s.n_trials:>6} {c.get('completed', 0):>5} "
                f"{c.get('pruned', 0):>6} {c.get('failed', 0):>6}  {best}"
            )
    return 0
