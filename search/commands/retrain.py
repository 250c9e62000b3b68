"""``leuksearch retrain TRIAL_ID``: re-run a stored configuration and keep its checkpoint.

The stored TrialConfig (parameters, data protocol and seed) is used as it is; ``--epochs``
and ``--data`` may change the budget and the images. The run is recorded as a new trial of
the same study, linked to the original. ``retrain --config FILE`` takes a file written by
``leuksearch export`` instead (on any machine, no database needed): it trains and keeps the
checkpoint without recording anything.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from leukmodels.config import TrialConfig
from leukmodels.errors import UserError
from search.cli import emit_json
from search.commands.run import options
from search.export import read_config
from search.runner import data_overrides
from search.space_limits import checked_config
from search.store.records import TrialRecord, TrialUpdate
from search.store.store import Store

logger = logging.getLogger(__name__)


def retrain_config(original: TrialRecord, args: argparse.Namespace) -> TrialConfig:
    """The stored configuration with the command line's data, epochs and checkpoint folder."""
    if not original.config:
        raise UserError(f"trial {args.trial_id} has no stored configuration to retrain")
    config = checked_config(
        original.config, f"the stored configuration of trial {args.trial_id} is invalid"
    )
    return _adjust(config, args, str(args.trial_id))


def _adjust(config: TrialConfig, args: argparse.Namespace, name: str) -> TrialConfig:
    config.data = config.data.model_copy(update=data_overrides(options(args)))
    if args.epochs:
        config.params.epochs = args.epochs
    out = args.out or f"runs/retrain-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    config.checkpoint_dir = str(Path(out).resolve())
    return config


def _from_file(args: argparse.Namespace) -> int:
    """``retrain --config FILE``: train an exported configuration, keep its checkpoint."""
    from leukmodels.train import run_trial

    config = _adjust(read_config(args.config), args, Path(args.config).stem)
    logger.info(
        "retraining %s (not recorded in a store); checkpoint in %s",
        args.config,
        config.checkpoint_dir,
    )
    result = run_trial(config)
    if args.json:
        emit_json(
            {
                "config_file": args.config,
                **result.model_dump(
                    mode="json", include={"params", "test", "checkpoint_path", "timings"}
                ),
            }
        )
    else:
        print(
            f"{args.config}: test accuracy {result.test.accuracy:.4f} f1 {result.test.f1:.4f}; "
            f"checkpoint {result.checkpoint_path}"
        )
    return 0


def main(args: argparse.Namespace) -> int:
    from leukmodels.train import run_trial

    if (args.trial_id is None) == (args.config is None):
        raise UserError(
            "give a TRIAL_ID (from the store) or --config FILE (from `leuksearch export`), not both"
        )
    if args.config:
        return _from_file(args)
    with Store.open(args.db) as store:
        original = store.trial(args.trial_id)
        if original is None:
            raise UserError(
                f"no trial {args.trial_id} in {store.masked_url}; `leuksearch best --study NAME` lists trial ids"
            )
        config = retrain_config(original, args)
        update = TrialUpdate(
            params=original.params,
            config=config.model_dump(mode="json"),
            kind="retrain",
            status="running",
            seed=config.params.seed,
            parent_trial_id=args.trial_id,
        )
        tune_id = f"retrain-{args.trial_id}-{int(time.time())}"
        new_id = store.upsert_trial(original.study_id, tune_id, update)
        logger.info(
            "retraining trial %d as trial %d; checkpoint in %s",
            args.trial_id, new_id, config.checkpoint_dir,
        )  # fmt: skip
        try:
            result = run_trial(config, on_epoch=lambda row: store.record_epoch(new_id, row))
        except BaseException as exc:
            status = "terminated" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.finish_trial(
                new_id, status, error=f"{type(exc).__name__}: {exc}", fidelity="partial"
            )
            raise
        store.record_result(new_id, result)
    if args.json:
        emit_json(
            {
                "trial_id": new_id,
                "retrained_from": args.trial_id,
                **result.model_dump(
                    mode="json", include={"params", "test", "checkpoint_path", "timings"}
                ),
            }
        )
    else:
        print(
            f"trial {new_id} (retrain of {args.trial_id}): test accuracy {result.test.accuracy:.4f} "
            f"f1 {result.test.f1:.4f}; checkpoint {result.checkpoint_path}"
        )
    return 0
