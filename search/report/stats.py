"""Means, 95 % confidence intervals and differences from a baseline, with honest coverage.

Two kinds of interval, each saying what it covers (``Summary.covers``, ``COVERS_*``):

- **From the runs' metrics** (:func:`summarise`, :func:`difference`): the Student-t
  interval of the mean over runs; for a difference, the paired t-interval of the per-run
  differences when both sides have the same runs (the same seed and fold, once each, at
  least two), else Welch's. When every run is tested on one fixed test set this covers
  seed-to-seed (fold-to-fold) variation only: the truth it aims at is the method's
  expected metric over seeds *on that test set*. When each run has its own test split
  (``search.resplit``, k-fold with one seed) the spread over runs also holds the test-set
  sampling; runs that share some test sets but not all are averaged per test set first.
- **From per-image test predictions** (:func:`summarise_images`,
  :func:`difference_images`, :mod:`search.report.image_stats`): seeds *and* test images,
  so one run on 26 images shows the width that 26 images leave. Differences are paired on
  the runs (seed, fold) and on the images.

There is no zero-width interval: runs without spread and without per-image data have none
("n/a", with a note). p-values come from the same t statistics as the intervals;
:func:`holm` adjusts a family of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from search.report.image_stats import TestPredictions, difference_images, summarise_images
from search.report.intervals import (
    CONFIDENCE,
    COVERS_IMAGES,
    COVERS_SEEDS,
    COVERS_SEEDS_IMAGES,
    COVERS_SEEDS_SPLITS,
    Difference,
    Summary,
    Term,
    holm,
    run_terms,
    t_interval,
)

__all__ = [
    "CONFIDENCE",
    "COVERS_IMAGES",
    "COVERS_SEEDS",
    "COVERS_SEEDS_IMAGES",
    "COVERS_SEEDS_SPLITS",
    "Difference",
    "Summary",
    "TestPredictions",
    "difference",
    "difference_images",
    "holm",
    "summarise",
    "summarise_images",
]


def _groups(keys: Sequence[Any], test_sets: Mapping[Any, str] | None) -> np.ndarray | None:
    return None if test_sets is None else np.asarray([str(test_sets[k]) for k in keys])


def _runs(x: pd.Series | np.ndarray) -> tuple[list[Any], np.ndarray]:
    """The run keys and finite values (NaN: a run without this metric)."""
    if isinstance(x, pd.Series):
        keys, v = list(x.index), x.to_numpy(dtype=float)
    else:
        v = np.asarray(x, dtype=float)
        keys = list(range(len(v)))
    ok = np.isfinite(v)
    return [k for k, good in zip(keys, ok, strict=True) if good], v[ok]


def summarise(
    values: pd.Series | np.ndarray,
    test_sets: Mapping[Any, str] | None = None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Summary:
    """Mean over runs with its Student-t 95 % CI (NaN values are runs without the metric).

    ``test_sets`` maps each run's key (the Series index) to its test set; None means one
    shared test set, so that the interval covers seed-to-seed variation only. The interval
    is clipped to the metric's ``bounds`` (e.g. 0-100 for accuracy in percent).
    """
    keys, v = _runs(values)
    n = len(v)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, note="no run")
    groups = _groups(keys, test_sets)
    terms, covers = run_terms(v, groups)
    ci = t_interval(float(v.mean()), terms, bounds)
    note = "one run" if n == 1 else ("no spread over the runs" if math.isnan(ci.low) else "")
    return Summary(
        n=n,
        mean=float(v.mean()),
        std=float(np.std(v, ddof=1)) if n > 1 else math.nan,
        ci_low=ci.low,
        ci_high=ci.high,
        covers=covers,
        n_test_sets=None if groups is None else len(set(groups.tolist())),
        note=note,
    )


def difference(
    level: pd.Series, baseline: pd.Series, test_sets: Mapping[Any, str] | None = None
) -> Difference:
    """The level's mean minus the baseline's: the paired t-interval by run key when both
    sides have the same runs (at least two), else Welch's. Both series are indexed by a
    run key such as ``seed=0,fold=None``; ``test_sets`` as in :func:`summarise`."""
    (ka, a), (kb, b) = _runs(level), _runs(baseline)
    if len(a) == 0 or len(b) == 0:
        return Difference(math.nan, math.nan, math.nan, None, diff_note="a side has no run")
    base = dict(zip(kb, b, strict=True))
    if len(a) >= 2 and len(set(ka)) == len(ka) == len(base) and set(ka) == set(base):
        d = a - np.array([base[k] for k in ka])
        terms, covers = run_terms(d, _groups(ka, test_sets))
        return _difference(float(d.mean()), terms, covers, True)
    ta, ca = run_terms(a, _groups(ka, test_sets))
    tb, cb = run_terms(b, _groups(kb, test_sets))
    terms = None if ta is None or tb is None else ta + tb
    covers = COVERS_SEEDS_SPLITS if COVERS_SEEDS_SPLITS in (ca, cb) else COVERS_SEEDS
    return _difference(float(a.mean() - b.mean()), terms, covers, False)


def _difference(est: float, terms: list[Term] | None, covers: str, paired: bool) -> Difference:
    ci = t_interval(est, terms)
    note = ""
    if terms is None:
        note = "a single run on a side"
    elif math.isnan(ci.low):
        note = "no spread over the runs"
    return Difference(est, ci.low, ci.high, paired, ci.p, covers, note)
