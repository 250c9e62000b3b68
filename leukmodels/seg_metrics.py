"""Segmentation metrics: Dice and IoU of binary masks, per image and pooled.

With ``TP, FP, FN`` the pixel counts of one prediction against its mask:
``Dice = 2 TP / (2 TP + FP + FN)`` and ``IoU = TP / (TP + FP + FN)``.

- ``dice_macro`` / ``iou_macro``: the metric of each image, then the unweighted mean over
  images. **Empty-mask convention**: an image whose mask and prediction are both empty
  scores 1 (a perfect "nothing there"); one empty and the other not scores 0.
- ``dice_pooled`` / ``iou_pooled``: one metric from the counts summed over every pixel of
  every image (micro average); 1 when all masks and predictions are empty.

Predictions are binarised at probability 0.5 (logit > 0) by :class:`SegmentationMeter`;
targets are nonzero = foreground. All values are plain floats in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SEG_METRICS: tuple[str, ...] = ("dice_macro", "iou_macro", "dice_pooled", "iou_pooled")


def confusion_counts(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image ``(TP, FP, FN)`` (int64, shape (N, 3)) of boolean-able (N, H, W) masks."""
    pred = np.asarray(pred).astype(bool)
    target = np.asarray(target).astype(bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and mask {target.shape} differ in shape")
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    axes = tuple(range(1, pred.ndim))
    tp = np.sum(pred & target, axis=axes)
    fp = np.sum(pred & ~target, axis=axes)
    fn = np.sum(~pred & target, axis=axes)
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def _dice_iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU elementwise; 1 where ``TP + FP + FN == 0`` (both empty)."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    union = tp + fp + fn
    empty = union == 0
    dice = np.where(empty, 1.0, 2 * tp / np.where(empty, 1.0, 2 * tp + fp + fn))
    iou = np.where(empty, 1.0, tp / np.where(empty, 1.0, union))
    return dice, iou


def seg_scores(counts: np.ndarray) -> dict[str, float]:
    """The four :data:`SEG_METRICS` from per-image ``(TP, FP, FN)`` counts (N, 3)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
    if len(counts) == 0:
        raise ValueError("no image to score")
    dice, iou = _dice_iou(counts[:, 0], counts[:, 1], counts[:, 2])
    pooled_dice, pooled_iou = _dice_iou(*counts.sum(axis=0))
    return {
        "dice_macro": float(dice.mean()),
        "iou_macro": float(iou.mean()),
        "dice_pooled": float(pooled_dice),
        "iou_pooled": float(pooled_iou),
    }


def segmentation_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Dice and IoU, macro over images and pooled, of binary masks (N, H, W) or (H, W)."""
    return seg_scores(confusion_counts(pred, target))


class SegmentationMeter:
    """Accumulates per-image counts over batches of mask logits; :meth:`compute` scores."""

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self._counts: list[np.ndarray] = []

    @torch.no_grad()
    def update(self, mask_logits: Tensor, target: Tensor) -> None:
        """Add a batch: logits (B, 1, H, W) or (B, H, W), targets (B, H, W)."""
        if mask_logits.ndim == 4:
            mask_logits = mask_logits.squeeze(1)
        pred = torch.sigmoid(mask_logits.float()) > self.threshold
        self._counts.append(confusion_counts(pred.cpu().numpy(), target.cpu().numpy() > 0))

    @property
    def count(self) -> int:
        """Images seen."""
        return int(sum(len(c) for c in self._counts))

    def compute(self) -> dict[str, float]:
        """The :data:`SEG_METRICS` over every image seen."""
        return seg_scores(np.concatenate(self._counts) if self._counts else np.zeros((0, 3)))
