"""A trial's training state, to continue it after a crash from its last finished epoch.

:func:`capture` takes everything :func:`leukmodels.train.fit` needs to go on: the model's,
optimiser's, schedule's and gradient scaler's states, early stopping, the epochs so far,
the best epoch's weights and the training time spent. :func:`restore` loads it into a
freshly set-up run. The data loaders' shuffling starts afresh (a continued trial is not
bit-identical to an uninterrupted one). Plain dicts of tensors and numbers: safe for
``torch.load(weights_only=True)``. When the last epoch is the best one, its weights are
the model's and are stored once (``best_is_model``; version 2).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from leukmodels.results import EpochRow

if TYPE_CHECKING:
    from leukmodels.train import Run

VERSION = 2
READABLE = (1, 2)  # version 1: best_state always stored


def capture(
    run: Run,
    epochs: list[EpochRow],
    best_state: dict[str, torch.Tensor] | None,
    seconds: float,
    stopped: bool,
) -> dict[str, Any]:
    """The state after the last of ``epochs`` (``stopped``: early stopping ended it)."""
    stopper = run.stopper
    best_is_model = bool(epochs) and stopper.best_epoch == epochs[-1].epoch
    return {
        "version": VERSION,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "stopper": {
            "best": stopper.best,
            "best_epoch": stopper.best_epoch,
            "bad_epochs": stopper.bad_epochs,
        },
        "epochs": [row.model_dump() for row in epochs],
        "best_state": None if best_is_model else best_state,
        "best_is_model": best_is_model,
        "seconds": float(seconds),
        "stopped": bool(stopped),
    }


def restore(
    run: Run, state: dict[str, Any]
) -> tuple[list[EpochRow], dict[str, torch.Tensor] | None, float, bool]:
    """Load ``state`` into ``run``; returns (epochs, best weights, seconds, stopped)."""
    if state.get("version") not in READABLE:
        raise ValueError(f"training state version {state.get('version')!r}; expected {VERSION}")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    stopper = state["stopper"]
    run.stopper.best = stopper["best"]
    run.stopper.best_epoch = stopper["best_epoch"]
    run.stopper.bad_epochs = stopper["bad_epochs"]
    epochs = [EpochRow.model_validate(row) for row in state["epochs"]]
    best = state["best_state"]
    if state.get("best_is_model"):
        best = copy.deepcopy(run.model.state_dict())
    return epochs, best, float(state["seconds"]), bool(state["stopped"])
