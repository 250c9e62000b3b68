"""Ray's Optuna searcher, telling Optuna PRUNED for the trials ASHA stops.

Ray's ``OptunaSearch`` tells Optuna COMPLETE whenever a trial's last result carries the
metric, so a trial ASHA stopped after a few epochs looks finished in Optuna's storage
(and in optuna-dashboard) while our store says pruned. A trial is complete only when its
last report is the trainable's ``final`` one (with the test result); otherwise it was
stopped early, and Optuna is told PRUNED (its intermediate values, reported per epoch,
stay). Errors stay FAIL.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` where a trial without a ``final`` report ends PRUNED."""

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if result is not None and not error and not result.get("final"):
            result = None  # no value: OptunaSearch tells Optuna PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)
