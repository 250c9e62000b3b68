"""Coverage of the report's 95 % intervals on simulated studies with a known truth.

The world (:class:`World`). Run r of a method (its seed) classifies test image i correctly
when ``sqrt(rho) z_i + sqrt(1 - rho) w_ri < tau + sigma a_r``, with z, w, a independent
standard normal: z_i is the image's difficulty (the same for every seed and both methods),
a_r the seed's luck (correlation ``pair`` between the two methods run with one seed), w_ri
the rest (correlation ``same`` between the methods on one seed and image). A study draws
N test images from the population and tests every run of both methods on those N images.
With classes, tau depends on the image's class and a wrong image is given the image's own
confusable class.

What counts as the truth, exactly:

- **Two-level intervals** (:func:`summarise_images`, :func:`difference_images`, from
  per-image predictions): the method's expected accuracy over seeds *and* over test images
  drawn from the population, ``mu = Phi(tau / sqrt(1 + sigma^2))`` (by construction the
  ``acc`` of the world), and ``mu_B - mu_A`` for a difference. For macro F1, which is not a
  mean over images: the expected macro F1 of one run over seeds and over test sets of the
  study's size N, by Monte Carlo (40,000 draws; standard error < 0.001).
- **Run-level intervals** (:func:`summarise`, :func:`difference`, from the runs' metrics
  only, one fixed test set): the expected accuracy over seeds *on the study's test set*,
  ``mu_T = mean_i Phi((tau - sqrt(rho) z_i) / sqrt(1 - rho + sigma^2))``; that is all they
  can see. How badly they cover ``mu`` is measured too.

Every check simulates ``STUDIES`` studies and requires the 95 % interval to hold the truth
in 92-98 % of them, at n = 3 and n = 5 runs and N = 26 and 200 test images (60 for the
three-class F1). The measured coverage is printed (``pytest -s``) and recorded in
bench/README.md. The check can fail: the old percentile bootstrap over runs fails it
(:func:`test_coverage_check_rejects_the_old_percentile_bootstrap`), and so do run-level
intervals judged against the population truth on 26 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap, norm

from search.report.image_metrics import confusion_metric, confusions
from search.report.stats import (
    TestPredictions,
    difference,
    difference_images,
    summarise,
    summarise_images,
)

STUDIES = 600
BAND = (0.92, 0.98)


@dataclass(frozen=True)
class World:
    """Accuracy of method A (per class, or one value), B's gain, and the noise (latent sds).

    The defaults give runs whose accuracy varies by ~2.5 points from seed to seed on a
    large test set, and a test-image difficulty that every seed shares (rho = 0.6).
    """

    acc: tuple[float, ...] = (0.85,)
    gain: float = 0.03
    priors: tuple[float, ...] = (1.0,)
    sigma: float = 0.12
    rho: float = 0.6
    pair: float = 0.5
    same: float = 0.5

    @property
    def classes(self) -> int:
        return max(2, len(self.priors))

    def tau(self, acc: float) -> float:
        return float(norm.ppf(acc) * np.sqrt(1 + self.sigma**2))

    def truth_on(self, z: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Expected accuracy over seeds on given test images (z and tau per image)."""
        scale = np.sqrt(1 - self.rho + self.sigma**2)
        return norm.cdf((tau - np.sqrt(self.rho) * z) / scale).mean(axis=-1)


@dataclass
class Study:
    """S simulated studies: labels (S, N), predictions of A and B (S, R, N), and what the
    truth on each study's test set needs (z and A's/B's tau per image)."""

    y: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    z: np.ndarray
    tau_a: np.ndarray
    tau_b: np.ndarray


def simulate(world: World, studies: int, runs: int, images: int, seed: int) -> Study:
    rng = np.random.default_rng(seed)
    s, r, n, k = studies, runs, images, world.classes
    y = rng.choice(len(world.priors), size=(s, n), p=world.priors)
    other = (y + rng.integers(1, k, size=(s, n))) % k  # the image's confusable class
    tau_a = np.array([world.tau(a) for a in world.acc])[y]
    tau_b = np.array([world.tau(min(a + world.gain, 0.999)) for a in world.acc])[y]
    z = rng.standard_normal((s, n))
    a = rng.standard_normal((s, r, 1))
    a_b = world.pair * a + np.sqrt(1 - world.pair**2) * rng.standard_normal((s, r, 1))
    w = rng.standard_normal((s, r, n))
    w_b = world.same * w + np.sqrt(1 - world.same**2) * rng.standard_normal((s, r, n))

    def predict(w_: np.ndarray, a_: np.ndarray, tau: np.ndarray) -> np.ndarray:
        right = np.sqrt(world.rho) * z[:, None] + np.sqrt(1 - world.rho) * w_
        right = right < tau[:, None] + world.sigma * a_
        return np.where(right, y[:, None], other[:, None])

    return Study(y, predict(w, a, tau_a), predict(w_b, a_b, tau_b), z, tau_a, tau_b)


def population_truth(world: World, images: int, metric: str) -> tuple[float, float]:
    """E[metric of one run] over seeds and test sets of ``images`` images, for A and B."""
    if metric == "accuracy":
        mu_a = float(np.dot(world.priors, world.acc))
        return mu_a, mu_a + world.gain
    st = simulate(world, 40_000, 1, images, seed=99)
    k = world.classes
    return tuple(  # type: ignore[return-value]
        float(confusion_metric(confusions(st.y, p[:, 0], k), metric).mean())
        for p in (st.pred_a, st.pred_b)
    )


KEYS = [f"seed={i},fold=None" for i in range(10)]


def runs_of(y: np.ndarray, pred: np.ndarray) -> dict[str, TestPredictions]:
    return {KEYS[j]: TestPredictions(y, pred[j]) for j in range(len(pred))}


def holds(low: float, high: float, truth: float) -> bool:
    return bool(low <= truth <= high)


def two_level_coverage(
    world: World, runs: int, images: int, metric: str, seed: int
) -> tuple[float, float]:
    """Coverage of the per-image cell interval of A and of the paired difference B - A."""
    st = simulate(world, STUDIES, runs, images, seed)
    mu_a, mu_b = population_truth(world, images, metric)
    k = world.classes
    hits = np.zeros((STUDIES, 2), dtype=bool)
    for i in range(STUDIES):
        a, b = runs_of(st.y[i], st.pred_a[i]), runs_of(st.y[i], st.pred_b[i])
        s = summarise_images(a, metric, num_classes=k, scale=1.0)
        d = difference_images(b, a, metric, num_classes=k, scale=1.0)
        hits[i] = holds(s.ci_low, s.ci_high, mu_a), holds(d.diff_low, d.diff_high, mu_b - mu_a)
    return tuple(hits.mean(axis=0))


Cell = Callable[[pd.Series], tuple[float, float]]
Paired = Callable[[pd.Series, pd.Series], tuple[float, float]]


def t_cell(x: pd.Series) -> tuple[float, float]:
    s = summarise(x)
    return s.ci_low, s.ci_high


def t_paired(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    d = difference(a, b)
    return d.diff_low, d.diff_high


def run_level_coverage(
    world: World, runs: int, images: int, seed: int, cell: Cell = t_cell, paired=t_paired
) -> dict[str, float]:
    """Coverage of run-level intervals (cell A, paired B - A) of the truth on the study's
    test set ("test set") and of the population truth ("population")."""
    st = simulate(world, STUDIES, runs, images, seed)
    acc_a = (st.pred_a == st.y[:, None]).mean(axis=2)
    acc_b = (st.pred_b == st.y[:, None]).mean(axis=2)
    mu_a, delta = world.truth_on(st.z, st.tau_a), world.truth_on(st.z, st.tau_b)
    delta = delta - mu_a
    pop_a, pop_b = population_truth(world, images, "accuracy")
    hits = np.zeros((STUDIES, 4), dtype=bool)
    for i in range(STUDIES):
        a = pd.Series(acc_a[i], index=KEYS[:runs])
        b = pd.Series(acc_b[i], index=KEYS[:runs])
        ca, db = cell(a), paired(b, a)
        hits[i] = (
            holds(*ca, mu_a[i]),
            holds(*db, delta[i]),
            holds(*ca, pop_a),
            holds(*db, pop_b - pop_a),
        )
    cov = hits.mean(axis=0)
    return {"test set": (cov[0], cov[1]), "population": (cov[2], cov[3])}


def show(label: str, values: tuple[float, ...]) -> None:
    print(
        f"\ncoverage {label} (cell, paired difference): "
        + ", ".join(f"{100 * v:.1f} %" for v in values)
    )


def in_band(values: tuple[float, ...]) -> bool:
    return all(BAND[0] <= v <= BAND[1] for v in values)


@pytest.mark.parametrize("images", [26, 200])
@pytest.mark.parametrize("runs", [3, 5])
def test_two_level_coverage_of_accuracy(runs, images):
    cov = two_level_coverage(World(), runs, images, "accuracy", seed=100 * runs + images)
    show(f"two-level accuracy, n={runs} runs, N={images} images", cov)
    assert in_band(cov)


F1_WORLD = World(acc=(0.92, 0.85, 0.75), priors=(0.5, 0.3, 0.2), gain=0.04)


@pytest.mark.parametrize("runs", [3, 5])
def test_two_level_coverage_of_macro_f1(runs):
    cov = two_level_coverage(F1_WORLD, runs, 60, "f1", seed=7 + runs)
    show(f"two-level macro F1, 3 classes, n={runs} runs, N=60 images", cov)
    assert in_band(cov)


@pytest.mark.parametrize("images", [26, 200])
@pytest.mark.parametrize("runs", [3, 5])
def test_run_level_t_coverage_of_the_truth_on_the_test_set(runs, images):
    cov = run_level_coverage(World(), runs, images, seed=11 + 100 * runs + images)
    show(f"run-level t, n={runs}, N={images}, truth on the test set", cov["test set"])
    show(f"run-level t, n={runs}, N={images}, population truth", cov["population"])
    assert in_band(cov["test set"])
    if images == 26:  # what the per-image intervals are for: 26 images are not the population
        assert cov["population"][0] < BAND[0]


def old_percentile(*data: np.ndarray) -> tuple[float, float]:
    """The report's interval before issue 13: a percentile bootstrap over runs, with a
    zero-width interval when the runs do not vary."""

    def stat(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        means = [np.mean(x, axis=axis) for x in xs]
        return means[0] if len(means) == 1 else means[0] - means[1]

    if all(np.ptp(d) == 0 for d in data):
        value = float(stat(*data))
        return value, value
    res = bootstrap(
        data, stat, n_resamples=2000, method="percentile", vectorized=True,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_coverage_check_rejects_the_old_percentile_bootstrap():
    cov = run_level_coverage(
        World(),
        3,
        200,
        seed=5,
        cell=lambda x: old_percentile(x.to_numpy()),
        paired=lambda a, b: old_percentile((a - b).to_numpy()),
    )
    show("old percentile bootstrap, n=3, N=200, truth on the test set", cov["test set"])
    assert not in_band(cov["test set"]) and max(cov["test set"]) < 0.85
    assert math.isfinite(cov["test set"][0])
