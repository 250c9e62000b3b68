"""Store -> tidy pandas frames: one row per trial, metrics in percent.

A trial is *fully trained* when its status is ``completed`` and its fidelity ``full``: it
ran its whole epoch budget or stopped by its own early-stopping rule, and ASHA never
cut it. ``retrain`` runs are left out of the statistics (they repeat a stored trial).
Ablation and configuration cells (column ``cell``) hold only fully trained ``ablation`` /
``grid`` runs, matched by their completed parameters (:func:`point_key`): an exploration
trial that lands on an ablation point has its own seed and was kept only because ASHA let
it through, so it never enters a cell (it does enter the importance analysis). Column
``val`` is each completed run's value of the study's own (validation) metric at its best
epoch: the report ranks runs by it, never by a test metric. Each run's stored per-image
test predictions become its ``test_predictions``
(:class:`~search.report.image_stats.TestPredictions`, None for runs stored without them),
from which the ablation tables draw intervals over seeds and test images.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pydantic import ValidationError

from leukmodels.results import Predictions
from leukmodels.sites import ARCH_FIELDS
from search.report.image_stats import TestPredictions
from search.space import Space, load_space
from search.store.records import StudyInfo, TrialSummary
from search.store.rows import gc_paused
from search.store.schema import FULL_FIDELITY_KINDS, RESULT_METRIC_COLUMNS, SEARCH_KINDS
from search.store.store import Store

logger = logging.getLogger(__name__)

METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "kappa", "auc")
"""Test metrics of the tables, in the papers' order (kappa and AUC as in their tables)."""
EXTRA_METRICS = ("mcc", "balanced_accuracy", "npv")
BINARY_METRICS = {
    "sensitivity": "recall",
    "pos_specificity": "specificity",
    "ppv": "precision",
    "pos_npv": "npv",
}
"""Two-class tasks: the positive class's own metrics (percent), from the result's ``binary``."""
SEG_METRICS = {"dice": "dice_macro", "iou": "iou_macro", "dice_pooled": "dice_pooled",
               "iou_pooled": "iou_pooled"}  # fmt: skip
"""Nucleus segmentation columns (percent) of multi-task trials -> their name in the
stored :class:`~leukmodels.results.SegmentationMetrics`; NaN for other trials."""
PREDICTIONS = "test_predictions"
"""Column of each run's :class:`TestPredictions` (None when it stored none)."""
STAT_KINDS = SEARCH_KINDS  # retrain runs repeat a stored trial: never counted twice
"""Trial kinds whose fully trained runs enter the statistics (not ``retrain``)."""
CELL_KINDS = FULL_FIDELITY_KINDS
"""Trial kinds whose fully trained runs make up ablation and configuration cells."""
_JSON_METRICS = tuple(m for m in (*METRICS, *EXTRA_METRICS) if m not in RESULT_METRIC_COLUMNS)
"""Test metrics without a column of their own in ``ls_results`` (read from its JSON)."""


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
    with gc_paused():  # 100,000 rows of small objects: see gc_paused (one pause, so
        # one collection after it, not one per step)
        summaries = store.trial_summaries(
            study.id, ("epochs", *ARCH_FIELDS), _JSON_METRICS, predictions_for=CELL_KINDS
        )
        frame = _frame(space, summaries).infer_objects()
        del summaries
    for m in _PERCENT_COLUMNS:  # stored as fractions; one vectorised pass per column
        frame[m] = _percent(frame[m])
    frame["full"] = frame["full"].astype(bool)  # a boolean mask even with no trials
    frame["cell"] = frame["full"] & frame["kind"].isin(CELL_KINDS)
    values = validation_values(store, name)
    frame["val"] = frame["trial_id"].map(values).astype(float)
    return StudyData(study=study, space=space, trials=frame)


def validation_values(store: Store, name: str) -> dict[int, float]:
    """Each completed trial's value of the study's metric (best epoch for ``val_*``);
    empty when no trial recorded it."""
    return store.values(name)


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
    "cell",
    "val",
    *METRICS,
    *EXTRA_METRICS,
    *BINARY_METRICS,
    "positive",
    "absent",
    *SEG_METRICS,
    "params_count",
    "flops",
    "latency_ms",
    "size_mb",
    "confusion",
    "class_names",
    "noise",
    "data",
    "split",
    PREDICTIONS,
]


_PERCENT_COLUMNS = (*METRICS, *EXTRA_METRICS, *BINARY_METRICS, *SEG_METRICS)
"""Columns the rows hold as stored fractions and the frame in percent points."""


def _percent(column: pd.Series) -> pd.Series:
    """A column of fractions in percent points: finite numbers (not booleans) times 100,
    anything else (None, NaN, infinities, text, booleans) NaN."""
    if column.dtype == object:
        numeric = column.map(_is_number, na_action="ignore").fillna(False).astype(bool)
        column = column.where(numeric)
    values = pd.to_numeric(column, errors="coerce").astype(float)
    if column.dtype == bool:
        values[:] = math.nan
    return (100.0 * values).where(np.isfinite(values))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _frame(space: Space, summaries: list[TrialSummary]) -> pd.DataFrame:
    """The trials as a frame, built column by column (at 100,000 trials a dict per row
    cost seconds more: bench/store_scale.py); metrics still fractions."""
    columns = {**_trial_columns(space, summaries), **_result_columns(summaries)}
    columns["full"] = full = [
        t.status == "completed" and t.fidelity == "full" and t.kind in STAT_KINDS and t.has_result
        for t in summaries
    ]
    # only a cell's runs give per-image intervals: decoding every trial's would cost
    # seconds at 100,000 trials (bench/store_scale.py)
    columns[PREDICTIONS] = [
        run_predictions(t.trial_id, t.predictions, t.data) if f and t.kind in CELL_KINDS else None
        for t, f in zip(summaries, full, strict=True)
    ]
    columns["cell"] = columns["val"] = [None] * len(summaries)  # set by load_study
    return pd.DataFrame({c: pd.Series(columns[c], dtype=object) for c in _COLUMNS})


def _trial_columns(space: Space, summaries: list[TrialSummary]) -> dict[str, list[Any]]:
    """The trial's own columns: ids, status, seed and fold, point and architecture."""
    out = {c: [getattr(t, c) for t in summaries] for c in _TRIAL_ATTRS}
    splits = [(t.data or {}).get("split") or {} for t in summaries]
    out["fold"] = [s.get("fold") if s.get("kind") == "kfold" else None for s in splits]
    out["pair"] = [
        f"seed={seed},fold={fold}" for seed, fold in zip(out["seed"], out["fold"], strict=True)
    ]
    out["epochs_planned"] = [t.trial_params.get("epochs") for t in summaries]
    out["point"] = [dict(t.params or {}) for t in summaries]
    out["key"] = [point_key(space, p) for p in out["point"]]
    out["arch"] = _archs([t.trial_params for t in summaries])
    return out


_TRIAL_ATTRS = ("trial_id", "optuna_number", "kind", "status", "fidelity", "epochs_done",
                "seed", "repeat", "data", "split")  # fmt: skip


def _archs(params: list[dict[str, Any]]) -> list[str]:
    """:func:`_arch` of each, once per distinct dict (trials with the same picked params
    share one: ``Store.trial_summaries``)."""
    done: dict[int, str] = {}  # by id: every dict stays alive in ``params`` meanwhile
    out = []
    for p in params:
        if id(p) not in done:
            done[id(p)] = _arch(p)
        out.append(done[id(p)])
    return out


def _arch(trial_params: dict[str, Any]) -> str:
    """The layer-changing fields as sorted JSON (the tables group runs by it)."""
    fields = {f: trial_params.get(f) for f in ARCH_FIELDS}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


def run_predictions(trial_id: int, raw: Any, data: Any) -> TestPredictions | None:
    """A run's stored per-image test predictions; None when it has none (or they are broken).

    Their test set is the split's hash with the dataset and split spec, so runs share
    one only when they saw the same images in the same order.
    """
    if not raw:
        return None
    try:
        p = Predictions.model_validate(raw)
        cfg = data if isinstance(data, dict) else {}
        where = json.dumps([cfg.get("dataset"), cfg.get("split"), p.test_set], sort_keys=True)
        return TestPredictions(np.asarray(p.y_true), np.asarray(p.y_pred), test_set=where)
    except (ValidationError, ValueError) as e:
        logger.warning("trial %s: stored test predictions unreadable (%s); left out", trial_id, e)
        return None


def _result_columns(summaries: list[TrialSummary]) -> dict[str, list[Any]]:
    """Cost, confusion, noise and the test metrics (fractions) of each trial's result;
    None (NaN once in percent) for a trial without one, whose result columns are NULL."""
    out: dict[str, list[Any]] = {
        c: [getattr(t, c) for t in summaries]
        for c in ("params_count", "flops", "latency_ms", "size_mb", "confusion", "class_names")
    }
    out["noise"] = [t.noise or None for t in summaries]
    for m in (*METRICS, *EXTRA_METRICS):
        out[m] = [t.metrics.get(m) for t in summaries]
    binary = [t.binary or {} for t in summaries]  # as stored: a BinaryMetrics as JSON
    for m, field in BINARY_METRICS.items():
        out[m] = [b.get(field) for b in binary]
    out["positive"] = [b.get("positive") for b in binary]
    out["absent"] = [absent_classes(t.confusion, t.class_names) for t in summaries]
    seg = [t.segmentation or {} for t in summaries]
    out.update({m: [s.get(stored) for s in seg] for m, stored in SEG_METRICS.items()})
    return out


def absent_classes(confusion: Any, names: list[str] | None) -> list[str]:
    """Classes with no test image (a zero row of the confusion matrix): their recall is
    undefined and the macro averages count it as 0."""
    if not isinstance(confusion, list) or not confusion:
        return []
    names = names or [str(i) for i in range(len(confusion))]
    return [n for n, row in zip(names, confusion, strict=False) if sum(row) == 0]


def epochs_frame(store: Store, trial_id: int) -> pd.DataFrame:
    """A trial's epochs, one row each, with the stored metrics as columns."""
    rows = []
    for e in store.epochs(trial_id):
        row = {"epoch": e.epoch, **e.metrics}
        row.update(e.model_dump(exclude={"metrics", "recorded_at", "trial_id"}))
        rows.append(row)
    return pd.DataFrame(rows)
