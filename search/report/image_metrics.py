"""Label metrics from confusion matrices, vectorised, and their per-image jackknife values.

The definitions are those of :mod:`leukmodels.metrics` (scikit-learn's): macro averages
over all K classes with ``zero_division=0``; balanced accuracy over the classes present in
y_true; MCC 0 where scikit-learn returns 0; Cohen's kappa NaN where it is undefined.
Every function takes confusion matrices with any leading batch shape ``(..., K, K)``
(rows true, columns predicted), so a whole study is one array operation.

:func:`pseudo_values` gives, per run and test image, the jackknife pseudo-value
``N * M - (N - 1) * M(without that image)``. For accuracy it is the image's 0/1
correctness; for a macro metric it is the image's share of the metric, so the mean and the
spread of pseudo-values over images carry the test-set sampling of any of these metrics.
Leaving one image out only decrements one confusion cell, so the K*K leave-one-out values
per run are all there is to compute.
"""

from __future__ import annotations

import numpy as np

LABEL_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "npv",
    "balanced_accuracy",
    "kappa",
    "mcc",
)
"""Metrics computable from hard labels (AUC needs scores and has no per-image interval).
``<metric>@<c>`` is class c's own one-vs-rest value of a class metric (e.g. ``recall@1``:
the sensitivity of class 1)."""
CLASS_METRICS = ("precision", "recall", "specificity", "f1", "npv")


def class_metric(metric: str) -> tuple[str, int | None]:
    """``("recall", 1)`` for ``recall@1``; ``(metric, None)`` for a plain metric."""
    base, at, cls = metric.partition("@")
    if not at:
        return metric, None
    if base not in CLASS_METRICS or not cls.isdigit():
        raise ValueError(f"{metric!r}: a class metric is <{'|'.join(CLASS_METRICS)}>@<class>")
    return base, int(cls)


def is_label_metric(metric: str) -> bool:
    """Whether per-image intervals exist for ``metric`` (see :data:`LABEL_METRICS`)."""
    base, cls = class_metric(metric) if "@" in metric else (metric, None)
    return base in LABEL_METRICS and (cls is None or base in CLASS_METRICS)


RANGES = {"kappa": (-1.0, 1.0), "mcc": (-1.0, 1.0)}
"""Value range of a metric where it is not [0, 1]."""


def metric_range(metric: str) -> tuple[float, float]:
    return RANGES.get(metric, (0.0, 1.0))


def confusions(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices ``(R, K, K)`` of ``(R, N)`` integer label arrays."""
    r = y_true.shape[0]
    cell = (np.arange(r)[:, None] * k + y_true) * k + y_pred
    return np.bincount(cell.ravel(), minlength=r * k * k).reshape(r, k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def confusion_metric(cm: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of every confusion matrix in ``cm`` (shape ``(..., K, K)``)."""
    if not is_label_metric(metric):
        raise ValueError(f"no per-image interval for {metric!r}; valid: {', '.join(LABEL_METRICS)}")
    metric, cls = class_metric(metric)
    cm = np.asarray(cm, dtype=float)
    total = cm.sum(axis=(-1, -2))
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    rows, cols = cm.sum(axis=-1), cm.sum(axis=-2)
    fp, fn = cols - tp, rows - tp
    tn = total[..., None] - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return tp.sum(axis=-1) / total
        if metric in ("precision", "recall", "specificity", "f1", "npv"):
            num, den = {
                "precision": (tp, cols),
                "recall": (tp, rows),
                "specificity": (tn, tn + fp),
                "f1": (2 * tp, rows + cols),
                "npv": (tn, tn + fn),
            }[metric]
            ratio = _ratio(num, den)
            return ratio.mean(axis=-1) if cls is None else ratio[..., cls]
        if metric == "balanced_accuracy":
            present = rows > 0
            return (_ratio(tp, rows) * present).sum(axis=-1) / present.sum(axis=-1)
        if metric == "kappa":
            po = tp.sum(axis=-1) / total
            pe = (rows * cols).sum(axis=-1) / total**2
            return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)
        # mcc, multiclass (Gorodkin's R_K), 0 where undefined as in scikit-learn
        c, s = tp.sum(axis=-1), total
        den = np.sqrt((s**2 - (cols**2).sum(axis=-1)) * (s**2 - (rows**2).sum(axis=-1)))
        return _ratio(c * s - (rows * cols).sum(axis=-1), den)


def pseudo_values(
    y_true: np.ndarray, y_pred: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per run the metric ``(R,)`` and per run and image the jackknife pseudo-value ``(R, N)``."""
    n = y_true.shape[1]
    cm = confusions(y_true, y_pred, k)
    value = confusion_metric(cm, metric)
    if metric == "accuracy":  # exact and cheap: the pseudo-value is the image's correctness
        return value, (y_true == y_pred).astype(float)
    one = np.eye(k * k).reshape(k * k, k, k)
    loo = confusion_metric(cm[:, None] - one[None], metric)  # (R, K*K): one cell less
    left_out = np.take_along_axis(loo, y_true * k + y_pred, axis=1)
    return value, n * value[:, None] - (n - 1) * left_out
