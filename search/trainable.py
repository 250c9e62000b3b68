"""The Ray Tune function around :func:`leukmodels.train.run_trial`.

It turns the trial's config (the Optuna parameters plus our meta keys) back into a
:class:`~leukmodels.config.TrialConfig`, reports every epoch to Tune, and ends with one
``final`` report carrying the test metrics as JSON (the driver's callback stores them).
"""

from __future__ import annotations

import json
from typing import Any

from ray import tune

from search.optuna_space import FOLD, SEED, decode_config
from search.space import Space


def trial_config_for(space: Space, config: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The TrialConfig of a Tune trial: decoded point, seed, fold, data overrides."""
    point = decode_config(space, config)
    tc = space.trial_config(
        point, seed=config.get(SEED), fold=config.get(FOLD), overrides=overrides
    )
    tc.threads = max(1, int(space.search.resources.cpu))
    return tc


def train_trial(config: dict[str, Any], space: Space, overrides: dict[str, Any]) -> None:
    """Tune function trainable (``tune.with_parameters`` supplies space and overrides)."""
    from leukmodels.train import run_trial

    tc = trial_config_for(space, config, overrides)
    result = run_trial(tc, on_epoch=tune.report)
    last_epoch = result["epochs"][-1]["epoch"] if result["epochs"] else 0
    # the epochs were reported one by one; params and data are in the stored config
    summary = {k: v for k, v in result.items() if k not in ("params", "data", "epochs")}
    summary["epochs_done"] = len(result["epochs"])
    tune.report(
        {
            "epoch": last_epoch,
            "final": True,
            space.search.metric: result["best_value"],
            "result_json": json.dumps(summary, default=str),
        }
    )
