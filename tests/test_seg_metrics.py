"""Dice and IoU (per image and pooled) against hand computations on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leukmodels.seg_metrics import (
    SEG_METRICS,
    SegmentationMeter,
    confusion_counts,
    segmentation_metrics,
)


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """Three 4x4 images: partial overlap, both empty, prediction empty on a non-empty mask."""
    pred = np.zeros((3, 4, 4), np.uint8)
    target = np.zeros((3, 4, 4), np.uint8)
    pred[0, 0, :3] = 1  # 3 predicted pixels (0,0) (0,1) (0,2)
    target[0, 0, 1:] = 1  # 3 true pixels (0,1) (0,2) (0,3): TP 2, FP 1, FN 1
    target[2, 2:, 2:] = 1  # 4 true pixels, none predicted: TP 0, FP 0, FN 4
    return pred, target


def test_counts_by_hand() -> None:
    pred, target = _masks()
    assert confusion_counts(pred, target).tolist() == [[2, 1, 1], [0, 0, 0], [0, 0, 4]]


def test_macro_and_pooled_by_hand() -> None:
    pred, target = _masks()
    got = segmentation_metrics(pred, target)
    assert set(got) == set(SEG_METRICS)
    # per image: dice 4/6, 1 (both empty), 0; iou 2/4, 1, 0
    assert got["dice_macro"] == pytest.approx((4 / 6 + 1 + 0) / 3)
    assert got["iou_macro"] == pytest.approx((2 / 4 + 1 + 0) / 3)
    # pooled: TP 2, FP 1, FN 5
    assert got["dice_pooled"] == pytest.approx(4 / (4 + 1 + 5))
    assert got["iou_pooled"] == pytest.approx(2 / (2 + 1 + 5))


def test_empty_conventions() -> None:
    empty = np.zeros((2, 3, 3), np.uint8)
    assert segmentation_metrics(empty, empty) == dict.fromkeys(SEG_METRICS, 1.0)
    full = np.ones((2, 3, 3), np.uint8)
    assert segmentation_metrics(empty, full) == dict.fromkeys(SEG_METRICS, 0.0)
    assert segmentation_metrics(full, empty)["dice_macro"] == 0.0
    assert segmentation_metrics(full, full) == dict.fromkeys(SEG_METRICS, 1.0)


def test_single_mask_and_shape_errors() -> None:
    a = np.array([[1, 1], [0, 0]])
    b = np.array([[1, 0], [0, 0]])
    got = segmentation_metrics(a, b)  # TP 1, FP 1, FN 0
    assert got["dice_macro"] == got["dice_pooled"] == pytest.approx(2 / 3)
    assert got["iou_macro"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="shape"):
        segmentation_metrics(a, np.zeros((3, 3)))


def test_meter_over_batches_equals_one_shot_and_thresholds_logits() -> None:
    pred, target = _masks()
    logits = torch.where(torch.from_numpy(pred) > 0, 3.0, -3.0)[:, None]  # (B, 1, H, W)
    meter = SegmentationMeter()
    meter.update(logits[:2], torch.from_numpy(target[:2]).float())
    meter.update(logits[2:], torch.from_numpy(target[2:]).float())
    assert meter.count == 3
    assert meter.compute() == pytest.approx(segmentation_metrics(pred, target))
    # probability 0.5 exactly (logit 0) is background
    zero = SegmentationMeter()
    zero.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2))
    assert zero.compute()["dice_macro"] == 0.0
    with pytest.raises(ValueError, match="no image"):
        SegmentationMeter().compute()
