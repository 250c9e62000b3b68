"""The current shape of our tables (SQLAlchemy Core), all named ``ls_*``.

Optuna's RDB storage shares the database with unprefixed names (``studies``, ``trials``,
``alembic_version``, ...); the ``ls_`` prefix keeps ours apart. This module describes the
schema at the newest migration and is what the code queries; the tables themselves are
created and changed only by ``search.store.migrations`` (a test checks the two agree).
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
from sqlalchemy.types import TypeEngine

PREFIX = "ls_"
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STUDY_STATUSES = ("running", "completed", "interrupted", "failed")
TRIAL_STATUSES = ("pending", "running", "completed", "pruned", "failed", "terminated")
TERMINAL_TRIAL_STATUSES = ("completed", "pruned", "failed", "terminated")
TRIAL_KINDS = ("explore", "ablation", "grid", "retrain")
"""explore: proposed by the sampler (may be pruned); ablation / grid: enqueued before
exploration and trained to full fidelity; retrain: `leuksearch retrain` of a stored trial."""
FULL_FIDELITY_KINDS = ("ablation", "grid")
SEARCH_KINDS = ("ablation", "grid", "explore")
FIDELITIES = ("full", "partial")
MODES = ("max", "min")
EPOCH_COLUMNS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_f1",
    "lr",
    "epoch_time_s",
)
CONFIG_COLUMNS = ("data_hash", "config_params")
"""``ls_trials`` columns derived from its ``config`` as it is written (migration v004): the
hash of the config's ``data`` and a copy of its ``params``, so a reader of many trials
(the report's collect) never decompresses the configs. Records do not carry them."""
RESULT_METRIC_COLUMNS = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "kappa",
    "mcc",
    "auc",
)


def json_type() -> TypeEngine:
    """JSON on SQLite, JSONB on PostgreSQL; Python None is stored as SQL NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def timestamp() -> DateTime:
    """A timezone-aware timestamp (UTC is written; SQLite reads back naive UTC)."""
    return DateTime(timezone=True)


def _studies(metadata: MetaData) -> Table:
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
        Column("created_at", timestamp(), nullable=False),
        Column("updated_at", timestamp(), nullable=False),
        Column("config", json_type()),
        sqlite_autoincrement=True,
    )


def _trials(metadata: MetaData) -> Table:
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
        Column("params", json_type()),
        Column("config", json_type()),
        Column("status", String(20), nullable=False, default="running"),
        Column("error", Text),
        Column("node", String(200)),
        Column("gpu_ids", json_type()),
        Column("seed", BigInteger),
        Column("split_hash", String(128)),
        Column("fidelity", String(20)),
        Column("epochs_done", Integer, nullable=False, default=0),
        Column("started_at", timestamp()),
        Column("ended_at", timestamp()),
        Column("duration_s", Double),
        Column(
            "parent_trial_id",
            Integer,
            ForeignKey("ls_trials.id", ondelete="SET NULL"),
        ),
        Column("repeat", Integer, nullable=False, default=0),
        Column("value", Double),
        Column("data_hash", String(64)),
        Column("config_params", json_type()),
        UniqueConstraint("study_id", "tune_trial_id"),
        Index(None, "study_id", "status"),
        Index(None, "parent_trial_id"),
        Index(None, "study_id", "status", "value"),
        sqlite_autoincrement=True,
    )


def _epochs(metadata: MetaData) -> Table:
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
        Column("metrics", json_type(), nullable=False),
        *(Column(name, Double) for name in EPOCH_COLUMNS),
        Column("recorded_at", timestamp(), nullable=False),
        UniqueConstraint("trial_id", "epoch"),
    )


def _results(metadata: MetaData) -> Table:
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
        Column("metrics", json_type()),
        *(Column(name, Double) for name in RESULT_METRIC_COLUMNS),
        Column("confusion", json_type()),
        Column("noise", json_type()),
        Column("params_count", BigInteger),
        Column("flops", BigInteger),
        Column("macs", BigInteger),
        Column("latency_ms", Double),
        Column("timings", json_type()),
        Column("profile", json_type()),
        Column("extra", json_type()),
        Column("checkpoint_path", Text),
        Column("recorded_at", timestamp(), nullable=False),
    )


def define_tables(metadata: MetaData) -> dict[str, Table]:
    """Declare the four ``ls_*`` tables on ``metadata``, as the newest migration leaves them."""
    tables = (_studies(metadata), _trials(metadata), _epochs(metadata), _results(metadata))
    return {t.name: t for t in tables}


metadata = MetaData(naming_convention=NAMING_CONVENTION)
_tables = define_tables(metadata)
studies: Table = _tables["ls_studies"]
trials: Table = _tables["ls_trials"]
epochs: Table = _tables["ls_epochs"]
results: Table = _tables["ls_results"]
TABLE_NAMES = tuple(_tables)
