"""Means, bootstrap confidence intervals and differences from a baseline.

Intervals are 95 % percentile bootstraps from :func:`scipy.stats.bootstrap` (9,999
resamples, a fixed seed so a report is reproducible). One run has no interval (NaN,
shown "n/a"). A difference from the baseline is *paired* when both sides have the same
runs (the same seed and fold, once each, at least two): the interval is the bootstrap of
the mean per-pair difference, so what the seed or fold does to both cancels out.
Otherwise it is the unpaired difference of means, each sample resampled on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0


@dataclass
class Summary:
    """n runs, mean, sample standard deviation and the bootstrap CI of the mean."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class Difference:
    """mean(level) - mean(baseline) with its bootstrap CI."""

    diff: float
    diff_low: float
    diff_high: float
    paired: bool | None

    @property
    def excludes_zero(self) -> bool | None:
        """True/False when there is an interval; None when there is none."""
        if math.isnan(self.diff_low) or math.isnan(self.diff_high):
            return None
        return bool(self.diff_low > 0 or self.diff_high < 0)

    def as_dict(self) -> dict[str, float | bool | None]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def _interval(
    data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]
) -> tuple[float, float]:
    if any(len(d) < 2 for d in data):
        return math.nan, math.nan
    if all(np.ptp(d) == 0 for d in data):  # no spread: every resample gives the same value
        value = float(statistic(*data))
        return value, value
    res = bootstrap(
        data,
        statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _diff_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def summarise(values: pd.Series | np.ndarray) -> Summary:
    """Summary of the finite values (NaN are runs without this metric)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    low, high = _interval((x,), _mean)
    return Summary(len(x), float(np.mean(x)), std, low, high)


def difference(level: pd.Series, baseline: pd.Series) -> Difference:
    """The level's mean minus the baseline's, paired by index (the run) when possible.

    Both series are indexed by a run key such as ``seed=0,fold=None``.
    """
    a, b = level[np.isfinite(level)], baseline[np.isfinite(baseline)]
    if len(a) == 0 or len(b) == 0:
        return Difference(math.nan, math.nan, math.nan, None)
    paired = (
        a.index.is_unique and b.index.is_unique and set(a.index) == set(b.index) and len(a) >= 2
    )
    if paired:
        d = (a - b.reindex(a.index)).to_numpy(dtype=float)
        low, high = _interval((d,), _mean)
        return Difference(float(d.mean()), low, high, True)
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    low, high = _interval((x, y), _diff_of_means)
    return Difference(float(x.mean() - y.mean()), low, high, False)
