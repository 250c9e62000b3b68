"""The results store: studies, trials, epochs and test results in SQLite or PostgreSQL.

Every write is idempotent (delivering the same report twice never makes two rows), so a
driver-side Tune callback can write each epoch and trial end as it comes. Writes take and
reads return the records of :mod:`search.store.records` (timestamps as ISO strings in UTC);
a trial's result is the training loop's :class:`~leukmodels.results.TrialResult`, stored
as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from leukmodels.errors import UserError
from leukmodels.results import EpochRow, TrialResult
from search.store import admin, credentials, queries, ranking, schema
from search.store.engine import (
    DEFAULT_CONNECT_TIMEOUT_S,
    begin_write,
    check_connection,
    create_store_engine,
    describe_db_error,
)
from search.store.jsonable import as_float, to_jsonable
from search.store.migrations import migrate, schema_version
from search.store.records import (
    EpochRecord,
    RankedTrial,
    StudyInfo,
    StudyRecord,
    TrialRecord,
    TrialSummary,
    TrialUpdate,
)
from search.store.rows import as_utc, utcnow
from search.store.url import mask_url, optuna_url, resolve_url

_NOT_EXTRA = {"test", "noise", "profile", "timings", "checkpoint_path", "epochs", "params", "data"}
"""TrialResult fields with columns of their own (or in ls_epochs / ls_trials.config)."""


class Store:
    """One database of leuksearch results; open it with :meth:`Store.open`."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._metric_of: dict[int, tuple[str, str]] = {}

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str | None = None, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
    ) -> Store:
        """Connect (``url``, else ``$LEUKSEARCH_DB``, else ``./leuksearch.db``) and migrate.

        An unreachable server, bad credentials or an unusable file is a UserError that
        names the URL with its password masked.
        """
        resolved = resolve_url(url)
        engine = create_store_engine(resolved, connect_timeout=connect_timeout)
        try:
            check_connection(engine)
            try:
                migrate(engine)
            except OperationalError as exc:
                raise UserError(
                    f"cannot prepare the leuksearch tables in {mask_url(resolved)}: "
                    f"{describe_db_error(resolved, exc)}."
                ) from None
        except BaseException:
            engine.dispose()
            raise
        credentials.register(resolved)  # pickled helpers find the password here, not in files
        return cls(engine, resolved)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def masked_url(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return mask_url(self.url)

    @property
    def optuna_url(self) -> str:
        """The URL for ``optuna.storages.RDBStorage`` on this same database."""
        return optuna_url(self.url)

    def schema_version(self) -> int:
        """The schema version of our tables."""
        return schema_version(self.engine)

    def _insert(self, conn: Connection, table: Any) -> Any:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # -- studies -----------------------------------------------------------------------

    def ensure_study(self, study: StudyRecord) -> int:
        """The id of study ``study.name``, created if new; a different space is a UserError.

        An existing study keeps its columns, except a missing ``storage_path``, which is set.
        """
        ranking.check_mode(study.mode)
        t = schema.studies
        now = utcnow()
        values = {
            **study.model_dump(),
            "config": to_jsonable(study.config) if study.config is not None else None,
            "status": "running",
            "created_at": now,
            "updated_at": now,
        }
        with begin_write(self.engine) as conn:
            stmt = (
                self._insert(conn, t)
                .values(values)
                .on_conflict_do_nothing(index_elements=[t.c.name])
            )
            conn.execute(stmt)
            row = conn.execute(
                select(t.c.id, t.c.space_hash, t.c.space_path, t.c.storage_path).where(
                    t.c.name == study.name
                )
            ).one()
            if row.space_hash != study.space_hash:
                where = f" (from {row.space_path})" if row.space_path else ""
                raise UserError(
                    f"study {study.name!r} already exists in {self.masked_url} with a different "
                    f"search space{where}; pick another --study or use the same file."
                )
            if study.storage_path is not None and row.storage_path is None:
                conn.execute(
                    t.update()
                    .where(t.c.id == row.id)
                    .values(storage_path=study.storage_path, updated_at=now)
                )
            return int(row.id)

    def _update_study(self, study_id: int, **values: Any) -> None:
        t = schema.studies
        with begin_write(self.engine) as conn:
            done = conn.execute(
                t.update().where(t.c.id == study_id).values(updated_at=utcnow(), **values)
            )
            if done.rowcount == 0:
                raise LookupError(f"no study with id {study_id}")

    def set_study_status(self, study_id: int, status: str) -> None:
        """Mark a study running, completed, interrupted or failed."""
        queries.check_status(status, schema.STUDY_STATUSES, "study")
        self._update_study(study_id, status=status)

    def set_storage_path(self, study_id: int, path: str) -> None:
        """Record where the study's Ray experiment state now lives (``resume --storage-path``)."""
        self._update_study(study_id, storage_path=path)

    # -- trials ------------------------------------------------------------------------

    def upsert_trial(
        self, study_id: int, tune_trial_id: str, update: TrialUpdate | None = None
    ) -> int:
        """Insert the trial or update the same row; returns its id (the user's trial_id).

        Fields of ``update`` left None leave stored values alone. Moving a finished trial
        back to pending or running (Tune restarting it) clears its end time and error.
        """
        update = update or TrialUpdate()
        _check_trial_update(update)
        given = to_jsonable(update.model_dump(exclude_none=True))
        if "config" in given:
            given.update(config_values(given["config"]))
        t = schema.trials
        key = (t.c.study_id == study_id) & (t.c.tune_trial_id == str(tune_trial_id))
        now = utcnow()
        with begin_write(self.engine) as conn:
            row = conn.execute(select(t).where(key).with_for_update()).first()
            if row is None:
                new_id = self._insert_trial(
                    conn, study_id, tune_trial_id, given, now, update.parent_trial_id
                )
                if new_id is not None:
                    return new_id
                row = conn.execute(select(t).where(key).with_for_update()).one()
            changes = _trial_changes(row, given, update.status, now)
            if changes:
                conn.execute(t.update().where(t.c.id == row.id).values(changes))
            return int(row.id)

    def _insert_trial(
        self,
        conn: Connection,
        study_id: int,
        tune_trial_id: str,
        given: dict[str, Any],
        now: datetime,
        parent_trial_id: int | None,
    ) -> int | None:
        """Insert a new trial row (defaults overridden by `given`); None when another writer
        inserted the same (study, Tune trial) first."""
        t = schema.trials
        new = {
            "study_id": study_id,
            "tune_trial_id": str(tune_trial_id),
            "params": {},
            "kind": "explore",
            "status": "running",
            "repeat": 0,
            "epochs_done": 0,
            **given,
        }
        if new["status"] == "running":
            new["started_at"] = now
        stmt = (
            self._insert(conn, t)
            .values(new)
            .on_conflict_do_nothing(index_elements=[t.c.study_id, t.c.tune_trial_id])
            .returning(t.c.id)
        )
        try:
            new_id = conn.execute(stmt).scalar()
        except IntegrityError as exc:
            raise LookupError(
                f"cannot add trial {tune_trial_id!r}: no study {study_id} "
                f"or parent trial {parent_trial_id}"
            ) from exc
        return None if new_id is None else int(new_id)

    def record_epoch(self, trial_id: int, row: EpochRow) -> None:
        """Store one epoch; the same (trial, epoch) again updates the row
        (``recorded_at`` keeps the first delivery's time)."""
        plain = to_jsonable(row.metrics())
        values: dict[str, Any] = {
            "trial_id": trial_id,
            "epoch": row.epoch,
            "metrics": plain,
            "recorded_at": utcnow(),
        }
        values.update({name: as_float(plain.get(name)) for name in schema.EPOCH_COLUMNS})
        e, t = schema.epochs, schema.trials
        with begin_write(self.engine) as conn:
            stmt = self._insert(conn, e).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[e.c.trial_id, e.c.epoch],
                set_={name: stmt.excluded[name] for name in ("metrics", *schema.EPOCH_COLUMNS)},
            )
            try:
                conn.execute(stmt)
            except IntegrityError as exc:
                raise LookupError(f"no trial with id {trial_id}") from exc
            count = select(func.count()).where(e.c.trial_id == trial_id).scalar_subquery()
            changes: dict[str, Any] = {"epochs_done": count}
            metric, mode = self._ranked_by(conn, trial_id)
            if ranking.metric_source(metric)[0] == "epoch":
                value = ranking.epoch_value_expr(metric, mode, trial_id)
                if value is None:
                    value = ranking.epoch_value(conn, trial_id, metric, mode)
                changes["value"] = value
            conn.execute(t.update().where(t.c.id == trial_id).values(changes))

    def _ranked_by(self, conn: Connection, trial_id: int) -> tuple[str, str]:
        """The metric and mode of a trial's study (what ``ls_trials.value`` holds); cached."""
        found = self._metric_of.get(trial_id)
        if found is None:
            s, t = schema.studies, schema.trials
            row = conn.execute(
                select(s.c.metric, s.c.mode)
                .join_from(t, s, t.c.study_id == s.c.id)
                .where(t.c.id == trial_id)
            ).one()
            found = self._metric_of[trial_id] = (row.metric, row.mode)
        return found

    def finish_trial(
        self,
        trial_id: int,
        status: str,
        *,
        error: str | None = None,
        epochs_done: int | None = None,
        fidelity: str | None = None,
    ) -> None:
        """End a trial without a test result (pruned, failed, terminated; see
        :meth:`record_result` for a completed one). Repeating the same call changes
        nothing. A failed trial keeps an earlier error when none is given; other statuses
        clear it unless one is given."""
        self._finish(trial_id, status, error=error, epochs_done=epochs_done, fidelity=fidelity)

    def record_result(self, trial_id: int, result: TrialResult) -> None:
        """Complete a fully trained trial with its result, stored as it is.

        Epochs done, split hash and duration come from the result itself.
        """
        self._finish(
            trial_id,
            "completed",
            result=result_values(result),
            epochs_done=result.epochs_done,
            fidelity="full",
            split_hash=result.split.hash,
            duration_s=result.timings.total_s,
        )

    def _finish(
        self,
        trial_id: int,
        status: str,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        epochs_done: int | None = None,
        fidelity: str | None = None,
        duration_s: float | None = None,
        split_hash: str | None = None,
    ) -> None:
        queries.check_status(status, schema.TRIAL_STATUSES, "trial")
        if fidelity is not None and fidelity not in schema.FIDELITIES:
            raise ValueError(f"unknown fidelity {fidelity!r}; expected one of {schema.FIDELITIES}")
        t = schema.trials
        now = utcnow()
        with begin_write(self.engine) as conn:
            row = conn.execute(select(t).where(t.c.id == trial_id).with_for_update()).first()
            if row is None:
                raise LookupError(f"no trial with id {trial_id}")
            same_end = row.status == status and row.ended_at is not None
            ended_at = as_utc(row.ended_at) if same_end else now
            changes: dict[str, Any] = {"status": status, "ended_at": ended_at}
            if duration_s is not None:
                changes["duration_s"] = float(duration_s)
            elif not same_end and row.started_at is not None:
                changes["duration_s"] = (ended_at - as_utc(row.started_at)).total_seconds()
            if error is not None:
                changes["error"] = str(error)
            elif status != "failed":
                changes["error"] = None
            for name, value in (
                ("epochs_done", epochs_done),
                ("fidelity", fidelity),
                ("split_hash", split_hash),
            ):
                if value is not None:
                    changes[name] = value
            if result is not None:
                value = ranking.result_value(self._ranked_by(conn, trial_id)[0], result)
                if value is not None:
                    changes["value"] = value
            conn.execute(t.update().where(t.c.id == trial_id).values(changes))
            if result is not None:
                r = schema.results
                stmt = self._insert(conn, r).values(trial_id=trial_id, **result)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[r.c.trial_id],
                    set_={name: stmt.excluded[name] for name in result if name != "recorded_at"},
                )
                conn.execute(stmt)

    # -- queries -----------------------------------------------------------------------

    def studies(self) -> list[StudyInfo]:
        """Every study with its trial ``counts`` per status, ``n_trials``, ``best_value``
        and ``best_trial_id``."""
        with self.engine.connect() as conn:
            return [self._with_summary(conn, s) for s in queries.study_rows(conn)]

    def study(self, name: str) -> StudyInfo | None:
        """One study with the same summary as :meth:`studies`, or None."""
        with self.engine.connect() as conn:
            found = queries.study_rows(conn, name)
            return self._with_summary(conn, found[0]) if found else None

    def _with_summary(self, conn: Connection, study: dict[str, Any]) -> StudyInfo:
        counts = queries.status_counts(conn, [study["id"]])[study["id"]]
        best = ranking.best_value(conn, study)
        return StudyInfo.model_validate(
            {
                **study,
                "counts": counts,
                "n_trials": sum(counts.values()),
                "best_value": best[1] if best else None,
                "best_trial_id": best[0] if best else None,
            }
        )

    def require_study(self, name: str) -> StudyInfo:
        """Like :meth:`study`, but an unknown name is a UserError listing the known ones."""
        found = self.study(name)
        if found is None:
            with self.engine.connect() as conn:
                raise queries.unknown_study(conn, name)
        return found

    def trials(self, study_id: int, status: str | Iterable[str] | None = None) -> list[TrialRecord]:
        """A study's trials, oldest first, each with its ``result`` (None if none),
        optionally only those in ``status`` (one status or several)."""
        statuses: tuple[str, ...] | None = None
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            for s in statuses:
                queries.check_status(s, schema.TRIAL_STATUSES, "trial")
        with self.engine.connect() as conn:
            return queries.trial_rows(conn, study_id, statuses)

    def trial_summaries(
        self,
        study_id: int,
        param_fields: Sequence[str],
        metric_keys: Sequence[str] = (),
        predictions_for: Sequence[str] | None = None,
    ) -> list[TrialSummary]:
        """A study's trials, oldest first, as a report reads them (see
        :func:`search.store.queries.trial_summaries`; per-image predictions only for
        completed full-fidelity trials of the kinds ``predictions_for``, None: all)."""
        with self.engine.connect() as conn:
            return queries.trial_summaries(
                conn, study_id, param_fields, metric_keys, predictions_for
            )

    def trial_ids(self, study_id: int) -> dict[str, int]:
        """A study's trial ids by Tune trial id (one light query, for the driver's callback)."""
        t = schema.trials
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.tune_trial_id, t.c.id).where(t.c.study_id == study_id))
            return {str(tune_id): int(tid) for tune_id, tid in rows}

    def trial(self, trial_id: int) -> TrialRecord | None:
        """One trial with its ``result`` and ``epochs``, or None."""
        with self.engine.connect() as conn:
            return queries.trial_row(conn, trial_id)

    def epochs(self, trial_id: int) -> list[EpochRecord]:
        """A trial's epochs in order: epoch, metrics, the typed columns, recorded_at."""
        with self.engine.connect() as conn:
            return queries.epoch_rows(conn, trial_id)

    def values(self, study_name: str) -> dict[int, float]:
        """Each completed trial's value of the study's own metric (``ls_trials.value``:
        its best epoch for ``val_*``); trials without one are left out. One query."""
        with self.engine.connect() as conn:
            found = queries.study_rows(conn, study_name)
            if not found:
                raise queries.unknown_study(conn, study_name)
            study = found[0]
            return dict(ranking.stored_ranking(conn, study["id"], study["mode"], None))

    def best(
        self,
        study_name: str,
        metric: str | None = None,
        mode: str | None = None,
        top: int | None = 5,
    ) -> list[RankedTrial]:
        """The best completed trials of a study, best first.

        ``metric`` (default: the study's) is a test metric (``f1`` or ``test_f1``) or an
        epoch metric (``val_f1``: the trial's best epoch per ``mode``).
        """
        with self.engine.connect() as conn:
            return ranking.best_trials(conn, study_name, metric, mode, top)

    def trial_values(self, study_id: int, metric: str, mode: str) -> dict[int, float]:
        """Every trial's value of ``metric`` (best epoch so far for epoch metrics), any status."""
        with self.engine.connect() as conn:
            return admin.all_trial_values(conn, study_id, metric, ranking.check_mode(mode))

    def delete_study(self, name: str) -> dict[str, int]:
        """Delete study ``name`` and all its rows (UserError if unknown); rows per table."""
        study = self.require_study(name)
        with begin_write(self.engine) as conn:
            return admin.delete_study_rows(conn, study.id)


def _check_trial_update(update: TrialUpdate) -> None:
    """A ValueError for an unknown trial status or kind."""
    if update.status is not None:
        queries.check_status(update.status, schema.TRIAL_STATUSES, "trial")
    if update.kind is not None and update.kind not in schema.TRIAL_KINDS:
        raise ValueError(
            f"unknown trial kind {update.kind!r}; expected one of {schema.TRIAL_KINDS}"
        )


def _trial_changes(
    row: Any, given: dict[str, Any], status: str | None, now: datetime
) -> dict[str, Any]:
    """What an update changes in an existing trial row: the given fields, and when a finished
    trial goes back to pending or running (a restart), a cleared end, duration and error;
    a trial (re)starting to run gets ``started_at``."""
    changes = dict(given)
    restarted = row.status in schema.TERMINAL_TRIAL_STATUSES and status in ("pending", "running")
    if restarted:
        changes.update(ended_at=None, duration_s=None, error=None)
    if status == "running" and (restarted or row.started_at is None):
        changes["started_at"] = now
    return changes


def config_values(config: dict[str, Any] | None) -> dict[str, Any]:
    """The ``ls_trials`` columns derived from a trial's (JSON-ready) config
    (:data:`~search.store.schema.CONFIG_COLUMNS`): its ``params`` block and the hash of its
    ``data`` block (sha256 of the sorted-keys JSON; None when the config has none)."""
    config = config or {}
    params, data = config.get("params"), config.get("data")
    digest = None
    if data is not None:
        digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return {"data_hash": digest, "config_params": params if isinstance(params, dict) else None}


def result_values(result: TrialResult) -> dict[str, Any]:
    """The ls_results columns of a result; what has no column of its own goes to ``extra``."""
    test = to_jsonable(result.test)
    profile = to_jsonable(result.profile)
    extra = to_jsonable(result.model_dump(exclude=_NOT_EXTRA))
    extra["epochs_done"] = result.epochs_done
    values: dict[str, Any] = {
        "metrics": test,
        "confusion": test["confusion"],
        "noise": to_jsonable(result.noise),
        "params_count": profile["params"],
        "flops": profile["flops"],
        "macs": profile["macs"],
        "latency_ms": as_float(profile["latency_ms"]),
        "timings": to_jsonable(result.timings),
        "profile": profile,
        "extra": extra,
        "checkpoint_path": result.checkpoint_path,
        "recorded_at": utcnow(),
    }
    values.update({name: as_float(test.get(name)) for name in schema.RESULT_METRIC_COLUMNS})
    return values
