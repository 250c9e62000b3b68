"""The pieces every interval of :mod:`search.report.stats` is made of.

An estimate's variance is a signed sum of estimated components (:class:`Term`), each with
its degrees of freedom; the interval is ``estimate +- t(df) * sqrt(variance)`` with
Satterthwaite's df, and the p-value of "the truth is 0" comes from the same t statistic.
A single component with n - 1 df is the Student-t interval; two (one per side) are Welch's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import stdtr, stdtrit

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE

COVERS_SEEDS = "seeds"
"""Run-to-run variation on one fixed test set; the test images are not resampled."""
COVERS_SEEDS_SPLITS = "seeds+test splits"
"""Runs on different test splits: their spread holds seed and test-set variation."""
COVERS_SEEDS_IMAGES = "seeds+test images"
"""Seeds and the sampling of the test images (per-image predictions on a shared test set)."""
COVERS_IMAGES = "test images"
"""Test-image sampling only: seed-to-seed variation cannot be estimated from one run."""


@dataclass
class Summary:
    """n runs, mean, sample standard deviation over runs and the 95 % CI of the mean.

    ``covers`` says what the interval varies (one of the ``COVERS_*`` strings), ``note``
    why there is none. ``n_images`` is the number of test images per run (None: unknown).
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    covers: str = ""
    n_images: int | None = None
    n_test_sets: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Difference:
    """mean(level) - mean(baseline), its 95 % CI and the two-sided p of 'no difference'."""

    diff: float
    diff_low: float
    diff_high: float
    paired: bool | None
    p: float = math.nan
    diff_covers: str = ""
    diff_note: str = ""

    @property
    def excludes_zero(self) -> bool | None:
        """True/False when there is an interval; None when there is none (unadjusted)."""
        if math.isnan(self.diff_low) or math.isnan(self.diff_high):
            return None
        return bool(self.diff_low > 0 or self.diff_high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


@dataclass(frozen=True)
class Term:
    """A variance component of an estimate, its degrees of freedom and its sign."""

    value: float
    df: float
    sign: int = 1


def variance(terms: Sequence[Term]) -> float:
    return float(sum(t.sign * t.value for t in terms))


def satterthwaite(terms: Sequence[Term]) -> float:
    den = sum(t.value**2 / t.df for t in terms if t.value > 0)
    return variance(terms) ** 2 / den if den > 0 else math.inf


def t_quantile(df: float) -> float:
    """The two-sided 95 % quantile of Student's t (scipy.special; the normal's at df = inf)."""
    return float(stdtrit(df, 1 - ALPHA / 2))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    p: float


NO_INTERVAL = Interval(math.nan, math.nan, math.nan)


def t_interval(
    est: float, terms: Sequence[Term] | None, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Interval:
    """``est +- t(df) * se`` clipped to ``bounds``, and p of 'the truth is 0'; none when the
    variance is not positive."""
    var = variance(terms) if terms else 0.0
    if not (var > 0 and math.isfinite(var) and math.isfinite(est)):
        return NO_INTERVAL
    df, se = satterthwaite(terms), math.sqrt(var)
    half = t_quantile(df) * se
    p = float(2 * stdtr(df, -abs(est) / se))
    return Interval(max(bounds[0], est - half), min(bounds[1], est + half), p)


def wilson_t(p: float, terms: Sequence[Term] | None, cap: int, still: int) -> Interval:
    """Wilson's score interval of a proportion ``p`` whose estimated variance is the sum of
    ``terms``, with the effective sample size ``p (1 - p) / variance`` (at most ``cap``, the
    number of observations) and the t quantile of Satterthwaite's df (Korn and Graubard's
    interval for proportions from clustered samples, in Wilson's form). With nothing to go
    on (p is 0 or 1, no variance), the ``still`` observations every run agreed on count."""
    var = variance(terms) if terms else 0.0
    if 0 < p < 1 and var > 0:
        n, df = min(cap, p * (1 - p) / var), satterthwaite(terms)
    else:
        n, df = still, still - 1
    if not (df > 0 and math.isfinite(p)):
        return NO_INTERVAL
    q2 = t_quantile(df) ** 2
    centre = (p + q2 / (2 * n)) / (1 + q2 / n)
    half = math.sqrt(q2) / (1 + q2 / n) * math.sqrt(p * (1 - p) / n + q2 / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half), math.nan)


def run_terms(values: np.ndarray, groups: np.ndarray | None) -> tuple[list[Term] | None, str]:
    """Variance terms of the mean of ``values`` (one per run) and what they cover.

    ``groups`` names each run's test set (None: one shared test set). One shared test set
    or one test set per run: the runs are the units (n - 1 df). Otherwise the runs of one
    test set are not independent: the test sets are the units (G - 1 df), weighted by
    their number of runs so that the estimate stays the mean over runs.
    """
    r = len(values)
    n_groups = 1 if groups is None else len(set(groups.tolist()))
    covers = COVERS_SEEDS if n_groups == 1 else COVERS_SEEDS_SPLITS
    if n_groups in (1, r):
        return ([Term(float(np.var(values, ddof=1)) / r, r - 1)] if r > 1 else None), covers
    frame = pd.DataFrame({"v": values, "g": groups}).groupby("g")["v"].agg(["mean", "size"])
    w = frame["size"].to_numpy() / r
    dev = frame["mean"].to_numpy() - float(np.mean(values))
    g = len(frame)
    return [Term(g / (g - 1) * float(np.sum(w**2 * dev**2)), g - 1)], covers


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN (no test) stay NaN and are not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(1.0, adjusted)
    return out
