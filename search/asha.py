"""ASHA that never cuts a trial the study needs at full fidelity.

Ray's ASHA stops trials below a rung's cutoff. Two kinds of trial must run to their end:
the ablation set (a baseline and its one-factor variants, enqueued before exploration)
and any trial that has reached the epoch budget (it still has to report its test
metrics). Both are recorded in the rungs like any other trial, so they still inform the
cutoffs for the explorers.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.optuna_space import KIND
from search.store.schema import FULL_FIDELITY_KINDS


class FullFidelityASHA(ASHAScheduler):
    """ASHA on ``epoch`` that exempts the ablation set and the final report."""

    def __init__(
        self, *, metric: str, mode: str, max_epochs: int, grace_epochs: int, reduction_factor: float
    ) -> None:
        self.max_epochs = max_epochs
        super().__init__(
            time_attr="epoch",
            metric=metric,
            mode=mode,
            max_t=max_epochs,
            grace_period=min(grace_epochs, max_epochs),
            reduction_factor=reduction_factor,
            stop_last_trials=False,
        )

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        exempt = (
            trial.config.get(KIND) in FULL_FIDELITY_KINDS
            or result.get("final")
            or result.get("epoch", 0) >= self.max_epochs
        )
        if exempt:
            return TrialScheduler.CONTINUE
        return action
