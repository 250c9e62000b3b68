"""MobileNetV3-Large (timm ``MobileNetV3`` class).

``mobilenetv3_large_100``: 7 stages: 1 DS, 2 / 3 / 4 / 2 / 3 IR, 1 conv. The attention ends
every block's residual branch (IR ``bn3``, DS ``bn2``, conv ``aa``; see
:mod:`leukmodels.backbones.timm_base`). The IR blocks of stages 3, 5 and 6 have their own
SE (8 in all), which ``native_se='replace'`` swaps for the attention. No dilation option.
"""

from __future__ import annotations

from leukmodels.backbones.registry import register_backbone
from leukmodels.backbones.timm_base import TimmBlocks


@register_backbone("mobilenetv3_large_100")
class MobileNetV3Large(TimmBlocks):
    """timm ``mobilenetv3_large_100``."""

    num_stages = 7
    feature_width = 960
    native_se_stages = (3, 5, 6)
    branch_ends = {"DepthwiseSeparableConv": "bn2", "InvertedResidual": "bn3", "ConvBnAct": "aa"}
