"""Records the tests use without training: a TrialResult around given test metrics, a
stored study as the store returns it.

Import with ``from factories import trial_result`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leukmodels.config import DataSpec, TrialParams
from leukmodels.results import (
    DataReport,
    EpochRow,
    EvalMetrics,
    Profile,
    SplitInfo,
    TestMetrics,
    Timings,
    TrialResult,
)
from search.store.records import StudyInfo


def study_info(**fields: Any) -> StudyInfo:
    """A stored study (``Store.study``) with no trials; ``fields`` override the defaults."""
    values: dict[str, Any] = {
        "id": 1, "name": "planted", "space_yaml": "study: planted\n", "space_hash": "h",
        "metric": "val_f1", "mode": "max", "status": "completed",
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
        "counts": {}, "n_trials": 0,
    }  # fmt: skip
    return StudyInfo.model_validate({**values, **fields})


PROFILE = {"params": 11_177_538, "flops": 296_000_000, "macs": 148_000_000, "size_mb": 42.7,
           "latency_ms": 30.0}  # fmt: skip
TIMINGS = {"data_prepare_s": 0.5, "data_decode_s": 0.4, "train_s": 10.0, "data_wait_s": 0.1,
           "compute_s": 9.0, "test_s": 0.5, "total_s": 11.0}  # fmt: skip


def trial_result(
    test: Mapping[str, Any],
    *,
    noise: Mapping[str, Mapping[str, Any]] | None = None,
    profile: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    epochs: int = 3,
    best_epoch: int | None = None,
    seed: int = 0,
    split_hash: str = "s1",
    checkpoint_path: str | None = None,
) -> TrialResult:
    """A result as ``run_trial`` returns it, with ``test`` (a classification_metrics dict)."""
    names = list(test["class_names"])
    rows = [
        EpochRow(epoch=e, lr=0.01, train_loss=1.0 / e, train_accuracy=0.5, val_f1=0.5 + e / 100)
        for e in range(1, epochs + 1)
    ]
    best = best_epoch or (epochs or None)
    return TrialResult(
        params=TrialParams(epochs=max(epochs, 1), seed=seed),
        data=DataSpec(),
        class_names=names,
        epochs=rows,
        best_epoch=best,
        best_value=rows[best - 1].val_f1 if best else None,
        monitor="val_f1",
        test=TestMetrics.model_validate(test),
        noise={k: EvalMetrics.model_validate(v) for k, v in (noise or {}).items()},
        profile=Profile.model_validate(profile or PROFILE),
        split=SplitInfo(hash=split_hash),
        data_report=DataReport(
            cache_hit=True,
            cache_path=None,
            bad_images=[],
            n_bad_images=0,
            class_counts=dict.fromkeys(names, 10),
            n_no_nucleus=0,
        ),
        timings=Timings.model_validate(timings or TIMINGS),
        seed=seed,
        device="cpu",
        threads=1,
        checkpoint_path=checkpoint_path,
    )
