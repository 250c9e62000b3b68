"""Segmentation losses and the multi-task loss (paper 001).

Every segmentation loss maps ``(mask logits (B, 1, H, W) or (B, H, W), target (B, H, W)
0/1)`` to a scalar:

- ``bce``: binary cross-entropy on the logits, mean over all pixels.
- ``dice``: soft Dice loss ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` per image
  (``p = sigmoid(logit)``, smoothing 1 so an empty mask predicted empty costs ~0), mean over
  the batch.
- ``focal``: class-weighted binary focal loss (paper 001, Eq. 12),
  ``-[a_c y (1 - p)^g log p + (1 - y) p^g log(1 - p)]``, mean over all pixels, with
  ``a_c = N_b / N_f`` (background over foreground pixels of the *training* masks, see
  :func:`foreground_weight`) and ``g = gamma`` (2 by default; the paper gives none). The
  paper prints the background factor as ``(1 - y)^g``, which is ``1 - y`` for binary ``y``
  and leaves the background term without focusing; we read it as Lin et al.'s ``p^g``.
  Computed by torchvision's ``sigmoid_focal_loss`` with ``alpha = a_c / (1 + a_c)``, times
  ``1 + a_c`` (the same loss).

:class:`MultiTaskLoss` is ``sum_i w_i L_i`` over the classification loss and the
segmentation loss (paper 001: equal weights).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from leukmodels.errors import DataError, UserError

SEG_LOSSES: tuple[str, ...] = ("bce", "dice", "focal")


def _align(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if logits.ndim == 4:
        logits = logits.squeeze(1)
    if logits.shape != target.shape:
        raise ValueError(f"mask logits {tuple(logits.shape)} vs target {tuple(target.shape)}")
    return logits.float(), target.float()


def foreground_weight(masks: np.ndarray | Iterable[np.ndarray]) -> float:
    """``a_c = N_b / N_f``: background over foreground pixels of the (training) masks.

    ``masks``: an (N, H, W) array or an iterable of (H, W) masks, nonzero = nucleus. A
    set without foreground pixels is a :class:`DataError`.
    """
    n_fg = n_all = 0
    chunks = [masks] if isinstance(masks, np.ndarray) else masks
    for m in chunks:
        m = np.asarray(m)
        n_fg += int(np.count_nonzero(m))
        n_all += int(m.size)
    if n_fg == 0:
        raise DataError("the training masks have no foreground pixel: a_c = N_b/N_f undefined")
    return (n_all - n_fg) / n_fg


class BCEMaskLoss(nn.Module):
    """Binary cross-entropy on mask logits, mean over pixels."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = _align(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)


class SoftDiceLoss(nn.Module):
    """``1 - soft Dice`` per image (smoothing ``smooth``), mean over the batch."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = _align(logits, target)
        p = torch.sigmoid(logits).flatten(1)
        t = target.flatten(1)
        inter = (p * t).sum(1)
        dice = (2 * inter + self.smooth) / (p.sum(1) + t.sum(1) + self.smooth)
        return (1 - dice).mean()


class BinaryFocalLoss(nn.Module):
    """Class-weighted binary focal loss: foreground weight ``a_c``, background 1."""

    def __init__(self, fg_weight: float = 1.0, gamma: float = 2.0) -> None:
        super().__init__()
        if fg_weight <= 0 or gamma < 0:
            raise UserError(f"focal loss: need a_c > 0 and gamma >= 0, got {fg_weight}, {gamma}")
        self.fg_weight = float(fg_weight)
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = _align(logits, target)
        alpha = self.fg_weight / (1.0 + self.fg_weight)
        loss = sigmoid_focal_loss(logits, target, alpha=alpha, gamma=self.gamma, reduction="mean")
        return loss * (1.0 + self.fg_weight)


def build_seg_loss(name: str, fg_weight: float | None = None, gamma: float = 2.0) -> nn.Module:
    """The segmentation loss ``name``; ``focal`` needs ``fg_weight`` (:func:`foreground_weight`)."""
    if name == "bce":
        return BCEMaskLoss()
    if name == "dice":
        return SoftDiceLoss()
    if name == "focal":
        if fg_weight is None:
            raise UserError("the focal segmentation loss needs a_c = N_b/N_f (fg_weight)")
        return BinaryFocalLoss(fg_weight, gamma)
    raise UserError(f"unknown segmentation loss {name!r}; choose one of {list(SEG_LOSSES)}")


class MultiTaskLoss(nn.Module):
    """``w_cls * L_cls(logits, y) + w_seg * L_seg(mask_logits, mask)``.

    ``forward`` returns the total and the unweighted parts (``{'cls': .., 'seg': ..}``, as
    tensors). Without mask logits (a single-task model) the segmentation term is left out.
    ``set_epoch`` is passed on to the classification loss (:class:`leukmodels.losses.Loss`).
    """

    def __init__(
        self,
        cls_loss: nn.Module,
        seg_loss: nn.Module | None,
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        if len(weights) != 2 or any(w < 0 for w in weights):
            raise UserError(f"task loss weights must be two numbers >= 0, got {weights}")
        self.cls_loss = cls_loss
        self.seg_loss = seg_loss
        self.weights = (float(weights[0]), float(weights[1]))

    def set_epoch(self, epoch: int) -> None:
        """Tell the classification loss which epoch is about to be trained."""
        if hasattr(self.cls_loss, "set_epoch"):
            self.cls_loss.set_epoch(epoch)

    def forward(
        self,
        logits: Tensor,
        target: Tensor,
        mask_logits: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        parts = {"cls": self.cls_loss(logits, target)}
        total = self.weights[0] * parts["cls"]
        if mask_logits is not None:
            if self.seg_loss is None or mask is None:
                raise ValueError("mask logits given without a segmentation loss or target mask")
            parts["seg"] = self.seg_loss(mask_logits, mask)
            total = total + self.weights[1] * parts["seg"]
        return total, parts
