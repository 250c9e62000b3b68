"""Classification metrics of one evaluation, as plain JSON-serialisable Python.

Definitions are the standard ones, computed by scikit-learn wherever it has the
metric (accuracy, precision/recall/F1, Cohen's kappa, MCC, ROC AUC, balanced accuracy,
confusion matrix); specificity and NPV are taken one-vs-rest from the confusion matrix.

- Every class-wise value is one-vs-rest: class k is "positive", all others "negative".
  Recall is sensitivity. A ratio whose denominator is zero is 0 (scikit-learn's
  ``zero_division=0``), so a class never predicted has precision 0.
- Macro averages are unweighted means over all K classes (an absent class counts, with
  its zero recall); per-class values are given beside them.
- ``balanced_accuracy`` is scikit-learn's: mean recall over the classes present in y_true.
- All values are fractions in [0, 1] (not percent), except Cohen's kappa and MCC, which
  lie in [-1, 1]. A value that is undefined (e.g. kappa when both raters use a single
  class, AUC when a class is absent) is ``None``, never NaN.
- ``confusion`` has rows = true class, columns = predicted class, labels 0..K-1 always.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from leukmodels.errors import UserError

CLASS_METRICS = ("precision", "recall", "specificity", "f1", "npv")


def _num(x: Any) -> float | None:
    """A plain float, or None when undefined (NaN or infinite)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0."""
    num = num.astype(float)
    den = den.astype(float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _names(class_names: Sequence[str] | None, k: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(k)]
    names = [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names given for {k} classes")
    if len(set(names)) != k:
        raise ValueError(f"class names must be distinct, got {names}")
    return names


def _label_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Everything computable from hard labels (both int arrays with values in 0..K-1)."""
    k = len(names)
    labels = list(range(k))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    per = {
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "f1": f1,
        "npv": _ratio(tn, tn + fn),
    }
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    out.update({m: float(np.mean(per[m])) for m in CLASS_METRICS})
    out["per_class"] = {
        name: {**{m: float(per[m][i]) for m in CLASS_METRICS}, "support": int(support[i])}
        for i, name in enumerate(names)
    }
    with warnings.catch_warnings():
        # Undefined values are documented (None / sklearn's convention), not warned about.
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        out["kappa"] = _num(cohen_kappa_score(y_true, y_pred, labels=labels))
        out["mcc"] = _num(matthews_corrcoef(y_true, y_pred))
        out["balanced_accuracy"] = _num(balanced_accuracy_score(y_true, y_pred))
    out["confusion"] = cm.astype(int).tolist()
    out["n"] = int(len(y_true))
    out["class_names"] = names
    return out


def confusion_metrics(
    confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics from a confusion matrix alone (rows = true, columns = predicted).

    Returns accuracy; macro precision, recall, specificity, f1, npv; ``per_class``
    (keyed by ``class_names``, default "0".."K-1"); kappa, mcc, balanced_accuracy;
    confusion, n and class_names. Useful to check a paper's table against its matrix.
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 2:
        raise ValueError(f"confusion must be a square K x K matrix with K >= 2, got {cm.shape}")
    if not np.issubdtype(cm.dtype, np.integer):
        if not np.all(np.equal(np.mod(cm, 1), 0)):
            raise ValueError("confusion must hold whole counts")
        cm = cm.astype(np.int64)
    if (cm < 0).any() or cm.sum() == 0:
        raise ValueError("confusion counts must be >= 0 and not all zero")
    k = cm.shape[0]
    # Expand to one (true, predicted) pair per counted sample, so sklearn computes all.
    pairs = np.repeat(np.arange(k * k), cm.ravel())
    y_true, y_pred = np.divmod(pairs, k)
    return _label_metrics(y_true, y_pred, _names(class_names, k))


def _auc(y_true: np.ndarray, proba: np.ndarray, names: list[str]) -> list[float | None]:
    """One-vs-rest ROC AUC per class from its probability column; None if undefined."""
    out: list[float | None] = []
    for k in range(len(names)):
        is_k = y_true == k
        out.append(float(roc_auc_score(is_k, proba[:, k])) if 0 < is_k.sum() < len(is_k) else None)
    return out


def _positive_index(positive: str | None, names: list[str]) -> int | None:
    if positive is None:
        return 1 if len(names) == 2 else None
    if positive not in names:
        raise UserError(f"positive class {positive!r} is not one of the classes {names}")
    return names.index(positive)


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: Sequence[Sequence[float]] | np.ndarray,
    class_names: list[str],
    positive: str | None = None,
) -> dict[str, Any]:
    """All metrics of predictions ``argmax(proba)`` against ``y_true``.

    ``y_true``: int labels (N,) in 0..K-1; ``proba``: class probabilities (N, K).
    Keys: accuracy; macro precision, recall, specificity, f1, npv; ``per_class``
    {name: {precision, recall, specificity, f1, npv, support, auc}}; kappa; mcc;
    balanced_accuracy; auc (macro one-vs-rest over the K probability columns; for K == 2
    the binary AUC of the positive column) with ``auc_reason`` saying why it is None
    when a class is absent from y_true (else None); confusion; n; class_names; and
    ``binary``: the positive class's one-vs-rest precision, recall, specificity, f1,
    npv and auc, named by ``positive``. The positive class is ``positive`` when given;
    for K == 2 it defaults to class index 1 (``class_names[1]``); otherwise ``binary``
    is None.
    """
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proba must be (N, K), got shape {p.shape}")
    names = _names(class_names, p.shape[1])
    if p.shape[1] < 2:
        raise ValueError("need at least 2 classes")
    if y.ndim != 1 or len(y) != len(p) or len(y) == 0:
        raise ValueError(f"y_true must be (N,) with N = {len(p)} > 0, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"y_true must hold integer labels in 0..{len(names) - 1}")
    if not np.isfinite(p).all():
        raise ValueError("proba contains NaN or infinite values")

    out = _label_metrics(y, p.argmax(axis=1), names)
    aucs = _auc(y, p, names)
    for name, auc in zip(names, aucs, strict=True):
        out["per_class"][name]["auc"] = auc
    pos = _positive_index(positive, names)
    absent = [n for n, c in zip(names, np.bincount(y, minlength=len(names)), strict=True) if c == 0]
    if len(names) == 2:
        out["auc"] = aucs[pos]
    else:
        out["auc"] = None if absent else float(np.mean(aucs))
    out["auc_reason"] = (
        f"class(es) {absent} absent from y_true: one-vs-rest ROC AUC is undefined"
        if out["auc"] is None
        else None
    )
    out["binary"] = None
    if pos is not None:
        out["binary"] = {"positive": names[pos], **out["per_class"][names[pos]]}
    return out


def uncertain_fraction(proba: Sequence[Sequence[float]] | np.ndarray, threshold: float) -> float:
    """Share of predictions whose top class probability is below ``threshold`` (paper 003)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"proba must be a non-empty (N, K) array, got shape {p.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return float(np.mean(p.max(axis=1) < threshold))
