"""MobileNetV4 conv small / medium (timm ``MobileNetV3`` class).

``mobilenetv4_conv_small``: 5 stages (timm ``blocks[0..4]``): 2 conv, 2 conv, 6 UIB, 6 UIB,
1 conv (1x1 to 960). ``mobilenetv4_conv_medium``: 5 stages: 1 fused IB, 2 UIB, 8 UIB,
11 UIB, 1 conv. The attention ends every block's residual branch (UIB ``dw_end``, fused
IB ``bn2``, conv ``aa``; see :mod:`leukmodels.backbones.timm_base`). No native SE; timm's
class has no dilation option.
"""

from __future__ import annotations

from leukmodels.backbones.registry import register_backbone
from leukmodels.backbones.timm_base import TimmBlocks


class MobileNetV4(TimmBlocks):
    """timm MobileNetV4 conv models."""

    num_stages = 5
    feature_width = 960
    branch_ends = {"UniversalInvertedResidual": "dw_end", "EdgeResidual": "bn2", "ConvBnAct": "aa"}


@register_backbone("mobilenetv4_conv_small")
class MobileNetV4ConvSmall(MobileNetV4):
    pass


@register_backbone("mobilenetv4_conv_medium")
class MobileNetV4ConvMedium(MobileNetV4):
    pass
