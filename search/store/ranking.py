"""Ranking completed trials by a test metric (from ``ls_results``) or a validation
metric (the trial's best epoch in ``ls_epochs``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from leukmodels.errors import UserError
from search.store import schema
from search.store.jsonable import as_float
from search.store.queries import chunks, results_by_trial, study_rows, unknown_study
from search.store.records import RankedTrial

_EPOCH_PREFIXES = ("val_", "train_")


def metric_source(metric: str) -> tuple[str, str]:
    """Where a metric lives: ``("test", key)`` in results or ``("epoch", key)`` in epochs.

    ``test_f1`` and ``f1`` are test metrics; ``val_*``, ``train_*``, ``lr`` and
    ``epoch_time_s`` are epoch metrics.
    """
    if metric.startswith("test_"):
        return "test", metric[len("test_") :]
    if metric in schema.EPOCH_COLUMNS or metric.startswith(_EPOCH_PREFIXES):
        return "epoch", metric
    return "test", metric


def check_mode(mode: str) -> str:
    """``mode`` if it is max or min, else a UserError."""
    if mode not in schema.MODES:
        raise UserError(f"unknown mode {mode!r}; expected one of {', '.join(schema.MODES)}.")
    return mode


def _completed_ids(study_id: int) -> Select[Any]:
    t = schema.trials
    return select(t.c.id).where(t.c.study_id == study_id, t.c.status == "completed")


def trial_values(conn: Connection, study_id: int, metric: str, mode: str) -> dict[int, float]:
    """Each completed trial's value of ``metric`` (trials without one are left out)."""
    source, key = metric_source(metric)
    completed = _completed_ids(study_id)
    if source == "test":
        r = schema.results
        if key in schema.RESULT_METRIC_COLUMNS:
            column = r.c[key]
            stmt = select(r.c.trial_id, column).where(
                r.c.trial_id.in_(completed), column.is_not(None)
            )
            return {tid: float(v) for tid, v in conn.execute(stmt)}
        stmt = select(r.c.trial_id, r.c.metrics).where(r.c.trial_id.in_(completed))
        values = {tid: as_float((m or {}).get(key)) for tid, m in conn.execute(stmt)}
        return {tid: v for tid, v in values.items() if v is not None}
    e = schema.epochs
    if key in schema.EPOCH_COLUMNS:
        column = e.c[key]
        agg = func.max(column) if mode == "max" else func.min(column)
        stmt = (
            select(e.c.trial_id, agg)
            .where(e.c.trial_id.in_(completed), column.is_not(None))
            .group_by(e.c.trial_id)
        )
        return {tid: float(v) for tid, v in conn.execute(stmt) if v is not None}
    pick = max if mode == "max" else min
    best: dict[int, float] = {}
    stmt = select(e.c.trial_id, e.c.metrics).where(e.c.trial_id.in_(completed))
    for tid, metrics in conn.execute(stmt):
        value = as_float((metrics or {}).get(key))
        if value is not None:
            best[tid] = value if tid not in best else pick(best[tid], value)
    return best


def epoch_value_expr(metric: str, mode: str, trial_id: Any) -> Any:
    """SQL for a trial's best epoch value of a column-backed epoch ``metric`` (else None).

    The value :func:`trial_values` ranks by; ``Store.record_epoch`` keeps it in
    ``ls_trials.value`` for the study's own metric.
    """
    source, key = metric_source(metric)
    if source != "epoch" or key not in schema.EPOCH_COLUMNS:
        return None
    e = schema.epochs
    agg = func.max(e.c[key]) if mode == "max" else func.min(e.c[key])
    return select(agg).where(e.c.trial_id == trial_id).scalar_subquery()


def epoch_value(conn: Connection, trial_id: int, metric: str, mode: str) -> float | None:
    """A trial's best epoch value of an epoch ``metric`` kept only in the JSON."""
    e = schema.epochs
    pick = max if mode == "max" else min
    found = [
        as_float((m or {}).get(metric))
        for m in conn.execute(select(e.c.metrics).where(e.c.trial_id == trial_id)).scalars()
    ]
    values = [v for v in found if v is not None]
    return pick(values) if values else None


def result_value(metric: str, result: dict[str, Any]) -> float | None:
    """A test ``metric``'s value in an ``ls_results`` row's values (None for epoch metrics)."""
    source, key = metric_source(metric)
    if source != "test":
        return None
    if key in schema.RESULT_METRIC_COLUMNS:
        return as_float(result.get(key))
    return as_float((result.get("metrics") or {}).get(key))


def stored_ranking(
    conn: Connection, study_id: int, mode: str, top: int | None
) -> list[tuple[int, float]]:
    """Completed trials by ``ls_trials.value`` (the study's own metric), best first, via
    the (study_id, status, value) index; ties go to the older trial."""
    t = schema.trials
    order = t.c.value.desc() if mode == "max" else t.c.value.asc()
    stmt = (
        select(t.c.id, t.c.value)
        .where(t.c.study_id == study_id, t.c.status == "completed", t.c.value.is_not(None))
        .order_by(order, t.c.id)
        .limit(top)
    )
    return [(int(tid), float(v)) for tid, v in conn.execute(stmt)]


def rank(values: dict[int, float], mode: str) -> list[tuple[int, float]]:
    """``(trial_id, value)`` best first; ties go to the older trial."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(values.items(), key=lambda item: (sign * item[1], item[0]))


def recorded_metric_names(conn: Connection, study_id: int) -> tuple[list[str], list[str]]:
    """The test and epoch metric names recorded for a study's completed trials."""
    completed = _completed_ids(study_id)
    test: set[str] = set()
    for metrics in conn.execute(
        select(schema.results.c.metrics).where(schema.results.c.trial_id.in_(completed))
    ).scalars():
        test.update(k for k, v in (metrics or {}).items() if as_float(v) is not None)
    epoch: set[str] = set()
    for metrics in conn.execute(
        select(schema.epochs.c.metrics).where(schema.epochs.c.trial_id.in_(completed))
    ).scalars():
        epoch.update(k for k, v in (metrics or {}).items() if as_float(v) is not None)
    return sorted(test), sorted(epoch)


def best_value(conn: Connection, study: dict[str, Any]) -> tuple[int, float] | None:
    """The best ``(trial_id, value)`` of a study by its own metric and mode, or None."""
    ranked = stored_ranking(conn, study["id"], study["mode"], 1)
    return ranked[0] if ranked else None


def best_trials(
    conn: Connection,
    study_name: str,
    metric: str | None = None,
    mode: str | None = None,
    top: int | None = 5,
) -> list[RankedTrial]:
    """The ``top`` completed trials of a study, best first (see ``Store.best``)."""
    found = study_rows(conn, study_name)
    if not found:
        raise unknown_study(conn, study_name)
    study = found[0]
    metric = metric or study["metric"]
    mode = check_mode(mode or study["mode"])
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, not {top}.")
    if (metric, mode) == (study["metric"], study["mode"]):
        ranked = stored_ranking(conn, study["id"], mode, top)
    else:
        ranked = rank(trial_values(conn, study["id"], metric, mode), mode)[:top]
    if not ranked:
        n_completed = conn.execute(
            select(func.count()).select_from(_completed_ids(study["id"]).subquery())
        ).scalar()
        if n_completed:
            test, epoch = recorded_metric_names(conn, study["id"])
            raise UserError(
                f"metric {metric!r} is not recorded for any completed trial of study "
                f"{study_name!r}; test metrics: {', '.join(test) or 'none'}; "
                f"epoch metrics: {', '.join(epoch) or 'none'}."
            )
        return []
    ids = [tid for tid, _ in ranked]
    t = schema.trials
    rows = {
        row.id: row
        for chunk in chunks(ids)  # a driver takes at most 65,535 parameters
        for row in conn.execute(
            select(t.c.id, t.c.tune_trial_id, t.c.kind, t.c.params).where(t.c.id.in_(chunk))
        )
    }
    results = results_by_trial(conn, ids)
    return [
        RankedTrial(
            trial_id=tid,
            tune_trial_id=rows[tid].tune_trial_id,
            kind=rows[tid].kind,
            params=rows[tid].params or {},
            metrics=(results.get(tid) or {}).get("metrics") or {},
            value=value,
            metric=metric,
            mode=mode,
        )
        for tid, value in ranked
    ]
