"""``leuksearch trial SPACE``: train one configuration, no Ray and no database."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from leukmodels.config import TrialConfig
from leukmodels.errors import UserError
from search.cli import emit_json, log
from search.space import Space, load_space


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


def build_config(
    space: Space, params: dict[str, Any], data: str | None, skip_bad: bool
) -> TrialConfig:
    """The space's baseline with ``params`` on top, and the data overrides from the CLI."""
    point = space.fill({**space.baseline(), **params})
    point.update({k: v for k, v in params.items() if k not in point})
    try:
        config = space.trial_config(point)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            + (
                f" (got {e['input']!r})"
                if "input" in e and not isinstance(e["input"], dict)
                else ""
            )
            for e in exc.errors()
        )
        raise UserError(f"bad trial parameters: {problems}") from None
    config.monitor = space.search.metric
    config.monitor_mode = space.search.mode
    if data:
        config.data.dataset = data
    if skip_bad:
        config.data.skip_bad_images = True
    return config


def main(args: argparse.Namespace) -> int:
    from leukmodels.train import run_trial

    space = load_space(args.space, args.profile)
    config = build_config(space, parse_params(args.params), args.data, args.skip_bad_images)
    if args.epochs:
        config.params.epochs = args.epochs
    if args.out:
        config.checkpoint_dir = args.out
    log(
        f"trial: {space.study} on {config.data.dataset}: "
        + json.dumps(
            {k: v for k, v in config.params.model_dump().items() if k in space.factors}, default=str
        )
    )
    result = run_trial(config, log=log)
    if args.json:
        emit_json(result)
    else:
        t = result["test"]
        print(
            f"test accuracy {t['accuracy']:.4f}  f1 {t['f1']:.4f}  kappa {t['kappa']:.4f}  "
            f"auc {t['auc'] if t.get('auc') is None else format(t['auc'], '.4f')}  "
            f"({result['timings']['total_s']:.1f}s)"
        )
    return 0
