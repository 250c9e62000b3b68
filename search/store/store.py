"""The results store: studies, trials, epochs and test results in SQLite or PostgreSQL.

Every write is idempotent (delivering the same report twice never makes two rows), so a
driver-side Tune callback can write each epoch and trial end as it comes. Reads return
plain dicts and lists (JSON-serialisable, timestamps as ISO strings in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from leukmodels.errors import UserError
from search.store import queries, ranking, schema
from search.store.engine import (
    DEFAULT_CONNECT_TIMEOUT_S,
    begin_write,
    check_connection,
    create_store_engine,
    describe_db_error,
)
from search.store.jsonable import as_float, as_int, to_jsonable
from search.store.migrations import migrate, schema_version
from search.store.rows import as_utc, utcnow
from search.store.url import mask_url, optuna_url, resolve_url

RESULT_KEYS = ("test", "noise", "profile", "timings", "checkpoint_path")
_NOT_EXTRA = ("epochs", "params")  # already in ls_epochs and ls_trials


class Store:
    """One database of leuksearch results; open it with :meth:`Store.open`."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

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

    def ensure_study(
        self,
        name: str,
        *,
        space_yaml: str,
        space_hash: str,
        space_path: str | None,
        profile: str | None,
        dataset: str | None,
        metric: str,
        mode: str,
        code_version: str | None,
        storage_path: str | None = None,
        description: str = "",
        config: Mapping[str, Any] | None = None,
    ) -> int:
        """The id of study ``name``, created if new; a different space is a UserError."""
        ranking.check_mode(mode)
        t = schema.studies
        now = utcnow()
        values = {
            "name": name,
            "description": description or "",
            "space_yaml": space_yaml,
            "space_hash": space_hash,
            "space_path": None if space_path is None else str(space_path),
            "profile": profile,
            "dataset": None if dataset is None else str(dataset),
            "metric": metric,
            "mode": mode,
            "code_version": code_version,
            "storage_path": None if storage_path is None else str(storage_path),
            "status": "running",
            "created_at": now,
            "updated_at": now,
            "config": to_jsonable(config) if config is not None else None,
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
                    t.c.name == name
                )
            ).one()
            if row.space_hash != space_hash:
                where = f" (from {row.space_path})" if row.space_path else ""
                raise UserError(
                    f"study {name!r} already exists in {self.masked_url} with a different "
                    f"search space{where}; pick another --study or use the same file."
                )
            if storage_path is not None and row.storage_path is None:
                conn.execute(
                    t.update()
                    .where(t.c.id == row.id)
                    .values(storage_path=str(storage_path), updated_at=now)
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

    # -- trials ------------------------------------------------------------------------

    def upsert_trial(
        self,
        study_id: int,
        tune_trial_id: str,
        *,
        params: Mapping[str, Any] | None,
        config: Mapping[str, Any] | None,
        kind: str | None = "explore",
        status: str | None = "running",
        node: str | None = None,
        seed: int | None = None,
        split_hash: str | None = None,
        optuna_number: int | None = None,
        parent_trial_id: int | None = None,
        repeat: int | None = 0,
    ) -> int:
        """Insert the trial or update the same row; returns its id (the user's trial_id).

        Arguments given as None leave stored values alone. Moving a finished trial back
        to pending or running (Tune restarting it) clears its end time and error.
        """
        if status is not None:
            queries.check_status(status, schema.TRIAL_STATUSES, "trial")
        if kind is not None and kind not in schema.TRIAL_KINDS:
            raise ValueError(f"unknown trial kind {kind!r}; expected one of {schema.TRIAL_KINDS}")
        given = {
            "params": None if params is None else to_jsonable(params),
            "config": None if config is None else to_jsonable(config),
            "kind": kind,
            "status": status,
            "node": node,
            "seed": seed,
            "split_hash": split_hash,
            "optuna_number": optuna_number,
            "parent_trial_id": parent_trial_id,
            "repeat": repeat,
        }
        given = {k: v for k, v in given.items() if v is not None}
        t = schema.trials
        key = (t.c.study_id == study_id) & (t.c.tune_trial_id == str(tune_trial_id))
        now = utcnow()
        with begin_write(self.engine) as conn:
            row = conn.execute(select(t).where(key).with_for_update()).first()
            if row is None:
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
                if new_id is not None:
                    return int(new_id)
                row = conn.execute(select(t).where(key).with_for_update()).one()
            changes = dict(given)
            restarted = row.status in schema.TERMINAL_TRIAL_STATUSES and status in (
                "pending",
                "running",
            )
            if restarted:
                changes.update(ended_at=None, duration_s=None, error=None)
            if status == "running" and (restarted or row.started_at is None):
                changes["started_at"] = now
            if changes:
                conn.execute(t.update().where(t.c.id == row.id).values(changes))
            return int(row.id)

    def record_epoch(self, trial_id: int, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Store one epoch's metrics; the same (trial, epoch) again updates the row
        (``recorded_at`` keeps the first delivery's time)."""
        plain = to_jsonable(dict(metrics))
        values: dict[str, Any] = {
            "trial_id": trial_id,
            "epoch": int(epoch),
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
            conn.execute(t.update().where(t.c.id == trial_id).values(epochs_done=count))

    def finish_trial(
        self,
        trial_id: int,
        status: str,
        *,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
        epochs_done: int | None = None,
        fidelity: str | None = None,
        duration_s: float | None = None,
        split_hash: str | None = None,
    ) -> None:
        """End a trial (completed, pruned, failed, terminated), with its test result if any.

        ``result`` holds "test" (the test metric dict), optionally "noise" ({sigma:
        metrics}), "profile" ({params, flops, macs, latency_ms, ...}), "timings" and
        "checkpoint_path"; other keys go to the result's ``extra``. Repeating the same
        call changes nothing. A failed trial keeps an earlier error
        when none is given; other statuses clear it unless one is given.
        """
        queries.check_status(status, schema.TRIAL_STATUSES, "trial")
        if fidelity is not None and fidelity not in schema.FIDELITIES:
            raise ValueError(f"unknown fidelity {fidelity!r}; expected one of {schema.FIDELITIES}")
        result_values = _result_values(result) if result is not None else None
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
            conn.execute(t.update().where(t.c.id == trial_id).values(changes))
            if result_values is not None:
                r = schema.results
                stmt = self._insert(conn, r).values(trial_id=trial_id, **result_values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[r.c.trial_id],
                    set_={
                        name: stmt.excluded[name] for name in result_values if name != "recorded_at"
                    },
                )
                conn.execute(stmt)

    def record_result(self, trial_id: int, result: Mapping[str, Any]) -> None:
        """Finish a fully trained trial from a ``leukmodels.train.run_trial`` result.

        Epochs done, split hash and duration are read from the result itself.
        """
        epochs_done = result.get("epochs_done", len(result.get("epochs") or []))
        self.finish_trial(
            trial_id,
            "completed",
            result=result,
            epochs_done=epochs_done,
            fidelity="full",
            split_hash=(result.get("split") or {}).get("hash"),
            duration_s=(result.get("timings") or {}).get("total_s"),
        )

    # -- queries -----------------------------------------------------------------------

    def studies(self) -> list[dict[str, Any]]:
        """Every study (without its space text and config), with ``counts`` per trial
        status, ``n_trials``, ``best_value`` and ``best_trial_id``."""
        with self.engine.connect() as conn:
            items = [queries.listing(s) for s in queries.study_rows(conn)]
            return [self._with_summary(conn, item) for item in items]

    def study(self, name: str) -> dict[str, Any] | None:
        """One study with every column and the same summary as :meth:`studies`, or None."""
        with self.engine.connect() as conn:
            found = queries.study_rows(conn, name)
            return self._with_summary(conn, found[0]) if found else None

    def _with_summary(self, conn: Connection, study: dict[str, Any]) -> dict[str, Any]:
        counts = queries.status_counts(conn, [study["id"]])[study["id"]]
        best = ranking.best_value(conn, study)
        return {
            **study,
            "counts": counts,
            "n_trials": sum(counts.values()),
            "best_value": best[1] if best else None,
            "best_trial_id": best[0] if best else None,
        }

    def require_study(self, name: str) -> dict[str, Any]:
        """Like :meth:`study`, but an unknown name is a UserError listing the known ones."""
        found = self.study(name)
        if found is None:
            with self.engine.connect() as conn:
                raise queries.unknown_study(conn, name)
        return found

    def trials(
        self, study_id: int, status: str | Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """A study's trials, oldest first, each with ``result`` (None if none), optionally
        only those in ``status`` (one status or several)."""
        statuses: tuple[str, ...] | None = None
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            for s in statuses:
                queries.check_status(s, schema.TRIAL_STATUSES, "trial")
        with self.engine.connect() as conn:
            return queries.trial_rows(conn, study_id, statuses)

    def trial(self, trial_id: int) -> dict[str, Any] | None:
        """One trial with its ``result`` and ``epochs``, or None."""
        with self.engine.connect() as conn:
            return queries.trial_row(conn, trial_id)

    def epochs(self, trial_id: int) -> list[dict[str, Any]]:
        """A trial's epochs in order: epoch, metrics, the typed columns, recorded_at."""
        with self.engine.connect() as conn:
            return queries.epoch_rows(conn, trial_id)

    def best(
        self,
        study_name: str,
        metric: str | None = None,
        mode: str | None = None,
        top: int | None = 5,
    ) -> list[dict[str, Any]]:
        """The best completed trials of a study, best first.

        ``metric`` (default: the study's) is a test metric (``f1`` or ``test_f1``) or an
        epoch metric (``val_f1``: the trial's best epoch per ``mode``). Each item has
        trial_id, tune_trial_id, kind, params, metrics (the test metrics), value, metric, mode.
        """
        with self.engine.connect() as conn:
            return ranking.best_trials(conn, study_name, metric, mode, top)


def _result_values(result: Mapping[str, Any]) -> dict[str, Any]:
    """The ls_results columns for a ``finish_trial`` result dict.

    Keys other than test, noise, profile, timings and checkpoint_path (a trainer's
    best_epoch, split, data_report, ...) are kept in ``extra``; ``epochs`` and ``params``
    are left out there, as ls_epochs and ls_trials hold them.
    """
    test = to_jsonable(dict(result.get("test") or {}))
    profile = to_jsonable(dict(result.get("profile") or {}))
    extra = {k: v for k, v in result.items() if k not in (*RESULT_KEYS, *_NOT_EXTRA)}
    values: dict[str, Any] = {
        "metrics": test,
        "confusion": test.get("confusion"),
        "noise": to_jsonable(result.get("noise")),
        "params_count": as_int(profile.get("params", profile.get("params_count"))),
        "flops": as_int(profile.get("flops")),
        "macs": as_int(profile.get("macs")),
        "latency_ms": as_float(profile.get("latency_ms")),
        "timings": to_jsonable(result.get("timings")),
        "profile": profile or None,
        "extra": to_jsonable(extra) if extra else None,
        "checkpoint_path": (
            None if result.get("checkpoint_path") is None else str(result["checkpoint_path"])
        ),
        "recorded_at": utcnow(),
    }
    values.update({name: as_float(test.get(name)) for name in schema.RESULT_METRIC_COLUMNS})
    return values
