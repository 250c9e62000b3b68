"""Tables beside the ablation statistics: complexity per architecture, test-time noise."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from leukmodels.results import EvalMetrics
from search.report.collect import StudyData

NOISE_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "balanced_accuracy")
"""Paper 004's Tables 6-8: sigma rows against these columns (its "AUC" from hard labels is
our balanced accuracy, so both are shown)."""


def arch_label(arch: dict[str, Any], varying: list[str]) -> str:
    """The fields of an architecture that differ across the study, e.g. ``resnet18 scab gap``."""
    parts = []
    for name in varying:
        value = arch.get(name)
        if isinstance(value, list):
            value = "+".join(map(str, value))
        parts.append(f"{name}={value}")
    return " ".join(parts) or str(arch.get("backbone"))


def complexity_table(data: StudyData) -> pd.DataFrame:
    """Params, FLOPs, size and latency per distinct architecture.

    Architectures are the layer-changing parameters of each trial's configuration;
    params and FLOPs are the profile's (identical for every run of one architecture),
    latency the median over the runs that measured it (CPU, batch 1, noisy).
    """
    cols = ["architecture", "n", "params", "flops", "size_mb", "latency_ms", "latency_runs"]
    t = data.trials[data.trials["params_count"].notna()]
    if t.empty:
        return pd.DataFrame(columns=cols)
    archs = {key: json.loads(key) for key in t["arch"].unique()}
    varying = [
        f
        for f in next(iter(archs.values()))
        if len({json.dumps(a.get(f)) for a in archs.values()}) > 1
    ]
    rows = []
    for key, group in t.groupby("arch", sort=False):
        lat = group["latency_ms"].dropna()
        rows.append(
            {
                "architecture": arch_label(archs[key], varying),
                "n": len(group),
                "params": int(group["params_count"].median()),
                "flops": _int_or_none(group["flops"].median()),
                "size_mb": group["size_mb"].median(),
                "latency_ms": lat.median() if len(lat) else math.nan,
                "latency_runs": len(lat),
            }
        )
    return pd.DataFrame(rows, columns=cols).sort_values("params", kind="stable")


def _int_or_none(x: float) -> int | None:
    return None if x != x else int(x)


def noise_table(data: StudyData, keys: list[tuple[str, str | int]]) -> pd.DataFrame:
    """Test-time Gaussian noise: one row per (configuration, sigma) with the mean metric.

    ``keys`` are (label, point key) pairs, whose rows come from the point's cell (fully
    trained ablation / grid runs), or (label, trial id) pairs for one run; a
    configuration without noise results is skipped.
    """
    cols = ["config", "sigma", "n", *NOISE_METRICS]
    t = data.trials[data.trials["full"] & data.trials["noise"].notna()]
    rows = []
    for label, key in keys:
        sel = t[t["trial_id"] == key] if isinstance(key, int) else t[t["cell"] & (t["key"] == key)]
        if sel.empty:
            continue
        per_sigma: dict[float, list[EvalMetrics]] = {}
        for noise in sel["noise"]:
            for sigma, metrics in noise.items():
                per_sigma.setdefault(float(sigma), []).append(metrics)
        for sigma in sorted(per_sigma):
            items = per_sigma[sigma]
            row: dict[str, Any] = {"config": label, "sigma": sigma, "n": len(items)}
            for m in NOISE_METRICS:
                values = [getattr(v, m) for v in items]
                vals = [100.0 * x for x in values if isinstance(x, (int, float))]
                row[m] = sum(vals) / len(vals) if vals else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)
