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
from search.store.records import ResultRecord, StudyInfo, TrialRecord
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

    study: StudyInfo
    space: Space
    trials: pd.DataFrame


def point_key(space: Space, point: dict[str, Any]) -> str:
    """:meth:`Space.point_key` (trials and configurations are matched by it)."""
    return space.point_key(point)


def load_study(store: Store, name: str) -> StudyData:
    """The study ``name`` (UserError listing the known ones if absent), its space and trials."""
    study = store.require_study(name)
    space = load_space(study.space_path or "space.yaml", study.profile, text=study.space_yaml)
    rows = [_trial_row(space, t) for t in store.trials(study.id)]
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


def _trial_row(space: Space, t: TrialRecord) -> dict[str, Any]:
    config = t.config or {}
    split = (config.get("data") or {}).get("split") or {}
    tparams = config.get("params") or {}
    fold = split.get("fold") if split.get("kind") == "kfold" else None
    point = dict(t.params or {})
    row: dict[str, Any] = {
        "trial_id": t.trial_id,
        "optuna_number": t.optuna_number,
        "kind": t.kind,
        "status": t.status,
        "fidelity": t.fidelity,
        "epochs_done": t.epochs_done,
        "epochs_planned": tparams.get("epochs"),
        "seed": t.seed,
        "repeat": t.repeat,
        "fold": fold,
        "pair": f"seed={t.seed},fold={fold}",
        "point": point,
        "key": point_key(space, point),
        "arch": json.dumps({f: tparams.get(f) for f in ARCH_FIELDS}, sort_keys=True),
        "full": t.status == "completed"
        and t.fidelity == "full"
        and t.kind in STAT_KINDS
        and t.result is not None,
        "data": config.get("data"),
    }
    row.update(_result_columns(t.result))
    return row


def _result_columns(result: ResultRecord | None) -> dict[str, Any]:
    """Cost, confusion, noise and the test metrics (percent) of a trial's result."""
    if result is None:
        empty = ("params_count", "flops", "latency_ms", "size_mb", "confusion", "class_names")
        return {**dict.fromkeys(empty), "noise": None} | {
            m: math.nan for m in (*METRICS, *EXTRA_METRICS)
        }
    row: dict[str, Any] = {
        "params_count": result.params_count,
        "flops": result.flops,
        "latency_ms": result.latency_ms,
        "size_mb": result.profile.size_mb if result.profile else None,
        "confusion": result.confusion,
        "class_names": result.class_names,
        "noise": result.noise or None,
    }
    for m in (*METRICS, *EXTRA_METRICS):
        value = getattr(result, m, None)
        if value is None and result.metrics is not None:
            value = getattr(result.metrics, m, None)
        row[m] = _pct(value)
    return row


def epochs_frame(store: Store, trial_id: int) -> pd.DataFrame:
    """A trial's epochs, one row each, with the stored metrics as columns."""
    rows = []
    for e in store.epochs(trial_id):
        row = {"epoch": e.epoch, **e.metrics}
        row.update(e.model_dump(exclude={"metrics", "recorded_at", "trial_id"}))
        rows.append(row)
    return pd.DataFrame(rows)
