"""The report's interval functions against scipy and hand computations (coverage itself is
measured in tests/test_stats_coverage.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, ttest_1samp, ttest_ind, ttest_rel

from leukmodels.metrics import classification_metrics, confusion_metrics
from search.report.ablation import Level, adjust, factor_table
from search.report.collect import StudyData
from search.report.image_metrics import LABEL_METRICS, confusion_metric, confusions, pseudo_values
from search.report.stats import (
    COVERS_IMAGES,
    COVERS_SEEDS,
    COVERS_SEEDS_IMAGES,
    COVERS_SEEDS_SPLITS,
    TestPredictions,
    difference,
    difference_images,
    holm,
    summarise,
    summarise_images,
)

KEYS = [f"seed={i},fold=None" for i in range(6)]


def series(values, keys=KEYS) -> pd.Series:
    return pd.Series(values, index=keys[: len(values)], dtype=float)


def test_cell_and_differences_are_scipy_t_intervals():
    a = series([85.0, 86.5, 84.0, 87.0])
    b = series([80.0, 82.0, 80.5, 81.0])
    s = summarise(a)
    ci = ttest_1samp(a, 0).confidence_interval()
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high))
    assert s.covers == COVERS_SEEDS and s.note == ""
    d = difference(a, b)
    ref = ttest_rel(a, b)
    assert d.paired and (d.diff_low, d.diff_high) == pytest.approx(tuple(ref.confidence_interval()))
    assert d.p == pytest.approx(ref.pvalue)
    b2 = series([80.0, 82.0, 80.5, 81.0, 79.0])  # a fifth seed: no longer the same runs
    d = difference(a, b2)
    ref = ttest_ind(a, b2, equal_var=False)
    assert d.paired is False and d.p == pytest.approx(ref.pvalue)
    assert (d.diff_low, d.diff_high) == pytest.approx(tuple(ref.confidence_interval()))


def test_no_zero_width_interval_and_no_interval_from_one_run():
    same = summarise(series([90.0, 90.0, 90.0]))
    assert math.isnan(same.ci_low) and same.note == "no spread over the runs"
    d = difference(series([91.0, 92.0, 93.0]), series([90.0, 91.0, 92.0]))  # Δ = 1 every run
    assert d.excludes_zero is None and math.isnan(d.p) and d.diff == pytest.approx(1.0)
    one = summarise(series([81.0]))
    assert one.n == 1 and math.isnan(one.ci_low) and one.note == "one run"
    assert difference(series([85.0]), series([80.0, 81.0])).excludes_zero is None


def test_runs_on_several_test_sets_count_test_sets_as_units():
    v = series([80.0, 82.0, 84.0, 86.0])
    own = {k: f"split{i}" for i, k in enumerate(KEYS)}
    s = summarise(v, own)  # each run its own split: the plain t over runs
    assert s.covers == COVERS_SEEDS_SPLITS and s.n_test_sets == 4
    assert s.ci_low == pytest.approx(summarise(v).ci_low)
    folds = {k: f"fold{i % 2}" for i, k in enumerate(KEYS)}  # 2 folds x 2 seeds
    s = summarise(v, folds)
    means = np.array([82.0, 84.0])  # fold means (runs 0, 2 and 1, 3)
    se = math.sqrt(2 / 1 * np.sum((0.5 * (means - 83.0)) ** 2))
    assert s.ci_high - 83.0 == pytest.approx(12.706204736 * se)  # t(1)


def test_holm_adjustment():
    got = holm([0.01, 0.04, 0.03, math.nan])
    assert got[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(got[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    table = pd.DataFrame(
        {"metric": ["accuracy"] * 3 + ["f1"], "p": [math.nan, 0.02, 0.03, 0.02]}
    ).assign(p_holm=None, excludes_zero=None)
    out = adjust(table)
    assert out["p_holm"].tolist()[1:] == pytest.approx([0.04, 0.04, 0.02])
    assert out["p_holm"][0] is None and out["excludes_zero"].tolist() == [None, True, True, True]


@pytest.mark.parametrize("seed", range(3))
def test_confusion_metrics_match_leukmodels(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        k = int(rng.integers(2, 5))
        cm = rng.integers(0, 6, (k, k))
        cm[rng.integers(k)] = 0 if rng.random() < 0.3 else cm[0]  # sometimes a class absent
        if cm.sum() == 0:
            continue
        ref = confusion_metrics(cm)
        for m in LABEL_METRICS:
            want = math.nan if ref[m] is None else ref[m]
            assert float(confusion_metric(cm, m)) == pytest.approx(want, nan_ok=True), (m, cm)


def test_pseudo_values_are_the_jackknife():
    rng = np.random.default_rng(1)
    k, n = 3, 15
    y = np.tile(rng.integers(0, k, n), (2, 1))
    p = rng.integers(0, k, (2, n))
    for m in ("f1", "balanced_accuracy", "kappa", "accuracy"):
        value, phi = pseudo_values(y, p, k, m)
        for r in range(2):
            for i in range(n):
                cm = confusions(np.delete(y[r : r + 1], i, 1), np.delete(p[r : r + 1], i, 1), k)
                loo = float(confusion_metric(cm, m)[0])
                assert phi[r, i] == pytest.approx(n * value[r] - (n - 1) * loo)


def test_one_run_on_26_images_shows_their_width():
    correct = np.arange(26) < 22  # 22 of 26 right
    s = summarise_images({KEYS[0]: TestPredictions.from_correct(correct)})
    assert s.covers == COVERS_IMAGES and s.n == 1 and s.n_images == 26
    wilson = binomtest(22, 26).proportion_ci(method="wilson")
    assert s.ci_low <= 100 * wilson.low and s.ci_high >= 100 * wilson.high  # t, not z
    assert s.ci_high - s.ci_low < 1.15 * 100 * (wilson.high - wilson.low)
    every = summarise_images({KEYS[0]: TestPredictions.from_correct(np.ones(26, bool))})
    exact = binomtest(26, 26).proportion_ci(method="exact")
    assert every.ci_high == 100 and every.ci_low == pytest.approx(100 * exact.low, abs=1.5)


def test_identical_sides_get_an_exact_width_not_zero():
    runs = {k: TestPredictions.from_correct(np.arange(26) % 5 > 0) for k in KEYS[:3]}
    d = difference_images(runs, runs)
    u = 100 * (1 - 0.025 ** (1 / 26))
    assert d.diff == 0 and (d.diff_low, d.diff_high) == pytest.approx((-u, u)) and d.p == 1.0


def test_two_level_interval_is_wider_than_seeds_alone_and_macro_f1_matches():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    pred = {k: np.where(rng.random(40) < 0.8, y, (y + 1) % 3) for k in KEYS[:3]}
    runs = {k: TestPredictions(y, p) for k, p in pred.items()}
    names = ["a", "b", "c"]
    f1 = series([100 * classification_metrics(y, np.eye(3)[p], names)["f1"] for p in pred.values()])
    s = summarise_images(runs, "f1", num_classes=3)
    assert s.mean == pytest.approx(f1.mean()) and s.covers == COVERS_SEEDS_IMAGES
    t = summarise(f1)
    assert s.ci_high - s.ci_low > t.ci_high - t.ci_low
    other = {k: TestPredictions(y, np.where(rng.random(40) < 0.9, y, p)) for k, p in pred.items()}
    d = difference_images(other, runs, "f1", num_classes=3)
    assert d.paired and d.diff_covers == COVERS_SEEDS_IMAGES and math.isfinite(d.p)


def test_predictions_are_checked():
    with pytest.raises(ValueError, match="integer"):
        TestPredictions(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="equal"):
        TestPredictions(np.zeros(3, int), np.zeros(4, int))
    right = {KEYS[0]: TestPredictions.from_correct([True, False, True])}
    with pytest.raises(ValueError, match="accuracy only"):
        summarise_images(right, "f1")
    with pytest.raises(ValueError, match="not aligned"):
        summarise_images(
            {
                KEYS[0]: TestPredictions(np.array([0, 1, 1]), np.array([0, 1, 0])),
                KEYS[1]: TestPredictions(np.array([1, 1, 0]), np.array([0, 1, 0])),
            }
        )
    with pytest.raises(ValueError, match="no per-image interval"):
        summarise_images({KEYS[0]: TestPredictions(np.array([0, 1]), np.array([0, 1]))}, "auc")


def _study(points: dict[str, list[np.ndarray]], y: np.ndarray) -> StudyData:
    """A trials frame as collect.py makes it, with per-image predictions in it."""
    rows = []
    for key, preds in points.items():
        for s, p in enumerate(preds):
            cm = confusions(y[None], p[None], 2)[0]
            rows.append(
                {
                    "full": True, "cell": True, "key": key, "pair": KEYS[s],
                    "data": {"split": {"seed": 0}},
                    "confusion": cm.tolist(), "class_names": ["x", "y"],
                    "accuracy": 100 * float(np.mean(p == y)),
                    "test_predictions": TestPredictions(y, p),
                }
            )  # fmt: skip
    return StudyData(study={}, space=None, trials=pd.DataFrame(rows))  # type: ignore[arg-type]


def test_factor_table_uses_per_image_predictions_and_holm():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    noisy = {
        name: [np.where(rng.random(300) < acc, y, 1 - y) for _ in range(4)]
        for name, acc in (("base", 0.75), ("better", 0.95), ("same", 0.75))
    }
    data = _study(noisy, y)
    levels = [Level("f", n, n == "base", {}, n) for n in noisy]
    table = factor_table(data, "f", levels, ("accuracy",)).set_index("level")
    assert (table["covers"] == COVERS_SEEDS_IMAGES).all() and (table["n_images"] == 300).all()
    assert table.loc["base", "mean"] == pytest.approx(
        data.trials.query("key == 'base'")["accuracy"].mean()
    )
    better, same = table.loc["better"], table.loc["same"]
    assert better["diff_covers"] == COVERS_SEEDS_IMAGES and better["excludes_zero"] is True
    assert same["excludes_zero"] is False
    assert better["p_holm"] == pytest.approx(min(1.0, 2 * min(better["p"], same["p"])))
    no_images = data.trials.drop(columns="test_predictions")
    plain = factor_table(StudyData({}, None, no_images), "f", levels, ("accuracy",))  # type: ignore[arg-type]
    assert (plain["covers"] == COVERS_SEEDS).all()
