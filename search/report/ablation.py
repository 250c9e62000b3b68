"""One table per ablation factor: each level's runs, statistics and difference from baseline.

A level is the baseline with that one factor changed (``space.fill``); its runs are the
fully trained ablation / grid trials with exactly that completed point (the ``cell``
column of :mod:`search.report.collect`; exploration trials never enter a cell).
Intervals come from :mod:`search.report.stats`: from per-image test predictions (seeds and
test images) where every run of both sides has them in the optional ``test_predictions``
column of the trials frame, else from the runs' metrics (seeds, or seeds and test splits).
The differences of one factor and one metric (every level against the baseline) are a
family: ``p_holm`` is Holm's adjustment of their p-values and ``excludes_zero`` says
whether the adjusted p is below 0.05.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from search.report.collect import BINARY_METRICS, PREDICTIONS, StudyData, point_key
from search.report.image_metrics import LABEL_METRICS, metric_range
from search.report.intervals import ALPHA
from search.report.stats import (
    TestPredictions,
    difference,
    difference_images,
    holm,
    summarise,
    summarise_images,
)
from search.space import Space

SUMMARY_COLUMNS = [
    "n",
    "n_images",
    "n_images_max",
    "n_test_sets",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "covers",
    "note",
]
DIFF_COLUMNS = [
    "diff",
    "diff_low",
    "diff_high",
    "paired",
    "p",
    "p_holm",
    "excludes_zero",
    "diff_covers",
    "diff_note",
]
STAT_COLUMNS = SUMMARY_COLUMNS + DIFF_COLUMNS


@dataclass
class Level:
    """One level of an ablation factor and the completed point it stands for."""

    factor: str
    label: str
    baseline: bool
    point: dict[str, Any]
    key: str


def factor_levels(space: Space) -> tuple[dict[str, list[Level]], list[str]]:
    """The levels of each ablation factor, and notes on levels that equal the baseline
    only because the factor is inactive there (they are left out)."""
    levels: dict[str, list[Level]] = {}
    notes: list[str] = []
    if space.ablation is None:
        return levels, notes
    base = space.baseline()
    base_key = point_key(space, base)
    for name in space.ablation.factors:
        f = space.factors[name]
        out: list[Level] = []
        for value in f.levels:
            point = space.fill({**base, name: value})
            key = point_key(space, point)
            is_base = name in base and point_key(space, {name: value}) == point_key(
                space, {name: base[name]}
            )
            if key == base_key and not is_base:
                why = f" ({f.when.source})" if f.when else ""
                notes.append(
                    f"{name}={f.level_label(value)} is left out: {name} is inactive at the "
                    f"baseline{why}, so this level would be the baseline itself."
                )
                continue
            out.append(Level(name, f.level_label(value), is_base, point, key))
        levels[name] = out
    return levels, notes


def _full(data: StudyData, key: str) -> pd.DataFrame:
    """The cell of a point: its fully trained ablation / grid runs."""
    t = data.trials
    return t[t["cell"] & (t["key"] == key)]


def runs(data: StudyData, key: str, metric: str) -> pd.Series:
    """The metric of every fully trained run of a point, indexed by its seed/fold."""
    sel = _full(data, key)
    return pd.Series(sel[metric].to_numpy(dtype=float), index=sel["pair"].to_numpy())


def test_set_id(data_config: Any) -> str:
    """What identifies a run's test images: its dataset and split (kind, shares, seed, fold)."""
    cfg = data_config if isinstance(data_config, dict) else {}
    return json.dumps({"dataset": cfg.get("dataset"), "split": cfg.get("split")}, sort_keys=True)


@dataclass
class RunSet:
    """The runs of one point: metric values come from :func:`runs`; this holds the rest."""

    test_sets: dict[str, str]
    n_images: tuple[int, int] | None
    predictions: dict[str, TestPredictions] | None
    classes: int | None
    positive: int | None = None  # the positive class's index (two-class tasks)

    def image_metric(self, metric: str) -> str | None:
        """The per-image metric behind ``metric`` (``recall@1`` for the positive class's
        sensitivity), or None when its interval cannot come from per-image predictions."""
        if self.predictions is None:
            return None
        if metric in LABEL_METRICS:
            return metric
        field = BINARY_METRICS.get(metric)
        return None if field is None or self.positive is None else f"{field}@{self.positive}"


def run_set(data: StudyData, key: str) -> RunSet:
    """Test sets, test-set sizes (from the confusion matrices) and per-image predictions
    (when every run has them) of a point's fully trained runs."""
    sel = _full(data, key)
    pairs = sel["pair"].tolist()
    test_sets = {p: test_set_id(d) for p, d in zip(pairs, sel["data"], strict=True)}
    sizes = [int(np.sum(c)) for c in sel["confusion"] if isinstance(c, list) and c]
    preds = sel[PREDICTIONS].tolist() if PREDICTIONS in sel else []
    predictions = None
    if pairs and len(preds) == len(pairs) and all(isinstance(p, TestPredictions) for p in preds):
        predictions = dict(zip(pairs, preds, strict=True))
    names = [len(c) for c in sel["class_names"] if isinstance(c, list)]
    positive = {
        c.index(p)
        for p, c in zip(sel.get("positive", []), sel["class_names"], strict=False)
        if isinstance(p, str) and isinstance(c, list) and p in c
    }
    return RunSet(
        test_sets=test_sets,
        n_images=(min(sizes), max(sizes)) if sizes else None,
        predictions=predictions,
        classes=max(names) if names else None,
        positive=positive.pop() if len(positive) == 1 else None,
    )


def _summary(values: pd.Series, rs: RunSet, metric: str) -> dict[str, Any]:
    image_metric = rs.image_metric(metric)
    if rs.predictions is not None and image_metric is not None:
        s = summarise_images(rs.predictions, image_metric, rs.classes)
    else:
        lo, hi = metric_range(metric)
        s = summarise(values, rs.test_sets, (100 * lo, 100 * hi))
    out: dict[str, Any] = s.as_dict()
    if rs.n_images is not None:
        out["n_images"], out["n_images_max"] = rs.n_images
    else:
        out["n_images_max"] = out["n_images"]
    return out


def level_stats(data: StudyData, key: str, base_key: str | None, metric: str) -> dict[str, Any]:
    """Summary of a point's runs and, unless it is the baseline, its difference from it
    (``p_holm`` and ``excludes_zero`` are set for the family by :func:`factor_table`)."""
    values, rs = runs(data, key, metric), run_set(data, key)
    out = _summary(values, rs, metric)
    if base_key is None or key == base_key:
        out.update({c: None for c in DIFF_COLUMNS})
        return out
    base_values, base = runs(data, base_key, metric), run_set(data, base_key)
    image_metric = rs.image_metric(metric)
    if (
        rs.predictions is not None
        and base.predictions is not None
        and image_metric is not None
        and image_metric == base.image_metric(metric)
    ):
        classes = max(rs.classes or 0, base.classes or 0) or None
        d = difference_images(rs.predictions, base.predictions, image_metric, classes)
    else:
        d = difference(values, base_values, {**base.test_sets, **rs.test_sets})
    out.update(d.as_dict())
    out["p_holm"], out["excludes_zero"] = d.p, d.excludes_zero  # a family of one, until adjusted
    return out


def factor_table(
    data: StudyData, factor: str, levels: list[Level], metrics: tuple[str, ...]
) -> pd.DataFrame:
    """Tidy statistics: one row per (level, metric), in percent points, with the p-values
    of each metric's differences Holm-adjusted across the factor's levels."""
    base = next((lv for lv in levels if lv.baseline), None)
    rows = []
    for lv in levels:
        for m in metrics:
            stats = level_stats(data, lv.key, base.key if base else None, m)
            rows.append(
                {"factor": factor, "level": lv.label, "baseline": lv.baseline, "metric": m, **stats}
            )
    table = pd.DataFrame(rows, columns=["factor", "level", "baseline", "metric", *STAT_COLUMNS])
    return adjust(table)


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p (``p_holm``) and ``excludes_zero`` (adjusted p < 0.05; None without a
    test), per metric across the differences in ``table``."""
    table = table.astype({"p_holm": object, "excludes_zero": object})
    for _, idx in table.groupby("metric", sort=False).groups.items():
        p = pd.to_numeric(table.loc[idx, "p"], errors="coerce").to_numpy(dtype=float)
        adjusted = holm(p)
        table.loc[idx, "p_holm"] = [None if math.isnan(q) else float(q) for q in adjusted]
        table.loc[idx, "excludes_zero"] = [
            None if math.isnan(q) else bool(q < ALPHA) for q in adjusted
        ]
    return table


def missing_levels(table: pd.DataFrame) -> list[str]:
    """Levels with no fully trained run."""
    n = table.groupby("level", sort=False)["n"].max()
    return [str(level) for level, count in n.items() if count == 0]
