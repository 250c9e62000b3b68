"""EfficientNetV2-S and MobileNetV1 (timm's ``EfficientNet`` class; both dilate).

``efficientnetv2_s``: 6 stages: 2 conv (fused, no expansion), 4 / 4 Fused-MBConv, 6 / 9 /
15 MBConv; the MBConv blocks of stages 4-6 have their own SE (30 in all), which
``native_se='replace'`` swaps for the attention. ``mobilenetv1_100``: 5 stages of 1 / 2 / 2
/ 6 / 2 depthwise-separable blocks. The attention ends every block's residual branch (IR
``bn3``, Fused-MBConv / DS ``bn2``, conv ``aa``; see :mod:`leukmodels.backbones.timm_base`).
Dilation: timm's ``output_stride`` 16 or 8.
"""

from __future__ import annotations

from leukmodels.backbones.registry import register_backbone
from leukmodels.backbones.timm_base import TimmBlocks


class EfficientNet(TimmBlocks):
    """timm's ``EfficientNet`` class."""

    dilatable = True
    branch_ends = {
        "InvertedResidual": "bn3",
        "EdgeResidual": "bn2",
        "DepthwiseSeparableConv": "bn2",
        "ConvBnAct": "aa",
    }


@register_backbone("efficientnetv2_s")
class EfficientNetV2S(EfficientNet):
    num_stages = 6
    feature_width = 1280
    native_se_stages = (4, 5, 6)


@register_backbone("mobilenetv1_100")
class MobileNetV1(EfficientNet):
    num_stages = 5
    feature_width = 1024
