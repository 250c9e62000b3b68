"""``leuksearch trial SPACE``: train one configuration, no Ray and no database."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from leukmodels.config import TrialConfig
from leukmodels.errors import UserError
from search.cli import emit_json
from search.commands.run import options
from search.export import read_config
from search.runner import data_overrides
from search.space import Space, load_space

logger = logging.getLogger(__name__)


def parse_params(text: str | None) -> dict[str, Any]:
    """The --params JSON object (empty when not given)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"--params is not valid JSON ({exc.msg} at character {exc.pos}): {text}"
        ) from None
    if not isinstance(value, dict):
        raise UserError(
            f'--params must be a JSON object like \'{{"attention": "scab"}}\', got {text}'
        )
    return value


def build_config(space: Space, params: dict[str, Any], overrides: dict[str, Any]) -> TrialConfig:
    """The space's baseline with ``params`` on top, and the command line's data overrides."""
    point = space.fill({**space.baseline(), **params})
    point.update({k: v for k, v in params.items() if k not in point})
    return space.trial_config(point, overrides=overrides)


def load_config(args: argparse.Namespace) -> TrialConfig:
    """The configuration to train: from ``--config FILE`` (an export) or from the space."""
    overrides = data_overrides(options(args))
    if args.config:
        if args.space or args.params or args.profile:
            raise UserError(
                "--config FILE replaces SPACE, --profile and --params; give one or the other"
            )
        config = read_config(args.config)
        config.data = config.data.model_copy(update=overrides)
        logger.info("trial: %s on %s", args.config, config.data.dataset)
        return config
    if not args.space:
        raise UserError("give a SPACE file or --config FILE (from `leuksearch export`)")
    space = load_space(args.space, args.profile)
    config = build_config(space, parse_params(args.params), overrides)
    shown = {k: v for k, v in config.params.model_dump().items() if k in space.factors}
    logger.info(
        "trial: %s on %s: %s", space.study, config.data.dataset, json.dumps(shown, default=str)
    )
    return config


def main(args: argparse.Namespace) -> int:
    from leukmodels.train import run_trial

    config = load_config(args)
    if args.epochs:
        config.params.epochs = args.epochs
    if args.out:
        config.checkpoint_dir = args.out
    result = run_trial(config)
    if args.json:
        emit_json(result.model_dump(mode="json"))
    else:
        t = result.test
        print(
            f"test accuracy {t.accuracy:.4f}  f1 {t.f1:.4f}  kappa {_num(t.kappa)}  "
            f"auc {_num(t.auc)}  ({result.timings.total_s:.1f}s)"
        )
    return 0


def _num(value: float | None) -> str:
    return "None" if value is None else f"{value:.4f}"
