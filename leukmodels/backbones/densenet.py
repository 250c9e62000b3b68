"""DenseNet-121 (timm ``DenseNet``).

4 stages = dense blocks 1-4 (6 / 12 / 24 / 16 layers); one attention after each dense block
(before its transition), inserted into ``features`` as ``attn1`` .. ``attn4`` (a dense
block is a ModuleDict that runs every child it holds). No native SE; no dilation option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leukmodels.backbones.registry import register_backbone
from leukmodels.backbones.timm_base import TimmBackbone

if TYPE_CHECKING:
    from torch import nn


@register_backbone("densenet121")
class DenseNet121(TimmBackbone):
    """timm ``densenet121``: a stage is one dense block."""

    num_stages = 4
    feature_width = 1024

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        return [[getattr(model.features, f"denseblock{i}")] for i in range(1, self.num_stages + 1)]

    def attention_channels(self, block: nn.Module) -> int:
        last = list(block.children())[-1]  # input + growth of every layer
        return last.norm1.num_features + last.conv2.out_channels

    def add_attention(
        self, model: nn.Module, stage: int, block: nn.Module, attn: nn.Module
    ) -> None:
        from leukmodels.backbones.modules import insert_after

        insert_after(model.features, f"denseblock{stage}", f"attn{stage}", attn)
