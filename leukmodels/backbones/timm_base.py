"""Adapters for timm models: creation, and the blocks of timm's EfficientNet/MobileNet classes.

:class:`TimmBackbone` creates ``timm.create_model(name, pretrained=False)`` with the global
pooling of ``params.pooling`` (and ``output_stride`` when dilated), removes its classifier
and returns the width of the pooled features it fed. :class:`TimmBlocks` adds the stage and
branch-end rules of timm's ``EfficientNet`` / ``MobileNetV3`` classes (``model.blocks``).

Where the attention sits in a :class:`TimmBlocks` backbone: it ends every block of the
stage (paper 000's "all convolution layers"): on the block's residual branch, after its
last conv/BN (IR ``bn3``, Fused-MBConv / DS ``bn2``, UIB ``dw_end``, conv ``aa``) and
before the skip add, the same rule as for ResNet. On the block's output instead, PCAB and
SCAB (``F + attended``, a gain of 1-2) would compound along the identity path: the
15-block last stage of ``efficientnetv2_s`` grew its features' std from 3.9 to 58 (SCAB)
and 995 (PCAB) at initialisation, and fp16 overflowed to NaN on the GPU; CBAM (a gain
below 1) shrank them instead. The attention module is kept in the block as ``post_attn``
(so the backbone's own state-dict keys do not change) and applied by a forward hook on
the branch's last module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from leukmodels.backbones.base import POOL_TYPES, BackboneAdapter

if TYPE_CHECKING:
    from torch import nn

    from leukmodels.config import TrialParams


class TimmBackbone(BackboneAdapter):
    """A timm model created by name (``timm_name``, default the registry name)."""

    timm_name: ClassVar[str] = ""

    def timm_kwargs(self, params: TrialParams) -> dict[str, Any]:
        """Extra keywords for ``timm.create_model`` (none by default)."""
        return {}

    def create(self, params: TrialParams) -> tuple[nn.Module, int]:
        import timm

        kwargs: dict[str, Any] = {"global_pool": POOL_TYPES[params.pooling]}
        kwargs.update(self.timm_kwargs(params))
        if params.backbone_conv == "dilated":
            kwargs["output_stride"] = params.output_stride
        model = timm.create_model(
            self.timm_name or self.name, pretrained=False, num_classes=1, **kwargs
        )
        in_features = model.get_classifier().in_features
        model.reset_classifier(0)
        return model, in_features

    def head_prefixes(self, model: nn.Module) -> tuple[str, ...]:
        return (model.pretrained_cfg["classifier"] + ".",)


class TimmBlocks(TimmBackbone):
    """timm's EfficientNet / MobileNetV3 classes: stage ``i`` is ``model.blocks[i - 1]``.

    ``branch_ends`` maps a block class name to its residual branch's last module; a block
    with no skip that is not listed is attended on its output (the block itself).
    """

    branch_ends: ClassVar[dict[str, str]] = {}

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        return [list(stage) for stage in model.blocks]

    def branch_end(self, block: nn.Module) -> nn.Module:
        name = self.branch_ends.get(type(block).__name__)
        if name is not None:
            return getattr(block, name)
        if getattr(block, "has_skip", False):
            raise TypeError(f"{self.name}: no attention site known inside {type(block).__name__}")
        return block
