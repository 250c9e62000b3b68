"""Version 3: ``ls_trials.value``, each trial's value of its study's metric, indexed.

``leuksearch best`` and every study summary rank trials by their study's metric. For a
validation metric that meant aggregating every epoch row of the study on each call
(3 s at 100,000 trials x 10 epochs, bench/store_scale.py); the store now keeps the value
on the trial row as it writes (the best epoch per the study's mode, or the test result's
value) and ranks with an index. This step adds the column and the index and fills the
column for the trials already stored.

Frozen: later changes go in new version modules.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Double,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

VERSION = 3
DESCRIPTION = "ls_trials.value (the trial's value of its study's metric) and its index"

_EPOCH_COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "lr",
                  "epoch_time_s")  # fmt: skip
_RESULT_COLUMNS = ("accuracy", "precision", "recall", "specificity", "f1", "kappa", "mcc", "auc")


def _tables() -> tuple[Table, Table, Table, Table]:
    """The columns this step reads and writes, as version 1 left them (plus ``value``)."""
    md = MetaData()
    json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    studies = Table("ls_studies", md, Column("id", Integer), Column("metric", String),
                    Column("mode", String))  # fmt: skip
    trials = Table("ls_trials", md, Column("id", Integer), Column("study_id", Integer),
                   Column("value", Double))  # fmt: skip
    epochs = Table("ls_epochs", md, Column("trial_id", Integer), Column("metrics", json),
                   *(Column(c, Double) for c in _EPOCH_COLUMNS))  # fmt: skip
    results = Table("ls_results", md, Column("trial_id", Integer), Column("metrics", json),
                    *(Column(c, Double) for c in _RESULT_COLUMNS))  # fmt: skip
    return studies, trials, epochs, results


def _value_of(metric: str, mode: str, epochs: Table, results: Table, trial_id) -> object:
    """The scalar subquery giving one trial's value of ``metric`` (as ranking reads it)."""
    if metric.startswith("test_") or not (
        metric in _EPOCH_COLUMNS or metric.startswith(("val_", "train_"))
    ):
        key = metric.removeprefix("test_")
        column = results.c[key] if key in _RESULT_COLUMNS else results.c.metrics[key].as_float()
        return select(column).where(results.c.trial_id == trial_id).scalar_subquery()
    column = epochs.c[metric] if metric in _EPOCH_COLUMNS else epochs.c.metrics[metric].as_float()
    agg = func.max(column) if mode == "max" else func.min(column)
    return select(agg).where(epochs.c.trial_id == trial_id).scalar_subquery()


def upgrade(conn: Connection) -> None:
    """Add the column and index, then fill the column study by study."""
    conn.execute(text("ALTER TABLE ls_trials ADD COLUMN value DOUBLE PRECISION"))
    studies, trials, epochs, results = _tables()
    for sid, metric, mode in conn.execute(select(studies.c.id, studies.c.metric, studies.c.mode)):
        value = _value_of(metric, mode, epochs, results, trials.c.id)
        conn.execute(trials.update().where(trials.c.study_id == sid).values(value=value))
    conn.execute(
        text(
            "CREATE INDEX ix_ls_trials_study_id_status_value ON ls_trials (study_id, status, value)"
        )
    )
