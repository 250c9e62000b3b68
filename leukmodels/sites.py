"""Placement sites and architecture fields per backbone, without importing torch.

The search layer validates spaces against these (fast: no torch, no timm); the model
builder (:mod:`leukmodels.arch`) uses the same tables. Its docstring says what a site
is for each backbone.
"""

from __future__ import annotations

from leukmodels.config import BACKBONES
from leukmodels.errors import UserError

STAGE_COUNTS: dict[str, int] = {
    "resnet18": 4,
    "resnet50": 4,
    "mobilenetv4_conv_small": 5,
    "mobilenetv4_conv_medium": 5,
    "efficientnetv2_s": 6,
    "mobilenetv1_100": 5,
    "mobilenetv3_large_100": 7,
    "densenet121": 4,
}
NATIVE_SE_STAGES: dict[str, tuple[str, ...]] = {
    "efficientnetv2_s": ("stage4", "stage5", "stage6"),
    "mobilenetv3_large_100": ("stage3", "stage5", "stage6"),
}
DILATABLE = ("resnet18", "resnet50", "efficientnetv2_s", "mobilenetv1_100")

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
)
"""TrialParams fields that change the layers (``pretrained`` and ``dropout`` do not)."""


def sites(backbone: str) -> list[str]:
    """The placement sites ``stage1`` .. ``stageN`` of ``backbone``."""
    if backbone not in STAGE_COUNTS:
        raise UserError(f"backbone {backbone!r} is unknown; use one of {list(BACKBONES)}")
    return [f"stage{i}" for i in range(1, STAGE_COUNTS[backbone] + 1)]
