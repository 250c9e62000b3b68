"""ResNet-18 / ResNet-50 (timm ``ResNet``).

4 stages = ``layer1`` .. ``layer4`` (2/2/2/2 BasicBlocks; 3/4/6/3 Bottlenecks). The
attention goes inside every block of the stage, after the last conv/BN (``bn2``;
Bottleneck ``bn3``) and before the residual add, as paper 000 does (timm's block ``se``
slot). The blocks' last BN is not zero-initialised (timm's ``zero_init_last=False``, as
torchvision and paper 000's code), so the attention sees non-zero features and gets
gradients from the first step. Dilation: timm's ``output_stride`` 16 or 8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leukmodels.backbones.registry import register_backbone
from leukmodels.backbones.timm_base import TimmBackbone

if TYPE_CHECKING:
    from torch import nn

    from leukmodels.config import TrialParams


class ResNet(TimmBackbone):
    """timm ResNets: stages ``layer1`` .. ``layer4``, attention in the blocks' ``se`` slot."""

    num_stages = 4
    dilatable = True

    def timm_kwargs(self, params: TrialParams) -> dict[str, Any]:
        # timm zero-initialises each block's last BN, which would feed the attention
        # (placed after that BN) zeros and give it no gradient at the first step
        return {"zero_init_last": False}

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        return [list(getattr(model, f"layer{i}")) for i in range(1, self.num_stages + 1)]

    def branch_end(self, block: nn.Module) -> nn.Module:
        return block.bn3 if hasattr(block, "bn3") else block.bn2  # Bottleneck / BasicBlock

    def attention_channels(self, block: nn.Module) -> int:
        return self.branch_end(block).num_features

    def native_se_channels(self, block: nn.Module) -> int | None:
        return None  # the ``se`` slot is empty in these ResNets: the attention goes there

    def add_attention(
        self, model: nn.Module, stage: int, block: nn.Module, attn: nn.Module
    ) -> None:
        block.se = attn  # timm applies it after bn2/bn3, before the residual add


@register_backbone("resnet18")
class ResNet18(ResNet):
    feature_width = 512


@register_backbone("resnet50")
class ResNet50(ResNet):
    feature_width = 2048
