"""What one training run hands back: :class:`TrialResult` and its typed parts.

:func:`leukmodels.train.run_trial` returns a TrialResult; the search service sends it to
the driver as JSON once (``model_dump_json`` / ``model_validate_json``, NaN kept) and the
store keeps it as it is. Unknown keys are errors, so a metric added in one place and
forgotten in another fails in the tests, not silently in a study. A field added later
needs a default, so that results stored before it still load.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from leukmodels.config import DataSpec, TrialParams


def _unset(value: Any) -> bool:
    """Optional parts a trial may lack are left out of its JSON, not written as null."""
    return value is None


class Record(BaseModel):
    """Strict, JSON round-trippable (NaN and infinities survive the trip to the driver)."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class ClassMetrics(Record):
    """One class against the rest (see :mod:`leukmodels.metrics`)."""

    precision: float
    recall: float
    specificity: float
    f1: float
    npv: float
    support: int
    auc: float | None = None


class BinaryMetrics(ClassMetrics):
    """The positive class's one-vs-rest metrics."""

    positive: str


class EvalMetrics(Record):
    """One evaluation, as :func:`leukmodels.metrics.classification_metrics` computes it.

    Fractions in [0, 1] (kappa and MCC in [-1, 1]); None where a value is undefined.
    """

    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    npv: float
    per_class: dict[str, ClassMetrics]
    kappa: float | None
    mcc: float | None
    balanced_accuracy: float | None
    confusion: list[list[int]]
    n: int
    class_names: list[str]
    auc: float | None
    auc_reason: str | None = None
    binary: BinaryMetrics | None = None


class TestMetrics(EvalMetrics):
    """The test split's metrics, with the share of uncertain predictions (paper 003)."""

    __test__ = False  # not a pytest test class

    uncertain_fraction: float | None = None


class EpochRow(Record):
    """One epoch: what Tune sees, the store's ``ls_epochs`` row and a curve point.

    The validation values are absent without a validation split, except the monitored
    metric, which every row carries (the search always sees what it ranks by).
    """

    epoch: int
    lr: float | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_balanced_accuracy: float | None = None
    val_f1: float | None = None
    val_precision: float | None = None
    val_recall: float | None = None
    val_specificity: float | None = None
    val_kappa: float | None = None
    val_mcc: float | None = None
    val_auc: float | None = None
    val_dice: float | None = None  # multi-task trials: nucleus Dice / IoU (macro over images)
    val_iou: float | None = None
    data_time_s: float | None = None
    compute_time_s: float | None = None
    epoch_time_s: float | None = None
    bn_time_s: float | None = None  # precise BatchNorm pass (part of epoch_time_s)
    val_time_s: float | None = None  # validation pass (part of epoch_time_s)

    def metrics(self) -> dict[str, float]:
        """The values present, without ``epoch``: the JSON of an ``ls_epochs`` row."""
        return self.model_dump(exclude={"epoch"}, exclude_none=True)

    def report(self) -> dict[str, float]:
        """The values present, with ``epoch``: one Tune report."""
        return self.model_dump(exclude_none=True)


class Profile(Record):
    """Size and cost of the model (:func:`leukmodels.profile.profile`)."""

    params: int
    flops: int
    macs: int
    size_mb: float
    latency_ms: float


class SplitInfo(Record):
    """The split facts: its hash (same images, same hash), the images per split, how it
    was grouped, what the leakage guard found (:mod:`leukmodels.data.leakage`) and every
    warning raised making it. Fields after ``warnings`` are absent (None) in results
    stored before the leakage guard."""

    hash: str
    warnings: list[str] = []
    sizes: dict[str, int] | None = Field(None, exclude_if=_unset)  # train/val/test images
    grouped_by_patient: bool | None = Field(None, exclude_if=_unset)
    n_duplicates: int | None = Field(None, exclude_if=_unset)  # identical files dropped
    n_near_duplicates: int | None = Field(None, exclude_if=_unset)  # images in such groups
    n_near_groups: int | None = Field(None, exclude_if=_unset)
    near_duplicates: str | None = Field(None, exclude_if=_unset)  # how they were grouped

    def header(self) -> list[str]:
        """The facts as lines for a report header (test n, grouping, duplicates, warnings)."""
        lines = []
        if self.sizes is not None:
            sizes = ", ".join(f"{k} {v:,}" for k, v in self.sizes.items())
            lines.append(f"split {self.hash}: {sizes} images")
        if self.grouped_by_patient is not None:
            lines.append(
                "grouped by patient" if self.grouped_by_patient else "not grouped by patient"
            )
        if self.n_duplicates is not None:
            lines.append(
                f"{self.n_duplicates} identical file(s) dropped; {self.n_near_duplicates} "
                f"near-duplicate image(s) in {self.n_near_groups} group(s): {self.near_duplicates}"
            )
        return lines + [f"warning: {w}" for w in self.warnings]


SplitFacts = SplitInfo
"""The name the report uses for a trial's split facts."""


class DataReport(Record):
    """What data preparation found."""

    cache_hit: bool
    cache_path: str | None
    bad_images: list[str]
    n_bad_images: int
    class_counts: dict[str, int]
    n_no_nucleus: int


class Timings(Record):
    """Seconds spent, wall clock. The fields after ``total_s`` are absent (None) in results
    stored before they were added; ``*_unix`` are ``time.time()`` stamps (where a trial's
    time goes, next to the driver's own stamps: bench/throughput.py)."""

    data_prepare_s: float | None
    data_decode_s: float | None
    train_s: float
    data_wait_s: float
    compute_s: float
    test_s: float
    total_s: float
    setup_s: float | None = Field(None, exclude_if=_unset)  # data, loaders, model, optimiser
    model_build_s: float | None = Field(None, exclude_if=_unset)
    report_s: float | None = Field(None, exclude_if=_unset)  # epoch callbacks (Tune reports)
    profile_s: float | None = Field(None, exclude_if=_unset)
    save_s: float | None = Field(None, exclude_if=_unset)  # the best checkpoint written
    import_s: float | None = Field(None, exclude_if=_unset)  # the caller's (search.trainable)
    process_start_unix: float | None = Field(None, exclude_if=_unset)  # the caller's
    entry_unix: float | None = Field(None, exclude_if=_unset)  # the caller's entry
    start_unix: float | None = Field(None, exclude_if=_unset)  # setup began
    end_unix: float | None = Field(None, exclude_if=_unset)  # the result was made
    pid: int | None = Field(None, exclude_if=_unset)


_PACKED = "z64:"  # the stored form of an integer array (see pack_ints)


def pack_ints(values: Any) -> str:
    """Integers as ``z64:`` + base64(zlib(successive differences as int32 little-endian)):
    sorted indices and labels both shrink to about a byte per image or less."""
    raw = np.diff(np.asarray(values, dtype=np.int64), prepend=0).astype("<i4").tobytes()
    return _PACKED + base64.b64encode(zlib.compress(raw)).decode("ascii")


def unpack_ints(text: str) -> list[int]:
    """The integers :func:`pack_ints` packed."""
    if not text.startswith(_PACKED):
        raise ValueError(f"packed integers start with {_PACKED!r}")
    try:
        raw = zlib.decompress(base64.b64decode(text[len(_PACKED) :], validate=True))
    except (binascii.Error, zlib.error) as e:
        raise ValueError(f"packed integers are corrupt: {e}") from None
    return np.cumsum(np.frombuffer(raw, dtype="<i4"), dtype=np.int64).tolist()


class Predictions(Record):
    """Per-image test predictions, in test-split order: what
    :class:`search.report.stats.TestPredictions` needs for intervals over test images.

    ``index``: each test image's row in the dataset (the split's test indices), ``y_true``
    and ``y_pred`` class indices, ``test_set`` the split's hash (runs with the same hash
    were tested on the same images in the same order). Stored packed (:func:`pack_ints`).
    """

    y_true: list[int]
    y_pred: list[int]
    index: list[int] = []
    test_set: str | None = None

    @field_validator("y_true", "y_pred", "index", mode="before")
    @classmethod
    def _unpack(cls, value: Any) -> Any:
        return unpack_ints(value) if isinstance(value, str) else value

    @field_serializer("y_true", "y_pred", "index")
    def _pack(self, value: list[int]) -> str:
        return pack_ints(value)

    @model_validator(mode="after")
    def _aligned(self) -> Predictions:
        n = len(self.y_true)
        if len(self.y_pred) != n or (self.index and len(self.index) != n):
            raise ValueError(
                f"y_true ({n}), y_pred ({len(self.y_pred)}) and index ({len(self.index)}) "
                "must have one entry per test image"
            )
        return self


class SegmentationMetrics(Record):
    """Nucleus segmentation on the test split, as :func:`leukmodels.seg_metrics.seg_scores`
    gives it (issue 14 fills it in; None until then)."""

    dice_macro: float
    iou_macro: float
    dice_pooled: float
    iou_pooled: float


class TrialResult(Record):
    """One fully trained trial: its epochs, the best epoch, test results and what it cost."""

    params: TrialParams
    data: DataSpec
    class_names: list[str]
    epochs: list[EpochRow]
    best_epoch: int | None
    best_value: float | None
    monitor: str
    test: TestMetrics
    noise: dict[str, EvalMetrics] = {}
    profile: Profile
    split: SplitInfo
    data_report: DataReport
    timings: Timings
    seed: int
    device: str
    threads: int
    checkpoint_path: str | None = None
    predictions: Predictions | None = Field(None, exclude_if=_unset)
    segmentation: SegmentationMetrics | None = Field(None, exclude_if=_unset)

    @property
    def epochs_done(self) -> int:
        """Epochs trained (early stopping may end before the budget)."""
        return len(self.epochs)
