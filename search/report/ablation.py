"""One table per ablation factor: each level's runs, statistics and difference from baseline.

A level is the baseline with that one factor changed (``space.fill``); its runs are the
fully trained trials with exactly that completed point (see :mod:`search.report.collect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from search.report.collect import StudyData, point_key
from search.report.stats import difference, summarise
from search.space import Space

STAT_COLUMNS = [
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "diff",
    "diff_low",
    "diff_high",
    "paired",
    "excludes_zero",
]


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


def runs(data: StudyData, key: str, metric: str) -> pd.Series:
    """The metric of every fully trained run of a point, indexed by its seed/fold."""
    t = data.trials
    sel = t[t["full"] & (t["key"] == key)]
    return pd.Series(sel[metric].to_numpy(dtype=float), index=sel["pair"].to_numpy())


def level_stats(data: StudyData, key: str, base_key: str | None, metric: str) -> dict[str, Any]:
    """Summary of a point's runs and, unless it is the baseline, its difference from it."""
    values = runs(data, key, metric)
    out: dict[str, Any] = summarise(values).as_dict()
    if base_key is not None and key != base_key:
        out.update(difference(values, runs(data, base_key, metric)).as_dict())
    else:
        out.update(diff=None, diff_low=None, diff_high=None, paired=None, excludes_zero=None)
    return out


def factor_table(
    data: StudyData, factor: str, levels: list[Level], metrics: tuple[str, ...]
) -> pd.DataFrame:
    """Tidy statistics: one row per (level, metric), in percent points."""
    base = next((lv for lv in levels if lv.baseline), None)
    rows = []
    for lv in levels:
        for m in metrics:
            stats = level_stats(data, lv.key, base.key if base else None, m)
            rows.append(
                {"factor": factor, "level": lv.label, "baseline": lv.baseline, "metric": m, **stats}
            )
    return pd.DataFrame(rows, columns=["factor", "level", "baseline", "metric", *STAT_COLUMNS])


def missing_levels(table: pd.DataFrame) -> list[str]:
    """Levels with no fully trained run."""
    n = table.groupby("level", sort=False)["n"].max()
    return [str(level) for level, count in n.items() if count == 0]
