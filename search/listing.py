"""One stored trial as the commands and the live page list it (``trials --json``, ``serve``)."""

from __future__ import annotations

from typing import Any

from search.store.records import TrialRecord


def trial_row(t: TrialRecord, metric: str, value: float | None) -> dict[str, Any]:
    """trial_id, kind, status, params, the study's metric and value, test metrics,
    epochs, duration, node, seed, times and error of one trial."""
    return {
        "trial_id": t.trial_id,
        "kind": t.kind,
        "status": t.status,
        "params": t.params or {},
        "metric": metric,
        "value": value,
        "test_metrics": _test(t),
        "epochs_done": t.epochs_done,
        "duration_s": t.duration_s,
        "node": t.node,
        "seed": t.seed,
        "repeat": t.repeat,
        "optuna_number": t.optuna_number,
        "parent_trial_id": t.parent_trial_id,
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "error": t.error,
    }


def _test(t: TrialRecord) -> dict[str, float] | None:
    if t.result is None or t.result.metrics is None:
        return None
    m = t.result.metrics
    return {k: getattr(m, k) for k in ("accuracy", "f1", "kappa", "auc") if hasattr(m, k)}


def last_error_line(error: str) -> str:
    """The last non-empty line of a traceback (at most 300 characters)."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:300]
