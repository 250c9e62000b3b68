"""The paper-style table (one row per named configuration) and the paper's numbers beside it.

A reference row is compared only when its dataset is the study's and its protocol the
study's split (``holdout``; ``cv5``/``kfold`` for 5-fold); synthetic images are never
compared with a paper. ``<metric>_gain`` rows are the paper's improvement over the bare
backbone: we set our difference (configuration minus the same point with
``attention: none``) beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from search.report.ablation import level_stats
from search.report.collect import METRICS, StudyData, point_key
from search.space import Space


def configurations(space: Space) -> list[tuple[str, dict[str, Any]]]:
    """(name, completed point) of every named configuration (:meth:`Space.configurations`)."""
    return space.configurations()


def configuration_table(data: StudyData, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Tidy: one row per (configuration, metric) with n, mean, std and CI (percent)."""
    rows = []
    for name, point in configurations(data.space):
        key = point_key(data.space, point)
        for m in metrics:
            s = level_stats(data, key, None, m)
            rows.append({"config": name, "metric": m, **{k: s[k] for k in _SUMMARY}})
    return pd.DataFrame(rows, columns=["config", "metric", *_SUMMARY])


_SUMMARY = ("n", "mean", "std", "ci_low", "ci_high")


def protocol_names(data: StudyData, point: dict[str, Any]) -> set[str]:
    """Names a reference row may give for the protocol this point was run under."""
    if "protocol" in point:
        return {str(point["protocol"])}
    split = data.space.data.split
    if split.kind == "kfold":
        return {"kfold", f"cv{split.k}", f"{split.k}fold", f"kfold{split.k}"}
    return {split.kind}


def run_dataset(data: StudyData, point: dict[str, Any] | None) -> str:
    """The dataset this point's runs used: the command line's --data, else its protocol's."""
    overrides = (data.study.config or {}).get("overrides") or {}
    if "dataset" in overrides or point is None:
        return str(overrides.get("dataset") or data.study.dataset or data.space.data.dataset)
    return data.space.trial_config(point).data.dataset


def comparable(data: StudyData, row: dict[str, Any], point: dict[str, Any]) -> str | None:
    """None when the reference row can be compared with this study, else the reason."""
    dataset = run_dataset(data, point)
    if dataset == "synthetic":
        return "the study ran on synthetic images, which no paper value describes"
    wanted = row.get("dataset")
    if wanted is not None and wanted not in (dataset, Path(dataset).name):
        return f"paper dataset {wanted}, study dataset {Path(dataset).name}"
    protocol = row.get("protocol")
    ours = protocol_names(data, point)
    if protocol is not None and protocol not in ours:
        return f"paper protocol {protocol}, study protocol {sorted(ours)[0]}"
    return None


def bare_point(space: Space, point: dict[str, Any]) -> dict[str, Any] | None:
    """The same point without attention (the paper's "bare backbone"), if the space has one."""
    f = space.factors.get("attention")
    if f is None or "none" not in f.levels:
        return None
    return space.fill({**point, "attention": "none"})


def reference_table(data: StudyData) -> pd.DataFrame:
    """Every reference value, in percent, beside ours, with its comparability."""
    ref = data.space.reference
    cols = ["config", "dataset", "protocol", "metric", "kind", "paper", "ours", "n", "diff"]
    cols += ["comparable", "why_not"]
    if ref is None:
        return pd.DataFrame(columns=cols)
    scale = 100.0 if ref.scale == "fraction" else 1.0
    points = dict(configurations(data.space))
    rows = []
    for r in ref.rows:
        name = r.get("config")
        point = points.get(name)
        for col, value in r.items():
            metric, kind = (
                (col[: -len("_gain")], "gain") if col.endswith("_gain") else (col, "value")
            )
            if metric not in METRICS and metric not in ("mcc", "npv", "balanced_accuracy"):
                continue
            item = {
                "config": name,
                "dataset": r.get("dataset"),
                "protocol": r.get("protocol"),
                "metric": metric,
                "kind": kind,
                "paper": float(value) * scale,
                "ours": None,
                "n": 0,
                "diff": None,
            }
            why = (
                comparable(data, r, point)
                if point is not None
                else "configuration not in the space"
            )
            if why is None:
                why = _ours(data, point, metric, kind, item)
            item.update(comparable=why is None, why_not=why)
            rows.append(item)
    return pd.DataFrame(rows, columns=cols)


def _ours(
    data: StudyData, point: dict[str, Any], metric: str, kind: str, item: dict[str, Any]
) -> str | None:
    """Fill ``item`` with our value (or gain) and its difference; the reason if impossible."""
    key = point_key(data.space, point)
    if kind == "gain":
        bare = bare_point(data.space, point)
        if bare is None:
            return "the space has no attention factor with level none to take a gain from"
        s = level_stats(data, key, point_key(data.space, bare), metric)
        value = s["diff"]
    else:
        s = level_stats(data, key, None, metric)
        value = s["mean"] if s["n"] else None
    if value is None or value != value:
        return "no fully trained run of this configuration" + (
            " and its bare backbone" if kind == "gain" else ""
        )
    item.update(ours=value, n=s["n"], diff=value - item["paper"])
    return None
