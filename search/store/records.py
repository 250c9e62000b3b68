"""The store's records: what goes into the ``ls_*`` tables and what comes back out.

Writes: :class:`StudyRecord` (a new study), :class:`TrialUpdate` (a trial's fields, None =
leave alone), :class:`~leukmodels.results.EpochRow` and
:class:`~leukmodels.results.TrialResult` (from the training loop). Reads:
:class:`StudyInfo`, :class:`TrialRecord` (with its :class:`ResultRecord` and
:class:`EpochRecord` rows) and :class:`RankedTrial`. Timestamps are ISO 8601 strings in
UTC. Read records ignore columns they do not know (a later migration may add some).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from leukmodels.results import EvalMetrics, Profile, TestMetrics, Timings


class StudyRecord(BaseModel):
    """A study as a run creates it (``Store.ensure_study``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    space_yaml: str
    space_hash: str
    metric: str
    mode: str
    space_path: str | None = None
    profile: str | None = None
    dataset: str | None = None
    code_version: str | None = None
    storage_path: str | None = None
    description: str = ""
    config: dict[str, Any] | None = None


class StudyInfo(StudyRecord):
    """A stored study with its status and a summary of its trials."""

    model_config = ConfigDict(extra="ignore")

    id: int
    status: str
    created_at: str
    updated_at: str
    counts: dict[str, int]
    """Trials per status, every status present (0 if none)."""
    n_trials: int
    best_value: float | None = None
    """The best completed trial's value of the study's metric (its best epoch for val_*)."""
    best_trial_id: int | None = None


class TrialUpdate(BaseModel):
    """Fields to set on a trial (``Store.upsert_trial``); None leaves the stored value alone.

    A new trial gets kind explore, status running and repeat 0 unless given.
    """

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    kind: str | None = None
    status: str | None = None
    node: str | None = None
    """Where the trial runs: its Ray node id, then host (IP)."""
    gpu_ids: list[int | str] | None = None
    """The GPU ids Ray gave the trial ([] when it asked for none)."""
    seed: int | None = None
    split_hash: str | None = None
    optuna_number: int | None = None
    parent_trial_id: int | None = None
    repeat: int | None = None


class ResultRecord(BaseModel):
    """A trial's ``ls_results`` row: test metrics (also as columns), noise sweep, cost.

    ``extra`` holds the rest of the :class:`~leukmodels.results.TrialResult`: class_names,
    best_epoch, best_value, monitor, split, data_report, seed, device, threads and
    epochs_done (and predictions / segmentation when a trial has them).
    """

    model_config = ConfigDict(extra="ignore")

    metrics: TestMetrics | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    specificity: float | None = None
    f1: float | None = None
    kappa: float | None = None
    mcc: float | None = None
    auc: float | None = None
    confusion: list[list[int]] | None = None
    noise: dict[str, EvalMetrics] | None = None
    params_count: int | None = None
    flops: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    timings: Timings | None = None
    profile: Profile | None = None
    extra: dict[str, Any] | None = None
    checkpoint_path: str | None = None
    recorded_at: str

    @property
    def class_names(self) -> list[str] | None:
        """The class names of the confusion matrix's rows and columns."""
        if self.metrics is not None:
            return self.metrics.class_names
        return (self.extra or {}).get("class_names")


class EpochRecord(BaseModel):
    """One ``ls_epochs`` row: the epoch's metrics (JSON) and its typed columns."""

    model_config = ConfigDict(extra="ignore")

    trial_id: int
    epoch: int
    metrics: dict[str, Any]
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_f1: float | None = None
    lr: float | None = None
    epoch_time_s: float | None = None
    recorded_at: str


class TrialRecord(BaseModel):
    """A stored trial with its result (None until it completes) and, from
    ``Store.trial``, its epochs."""

    model_config = ConfigDict(extra="ignore")

    trial_id: int
    study_id: int
    tune_trial_id: str
    optuna_number: int | None = None
    kind: str
    params: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    status: str
    error: str | None = None
    node: str | None = None
    gpu_ids: list[int | str] | None = None
    seed: int | None = None
    split_hash: str | None = None
    fidelity: str | None = None
    epochs_done: int
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    parent_trial_id: int | None = None
    repeat: int
    value: float | None = None
    """The trial's value of its study's metric as ranking reads it (best epoch per the
    study's mode for an epoch metric, the test result's for a test metric)."""
    result: ResultRecord | None = None
    epochs: list[EpochRecord] | None = None


@dataclass(slots=True, kw_only=True)
class TrialSummary:
    """A trial as a report reads it (``Store.trial_summaries``): its row without the
    full config and result, the columns the tables need picked out of the JSON.

    A plain dataclass, not a pydantic model: it is built from rows the store wrote, and
    at 100,000 trials pydantic's construction alone cost seconds (bench/store_scale.py).
    """

    trial_id: int
    optuna_number: int | None = None
    kind: str
    status: str
    fidelity: str | None = None
    epochs_done: int
    seed: int | None = None
    repeat: int
    params: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    """The trial config's ``data`` (a DataSpec as JSON)."""
    trial_params: dict[str, Any]
    """The requested fields of the trial config's ``params`` (TrialParams)."""
    has_result: bool
    metrics: dict[str, float | None]
    """Test metrics: the ``ls_results`` columns and the requested JSON-only ones."""
    class_names: list[str] | None = None
    confusion: list[list[int]] | None = None
    noise: dict[str, EvalMetrics] | None = None
    binary: dict[str, Any] | None = None
    """The test metrics' positive-class block (two-class tasks) as stored: a
    :class:`~leukmodels.results.BinaryMetrics` as JSON, not validated again."""
    predictions: dict[str, Any] | None = None
    """The result's per-image test predictions as stored (``extra.predictions``); None
    also for trials outside the kinds the read asked them for."""
    split: Any = None
    """The result's split facts as stored (``extra.split``)."""
    segmentation: dict[str, Any] | None = None
    """The result's segmentation scores as stored (``extra.segmentation``)."""
    params_count: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    size_mb: float | None = None


class RankedTrial(BaseModel):
    """One line of ``Store.best``: a completed trial and its value of the ranking metric."""

    trial_id: int
    tune_trial_id: str
    kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    """The test metrics as stored ({} when the trial has none)."""
    value: float
    metric: str
    mode: str
