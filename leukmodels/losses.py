"""Training losses, built by name from :class:`leukmodels.config.TrialParams`.

Every loss maps ``(logits (N, K), target (N,) int)`` to a scalar (batch mean) and has
``set_epoch(epoch)``, which the training loop calls at the start of each epoch
(epochs count from 0); only ``ce_then_focal`` uses it.

- ``ce``: cross-entropy.
- ``weighted_ce``: cross-entropy with inverse-class-frequency weights, normalised so
  that the weights of the classes present in the training counts average 1; a class
  with count 0 gets weight 0. (torch's weighted mean divides by the summed weights of
  the batch's targets, so the normalisation only matters for readability.)
- ``focal``: multi-class softmax focal loss ``-alpha * (1 - p_t)**gamma * log p_t``
  (Lin et al. 2017, RetinaNet; paper 003: gamma 2.0, alpha 0.25). ``alpha`` is one scalar
  factor for every class and every K (as in paper 003's 4-class use), not RetinaNet's
  binary alpha / 1 - alpha split; ``alpha=None`` means 1. gamma 0 and alpha None is CE.
  For class balancing, use ``weighted_ce``.
- ``label_smoothing``: torch cross-entropy with ``label_smoothing=params.label_smoothing``.
- ``ce_then_focal``: CE while ``epoch < focal_switch_epoch``, focal from then on (paper 003).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leukmodels.config import LOSSES, TrialParams
from leukmodels.errors import UserError


class Loss(nn.Module):
    """A classification loss that may depend on the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss which epoch (from 0) is about to be trained."""
        self.epoch = int(epoch)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class CrossEntropy(Loss):
    """torch cross-entropy, optionally class-weighted and label-smoothed."""

    def __init__(self, weight: Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            logits, target, weight=self.weight, label_smoothing=self.label_smoothing
        )


class FocalLoss(Loss):
    """Softmax focal loss ``-alpha * (1 - p_t)**gamma * log p_t``, averaged over the batch."""

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = 1.0 if alpha is None else alpha

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        log_pt = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        # 1 - p_t without cancellation; the floor keeps d/dp (1-p)**gamma finite for gamma < 1.
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(1e-12)
        return (-self.alpha * one_minus_pt.pow(self.gamma) * log_pt).mean()


class CEThenFocal(Loss):
    """Cross-entropy for epochs before ``switch_epoch``, focal loss from it on."""

    def __init__(self, focal: FocalLoss, switch_epoch: int) -> None:
        super().__init__()
        self.ce = CrossEntropy()
        self.focal = focal
        self.switch_epoch = switch_epoch

    @property
    def active(self) -> Loss:
        """The loss used in the current epoch."""
        return self.ce if self.epoch < self.switch_epoch else self.focal

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.active(logits, target)


def inverse_frequency_weights(class_counts: Sequence[int]) -> Tensor:
    """Weights proportional to 1 / count, mean 1 over counted classes, 0 for empty ones."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or len(counts) < 2 or (counts < 0).any() or counts.sum() == 0:
        raise UserError(
            f"class counts must be >= 0 for at least 2 classes, not all zero; got {list(class_counts)}"
        )
    present = counts > 0
    inv = torch.where(present, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    return (inv / inv[present].mean()).float()


def build_loss(params: TrialParams, class_counts: list[int]) -> Loss:
    """The loss named by ``params.loss``; ``class_counts`` are training images per class."""
    name = params.loss
    if name == "ce":
        return CrossEntropy()
    if name == "weighted_ce":
        return CrossEntropy(weight=inverse_frequency_weights(class_counts))
    if name == "label_smoothing":
        return CrossEntropy(label_smoothing=params.label_smoothing)
    if name == "focal":
        return FocalLoss(params.focal_gamma, params.focal_alpha)
    if name == "ce_then_focal":
        return CEThenFocal(
            FocalLoss(params.focal_gamma, params.focal_alpha), params.focal_switch_epoch
        )
    raise UserError(f"unknown loss {name!r}; choose one of {list(LOSSES)}")
