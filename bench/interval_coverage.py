"""Coverage of 95 % intervals, old and new, and the time the new ones take in a report.

1. Normal run values (the issue's check): the old percentile bootstrap over runs against
   the Student-t interval, n = 2, 3, 5 runs.
2. The simulated studies of tests/test_stats_coverage.py (seed luck, image difficulty, a
   finite test set): every interval against the truth it aims at, plus the two-level
   *percentile bootstrap* (runs, then images) that the analytic two-level interval was
   chosen over.
3. Time of the per-image intervals for a report of 50 cells (accuracy and macro F1).

Run from the repository root: ``python bench/interval_coverage.py [--studies 1000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_stats_coverage import (  # noqa: E402
    KEYS,
    World,
    holds,
    population_truth,
    runs_of,
    simulate,
)

from search.report.stats import (  # noqa: E402
    TestPredictions,
    difference,
    difference_images,
    summarise,
    summarise_images,
)


def old_percentile(x: np.ndarray, resamples: int) -> tuple[float, float]:
    """The report's interval before issue 13 (zero width when the runs do not vary)."""
    if np.ptp(x) == 0:
        return float(x.mean()), float(x.mean())
    res = bootstrap((x,), np.mean, n_resamples=resamples, method="percentile",
                    rng=np.random.default_rng(0))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def normal_runs(studies: int, resamples: int) -> None:
    rng = np.random.default_rng(0)
    print("\n## Normal run values, truth 0 (cell interval)\n")
    print("| n runs | old percentile bootstrap | Student t |\n|---:|---:|---:|")
    for n in (2, 3, 5):
        x = rng.standard_normal((studies, n))
        old = np.mean([holds(*old_percentile(v, resamples), 0.0) for v in x])
        new = np.mean([holds(*(lambda s: (s.ci_low, s.ci_high))(summarise(v)), 0.0) for v in x])
        print(f"| {n} | {100 * old:.1f} % | {100 * new:.1f} % |")


def two_level_bootstrap(c: np.ndarray, rng: np.random.Generator, b: int = 1000):
    """Percentile interval of mean(c) for one study (R, N): resample runs, then the same
    image indices in every run."""
    r, n = c.shape
    w = rng.multinomial(r, np.full(r, 1 / r), size=b)
    v = rng.multinomial(n, np.full(n, 1 / n), size=b)
    est = np.einsum("br,rn,bn->b", w, c, v) / (r * n)
    return tuple(np.quantile(est, [0.025, 0.975]))


def world_row(world: World, runs: int, images: int, studies: int, resamples: int) -> dict:
    st = simulate(world, studies, runs, images, seed=1000 * runs + images)
    ca = (st.pred_a == st.y[:, None]).astype(float)
    cb = (st.pred_b == st.y[:, None]).astype(float)
    mu_t = world.truth_on(st.z, st.tau_a)
    delta_t = world.truth_on(st.z, st.tau_b) - mu_t
    mu, mu_b = population_truth(world, images, "accuracy")
    rng = np.random.default_rng(1)
    hits = np.zeros((studies, 10), dtype=bool)
    for i in range(studies):
        acc_a, acc_b = ca[i].mean(axis=1), cb[i].mean(axis=1)
        a, b = pd.Series(acc_a, index=KEYS[:runs]), pd.Series(acc_b, index=KEYS[:runs])
        old_c, old_d = old_percentile(acc_a, resamples), old_percentile(acc_b - acc_a, resamples)
        s, d = summarise(a), difference(b, a)
        ia, ib = runs_of(st.y[i], st.pred_a[i]), runs_of(st.y[i], st.pred_b[i])
        s2, d2 = summarise_images(ia, scale=1.0), difference_images(ib, ia, scale=1.0)
        hits[i] = (
            holds(*old_c, mu_t[i]), holds(*old_d, delta_t[i]),
            holds(s.ci_low, s.ci_high, mu_t[i]), holds(d.diff_low, d.diff_high, delta_t[i]),
            holds(s.ci_low, s.ci_high, mu), holds(d.diff_low, d.diff_high, mu_b - mu),
            holds(s2.ci_low, s2.ci_high, mu), holds(d2.diff_low, d2.diff_high, mu_b - mu),
            holds(*two_level_bootstrap(ca[i], rng), mu),
            holds(*two_level_bootstrap(cb[i] - ca[i], rng), mu_b - mu),
        )  # fmt: skip
    cov = 100 * hits.mean(axis=0)
    return {"runs": runs, "images": images, **{f"c{j}": cov[j] for j in range(10)}}


def world_table(studies: int, resamples: int) -> None:
    print(f"\n## Simulated studies (World() of tests/test_stats_coverage.py, {studies} each)\n")
    print("Cell / paired difference. T = truth on the study's test set; P = population truth.\n")
    print(
        "| n | N | old bootstrap vs T | t over runs vs T | t over runs vs P "
        "| two-level analytic vs P | two-level percentile bootstrap vs P |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for runs in (3, 5):
        for images in (26, 200):
            r = world_row(World(), runs, images, studies, resamples)
            pairs = [f"{r[f'c{j}']:.1f} / {r[f'c{j + 1}']:.1f}" for j in range(0, 10, 2)]
            print(f"| {runs} | {images} | " + " | ".join(pairs) + " |")


def timing() -> None:
    """50 cells and 50 paired differences, as a report of ~50 cells computes them."""
    rng = np.random.default_rng(0)

    def side(y: np.ndarray, runs: int, acc: float) -> dict[str, TestPredictions]:
        right = rng.random((runs, len(y))) < acc
        return {
            k: TestPredictions(y, np.where(r, y, (y + 1) % 3))
            for k, r in zip(KEYS, right, strict=False)
        }

    pairs = []
    for i in range(50):
        runs, y = (3, 5)[i % 2], rng.integers(0, 3, (26, 100, 400)[i % 3])
        pairs.append((side(y, runs, 0.85), side(y, runs, 0.88)))
    print()
    for metric in ("accuracy", "f1"):
        start = time.perf_counter()
        for base, level in pairs:
            summarise_images(level, metric, num_classes=3)
            difference_images(level, base, metric, num_classes=3)
        took = time.perf_counter() - start
        print(f"50 cells + 50 paired differences, {metric}: {1000 * took:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=2000, help="old bootstrap's resamples")
    args = ap.parse_args()
    normal_runs(args.studies, args.resamples)
    world_table(args.studies, args.resamples)
    timing()


if __name__ == "__main__":
    main()
