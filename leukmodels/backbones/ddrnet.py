"""DDRNet (paper 002) as a registered backbone, its blocks switched by trial parameters.

The model is :class:`leukmodels.blocks.ddrnet.DDRNet` (its docstring has the wiring and
the widths we chose where the paper gives none) with ``num_classes=0``: LeukNet's head
(dropout, Linear) follows it. Trial parameters (``TrialParams``, ignored by every other
backbone): ``drdb`` (number of DRDBs, 0 = off), ``glfeb`` and ``csab`` (on/off),
``drdb_dilations`` (paper: 1, 2, 4) and ``ddrnet_norm`` (``gn``, the paper's GroupNorm(32),
or ``bn``); ``pooling`` chooses the global pooling as for every backbone.

3 stages (sites): ``stage1`` the stem, ``stage2`` every DRDB (empty when ``drdb=0``),
``stage3`` GLFEB (empty without it). An attention (``attention``, not the block's own
CSAB) ends the stem, each DRDB's fused branch (after the fuse conv + norm, before the
block's skip add) and GLFEB's concatenated output (before the tanh). ``feature_width``
is that of the paper's model (GLFEB on: 2 x 32); without GLFEB it is 32. No native SE;
no ``output_stride`` (the dilation is the DRDB's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leukmodels.backbones.base import POOL_TYPES, BackboneAdapter
from leukmodels.backbones.registry import register_backbone

if TYPE_CHECKING:
    from torch import nn

    from leukmodels.config import TrialParams

DDRNET_FIELDS: tuple[str, ...] = ("drdb", "glfeb", "csab", "drdb_dilations", "ddrnet_norm")
"""The TrialParams fields only this backbone reads."""


@register_backbone("ddrnet")
class DDRNetBackbone(BackboneAdapter):
    """Paper 002's DDRNet: stem, DRDB x ``drdb``, GLFEB, CSAB (each switchable)."""

    num_stages = 3
    feature_width = 64

    def create(self, params: TrialParams) -> tuple[nn.Module, int]:
        from leukmodels.blocks.ddrnet import DDRNet

        model = DDRNet(
            num_classes=0,
            drdb=params.drdb,
            glfeb=params.glfeb,
            csab=params.csab,
            dilations=params.drdb_dilations,
            norm=params.ddrnet_norm,
            drop_rate=0.0,  # LeukNet's head holds the dropout (params.dropout)
            global_pool=POOL_TYPES[params.pooling],
        )
        return model, model.num_features * model.global_pool.feat_mult()

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        return model.stage_groups()

    def branch_end(self, block: nn.Module) -> nn.Module:
        return getattr(block, "fuse", block)  # a DRDB's branch ends at its fuse conv + norm

    def attention_channels(self, block: nn.Module) -> int:
        return int(block.out_channels)

    def native_se_channels(self, block: nn.Module) -> int | None:
        return None
