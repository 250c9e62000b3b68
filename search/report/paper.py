"""The paper-style table (one row per named configuration) and the paper's numbers beside it.

A reference row is compared only when every fact it was measured under
(:data:`~search.space.models.REFERENCE_FACTS`) matches the study's runs: dataset, protocol
(``holdout``; ``cv5``/``kfold`` for 5-fold), split grouping (patient / image), pretrained
weights or scratch, image size and, for class-averaged metrics, the averaging (ours:
macro). A fact the paper does not state matches nothing. What differs is listed beside
the row; a row whose protocol leaked (``leakage``) is marked; synthetic images are never
compared with a paper. ``<metric>_gain`` rows are the paper's improvement over the bare
backbone: we set our difference (configuration minus the same point with
``attention: none``) beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from leukmodels.config import DataSpec
from search.report.ablation import level_stats
from search.report.collect import EXTRA_METRICS, METRICS, SEG_METRICS, StudyData, point_key
from search.space import Space
from search.space.models import REFERENCE_FACTS, ReferenceFacts

AVERAGED = ("precision", "recall", "specificity", "f1", "npv")
"""Metrics averaged over classes (ours: unweighted macro means)."""


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


def grouping(data: StudyData, cell: pd.DataFrame, spec: DataSpec) -> str | None:
    """How the runs' split was grouped: what the runs recorded, else what the spec forces
    (None when ``auto`` left it to the data and no run recorded the outcome)."""
    for facts in cell.get("split", pd.Series(dtype=object)):
        grouped = facts.get("grouped_by_patient") if isinstance(facts, dict) else None
        if grouped is not None:
            return "patient" if grouped else "image"
    return {"none": "image", "patient": "patient"}.get(spec.split.group)


def our_facts(data: StudyData, point: dict[str, Any]) -> dict[str, Any]:
    """What this study's runs of ``point`` were measured under (the stored runs' data
    protocol where there are runs, else the space's)."""
    t = data.trials
    cell = t[t["cell"] & (t["key"] == point_key(data.space, point))]
    stored = next((d for d in cell["data"] if isinstance(d, dict)), None)
    config = data.space.trial_config(point)
    spec = DataSpec.model_validate(stored) if stored else config.data
    return {
        "dataset": run_dataset(data, point),
        "protocol": protocol_names(data, point),
        "grouping": grouping(data, cell, spec),
        "pretrained": config.params.pretrained is not None,
        "image_size": spec.image_size,
        "averaging": "macro",
    }


def _show(name: str, value: Any) -> str:
    if name == "pretrained":
        return "pretrained weights" if value else "from scratch"
    if name == "image_size":
        return f"{value} px"
    if name == "protocol" and isinstance(value, set):
        return sorted(value)[0]
    return str(value)


def _matches(name: str, paper: Any, ours: Any) -> bool:
    if name == "dataset":
        return paper in (ours, Path(str(ours)).name)
    if name == "protocol":
        return paper in ours
    return paper == ours


def differences(
    data: StudyData, facts: ReferenceFacts, point: dict[str, Any], metric: str
) -> list[str]:
    """What differs between a reference value's facts and this study's runs of ``point``
    (empty: comparable)."""
    ours = our_facts(data, point)
    if ours["dataset"] == "synthetic":
        return ["the study ran on synthetic images, which no paper value describes"]
    out = []
    for name in REFERENCE_FACTS:
        if name == "averaging" and metric not in AVERAGED:
            continue
        paper, mine = getattr(facts, name), ours[name]
        label = name.replace("_", " ")
        if paper is None:
            out.append(f"{label}: not stated by the paper, ours {_show(name, mine)}")
        elif mine is None:
            out.append(f"{label}: paper {_show(name, paper)}, ours not known")
        elif not _matches(name, paper, mine):
            out.append(f"{label}: paper {_show(name, paper)}, ours {_show(name, mine)}")
    return out


def bare_point(space: Space, point: dict[str, Any]) -> dict[str, Any] | None:
    """The same point without attention (the paper's "bare backbone"), if the space has one."""
    f = space.factors.get("attention")
    if f is None or "none" not in f.levels:
        return None
    return space.fill({**point, "attention": "none"})


REFERENCE_COLUMNS = [
    "config", "dataset", "protocol", "metric", "kind", "paper", "ours", "n", "diff",
    "comparable", "why_not", "measured_under", "leakage",
]  # fmt: skip


def facts_text(facts: ReferenceFacts) -> str:
    """The paper's facts beyond dataset and protocol, ``(inferred)`` where they are ours."""
    parts = []
    for name in REFERENCE_FACTS[2:]:
        value = getattr(facts, name)
        text = "not stated" if value is None else _show(name, value)
        tag = " (inferred)" if name in facts.inferred else ""
        parts.append(f"{name.replace('_', ' ')} {text}{tag}")
    return ", ".join(parts)


def _metric_kind(col: str) -> tuple[str, str] | None:
    metric, kind = (col[: -len("_gain")], "gain") if col.endswith("_gain") else (col, "value")
    if metric not in (*METRICS, *EXTRA_METRICS, *SEG_METRICS):
        return None
    return metric, kind


def reference_table(data: StudyData) -> pd.DataFrame:
    """Every reference value, in percent, beside ours, with its comparability: what differs
    (``why_not``), what the paper measured under and any leakage of its protocol."""
    ref = data.space.reference
    if ref is None:
        return pd.DataFrame(columns=REFERENCE_COLUMNS)
    scale = 100.0 if ref.scale == "fraction" else 1.0
    points = dict(configurations(data.space))
    rows = []
    for r in ref.rows:
        name, facts = r.get("config"), ref.row_facts(r)
        point = points.get(name)
        for col, value in r.items():
            mk = _metric_kind(col)
            if mk is None:
                continue
            metric, kind = mk
            item = {
                "config": name, "dataset": facts.dataset, "protocol": facts.protocol,
                "metric": metric, "kind": kind, "paper": float(value) * scale, "ours": None,
                "n": 0, "diff": None, "measured_under": facts_text(facts),
                "leakage": facts.leakage,
            }  # fmt: skip
            if point is None:
                why: str | None = "configuration not in the space"
            else:
                diff = differences(data, facts, point, metric)
                why = "; ".join(diff) if diff else _ours(data, point, metric, kind, item)
            item.update(comparable=why is None, why_not=why)
            rows.append(item)
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


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
