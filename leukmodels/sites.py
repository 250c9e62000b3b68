"""Placement sites and architecture fields per backbone, without importing torch.

The search layer validates spaces against these (fast: no torch, no timm); the model
builder (:mod:`leukmodels.arch`) uses the same registry. Everything per backbone is
derived from the backbone adapters (:mod:`leukmodels.backbones`, one file per family,
whose docstrings say what a site is); the tables ``STAGE_COUNTS``, ``NATIVE_SE_STAGES``
and ``DILATABLE`` are computed from the registry when read, so plugins appear in them.
"""

from __future__ import annotations

from typing import Any

from leukmodels.backbones import backbone_names, get_backbone

MTA_FIELDS: tuple[str, ...] = (
    "family",
    "task",
    "coupling",
    "encoder",
    "decoder",
    "cls_head",
    "task_width",
    "task_depth",
)
"""The TrialParams fields that shape an ``mta_cnn`` model (only those)."""

ARCH_FIELDS: tuple[str, ...] = (
    "backbone",
    "attention",
    "placement",
    "attention_reduction",
    "attention_pooling",
    "spatial_conv",
    "spatial_kernel",
    "native_se",
    "backbone_conv",
    "output_stride",
    "pooling",
    "head_bn",
    "drdb",
    "glfeb",
    "csab",
    "drdb_dilations",
    "ddrnet_norm",
    *MTA_FIELDS,
)
"""TrialParams fields that change the layers (``pretrained`` and ``dropout`` do not); the
DDRNet block fields (``drdb`` .. ``ddrnet_norm``) only for ``backbone='ddrnet'``, the
multi-task fields (``task`` .. ``task_depth``) only for ``family='mta_cnn'``."""


def sites(backbone: str) -> list[str]:
    """The placement sites ``stage1`` .. ``stageN`` of ``backbone``."""
    return get_backbone(backbone).sites()


def native_se_sites(backbone: str) -> list[str]:
    """The sites of ``backbone`` whose blocks have their own SE (may be empty)."""
    return get_backbone(backbone).native_se_sites()


def stage_counts() -> dict[str, int]:
    """Backbone -> number of stages."""
    return {n: get_backbone(n).num_stages for n in backbone_names()}


def native_se_stages() -> dict[str, tuple[str, ...]]:
    """Backbone -> its native-SE sites, for the backbones that have any."""
    return {n: tuple(s) for n in backbone_names() if (s := native_se_sites(n))}


def dilatable() -> tuple[str, ...]:
    """The backbones that build a dilated version (``backbone_conv='dilated'``)."""
    return tuple(n for n in backbone_names() if get_backbone(n).dilatable)


_TABLES = {
    "STAGE_COUNTS": stage_counts,
    "NATIVE_SE_STAGES": native_se_stages,
    "DILATABLE": dilatable,
}


def __getattr__(name: str) -> Any:
    """The tables ``STAGE_COUNTS``, ``NATIVE_SE_STAGES``, ``DILATABLE``, read live."""
    if name in _TABLES:
        return _TABLES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
