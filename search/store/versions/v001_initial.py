"""Version 1: the first tables (studies, trials, epochs, results).

Frozen: this is the schema as version 1 created it. Later changes go in new version
modules, never here, so that every database walks the same path to the newest schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

VERSION = 1
DESCRIPTION = "create ls_studies, ls_trials, ls_epochs, ls_results"

_NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_EPOCH_COLUMNS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_f1",
    "lr",
    "epoch_time_s",
)
_RESULT_METRIC_COLUMNS = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "kappa",
    "mcc",
    "auc",
)


def _json() -> TypeEngine:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _timestamp() -> DateTime:
    return DateTime(timezone=True)


def _v1_studies(metadata: MetaData) -> Table:
    """The ``ls_studies`` table."""
    return Table(
        "ls_studies",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("description", Text, nullable=False, default=""),
        Column("space_yaml", Text, nullable=False),
        Column("space_hash", String(128), nullable=False),
        Column("space_path", Text),
        Column("profile", String(100)),
        Column("dataset", Text),
        Column("metric", String(100), nullable=False),
        Column("mode", String(8), nullable=False),
        Column("code_version", String(200)),
        Column("storage_path", Text),
        Column("status", String(20), nullable=False, default="running"),
        Column("created_at", _timestamp(), nullable=False),
        Column("updated_at", _timestamp(), nullable=False),
        Column("config", _json()),
        sqlite_autoincrement=True,
    )


def _v1_trials(metadata: MetaData) -> Table:
    """The ``ls_trials`` table."""
    return Table(
        "ls_trials",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "study_id",
            Integer,
            ForeignKey("ls_studies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("tune_trial_id", String(200), nullable=False),
        Column("optuna_number", Integer),
        Column("kind", String(20), nullable=False, default="explore"),
        Column("params", _json()),
        Column("config", _json()),
        Column("status", String(20), nullable=False, default="running"),
        Column("error", Text),
        Column("node", String(200)),
        Column("seed", BigInteger),
        Column("split_hash", String(128)),
        Column("fidelity", String(20)),
        Column("epochs_done", Integer, nullable=False, default=0),
        Column("started_at", _timestamp()),
        Column("ended_at", _timestamp()),
        Column("duration_s", Double),
        Column(
            "parent_trial_id",
            Integer,
            ForeignKey("ls_trials.id", ondelete="SET NULL"),
        ),
        Column("repeat", Integer, nullable=False, default=0),
        UniqueConstraint("study_id", "tune_trial_id"),
        Index(None, "study_id", "status"),
        Index(None, "parent_trial_id"),
        sqlite_autoincrement=True,
    )


def _v1_epochs(metadata: MetaData) -> Table:
    """The ``ls_epochs`` table."""
    return Table(
        "ls_epochs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "trial_id",
            Integer,
            ForeignKey("ls_trials.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("epoch", Integer, nullable=False),
        Column("metrics", _json(), nullable=False),
        *(Column(name, Double) for name in _EPOCH_COLUMNS),
        Column("recorded_at", _timestamp(), nullable=False),
        UniqueConstraint("trial_id", "epoch"),
    )


def _v1_results(metadata: MetaData) -> Table:
    """The ``ls_results`` table."""
    return Table(
        "ls_results",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "trial_id",
            Integer,
            ForeignKey("ls_trials.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        Column("metrics", _json()),
        *(Column(name, Double) for name in _RESULT_METRIC_COLUMNS),
        Column("confusion", _json()),
        Column("noise", _json()),
        Column("params_count", BigInteger),
        Column("flops", BigInteger),
        Column("macs", BigInteger),
        Column("latency_ms", Double),
        Column("timings", _json()),
        Column("profile", _json()),
        Column("extra", _json()),
        Column("checkpoint_path", Text),
        Column("recorded_at", _timestamp(), nullable=False),
    )


def _tables_v1(metadata: MetaData) -> None:
    """The four ``ls_*`` tables exactly as version 1 created them."""
    for table in (_v1_studies, _v1_trials, _v1_epochs, _v1_results):
        table(metadata)


def upgrade(conn: Connection) -> None:
    """Create the version-1 tables (inside the caller's transaction)."""
    metadata = MetaData(naming_convention=_NAMING_CONVENTION)
    _tables_v1(metadata)
    metadata.create_all(conn)
