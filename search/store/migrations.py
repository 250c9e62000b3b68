"""Versioned schema migrations for the ``ls_*`` tables, from the first table on.

An ordered list of Python steps (``search/store/versions/vNNN_*.py``) and a history
table ``ls_schema_version`` (one row per applied version). :func:`migrate` applies the
missing steps in one transaction, so a failed step leaves the database as it was, and
serialises concurrent callers: PostgreSQL takes a transaction-level advisory lock,
SQLite takes the write lock with ``BEGIN IMMEDIATE``. Optuna's tables and its
``alembic_version`` are never touched.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func, select, text
from sqlalchemy.engine import Connection, Engine

from leukmodels.errors import UserError
from search.store.engine import begin_write, has_store_hooks
from search.store.rows import utcnow
from search.store.versions import (
    v001_initial,
    v002_trial_gpu_ids,
    v003_trial_value,
    v004_trial_config_columns,
)

VERSION_TABLE = "ls_schema_version"
# pg_advisory_xact_lock key: a fixed 31-bit number derived from our name.
ADVISORY_LOCK_KEY = zlib.crc32(b"leuksearch.store.migrate") & 0x7FFFFFFF


@dataclass(frozen=True)
class Migration:
    """One schema step: ``upgrade`` runs inside the migration transaction."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(v001_initial.VERSION, v001_initial.DESCRIPTION, v001_initial.upgrade),
    Migration(
        v002_trial_gpu_ids.VERSION, v002_trial_gpu_ids.DESCRIPTION, v002_trial_gpu_ids.upgrade
    ),
    Migration(v003_trial_value.VERSION, v003_trial_value.DESCRIPTION, v003_trial_value.upgrade),
    Migration(
        v004_trial_config_columns.VERSION,
        v004_trial_config_columns.DESCRIPTION,
        v004_trial_config_columns.upgrade,
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_metadata = MetaData()
version_table = Table(
    VERSION_TABLE,
    _metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")


def _current_version(conn: Connection) -> int:
    return int(conn.execute(select(func.max(version_table.c.version))).scalar() or 0)


def schema_version(engine: Engine) -> int:
    """The schema version recorded in the database (0 when never migrated)."""
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, VERSION_TABLE):
            return 0
        return _current_version(conn)


def applied_versions(engine: Engine) -> list[dict[str, object]]:
    """The migration history, oldest first: version, description, applied_at (UTC)."""
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, VERSION_TABLE):
            return []
        rows = conn.execute(select(version_table).order_by(version_table.c.version))
        return [dict(row._mapping) for row in rows]


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to the newest version; idempotent and safe to run concurrently.

    Returns the version the database is at afterwards. A database newer than this code
    is a :class:`UserError`. SQLite engines must come from ``create_store_engine``.
    """
    _check_order(migrations)
    if not has_store_hooks(engine):
        raise ValueError("migrate() needs a SQLite engine made by create_store_engine()")
    latest = migrations[-1].version if migrations else 0
    with begin_write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        version_table.create(conn, checkfirst=True)
        current = _current_version(conn)
        if current > latest:
            raise UserError(
                f"the leuksearch tables in this database are at schema version {current}, "
                f"newer than this leuksearch knows (up to {latest}); upgrade leuksearch."
            )
        for step in migrations[current:]:
            step.upgrade(conn)
            conn.execute(
                version_table.insert().values(
                    version=step.version, description=step.description, applied_at=utcnow()
                )
            )
    return max(current, latest)
