"""Tidy numeric tables -> frames of display strings for the Markdown and HTML pages."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from search.report.collect import METRICS
from search.report.stats import (
    COVERS_IMAGES,
    COVERS_SEEDS,
    COVERS_SEEDS_IMAGES,
    COVERS_SEEDS_SPLITS,
)
from search.report.tables import NOISE_METRICS

STATS_METHOD = (
    "n: runs (seeds or folds) x test images per run; mean ± sample standard deviation over "
    "the runs. 95 % CI of the mean: where every run stored its per-image test predictions, "
    "an interval over seeds and test images (a seeds x images variance estimate from the "
    "images' jackknife values, Satterthwaite's degrees of freedom, Wilson's score form for "
    "accuracy); otherwise a Student-t interval over the runs, which covers seed-to-seed "
    "variation only when all runs share one test set. No interval from one run without "
    "per-image predictions, nor from runs that do not vary at all. Δ is the level's mean "
    "minus the baseline's with its 95 % CI and two-sided p from the same t statistic, "
    "paired on seed and fold (and on the test images) when both sides have the same runs, "
    "Welch otherwise. Each factor's p-values are Holm-adjusted across its levels, per "
    "metric; '≠ 0 (Holm)' means adjusted p < 0.05. The intervals' coverage is measured on "
    "simulated studies (tests/test_stats_coverage.py; bench/README.md)."
)

# -- cells ----------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    real = isinstance(x, (int, float, np.integer, np.floating))
    return real and not isinstance(x, (bool, np.bool_)) and math.isfinite(x)


def num(x: Any, digits: int = 2, sign: bool = False) -> str:
    """A number, or "n/a" when there is none."""
    if not _finite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def mean_std(mean: Any, std: Any) -> str:
    """``93.20 ± 1.05``; the mean alone for one run; "n/a" for none."""
    if not _finite(mean):
        return "n/a"
    return f"{mean:.2f} ± {std:.2f}" if _finite(std) else f"{mean:.2f}"


def interval(low: Any, high: Any, sign: bool = False) -> str:
    """``[91.80, 94.50]`` or "n/a"."""
    if not (_finite(low) and _finite(high)):
        return "n/a"
    return f"[{num(low, sign=sign)}, {num(high, sign=sign)}]"


def p_value(x: Any) -> str:
    """``0.012``, ``<0.001`` or "n/a"."""
    if not _finite(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def runs_images(n: Any, low: Any, high: Any) -> str:
    """``3 × 26`` (runs x test images per run), ``5 × 25-26``, or the runs alone."""
    if not _finite(low):
        return f"{int(n)}"
    images = f"{int(low)}" if not _finite(high) or high == low else f"{int(low)}-{int(high)}"
    return f"{int(n)} × {images}"


def yes_no(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return "yes" if x else "no"


def big(x: Any) -> str:
    """12.30M / 456.70K style counts."""
    if not _finite(x):
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}"


def short(v: Any) -> str:
    """A parameter value as a person reads it (4 significant digits for floats)."""
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# -- tables ---------------------------------------------------------------------------


def _level_name(row: pd.Series) -> str:
    return str(row["level"]) + (" (baseline)" if row["baseline"] else "")


def factor_display(table: pd.DataFrame, centre: tuple[str, ...]) -> pd.DataFrame:
    """Per level: runs x test images, then per centre metric mean ± std, CI, Δ [CI], the raw
    and Holm-adjusted p of Δ and whether the adjusted test rejects 'no difference'."""
    rows = []
    for _, group in table.groupby("level", sort=False):
        by = group.set_index("metric")
        first = by.loc[centre[0]]
        row: dict[str, Any] = {
            "level": _level_name(first),
            "runs × test images": runs_images(first["n"], first["n_images"], first["n_images_max"]),
        }
        for m in centre:
            r = by.loc[m]
            row[f"{m} mean ± std"] = mean_std(r["mean"], r["std"])
            row[f"{m} 95% CI"] = interval(r["ci_low"], r["ci_high"])
            if r["baseline"]:
                row[f"Δ {m} [95% CI]"] = "(baseline)"
                row[f"Δ {m} p (Holm)"] = row[f"Δ {m} ≠ 0 (Holm)"] = "-"
                continue
            d, ci = num(r["diff"], sign=True), interval(r["diff_low"], r["diff_high"], sign=True)
            row[f"Δ {m} [95% CI]"] = d if ci == "n/a" else f"{d} {ci}"
            raw, adj = p_value(r["p"]), p_value(r["p_holm"])
            row[f"Δ {m} p (Holm)"] = raw if raw == "n/a" else f"{raw} ({adj})"
            row[f"Δ {m} ≠ 0 (Holm)"] = yes_no(r["excludes_zero"])
        paired = first["paired"]
        row["Δ pairing"] = "" if paired is None else ("paired" if paired else "unpaired")
        rows.append(row)
    return pd.DataFrame(rows)


COVERS_TEXT = {
    COVERS_SEEDS: "seed-to-seed variation only, on one fixed test set (the test images are "
    "not resampled, so the uncertainty about new images is not in it)",
    COVERS_SEEDS_SPLITS: "seed-to-seed variation and the test split (each run has its own)",
    COVERS_SEEDS_IMAGES: "seed-to-seed variation and the sampling of the test images",
    COVERS_IMAGES: "the sampling of the test images only (one run: the seed-to-seed "
    "variation cannot be estimated)",
}


def interval_note(table: pd.DataFrame, centre: tuple[str, ...]) -> str:
    """What the intervals of a factor table cover, and what stands behind them."""
    rows = table[table["metric"].isin(centre) & (table["n"] > 0)]
    if rows.empty:
        return "No run: no interval."
    parts = []
    for covers in dict.fromkeys(rows["covers"].dropna()):
        sel = rows[rows["covers"] == covers]
        which = [f"{lv} {m}" for lv, m in zip(sel["level"], sel["metric"], strict=True)]
        where = "" if len(sel) == len(rows) else f" ({', '.join(which)})"
        parts.append(f"{COVERS_TEXT.get(covers, covers)}{where}")
    text = "The intervals cover " + "; ".join(parts) + "."
    if rows["paired"].notna().any():
        images = (rows["diff_covers"] == COVERS_SEEDS_IMAGES).any()
        text += (
            " Δ is paired on the runs' seed and fold"
            + (" and on the test images" if images else "")
            + " where both sides have the same runs, unpaired (Welch) otherwise."
        )
    base = rows[rows["baseline"].astype(bool) & (rows["metric"] == "accuracy")]
    if len(base) and base["covers"].iloc[0] == COVERS_SEEDS:
        n, p = base["n_images"].iloc[0], base["mean"].iloc[0] / 100
        if _finite(n) and _finite(p) and n > 0:
            half = 100 * 1.96 * math.sqrt(p * (1 - p) / n)
            text += (
                f" For scale: a test set of {int(n)} images alone leaves about ±{half:.1f} "
                "points (binomial) around the baseline's accuracy, which these intervals omit."
            )
    return text


def factor_caption(table: pd.DataFrame, factor: str, centre: tuple[str, ...]) -> str:
    """The caption of a factor table: units, the Holm family, and what the intervals cover."""
    notes = interval_note(table, centre)
    return (
        f"{factor}: test {', '.join(centre)} (percent). p: two-sided, from the same t "
        "statistic as Δ's interval; in brackets Holm-adjusted across this factor's levels "
        "(per metric), and '≠ 0 (Holm)' says whether the adjusted p is below 0.05. " + notes
    )


BINARY_LABELS = {"sensitivity": "sensitivity", "pos_specificity": "specificity", "ppv": "PPV",
                 "pos_npv": "NPV"}  # fmt: skip


def binary_display(table: pd.DataFrame) -> pd.DataFrame:
    """Per level, the positive class's sensitivity, specificity, PPV and NPV: mean ± std
    and 95 % CI over the runs."""
    rows = []
    for _, group in table.groupby("level", sort=False):
        by = group.set_index("metric")
        row: dict[str, Any] = {"level": _level_name(by.iloc[0]), "runs": int(by["n"].max())}
        for m, label in BINARY_LABELS.items():
            r = by.loc[m]
            row[label] = f"{mean_std(r['mean'], r['std'])} {interval(r['ci_low'], r['ci_high'])}"
        rows.append(row)
    return pd.DataFrame(rows)


def others_display(table: pd.DataFrame, centre: tuple[str, ...]) -> pd.DataFrame:
    """Per level, mean ± std of the metrics the first table does not centre on."""
    others = [m for m in METRICS if m not in centre]
    rows = []
    for _, group in table.groupby("level", sort=False):
        by = group.set_index("metric")
        row = {"level": _level_name(by.iloc[0])}
        row.update({m: mean_std(by.loc[m, "mean"], by.loc[m, "std"]) for m in others})
        rows.append(row)
    return pd.DataFrame(rows)


def configurations_display(conf: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """The paper-style table: configurations x metrics, then comparable paper values and Δ."""
    ok = ref[ref["comparable"].astype(bool)] if not ref.empty else ref
    rows = []
    for name, group in conf.groupby("config", sort=False):
        by = group.set_index("metric")
        row: dict[str, Any] = {"configuration": name, "n": int(by["n"].max())}
        row.update({m: mean_std(by.loc[m, "mean"], by.loc[m, "std"]) for m in METRICS})
        for _, r in ok[ok["config"] == name].iterrows():
            tag = r["metric"] + (" gain" if r["kind"] == "gain" else "")
            leak = r.get("leakage")
            row[f"paper {tag}"] = num(r["paper"]) + (" (leakage)" if isinstance(leak, str) else "")
            row[f"Δ {tag} (ours - paper)"] = num(r["diff"], sign=True)
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def reference_display(ref: pd.DataFrame) -> pd.DataFrame:
    """Every reference value; what differs from our runs; a leaked protocol marked."""
    shown = ref.assign(
        paper=[
            num(p) + (" (leakage)" if isinstance(leak, str) and leak else "")
            for p, leak in zip(ref["paper"], ref["leakage"], strict=True)
        ],
        ours=ref["ours"].map(num),
        diff=ref["diff"].map(lambda x: num(x, sign=True)),
        comparable=ref["comparable"].map(yes_no),
    )
    return shown.fillna("").rename(
        columns={"why_not": "what differs", "measured_under": "paper measured under"}
    )


def importance_display(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        ped_anova=table["ped_anova"].map(lambda x: num(x, 3)),
        fanova=table["fanova"].map(lambda x: num(x, 3)),
    )


def complexity_display(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        params=table["params"].map(big),
        flops=table["flops"].map(big),
        size_mb=table["size_mb"].map(num),
        latency_ms=table["latency_ms"].map(num),
    )


def noise_display(group: pd.DataFrame) -> pd.DataFrame:
    shown = group.drop(columns=["config"])
    shown = shown.assign(sigma=shown["sigma"].map(lambda s: f"{s:g}"))
    return shown.assign(**{m: shown[m].map(num) for m in NOISE_METRICS})
