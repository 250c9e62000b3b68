"""Read queries over the ``ls_*`` tables: study rows as dicts, trials and epochs as records."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Double, Select, Text, and_, case, cast, func, null, select, true
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from leukmodels.errors import UserError
from leukmodels.results import EvalMetrics
from search.store import schema
from search.store.records import EpochRecord, TrialRecord, TrialSummary
from search.store.rows import gc_paused, row_dict


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
    for chunk in chunks(trial_ids):
        for row in conn.execute(select(t).where(t.c.trial_id.in_(chunk))):
            item = row_dict(row, exclude=("id",))
            out[item.pop("trial_id")] = item
    return out


def trial_rows(
    conn: Connection, study_id: int, statuses: tuple[str, ...] | None = None
) -> list[TrialRecord]:
    """Trials of a study, oldest first, each with its ``result`` (or None)."""
    t = schema.trials
    stmt = select(*_record_columns()).where(t.c.study_id == study_id).order_by(t.c.id)
    if statuses is not None:
        stmt = stmt.where(t.c.status.in_(statuses))
    items = [_trial_dict(row) for row in conn.execute(stmt)]
    results = results_by_trial(conn, [item["trial_id"] for item in items])
    return [
        TrialRecord.model_validate({**item, "result": results.get(item["trial_id"])})
        for item in items
    ]


_SUMMARY_BASE = ("optuna_number", "kind", "status", "fidelity", "epochs_done", "seed", "repeat")
_SUMMARY_JSON = ("params", "confusion", "noise", "params_count", "flops", "latency_ms",
                 "size_mb", "class_names", "binary", "predictions", "split", "segmentation")  # fmt: skip
_SUMMARY_FIELDS = (*_SUMMARY_BASE, *_SUMMARY_JSON)


def trial_summaries(
    conn: Connection,
    study_id: int,
    param_fields: Sequence[str],
    metric_keys: Sequence[str] = (),
    predictions_for: Sequence[str] | None = None,
) -> list[TrialSummary]:
    """A study's trials, oldest first, as a report reads them: one query, JSON fields
    picked out by the database (``param_fields`` of the config's params, ``metric_keys``
    of the result's metrics JSON besides its metric columns).

    Per-image predictions are read only for completed full-fidelity trials of the kinds
    ``predictions_for`` (None: every trial); the others get None without the database
    sending them. The config itself is never read: its params come from
    ``ls_trials.config_params`` (PostgreSQL sends only ``param_fields``, as JSON text
    parsed once per distinct text) and its data once per distinct ``data_hash`` (a
    study's trials share a few). Rows become plain dataclasses; trials with the same data,
    picked params, class names or split share one object of it (read it, do not change
    it). 100,000
    trials read in seconds (bench/store_scale.py).
    """
    data_by_hash = config_data(conn, study_id)
    stmt = _summary_query(study_id, metric_keys, predictions_for, param_fields, conn.dialect.name)
    # trials share few distinct texts: parsed once each, the dict shared (read only)
    params_of = functools.lru_cache(maxsize=4096)(
        lambda text: _params_of(_loads(text), param_fields)
    )
    parse_shared = functools.lru_cache(maxsize=4096)(_loads)  # class names and split
    metric_names = (*schema.RESULT_METRIC_COLUMNS, *metric_keys)
    with gc_paused():
        return [
            _summary(row, metric_names, params_of, parse_shared, data_by_hash)
            for row in streamed_rows(conn, stmt)
        ]


def config_data(conn: Connection, study_id: int) -> dict[str, Any]:
    """The config ``data`` blocks of a study's trials by ``data_hash``: one config read per
    distinct hash."""
    t = schema.trials
    first = (
        select(t.c.data_hash, func.min(t.c.id).label("id"))
        .where(t.c.study_id == study_id, t.c.data_hash.is_not(None))
        .group_by(t.c.data_hash)
        .subquery()
    )
    stmt = select(first.c.data_hash, t.c.config["data"]).join(t, t.c.id == first.c.id)
    return {digest: data for digest, data in conn.execute(stmt)}


def streamed_rows(conn: Connection, stmt: Select, size: int = 2000) -> Iterator[Sequence[Any]]:
    """The rows of ``stmt``; on PostgreSQL with psycopg streamed in chunks of ``size`` as
    the server sends them, so the client works on the first rows while the server still
    produces the rest (bench/README.md, store_scale). Elsewhere SQLAlchemy's rows.

    Left early, psycopg cancels the query, which aborts the connection's transaction:
    it is rolled back then, so use a connection that holds nothing else.
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        yield from conn.execute(stmt)
        return
    # our own statement, values rendered by SQLAlchemy (ints and fixed names)
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = conn.connection.dbapi_connection
    done = False
    try:
        with dbapi.cursor() as cursor:
            yield from cursor.stream(sql, size=size)
        done = True
    finally:
        if not done:
            dbapi.rollback()


def _summary(
    row: Any,
    metric_names: Sequence[str],
    params_of: Any,
    parse_shared: Any,
    data_by_hash: dict[str, Any],
) -> TrialSummary:
    """One row of :func:`_summary_query` as a :class:`TrialSummary`."""
    n = len(_SUMMARY_FIELDS)
    fields = dict(zip(_SUMMARY_FIELDS, row[1 : 1 + n], strict=True))
    data_hash, trial_params, result_id, *metrics = row[1 + n :]
    fields["class_names"] = parse_shared(fields["class_names"])
    fields["split"] = parse_shared(fields["split"])
    if fields["noise"]:
        fields["noise"] = {k: EvalMetrics.model_validate(v) for k, v in fields["noise"].items()}
    return TrialSummary(
        trial_id=row[0],
        **fields,
        data=data_by_hash.get(data_hash),
        trial_params=params_of(trial_params),
        has_result=result_id is not None,
        metrics=dict(zip(metric_names, metrics, strict=True)),
    )


def _summary_query(
    study_id: int,
    metric_keys: Sequence[str],
    predictions_for: Sequence[str] | None,
    param_fields: Sequence[str],
    dialect: str,
) -> Select:
    """:func:`trial_summaries`' query: columns in the order it unpacks them."""
    t, r = schema.trials, schema.results
    predictions = r.c.extra["predictions"]
    if predictions_for is not None:
        wanted = and_(t.c.status == "completed", t.c.fidelity == "full",
                      t.c.kind.in_(list(predictions_for)))  # fmt: skip
        predictions = case((wanted, predictions), else_=null())
    pg = dialect == "postgresql"
    source: Any = t.outerjoin(r, r.c.trial_id == t.c.id)
    metric_types = {"class_names": JSONB, "binary": JSONB, **dict.fromkeys(metric_keys, Double)}
    source, metrics = _json_fields(source, r.c.metrics, metric_types, pg)
    source, extra = _json_fields(source, r.c.extra, dict.fromkeys(_EXTRA_FIELDS, JSONB), pg)
    # usually the same for every trial: sent as JSON text, parsed once per distinct text
    names = cast(func.coalesce(metrics["class_names"], extra["class_names"]), Text)
    json_cols = [t.c.params, r.c.confusion, r.c.noise, r.c.params_count, r.c.flops,
                 r.c.latency_ms, r.c.profile["size_mb"].as_float(), names,
                 metrics["binary"], predictions, cast(extra["split"], Text),
                 extra["segmentation"]]  # fmt: skip
    if pg and param_fields:  # only the asked fields, as one JSON array text
        source, picked = _json_fields(source, t.c.config_params,
                                      dict.fromkeys(param_fields, JSONB), pg)  # fmt: skip
        params = cast(_json_array([picked[f] for f in param_fields]), Text)
    else:
        params = cast(t.c.config_params, Text)
    cols = [t.c.id, *(t.c[c] for c in _SUMMARY_BASE), *json_cols,
            t.c.data_hash, params, r.c.trial_id,
            *(r.c[c] for c in schema.RESULT_METRIC_COLUMNS),
            *(metrics[k] for k in metric_keys)]  # fmt: skip
    return select(*cols).select_from(source).where(t.c.study_id == study_id).order_by(t.c.id)


_EXTRA_FIELDS = ("class_names", "split", "segmentation")
"""What :func:`_summary_query` reads of a result's ``extra`` besides its predictions."""


def _json_fields(
    source: Any, column: Any, types: dict[str, Any], postgres: bool
) -> tuple[Any, dict[str, Any]]:
    """Expressions for the ``types`` fields of JSON ``column`` (JSONB: as JSON, Double: as
    numbers) and the FROM clause to select them from.

    PostgreSQL: the columns of one ``jsonb_to_record`` outer-joined to ``source``, which
    reads (fetches, decompresses) the value once, where each ``->`` read it again
    (bench/README.md, store_scale). Elsewhere: one JSON path each, ``source`` unchanged.
    """
    if not postgres or not types:
        return source, {
            f: column[f].as_float() if kind is Double else column[f] for f, kind in types.items()
        }
    record = (
        func.jsonb_to_record(column)
        .table_valued(*(sql_column(f, kind) for f, kind in types.items()))
        .render_derived(with_types=True)
    )
    return source.outerjoin(record, true()), {f: record.c[f] for f in types}


def _json_array(values: list[Any]) -> Any:
    """PostgreSQL: the JSONB array of ``values``, built in chunks joined by ``||`` (a
    function takes at most 100 arguments)."""
    parts = [func.jsonb_build_array(*values[i : i + 90]) for i in range(0, len(values), 90)]
    out = parts[0]
    for part in parts[1:]:
        out = out.op("||")(part)
    return out


def _params_of(parsed: Any, fields: Sequence[str]) -> dict[str, Any]:
    """``fields`` of the parsed config params: a list in ``fields``' order (PostgreSQL), the
    whole params dict (SQLite) or None (no params)."""
    if isinstance(parsed, list):
        return dict(zip(fields, parsed, strict=True))
    parsed = parsed if isinstance(parsed, dict) else {}
    return {f: parsed.get(f) for f in fields}


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def trial_row(conn: Connection, trial_id: int) -> TrialRecord | None:
    """One trial with its ``result`` and ``epochs``, or None."""
    t = schema.trials
    row = conn.execute(select(*_record_columns()).where(t.c.id == trial_id)).first()
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


def _record_columns() -> list[Any]:
    """The ``ls_trials`` columns a :class:`TrialRecord` reads (not the config's copies)."""
    return [c for c in schema.trials.columns if c.name not in schema.CONFIG_COLUMNS]


def _trial_dict(row: Any) -> dict[str, Any]:
    item = row_dict(row)
    return {"trial_id": item.pop("id"), **item}


def chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    """``ids`` in lists of ``size`` (for ``IN (...)`` queries)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
