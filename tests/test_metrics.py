"""leukmodels.metrics against paper 002's confusion matrices, scikit-learn and hand counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from leukmodels.errors import UserError
from leukmodels.metrics import classification_metrics, confusion_metrics, uncertain_fraction

WBC = ["EOS", "LYM", "MON", "NEU"]
# Paper 002, Table 5 (rows true EOS/LYM/MON/NEU) and the accuracy each matrix implies.
PAPER_002 = {
    "DDRNet": ([[1243, 0, 0, 5], [0, 1241, 0, 0], [0, 0, 1236, 0], [2, 0, 0, 1247]], 99.86),
    "ResNet18": ([[1224, 0, 0, 24], [0, 1241, 0, 0], [0, 0, 1236, 0], [8, 3, 0, 1238]], 99.30),
    "ResNet50": ([[1226, 0, 0, 22], [0, 1241, 0, 0], [0, 0, 1236, 0], [18, 0, 0, 1231]], 99.20),
    "ResNet101": ([[1242, 0, 0, 6], [0, 1241, 0, 0], [0, 0, 1235, 1], [13, 0, 0, 1236]], 99.60),
}


def expand(cm: list[list[int]], confidence: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """y_true and a probability matrix whose argmax reproduces the confusion matrix."""
    k = len(cm)
    y_true, y_pred = [], []
    for t in range(k):
        for p in range(k):
            y_true += [t] * cm[t][p]
            y_pred += [p] * cm[t][p]
    proba = np.full((len(y_pred), k), (1 - confidence) / (k - 1))
    proba[np.arange(len(y_pred)), y_pred] = confidence
    return np.array(y_true), proba


@pytest.mark.parametrize("model", list(PAPER_002))
def test_paper_002_accuracy_from_confusion(model: str) -> None:
    cm, accuracy = PAPER_002[model]
    out = confusion_metrics(cm, WBC)
    assert round(100 * out["accuracy"], 2) == accuracy
    assert out["confusion"] == cm
    assert out["n"] == sum(map(sum, cm))


@pytest.mark.parametrize("model", list(PAPER_002))
def test_paper_002_accuracy_from_predictions(model: str) -> None:
    cm, accuracy = PAPER_002[model]
    y_true, proba = expand(cm)
    out = classification_metrics(y_true, proba, WBC)
    assert round(100 * out["accuracy"], 2) == accuracy
    assert out["confusion"] == cm
    # Hard-label metrics agree with the confusion-matrix path.
    by_cm = confusion_metrics(cm, WBC)
    for key in ("precision", "recall", "specificity", "f1", "npv", "kappa", "mcc"):
        assert out[key] == pytest.approx(by_cm[key])
    assert out["per_class"]["NEU"]["recall"] == pytest.approx(by_cm["per_class"]["NEU"]["recall"])


def test_resnet18_is_not_the_printed_99_06() -> None:
    cm, _ = PAPER_002["ResNet18"]
    assert round(100 * confusion_metrics(cm)["accuracy"], 2) != 99.06


def random_case(seed: int, k: int, absent: bool) -> tuple[np.ndarray, np.ndarray]:
    """Random labels and probabilities. Class 0 is never predicted (its column is tiny);
    with ``absent``, class k-1 never occurs in y_true, otherwise every class does."""
    rng = np.random.default_rng(seed)
    n = 60
    if absent:
        y_true = rng.integers(0, k - 1, n)
    else:
        y_true = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    proba = rng.dirichlet(np.ones(k), n)
    proba[:, 0] *= 1e-3
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, proba


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("absent", [False, True])
def test_agrees_with_sklearn(seed: int, k: int, absent: bool) -> None:
    y_true, proba = random_case(seed, k, absent)
    k = proba.shape[1]
    names = [f"c{i}" for i in range(k)]
    labels = list(range(k))
    y_pred = proba.argmax(axis=1)
    out = classification_metrics(y_true, proba, names)

    assert out["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    mp, mr, mf, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((mp, mr, mf))
    for i, name in enumerate(names):
        pc = out["per_class"][name]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert pc["support"] == s[i]
    assert out["confusion"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert len(out["confusion"]) == k
    assert out["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))
    kappa = cohen_kappa_score(y_true, y_pred, labels=labels)
    assert out["kappa"] is None if np.isnan(kappa) else out["kappa"] == pytest.approx(kappa)
    if absent:
        assert out["auc"] is None
        assert "absent" in out["auc_reason"]
    elif k == 2:
        assert out["auc"] == pytest.approx(roc_auc_score(y_true, proba[:, 1]))
        assert out["auc_reason"] is None
    else:
        assert out["auc"] == pytest.approx(roc_auc_score(y_true, proba, multi_class="ovr"))
    json.dumps(out, allow_nan=False)


def test_class_never_predicted_and_absent_class_keep_their_rows() -> None:
    y_true, proba = random_case(3, 4, absent=True)
    out = classification_metrics(y_true, proba, WBC)
    cm = np.array(out["confusion"])
    assert cm.shape == (4, 4)
    assert cm[:, 0].sum() == 0  # EOS never predicted
    assert cm[3].sum() == 0  # NEU absent from y_true
    assert out["per_class"]["EOS"]["precision"] == 0.0
    assert out["per_class"]["NEU"]["recall"] == 0.0
    assert out["per_class"]["NEU"]["auc"] is None
    assert out["per_class"]["LYM"]["auc"] is not None
    # Macro is the unweighted mean over all four classes, absent NEU included.
    assert out["recall"] == pytest.approx(np.mean([v["recall"] for v in out["per_class"].values()]))


def test_perfect_predictions_give_kappa_and_mcc_one() -> None:
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    out = classification_metrics(y, np.eye(4)[y], WBC)
    for key in ("accuracy", "kappa", "mcc", "auc", "precision", "recall", "specificity", "npv"):
        assert out[key] == pytest.approx(1.0), key


def test_specificity_and_npv_by_hand() -> None:
    # rows true A/B/C. One-vs-rest for A: TP 5, FN 1+2, FP 1+0, TN 3+1+1+4 = 9.
    cm = [[5, 1, 2], [1, 3, 1], [0, 1, 4]]
    out = confusion_metrics(cm, ["A", "B", "C"])
    a = out["per_class"]["A"]
    assert a["specificity"] == pytest.approx(9 / (9 + 1))
    assert a["npv"] == pytest.approx(9 / (9 + 3))
    assert a["precision"] == pytest.approx(5 / 6)
    assert a["recall"] == pytest.approx(5 / 8)
    # C: TP 4, FN 1, FP 2+1 = 3, TN 5+1+1+3 = 10.
    c = out["per_class"]["C"]
    assert (c["specificity"], c["npv"]) == pytest.approx((10 / 13, 10 / 11))
    assert out["accuracy"] == pytest.approx(12 / 18)
    assert out["specificity"] == pytest.approx(
        np.mean([v["specificity"] for v in out["per_class"].values()])
    )


def test_binary_block_defaults_to_class_index_one() -> None:
    y = np.array([0, 0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    out = classification_metrics(y, proba, ["hem", "all"])
    b = out["binary"]
    assert b["positive"] == "all"
    # predicted [0,0,1,1,0]: TP 1, FP 1, FN 1, TN 2.
    assert (b["precision"], b["recall"], b["specificity"], b["npv"]) == pytest.approx(
        (1 / 2, 1 / 2, 2 / 3, 2 / 3)
    )
    assert out["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    flipped = classification_metrics(y, proba, ["hem", "all"], positive="hem")["binary"]
    assert flipped["positive"] == "hem"
    assert flipped["recall"] == pytest.approx(b["specificity"])


def test_binary_block_for_named_positive_of_many_and_none_otherwise() -> None:
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    out = classification_metrics(y, np.eye(4)[y], WBC)
    assert out["binary"] is None
    out = classification_metrics(y, np.eye(4)[y], WBC, positive="MON")
    assert out["binary"]["positive"] == "MON"
    with pytest.raises(UserError, match="EOS"):
        classification_metrics(y, np.eye(4)[y], WBC, positive="BAS")


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [[0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError):
        classification_metrics([0, 2], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [[np.nan, 0.5], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError):
        confusion_metrics([[1, 2, 3]])


def test_uncertain_fraction() -> None:
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.55, 0.45]])
    assert uncertain_fraction(proba, 0.7) == pytest.approx(0.5)  # 0.7 itself is certain
    assert uncertain_fraction(proba, 0.0) == 0.0
    assert uncertain_fraction(proba, 1.0) == 1.0
