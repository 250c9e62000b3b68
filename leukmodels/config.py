"""The contract between the search service and one training run.

A trial is a :class:`TrialConfig`: the data protocol (:class:`DataSpec`) and the
flat, searchable parameters (:class:`TrialParams`). ``search`` validates the values a
space may take against these models; ``leukmodels`` builds and trains from them.
Unknown keys are errors (``extra='forbid'``) so a misspelt factor never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from leukmodels import limits as lim
from leukmodels.backbones import backbone_names
from leukmodels.backbones.registry import unknown_backbone_message

VAL_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "specificity",
    "kappa",
    "mcc",
    "auc",
)
"""Test metrics also computed on the validation split every epoch (as ``val_<name>``)."""
EPOCH_METRICS = (
    *(f"val_{m}" for m in VAL_METRICS),
    "val_loss",
    "val_dice",
    "val_iou",
    "train_loss",
    "train_accuracy",
)
"""What every epoch reports that a search may rank by (``search.metric``)."""
EPOCH_TIMINGS = ("lr", "epoch_time_s", "data_time_s", "compute_time_s", "bn_time_s", "val_time_s")
"""The rest of an epoch's row."""


def _registered_backbone(name: str) -> str:
    if name not in backbone_names():
        raise ValueError(unknown_backbone_message(name))
    return name


Backbone = Annotated[str, AfterValidator(_registered_backbone)]
"""A backbone name registered in :mod:`leukmodels.backbones` (built-in or plugin)."""
Attention = Literal["none", "se", "cbam", "pcab", "pcab_heavy", "scab", "csab"]
Pooling = Literal["gap", "gmp", "both"]
Loss = Literal["ce", "weighted_ce", "focal", "label_smoothing", "ce_then_focal"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop"]
Schedule = Literal["constant", "cosine", "step", "plateau"]
ColorSpace = Literal["rgb", "hsv", "lab", "hed"]
Family = Literal["classifier", "mta_cnn"]
SegLoss = Literal["bce", "dice", "focal"]

ATTENTIONS: tuple[str, ...] = get_args(Attention)
POOLINGS: tuple[str, ...] = get_args(Pooling)
LOSSES: tuple[str, ...] = get_args(Loss)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
COLOR_SPACES: tuple[str, ...] = get_args(ColorSpace)


class _Strict(BaseModel):
    # revalidate_instances: a DataSpec changed by model_copy(update=...) (the command
    # line's data overrides) meets every bound again when a TrialConfig is built from it
    model_config = ConfigDict(extra="forbid", frozen=False, revalidate_instances="always")


class TrialParams(_Strict):
    """Everything a search may vary for one trial; defaults are the plain baseline."""

    # --- architecture ---------------------------------------------------------------
    backbone: Backbone = "resnet18"
    pretrained: str | None = Field(
        None, description="local path to a state dict; weights are never downloaded"
    )
    attention: Attention = "none"
    placement: list[str] | Literal["all"] = Field(
        "all", description="attention sites: 'all' or a list of 'stage1'..'stageN'"
    )
    attention_reduction: int = Field(16, ge=1)
    attention_pooling: Pooling = "both"
    spatial_conv: Literal["standard", "dilated"] | None = Field(
        None, description="spatial conv of the attention block; None = the block's default"
    )
    spatial_kernel: int | None = Field(None, ge=1, le=lim.MAX_KERNEL)
    native_se: Literal["keep", "replace"] = Field(
        "keep",
        description="EfficientNet/MobileNetV3 own SE: keep it, or replace it by the attention",
    )
    backbone_conv: Literal["standard", "dilated"] = "standard"
    output_stride: Literal[8, 16] = Field(16, description="used when backbone_conv is dilated")
    pooling: Pooling = "gap"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    head_bn: bool = False
    # DDRNet (backbone 'ddrnet', paper 002): its blocks as factors; other backbones ignore them
    drdb: int = Field(1, ge=0, le=lim.MAX_DRDB, description="ddrnet: number of DRDBs (0 = off)")
    glfeb: bool = Field(True, description="ddrnet: the GLFEB block (+ tanh) on or off")
    csab: bool = Field(True, description="ddrnet: its CSAB block (after GLFEB) on or off")
    drdb_dilations: list[int] = Field(
        default_factory=lambda: [1, 2, 4],
        min_length=1,
        max_length=lim.MAX_DRDB_PATHS,
        description="ddrnet: dilation of each DRDB dilated path (one plain path before each)",
    )
    ddrnet_norm: Literal["gn", "bn"] = Field(
        "gn", description="ddrnet: GroupNorm (paper) or BatchNorm in the stem, DRDB and GLFEB"
    )
    # Multi-task (paper 001's MTA-CNN): family 'mta_cnn' replaces backbone + head by a
    # shared encoder with a classification branch and, for task 'multi', a segmentation one
    family: Family = Field(
        "classifier", description="classifier (backbone + head) or mta_cnn (paper 001)"
    )
    task: Literal["single", "multi"] = Field(
        "single", description="mta_cnn: classification only, or + nucleus segmentation"
    )
    coupling: bool = Field(False, description="mta_cnn multi: task coupling alpha=sigmoid(beta)")
    encoder: str = Field(
        "plain", description="mta_cnn: 'plain' (paper's conv-BN-dropout) or a backbone name"
    )
    decoder: Literal["unet", "transunet"] = "unet"
    cls_head: Literal["flat", "hierarchical"] = Field(
        "flat", description="mta_cnn: N-class head, or leukaemic-or-not then subtype"
    )
    task_width: int = Field(128, ge=1, le=lim.MAX_TASK_WIDTH)
    task_depth: int = Field(2, ge=1, le=lim.MAX_TASK_DEPTH)
    seg_loss: SegLoss = "focal"
    cls_weight: float = Field(1.0, ge=0.0, description="mta_cnn: weight of the class loss")
    seg_weight: float = Field(1.0, ge=0.0, description="mta_cnn: weight of the mask loss")

    # --- loss -----------------------------------------------------------------------
    loss: Loss = "ce"
    focal_gamma: float = Field(2.0, ge=0.0)
    focal_alpha: float | None = Field(0.25, ge=0.0, le=1.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    focal_switch_epoch: int = Field(5, ge=0)

    # --- optimiser and schedule -------------------------------------------------------
    optimizer: Optimizer = "sgd"
    lr: float = Field(0.01, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    beta1: float = Field(0.9, gt=0.0, lt=1.0)
    beta2: float = Field(0.999, gt=0.0, lt=1.0)
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on the classifier weights")
    schedule: Schedule = "constant"
    min_lr: float = Field(1e-6, ge=0.0)
    step_size: int = Field(10, ge=1)
    step_gamma: float = Field(0.1, gt=0.0)
    plateau_patience: int = Field(5, ge=0)
    plateau_factor: float = Field(0.1, gt=0.0, lt=1.0)
    epochs: int = Field(30, ge=1, le=lim.MAX_EPOCHS)
    batch_size: int = Field(32, ge=1, le=lim.MAX_BATCH_SIZE)
    patience: int | None = Field(
        None, ge=1, le=lim.MAX_EPOCHS, description="early-stopping patience in epochs"
    )
    precise_bn: bool = Field(
        True,
        description="recompute BatchNorm statistics on the training set before each evaluation",
    )
    seed: int = Field(0, ge=0, le=lim.MAX_SEED)

    # --- pre-processing, balancing, augmentation, robustness -------------------------
    clahe: bool = False
    stain_norm: Literal["none", "reinhard"] = "none"
    color_space: ColorSpace = "rgb"
    nucleus_crop: bool = False
    balance: Literal["none", "hsv_desat"] = "none"
    offline_noise: list[float] = Field(default_factory=list, max_length=lim.MAX_NOISE_LEVELS)
    augment: list[Any] | str | None = Field(
        None, description="albumentations list or a preset name; None = the data section's"
    )
    test_noise: list[float] = Field(default_factory=list, max_length=lim.MAX_NOISE_LEVELS)
    uncertain_below: float = Field(0.7, ge=0.0, le=1.0)

    @field_validator("placement")
    @classmethod
    def _sites(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list):
            if not v:
                raise ValueError("placement must name at least one site or be 'all'")
            if len(set(v)) != len(v) or len(v) > lim.MAX_SITES:
                raise ValueError(f"placement names at most {lim.MAX_SITES} distinct sites")
            bad = [s for s in v if not (s.startswith("stage") and s[5:].isdigit())]
            if bad:
                raise ValueError(f"unknown site(s) {bad}; sites are 'stage1'..'stageN' or 'all'")
        return v

    @field_validator("drdb_dilations")
    @classmethod
    def _dilations(cls, v: list[int]) -> list[int]:
        if any(not 1 <= d <= lim.MAX_DILATION for d in v):
            raise ValueError(f"drdb_dilations must each be 1..{lim.MAX_DILATION}")
        return v

    @field_validator("encoder")
    @classmethod
    def _encoder(cls, v: str) -> str:
        if v != "plain" and v not in backbone_names():
            raise ValueError(f"encoder {v!r}: use 'plain' or a backbone, {backbone_names()}")
        return v

    @field_validator("offline_noise", "test_noise")
    @classmethod
    def _sigmas(cls, v: list[float]) -> list[float]:
        if any(not 0 <= s <= lim.MAX_SIGMA for s in v):
            raise ValueError("noise sigmas are on the 0-255 scale: each must be 0..255")
        return v


class SplitSpec(_Strict):
    """How a dataset is divided; always before any augmentation or balancing."""

    kind: Literal["holdout", "kfold", "predefined"] = "holdout"
    train: float = Field(0.8, gt=0.0, lt=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)
    k: int = Field(5, ge=2, le=lim.MAX_FOLDS)
    fold: int = Field(0, ge=0)
    group: Literal["auto", "patient", "none"] = Field(
        "auto", description="auto: group by patient whenever the data knows patients"
    )
    seed: int = Field(0, ge=0, le=lim.MAX_SEED)
    val_from_train: float = Field(
        0.1, ge=0.0, lt=1.0, description="kfold/predefined: validation share carved from train"
    )

    @model_validator(mode="after")
    def _fractions(self) -> SplitSpec:
        if self.kind == "holdout" and abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(
                f"holdout fractions must sum to 1 (train {self.train} + val {self.val} "
                f"+ test {self.test} = {self.train + self.val + self.test:g})"
            )
        if self.kind == "kfold" and self.fold >= self.k:
            raise ValueError(f"fold {self.fold} does not exist for k={self.k} (folds are 0..k-1)")
        return self


class DataSpec(_Strict):
    """Which images and which protocol; fixed for a study (a profile may change it)."""

    dataset: str = "synthetic"
    root: str | None = Field(
        None, description="data root; default LEUKSEARCH_DATA or ~/.leuksearch/data"
    )
    subset: str | None = Field(None, description="dataset part, e.g. cnmc2019 fold_0")
    classes: int = Field(2, ge=2, description="synthetic: number of classes (2 or 4)")
    n: int = Field(1200, ge=8, le=lim.MAX_IMAGES, description="synthetic: number of images")
    patients: int = Field(
        40, ge=2, le=lim.MAX_PATIENTS, description="synthetic: number of simulated patients"
    )
    difficulty: Literal["standard", "hard"] = Field(
        "standard",
        description="synthetic: 'hard' tells classes apart by nucleus shape only (histogram "
        "and texture baselines stay near chance)",
    )
    split: SplitSpec = Field(default_factory=SplitSpec)
    image_size: int = 224
    limit: int | None = Field(
        None, ge=8, le=lim.MAX_IMAGES, description="use at most this many images (stratified)"
    )
    augment: list[Any] | str = Field(default_factory=list)
    positive_class: str | None = None
    skip_bad_images: bool = False
    near_duplicates: Literal["group", "ignore"] = Field(
        "group",
        description="near-duplicate images (augmented copies) go to one split group, or are "
        "only counted (ignore); identical files are always de-duplicated",
    )
    cache_dir: str | None = None
    workers: int = Field(0, ge=0, le=lim.MAX_WORKERS)

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, v: int) -> int:
        if not lim.MIN_IMAGE_SIZE <= v <= lim.MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be {lim.MIN_IMAGE_SIZE}..{lim.MAX_IMAGE_SIZE} px (images are "
                f"decoded at up to {lim.MAX_IMAGE_SIZE} px, and the backbones need at least "
                f"{lim.MIN_IMAGE_SIZE})"
            )
        return v

    @model_validator(mode="after")
    def _synthetic_memory(self) -> DataSpec:
        if self.dataset == "synthetic" and (
            problem := lim.synthetic_problem(self.n, self.image_size)
        ):
            raise ValueError(problem)
        return self


class TrialConfig(_Strict):
    """One trial: the data protocol and the parameters, plus the CPU threads it was given."""

    data: DataSpec = Field(default_factory=DataSpec)
    params: TrialParams = Field(default_factory=TrialParams)
    threads: int | None = Field(None, ge=1)
    device: str | None = None
    checkpoint_dir: str | None = None
    monitor: str = Field(
        "val_f1", description="validation metric for the best epoch and early stopping"
    )
    monitor_mode: Literal["max", "min"] = "max"

    @model_validator(mode="after")
    def _batch_memory(self) -> TrialConfig:
        if problem := lim.batch_input_problem(self.params.batch_size, self.data.image_size):
            raise ValueError(problem)
        return self


def __getattr__(name: str) -> tuple[str, ...]:
    """``BACKBONES``: the registered backbone names, read from the registry when asked."""
    if name == "BACKBONES":
        return tuple(backbone_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
