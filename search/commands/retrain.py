"""``leuksearch retrain TRIAL_ID``: re-run a stored configuration and keep its checkpoint.

The stored TrialConfig (parameters, data protocol and seed) is used as it is; ``--epochs``
and ``--data`` may change the budget and the images. The run is recorded as a new trial of
the same study, linked to the original.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from leukmodels.errors import UserError
from search.cli import emit_json, log
from search.commands.run import options
from search.runner import data_overrides
from search.space_limits import checked_config
from search.store.store import Store


def main(args: argparse.Namespace) -> int:
    from leukmodels.train import run_trial

    with Store.open(args.db) as store:
        original = store.trial(args.trial_id)
        if original is None:
            raise UserError(
                f"no trial {args.trial_id} in {store.masked_url}; `leuksearch best --study NAME` lists trial ids"
            )
        if not original.get("config"):
            raise UserError(f"trial {args.trial_id} has no stored configuration to retrain")
        config = checked_config(
            original["config"], f"the stored configuration of trial {args.trial_id} is invalid"
        )
        config.data = config.data.model_copy(update=data_overrides(options(args)))
        if args.epochs:
            config.params.epochs = args.epochs
        out = Path(
            args.out or f"runs/retrain-{args.trial_id}-{time.strftime('%Y%m%d-%H%M%S')}"
        ).resolve()
        config.checkpoint_dir = str(out)
        tune_id = f"retrain-{args.trial_id}-{int(time.time())}"
        new_id = store.upsert_trial(
            original["study_id"],
            tune_id,
            params=original["params"],
            config=config.model_dump(mode="json"),
            kind="retrain",
            status="running",
            seed=config.params.seed,
            parent_trial_id=args.trial_id,
        )
        log(f"retraining trial {args.trial_id} as trial {new_id}; checkpoint in {out}")
        try:
            result = run_trial(
                config, on_epoch=lambda row: store.record_epoch(new_id, row["epoch"], row), log=log
            )
        except BaseException as exc:
            status = "terminated" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.finish_trial(
                new_id, status, error=f"{type(exc).__name__}: {exc}", fidelity="partial"
            )
            raise
        store.record_result(new_id, result)
    summary = {
        "trial_id": new_id,
        "retrained_from": args.trial_id,
        "params": result["params"],
        "test": result["test"],
        "checkpoint_path": result["checkpoint_path"],
        "timings": result["timings"],
    }
    if args.json:
        emit_json(summary)
    else:
        t = result["test"]
        print(
            f"trial {new_id} (retrain of {args.trial_id}): test accuracy {t['accuracy']:.4f} f1 {t['f1']:.4f}; checkpoint {result['checkpoint_path']}"
        )
    return 0
