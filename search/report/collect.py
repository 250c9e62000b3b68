"""Store -> tidy pandas frames: one row per trial, metrics in percent.

A trial is *fully trained* when its status is ``completed`` and its fidelity ``full``: it
ran its whole epoch budget or stopped by its own early-stopping rule, and ASHA never
cut it. ``retrain`` runs are left out of the statistics (they repeat a stored trial).
Configurations are matched by their completed parameters (:func:`point_key`), never by
labels, so an explore trial that lands on an ablation point counts there too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from leukmodels.sites import ARCH_FIELDS
from search.space import Space, load_space
from search.store.schema import SEARCH_KINDS
from search.store.store import Store

METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "kappa", "auc")
"""Test metrics of the tables, in the papers' order (kappa and AUC as in their tables)."""
EXTRA_METRICS = ("mcc", "balanced_accuracy", "npv")
STAT_KINDS = SEARCH_KINDS  # retrain runs repeat a stored trial: never counted twice
"""Trial kinds whose fully trained runs enter the statistics (not ``retrain``)."""


@dataclass
class StudyData:
    """Everything a report reads from the store for one study."""

    study: dict[str, Any]
    space: Space
    trials: pd.DataFrame


def point_key(space: Space, point: dict[str, Any]) -> str:
    """:meth:`Space.point_key` (trials and configurations are matched by it)."""
    return space.point_key(point)


def load_study(store: Store, name: str) -> StudyData:
    """The study ``name`` (UserError listing the known ones if absent), its space and trials."""
    study = store.require_study(name)
    space = load_space(
        study.get("space_path") or "space.yaml", study.get("profile"), text=study["space_yaml"]
    )
    rows = [_trial_row(space, t) for t in store.trials(study["id"])]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    frame["full"] = frame["full"].astype(bool)  # a boolean mask even with no trials
    return StudyData(study=study, space=space, trials=frame)


_COLUMNS = [
    "trial_id",
    "optuna_number",
    "kind",
    "status",
    "fidelity",
    "epochs_done",
    "epochs_planned",
    "seed",
    "repeat",
    "fold",
    "pair",
    "point",
    "key",
    "arch",
    "full",
    *METRICS,
    *EXTRA_METRICS,
    "params_count",
    "flops",
    "latency_ms",
    "size_mb",
    "confusion",
    "class_names",
    "noise",
    "data",
]


def _pct(value: Any) -> float:
    """A fraction as percent points; NaN when missing."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return 100.0 * float(value)
    return math.nan


def _trial_row(space: Space, t: dict[str, Any]) -> dict[str, Any]:
    config = t.get("config") or {}
    split = (config.get("data") or {}).get("split") or {}
    tparams = config.get("params") or {}
    fold = split.get("fold") if split.get("kind") == "kfold" else None
    point = dict(t.get("params") or {})
    result = t.get("result") or {}
    metrics = result.get("metrics") or {}
    profile = result.get("profile") or {}
    row: dict[str, Any] = {
        "trial_id": t["trial_id"],
        "optuna_number": t.get("optuna_number"),
        "kind": t.get("kind"),
        "status": t.get("status"),
        "fidelity": t.get("fidelity"),
        "epochs_done": t.get("epochs_done"),
        "epochs_planned": tparams.get("epochs"),
        "seed": t.get("seed"),
        "repeat": t.get("repeat"),
        "fold": fold,
        "pair": f"seed={t.get('seed')},fold={fold}",
        "point": point,
        "key": point_key(space, point),
        "arch": json.dumps({f: tparams.get(f) for f in ARCH_FIELDS}, sort_keys=True),
        "full": t.get("status") == "completed"
        and t.get("fidelity") == "full"
        and t.get("kind") in STAT_KINDS
        and bool(result),
        "params_count": result.get("params_count"),
        "flops": result.get("flops"),
        "latency_ms": result.get("latency_ms"),
        "size_mb": profile.get("size_mb"),
        "confusion": result.get("confusion"),
        "class_names": metrics.get("class_names") or (result.get("extra") or {}).get("class_names"),
        "noise": result.get("noise") or None,
        "data": config.get("data"),
    }
    for m in (*METRICS, *EXTRA_METRICS):
        row[m] = _pct(result.get(m, metrics.get(m)))
    return row


def epochs_frame(store: Store, trial_id: int) -> pd.DataFrame:
    """A trial's epochs, one row each, with the stored metrics as columns."""
    rows = []
    for e in store.epochs(trial_id):
        row = {"epoch": e["epoch"], **(e.get("metrics") or {})}
        row.update({k: v for k, v in e.items() if k not in ("metrics", "recorded_at", "trial_id")})
        rows.append(row)
    return pd.DataFrame(rows)
