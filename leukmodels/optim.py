"""Optimiser, learning-rate schedule, L1 penalty and early stopping of one trial.

Optimisers come from timm's ``create_optimizer_v2`` (its registry names):

- ``sgd``: timm ``momentum`` (torch SGD, classical momentum) or, when ``params.nesterov``,
  timm ``nesterov`` (torch SGD, Nesterov momentum); ``momentum=params.momentum``.
  (timm's own ``sgd`` name means Nesterov, hence the explicit names here.)
- ``adam`` / ``adamw``: torch Adam (L2 weight decay, coupled) / AdamW (decoupled),
  ``betas=(beta1, beta2)``.
- ``rmsprop``: torch RMSprop as timm configures it: ``alpha=0.9`` (timm's default),
  ``momentum=params.momentum``.

Weight decay uses timm's ``filter_bias_and_bn=True``: biases and every 1-d parameter
(norm-layer scales and shifts) get no decay; all other weights get
``params.weight_decay``. So there are two parameter groups (no-decay first) when
``weight_decay > 0``, one when it is 0.

Schedules are stepped once at the end of every epoch (:class:`Schedule`); the
``plateau`` schedule monitors a validation score where higher is better (mode "max",
the default; pass ``mode="min"`` when the monitored value is a loss).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau, StepLR

from leukmodels.config import OPTIMIZERS, SCHEDULES, TrialParams
from leukmodels.errors import UserError


def build_optimizer(model: nn.Module, params: TrialParams) -> Optimizer:
    """The optimiser named by ``params.optimizer`` over ``model``'s trainable parameters."""
    name = params.optimizer
    kwargs: dict = {}
    if name == "sgd":
        if params.nesterov and params.momentum == 0:
            raise UserError("nesterov=true needs momentum > 0 (SGD with Nesterov momentum)")
        timm_name = "nesterov" if params.nesterov else "momentum"
    elif name in ("adam", "adamw"):
        timm_name = name
        kwargs["betas"] = (params.beta1, params.beta2)
    elif name == "rmsprop":
        timm_name = "rmsprop"
    else:
        raise UserError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    return create_optimizer_v2(
        model,
        opt=timm_name,
        lr=params.lr,
        weight_decay=params.weight_decay,
        momentum=params.momentum,
        filter_bias_and_bn=True,
        **kwargs,
    )


class Schedule:
    """A learning-rate schedule stepped once per epoch end: ``step(val_metric)``.

    - ``constant``: the lr never changes.
    - ``cosine``: torch ``CosineAnnealingLR(T_max=epochs, eta_min=min_lr)``: epoch e
      trains at ``min_lr + (lr - min_lr) * (1 + cos(pi * e / epochs)) / 2``; after the
      last epoch's step the lr is ``min_lr``.
    - ``step``: torch ``StepLR``: lr times ``step_gamma`` every ``step_size`` epochs (no floor).
    - ``plateau``: torch ``ReduceLROnPlateau(mode=mode)``; by default "max": the monitored
      value is a validation score (higher is better); lr times ``plateau_factor`` after more than
      ``plateau_patience`` epochs without improvement, never below ``min_lr``.
      ``step`` then needs the metric; the others ignore it.
    """

    def __init__(
        self, optimizer: Optimizer, params: TrialParams, epochs: int, mode: str = "max"
    ) -> None:
        self.optimizer = optimizer
        self.kind = params.schedule
        self._torch: torch.optim.lr_scheduler.LRScheduler | ReduceLROnPlateau | None
        if self.kind == "constant":
            self._torch = None
        elif self.kind == "cosine":
            self._torch = CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=params.min_lr)
        elif self.kind == "step":
            self._torch = StepLR(optimizer, step_size=params.step_size, gamma=params.step_gamma)
        elif self.kind == "plateau":
            self._torch = ReduceLROnPlateau(
                optimizer,
                mode=mode,
                factor=params.plateau_factor,
                patience=params.plateau_patience,
                min_lr=params.min_lr,
            )
        else:
            raise UserError(f"unknown schedule {self.kind!r}; choose one of {list(SCHEDULES)}")

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group; all groups share it)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The torch scheduler's state (empty for ``constant``), to continue after a crash."""
        return self._torch.state_dict() if self._torch is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if self._torch is not None:
            self._torch.load_state_dict(state)

    def step(self, val_metric: float | None = None) -> None:
        """Advance one epoch; ``val_metric`` is the epoch's validation score (plateau only)."""
        if self._torch is None:
            return
        if isinstance(self._torch, ReduceLROnPlateau):
            if val_metric is None:
                raise UserError(
                    "schedule 'plateau' needs a validation score every epoch: give the split "
                    "a validation share (val > 0 / val_from_train > 0) or choose another schedule"
                )
            self._torch.step(val_metric)
        else:
            self._torch.step()


def build_scheduler(
    optimizer: Optimizer, params: TrialParams, epochs: int, mode: str = "max"
) -> Schedule:
    """The schedule named by ``params.schedule`` over ``epochs`` epochs.

    ``mode`` is the plateau direction: "max" (default) for a score, "min" for a loss.
    """
    return Schedule(optimizer, params, epochs, mode)


def l1_penalty(model: nn.Module, params: TrialParams) -> Tensor:
    """``params.l1 * sum |W|`` over the weights of ``model.get_classifier()`` (not biases).

    As Keras' ``kernel_regularizer=l1(...)`` on the last Dense layer (paper 004): add it to
    the batch's mean loss. Every ``nn.Linear`` inside the classifier counts. A 0-d zero
    tensor when ``params.l1 == 0``.
    """
    if params.l1 == 0:
        first = next(model.parameters(), None)
        return torch.zeros((), device=None if first is None else first.device)
    get_classifier = getattr(model, "get_classifier", None)
    if get_classifier is None:
        raise UserError("l1 > 0 needs a model with get_classifier() (the head to penalise)")
    weights = [m.weight for m in get_classifier().modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise UserError("l1 > 0 but the model's classifier has no linear layer to penalise")
    return params.l1 * sum(w.abs().sum() for w in weights)


class EarlyStopping:
    """Stop after ``patience`` consecutive epochs without a strict improvement.

    ``update(value, epoch)`` is called once per epoch with the monitored score and
    returns True when training should stop; with ``patience=None`` it never does.
    ``mode="max"``: higher is better; ``"min"``: lower is better. A NaN never improves.
    ``best`` and ``best_epoch`` are the best value so far and its epoch (None before any).
    """

    def __init__(self, patience: int | None, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        self.patience = patience
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's score; True when training should stop now."""
        value = float(value)
        if self._improves(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience
