"""Store operations a user runs on a whole study: list every trial's value, delete it."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from search.store import schema
from search.store.jsonable import as_float
from search.store.ranking import metric_source


def all_trial_values(conn: Connection, study_id: int, metric: str, mode: str) -> dict[int, float]:
    """Every trial's value of ``metric``, whatever its status: a test metric from its result,
    an epoch metric at its best epoch so far (pruned and running trials included)."""
    source, key = metric_source(metric)
    t = schema.trials
    ids = select(t.c.id).where(t.c.study_id == study_id)
    if source == "test":
        r = schema.results
        stmt = select(r.c.trial_id, r.c.metrics).where(r.c.trial_id.in_(ids))
        values = {tid: as_float((m or {}).get(key)) for tid, m in conn.execute(stmt)}
        return {tid: v for tid, v in values.items() if v is not None}
    e = schema.epochs
    if key in schema.EPOCH_COLUMNS:
        agg = func.max(e.c[key]) if mode == "max" else func.min(e.c[key])
        stmt = select(e.c.trial_id, agg).where(e.c.trial_id.in_(ids)).group_by(e.c.trial_id)
        return {tid: float(v) for tid, v in conn.execute(stmt) if v is not None}
    pick = max if mode == "max" else min
    best: dict[int, float] = {}
    for tid, metrics in conn.execute(
        select(e.c.trial_id, e.c.metrics).where(e.c.trial_id.in_(ids))
    ):
        value = as_float((metrics or {}).get(key))
        if value is not None:
            best[tid] = value if tid not in best else pick(best[tid], value)
    return best


def delete_study_rows(conn: Connection, study_id: int) -> dict[str, int]:
    """Delete a study's epochs, results, trials and the study row; rows deleted per table."""
    t = schema.trials
    ids = select(t.c.id).where(t.c.study_id == study_id).scalar_subquery()
    counts = {}
    for table in (schema.epochs, schema.results):
        counts[table.name] = conn.execute(delete(table).where(table.c.trial_id.in_(ids))).rowcount
    # retrains point at their parent in the same study: unlink before deleting
    conn.execute(t.update().where(t.c.study_id == study_id).values(parent_trial_id=None))
    counts[t.name] = conn.execute(delete(t).where(t.c.study_id == study_id)).rowcount
    s = schema.studies
    counts[s.name] = conn.execute(delete(s).where(s.c.id == study_id)).rowcount
    return counts
