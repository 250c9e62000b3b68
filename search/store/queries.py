"""Read queries over the ``ls_*`` tables: study rows as dicts, trials and epochs as records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leukmodels.errors import UserError
from search.store import schema
from search.store.records import EpochRecord, TrialRecord
from search.store.rows import row_dict


def check_status(status: str, allowed: Iterable[str], what: str) -> str:
    """``status`` if it is one of ``allowed``, else a ValueError naming the valid ones."""
    allowed = tuple(allowed)
    if status not in allowed:
        raise ValueError(f"unknown {what} status {status!r}; expected one of {', '.join(allowed)}")
    return status


def study_names(conn: Connection) -> list[str]:
    """All study names, sorted."""
    t = schema.studies
    return list(conn.execute(select(t.c.name).order_by(t.c.name)).scalars())


def unknown_study(conn: Connection, name: str) -> UserError:
    """The error for a study name that is not in the store, listing the known ones."""
    names = study_names(conn)
    known = ", ".join(names) if names else "none yet"
    return UserError(f"no study named {name!r} in this database; known studies: {known}.")


def status_counts(conn: Connection, study_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per study, the number of trials in each status (every status present, 0 if none)."""
    t = schema.trials
    counts = {sid: dict.fromkeys(schema.TRIAL_STATUSES, 0) for sid in study_ids}
    if not study_ids:
        return counts
    stmt = (
        select(t.c.study_id, t.c.status, func.count())
        .where(t.c.study_id.in_(study_ids))
        .group_by(t.c.study_id, t.c.status)
    )
    for study_id, status, n in conn.execute(stmt):
        counts[study_id][status] = int(n)
    return counts


def study_rows(conn: Connection, name: str | None = None) -> list[dict[str, Any]]:
    """Study rows (all columns), optionally only the one named ``name``."""
    t = schema.studies
    stmt = select(t).order_by(t.c.id)
    if name is not None:
        stmt = stmt.where(t.c.name == name)
    return [row_dict(row) for row in conn.execute(stmt)]


def results_by_trial(conn: Connection, trial_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Result rows keyed by trial id (without their own ids)."""
    t = schema.results
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(trial_ids):
        for row in conn.execute(select(t).where(t.c.trial_id.in_(chunk))):
            item = row_dict(row, exclude=("id",))
            out[item.pop("trial_id")] = item
    return out


def trial_rows(
    conn: Connection, study_id: int, statuses: tuple[str, ...] | None = None
) -> list[TrialRecord]:
    """Trials of a study, oldest first, each with its ``result`` (or None)."""
    t = schema.trials
    stmt = select(t).where(t.c.study_id == study_id).order_by(t.c.id)
    if statuses is not None:
        stmt = stmt.where(t.c.status.in_(statuses))
    items = [_trial_dict(row) for row in conn.execute(stmt)]
    results = results_by_trial(conn, [item["trial_id"] for item in items])
    return [
        TrialRecord.model_validate({**item, "result": results.get(item["trial_id"])})
        for item in items
    ]


def trial_row(conn: Connection, trial_id: int) -> TrialRecord | None:
    """One trial with its ``result`` and ``epochs``, or None."""
    t = schema.trials
    row = conn.execute(select(t).where(t.c.id == trial_id)).first()
    if row is None:
        return None
    item = _trial_dict(row)
    item["result"] = results_by_trial(conn, [trial_id]).get(trial_id)
    record = TrialRecord.model_validate(item)
    record.epochs = epoch_rows(conn, trial_id)
    return record


def epoch_rows(conn: Connection, trial_id: int) -> list[EpochRecord]:
    """The epochs of one trial in epoch order."""
    t = schema.epochs
    stmt = select(t).where(t.c.trial_id == trial_id).order_by(t.c.epoch)
    return [EpochRecord.model_validate(row_dict(row)) for row in conn.execute(stmt)]


def _trial_dict(row: Any) -> dict[str, Any]:
    item = row_dict(row)
    return {"trial_id": item.pop("id"), **item}


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
