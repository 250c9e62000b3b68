"""Intervals from per-image test predictions: seeds *and* test images.

When R runs share one test set of N images, a metric is a seeds x images crossed design.
With ``phi[r, i]`` the jackknife pseudo-value of image i in run r
(:func:`search.report.image_metrics.pseudo_values`; for accuracy its 0/1 correctness) and
``m[r]`` the run's metric, the variance of the mean over runs, over seeds and over test
sets drawn from the population, is estimated as

    V = var_r(m) / R  +  max(0, var_i(mean_r phi) / N - MS_resid / (R N))

The first term holds the seed-to-seed variation and each run's own image noise (R - 1
df); the second is the images' shared part (N - 1 df): the spread of the per-image means
less what the first term already holds (MS_resid: the mean square of phi after removing
run and image means). Together they are the method-of-moments estimate of
``sigma_seed^2 / R + sigma_image^2 / N + sigma_rest^2 / (R N)``, the second part truncated
at 0. The interval is ``mean +- t(df) sqrt(V)`` with Satterthwaite's df; for accuracy,
Wilson's score form with the effective number of images ``p (1 - p) / V`` and the same t
quantile (Korn and Graubard's interval for proportions from clustered samples), which
respects 0 and 1. An interval is never narrower than the Student-t interval over the runs
alone. One run: ``V = var_i(phi) / N`` (test images only; the seed-to-seed variation
cannot be estimated). A paired difference uses ``phi_level - phi_baseline`` on the same
runs (seed, fold) and the same images. Runs spread over several test sets (k-fold,
resplit) fall back to the run-level interval of :func:`search.report.intervals.run_terms`,
whose spread already holds the test-set sampling.

If nothing varies (every image right in every run, or two sides that agree on every
image) accuracy gets the width of N out of N images (Wilson for a cell, the exact
Clopper-Pearson ``1 - (alpha/2)^(1/N)`` on each side for a difference); other metrics get
no interval. Coverage on simulated studies: tests/test_stats_coverage.py, bench/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.report.image_metrics import metric_range, pseudo_values
from search.report.intervals import (
    ALPHA,
    COVERS_IMAGES,
    COVERS_SEEDS_IMAGES,
    Difference,
    Interval,
    Summary,
    Term,
    run_terms,
    t_interval,
    wilson_t,
)


@dataclass(frozen=True)
class TestPredictions:
    """One run's hard predictions on its test images.

    Runs with the same ``test_set`` (e.g. the split's hash) were tested on the same images
    in the same order: index i is the same image in each. Made by :meth:`from_correct`, it
    holds right/wrong only and supports accuracy alone.
    """

    __test__ = False  # not a pytest class

    y_true: np.ndarray
    y_pred: np.ndarray
    test_set: str = "test"
    labels: bool = True

    def __post_init__(self) -> None:
        y, p = np.asarray(self.y_true), np.asarray(self.y_pred)
        if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
            raise ValueError(f"y_true {y.shape} and y_pred {p.shape}: want equal, non-empty 1-D")
        if not (np.issubdtype(y.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
            raise ValueError("y_true and y_pred must hold integer class indices")
        if min(y.min(), p.min()) < 0:
            raise ValueError("class indices must be >= 0")
        object.__setattr__(self, "y_true", y)
        object.__setattr__(self, "y_pred", p)

    @classmethod
    def from_correct(
        cls, correct: Sequence[bool] | np.ndarray, test_set: str = "test"
    ) -> TestPredictions:
        """Right (True) / wrong (False) per image; only accuracy can be computed from it."""
        c = np.asarray(correct, dtype=bool).astype(np.int64)
        return cls(np.ones_like(c), c, test_set, labels=False)


@dataclass
class _Runs:
    """The runs of one test set: their keys and ``(R, N)`` label arrays, rows in key order."""

    keys: list[Any]
    y_true: np.ndarray
    y_pred: np.ndarray


def _by_test_set(runs: Mapping[Any, TestPredictions]) -> dict[str, _Runs]:
    out: dict[str, list[Any]] = {}
    for key, r in runs.items():
        out.setdefault(r.test_set, []).append(key)
    sets = {}
    for name, keys in out.items():
        first = runs[keys[0]].y_true
        for k in keys[1:]:
            if not np.array_equal(runs[k].y_true, first):
                raise ValueError(
                    f"runs {keys[0]!r} and {k!r} say they share test set {name!r} but their "
                    "true labels differ: predictions not aligned on the same images"
                )
        sets[name] = _Runs(
            keys,
            np.stack([runs[k].y_true for k in keys]),
            np.stack([runs[k].y_pred for k in keys]),
        )
    return sets


def _classes(runs: Sequence[TestPredictions], metric: str, num_classes: int | None) -> int:
    if metric != "accuracy" and not all(r.labels for r in runs):
        raise ValueError(f"{metric} needs labels; right/wrong predictions support accuracy only")
    top = max(int(max(r.y_true.max(), r.y_pred.max())) for r in runs) + 1
    if num_classes is not None and top > num_classes:
        raise ValueError(f"class index {top - 1} with num_classes={num_classes}")
    return max(2, num_classes or top)


def _seed_term(m: np.ndarray) -> Term | None:
    """var over runs of the run metric / R, R - 1 df (None for one run). It holds the
    seed-to-seed variation and each run's own image-level noise."""
    r = len(m)
    return Term(float(np.var(m, ddof=1)) / r, r - 1) if r > 1 else None


def _resid(phi: np.ndarray) -> float:
    """MS_resid / (R N) of one side (0 for one run): the image term's share of run noise."""
    r, n = phi.shape
    if r == 1:
        return 0.0
    resid = phi - phi.mean(axis=1, keepdims=True) - phi.mean(axis=0) + phi.mean()
    return float(np.sum(resid**2)) / ((r - 1) * (n - 1)) / (r * n)


def _image_term(col: np.ndarray, minus: float) -> Term | None:
    """var over images of the per-image mean over runs / N, less what the run terms already
    hold (``minus``), truncated at 0: the test images' shared part, N - 1 df."""
    n = len(col)
    value = float(np.var(col, ddof=1)) / n - minus
    return Term(value, n - 1) if value > 0 else None


def _crossed(m: np.ndarray, phi: np.ndarray) -> list[Term]:
    """Variance terms of the mean over runs of one seeds x images design."""
    terms = [_seed_term(m), _image_term(phi.mean(axis=0), _resid(phi))]
    return [t for t in terms if t is not None]


def _crossed_unpaired(ma: np.ndarray, pa: np.ndarray, mb: np.ndarray, pb: np.ndarray):
    """Variance terms of mean(ma) - mean(mb): different runs on the same images."""
    image = _image_term(pa.mean(axis=0) - pb.mean(axis=0), _resid(pa) + _resid(pb))
    return [t for t in (_seed_term(ma), _seed_term(mb), image) if t is not None]


def _exact(est: float, n: int, bounds: tuple[float, float]) -> Interval:
    """Nothing varied over N images: the Clopper-Pearson width of N out of N."""
    u = 1 - (ALPHA / 2) ** (1 / n)
    p = 1.0 if est == 0 else min(1.0, 2 * 0.5**n)  # exact McNemar: all N discordant one way
    return Interval(max(bounds[0], est - u), min(bounds[1], est + u), p)


def _still(*phis: np.ndarray) -> int | None:
    """N when nothing varies within each of the ``(R, N)`` arrays, else None."""
    return phis[0].shape[1] if all(np.all(p == p.flat[0]) for p in phis) else None


def _interval(
    est: float,
    terms: list[Term] | None,
    still: int | None,
    metric: str,
    bounds: tuple[float, float],
    runs: list[Term] | None,
) -> Interval:
    """The two-level interval, widened where needed to hold the Student-t interval over
    the runs alone (``runs``): resampling the images must never make it narrower."""
    ci = t_interval(est, terms, bounds)
    if math.isnan(ci.low) and still and metric == "accuracy" and math.isfinite(est):
        ci = _exact(est, still, bounds)
    return _union(ci, t_interval(est, runs, bounds))


def _at_least(ci: Interval, other: Interval, bounds: tuple[float, float]) -> Interval:
    """``ci`` widened about its centre to the width of ``other`` where it is narrower."""
    if math.isnan(ci.low) or math.isnan(other.low) or ci.high - ci.low >= other.high - other.low:
        return ci
    centre, half = (ci.low + ci.high) / 2, (other.high - other.low) / 2
    return Interval(max(bounds[0], centre - half), min(bounds[1], centre + half), ci.p)


def _union(ci: Interval, other: Interval) -> Interval:
    if math.isnan(ci.low) or math.isnan(other.low):
        return ci
    return Interval(min(ci.low, other.low), max(ci.high, other.high), max(ci.p, other.p))


def _note(ci: Interval, values: np.ndarray) -> str:
    if not np.all(np.isfinite(values)):
        return "the metric is undefined on some run or image"
    return "nothing varies over the runs and images" if math.isnan(ci.low) else ""


def summarise_images(
    runs: Mapping[Any, TestPredictions],
    metric: str = "accuracy",
    num_classes: int | None = None,
    scale: float = 100.0,
) -> Summary:
    """Mean of ``metric`` over runs (keyed by seed/fold) with a 95 % CI over seeds and
    test images, in ``scale`` units (100: percent points)."""
    if not runs:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, note="no run")
    k = _classes(list(runs.values()), metric, num_classes)
    sets = _by_test_set(runs)
    bounds = metric_range(metric)
    if len(sets) == 1:
        (s,) = sets.values()
        m, phi = pseudo_values(s.y_true, s.y_pred, k, metric)
        est, runs_only = float(m.mean()), run_terms(m, None)[0]
        if metric == "accuracy":  # a proportion: Wilson's score interval, never past 0 or 1
            ci = wilson_t(est, _crossed(m, phi), phi.size, phi.shape[1])
            ci = _at_least(ci, t_interval(est, runs_only, bounds), bounds)
        else:
            ci = _interval(est, _crossed(m, phi), _still(phi), metric, bounds, runs_only)
        covers = COVERS_SEEDS_IMAGES if len(m) > 1 else COVERS_IMAGES
        n_images, check = phi.shape[1], phi
    else:
        m, groups = _run_metrics(sets, k, metric)
        terms, covers = run_terms(m, groups)
        ci = t_interval(float(m.mean()), terms, bounds)
        sizes = {s.y_true.shape[1] for s in sets.values()}
        n_images, check = (sizes.pop() if len(sizes) == 1 else None), m
    return Summary(
        n=len(m),
        mean=scale * float(m.mean()),
        std=scale * float(np.std(m, ddof=1)) if len(m) > 1 else math.nan,
        ci_low=scale * ci.low,
        ci_high=scale * ci.high,
        covers=covers,
        n_images=n_images,
        n_test_sets=len(sets),
        note=_note(ci, check),
    )


def _run_metrics(sets: dict[str, _Runs], k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each run's metric and test-set name, set after set."""
    m = [pseudo_values(s.y_true, s.y_pred, k, metric)[0] for s in sets.values()]
    groups = [name for name, s in sets.items() for _ in s.keys]
    return np.concatenate(m), np.asarray(groups)


def _paired_sets(level: Mapping[Any, TestPredictions], base: Mapping[Any, TestPredictions]):
    """Whether the sides have the same run keys, each on the same test set on both sides."""
    return set(level) == set(base) and all(level[k].test_set == base[k].test_set for k in level)


def difference_images(
    level: Mapping[Any, TestPredictions],
    baseline: Mapping[Any, TestPredictions],
    metric: str = "accuracy",
    num_classes: int | None = None,
    scale: float = 100.0,
) -> Difference:
    """mean(level) - mean(baseline) of ``metric`` with a 95 % CI over seeds and test images,
    paired on the run keys (seed, fold) and on the images when both sides have the same
    runs on the same test sets; unpaired otherwise."""
    if not level or not baseline:
        return Difference(math.nan, math.nan, math.nan, None, diff_note="a side has no run")
    k = _classes([*level.values(), *baseline.values()], metric, num_classes)
    lo, hi = metric_range(metric)
    bounds = (lo - hi, hi - lo)
    paired = _paired_sets(level, baseline)
    sa, sb = _by_test_set(level), _by_test_set(baseline)
    if paired:
        est, terms, still, covers, check, runs = _paired(sa, baseline, k, metric)
    else:
        est, terms, still, covers, check, runs = _unpaired(sa, sb, k, metric)
    ci = _interval(est, terms, still, metric, bounds, runs)
    return Difference(
        scale * est, scale * ci.low, scale * ci.high, paired, ci.p, covers, _note(ci, check)
    )


def _paired(sa: dict[str, _Runs], baseline: Mapping[Any, TestPredictions], k: int, metric: str):
    """Estimate, variance terms, N if nothing varies, what is covered, the values checked."""
    if len(sa) == 1:
        (a,) = sa.values()
        b = _by_test_set({key: baseline[key] for key in a.keys})[next(iter(sa))]
        if not np.array_equal(a.y_true, b.y_true):
            raise ValueError("paired runs disagree on the true labels of their shared test set")
        ma, pa = pseudo_values(a.y_true, a.y_pred, k, metric)
        mb, pb = pseudo_values(b.y_true, b.y_pred, k, metric)
        d, phi = ma - mb, pa - pb
        covers = COVERS_SEEDS_IMAGES if len(d) > 1 else COVERS_IMAGES
        runs = run_terms(d, None)[0]
        return float(d.mean()), _crossed(d, phi), _still(phi), covers, phi, runs
    ma, groups = _run_metrics(sa, k, metric)
    keys = [key for s in sa.values() for key in s.keys]
    mb = _run_metrics(_by_test_set({key: baseline[key] for key in keys}), k, metric)[0]
    d = ma - mb
    terms, covers = run_terms(d, groups)
    return float(d.mean()), terms, None, covers, d, None


def _unpaired(sa: dict[str, _Runs], sb: dict[str, _Runs], k: int, metric: str):
    """As :func:`_paired` for two sides with different runs."""
    if len(sa) == 1 and len(sb) == 1:
        (a,), (b,) = sa.values(), sb.values()
        ma, pa = pseudo_values(a.y_true, a.y_pred, k, metric)
        mb, pb = pseudo_values(b.y_true, b.y_pred, k, metric)
        est = float(ma.mean() - mb.mean())
        covers = COVERS_SEEDS_IMAGES if min(len(ma), len(mb)) > 1 else COVERS_IMAGES
        check = np.concatenate([pa.ravel(), pb.ravel()])
        ta, tb = run_terms(ma, None)[0], run_terms(mb, None)[0]
        runs = None if ta is None or tb is None else ta + tb
        if next(iter(sa)) != next(iter(sb)):  # independent test sets: the variances add
            return est, _crossed(ma, pa) + _crossed(mb, pb), None, covers, check, runs
        if not np.array_equal(a.y_true[0], b.y_true[0]):
            raise ValueError("the two sides disagree on the true labels of their shared test set")
        return est, _crossed_unpaired(ma, pa, mb, pb), _still(pa, pb), covers, check, runs
    ma, ga = _run_metrics(sa, k, metric)
    mb, gb = _run_metrics(sb, k, metric)
    ta, covers = run_terms(ma, ga)
    tb, _ = run_terms(mb, gb)
    terms = None if ta is None or tb is None else ta + tb
    return float(ma.mean() - mb.mean()), terms, None, covers, np.concatenate([ma, mb]), None
