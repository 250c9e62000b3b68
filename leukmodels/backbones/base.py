"""The :class:`BackboneAdapter` base: what leukmodels needs to know about a backbone.

Class attributes are the metadata (read without torch); the methods build and edit the
model and import torch or timm inside themselves, so that the search layer can validate
a space against the registry without importing either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import nn

    from leukmodels.config import TrialParams

POOL_TYPES = {"gap": "avg", "gmp": "max", "both": "catavgmax"}
"""``TrialParams.pooling`` -> timm's ``global_pool`` name."""


class BackboneAdapter:
    """One backbone: how to create it, its stages (sites) and where attention goes.

    Subclass it, set the metadata, implement :meth:`create` and :meth:`stages`, and
    register the subclass with ``@register_backbone("name")``. The defaults of the other
    methods fit a backbone whose blocks have no skip connection of their own, or whose
    residual branch ends where :meth:`branch_end` says: the attention is kept in the
    block as ``post_attn`` and applied by a forward hook on the branch's last module.
    """

    name: str = ""
    """The registry name (``TrialParams.backbone``); set by ``register_backbone``."""
    num_stages: ClassVar[int] = 0
    """How many stages, i.e. placement sites ``stage1`` .. ``stageN``."""
    feature_width: ClassVar[int] = 0
    """Channels of the last feature map (``forward_features``), before any pooling."""
    native_se_stages: ClassVar[tuple[int, ...]] = ()
    """Stages (1-based) whose every block has its own SE (``native_se='replace'``)."""
    dilatable: ClassVar[bool] = False
    """Whether :meth:`create` honours ``backbone_conv='dilated'`` (``output_stride``)."""

    # --- metadata (no torch) ------------------------------------------------------------

    def sites(self) -> list[str]:
        """The placement sites ``stage1`` .. ``stageN``."""
        return [f"stage{i}" for i in range(1, self.num_stages + 1)]

    def native_se_sites(self) -> list[str]:
        """The sites whose blocks carry their own SE, in stage order."""
        return [f"stage{i}" for i in sorted(self.native_se_stages)]

    # --- building (torch inside) ----------------------------------------------------------

    def create(self, params: TrialParams) -> tuple[nn.Module, int]:
        """A fresh, randomly initialised backbone and the width of its output.

        The module's ``forward(x)`` returns pooled features ``(B, width)`` (global pooling
        from ``params.pooling``, see :data:`POOL_TYPES`); ``forward_features(x)`` returns
        the last feature map ``(B, feature_width, h, w)``. A dilatable backbone reads
        ``params.backbone_conv`` / ``params.output_stride``. Never downloads weights.
        :class:`leukmodels.backbones.modules.PooledBackbone` wraps any feature extractor.
        """
        raise NotImplementedError

    def stages(self, model: nn.Module) -> list[list[nn.Module]]:
        """The blocks of each stage of ``model`` (what :meth:`create` returned), in order."""
        raise NotImplementedError

    def branch_end(self, block: nn.Module) -> nn.Module:
        """The last module of ``block``'s residual branch (the block itself by default)."""
        return block

    def attention_channels(self, block: nn.Module) -> int:
        """Channels at the attention site of ``block`` (default: its last BN, else conv)."""
        from torch import nn

        norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
        if norms:
            return norms[-1].num_features
        return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels

    def add_attention(
        self, model: nn.Module, stage: int, block: nn.Module, attn: nn.Module
    ) -> None:
        """Put ``attn`` at the end of ``block``'s residual branch (in ``stage``, 1-based).

        Default: kept as ``block.post_attn`` (the backbone's own state-dict keys do not
        change) and applied by a forward hook on :meth:`branch_end`. A container that runs
        every child (``nn.Sequential``, a ModuleDict block) would run ``post_attn`` twice:
        override this method for such blocks (e.g. with ``modules.insert_after``).
        """
        from torch import nn

        from leukmodels.backbones.modules import hook_attention

        if isinstance(block, nn.Sequential | nn.ModuleDict | nn.ModuleList):
            raise TypeError(
                f"{self.name}: a {type(block).__name__} block runs every child, so it cannot "
                "hold post_attn; override add_attention"
            )
        block.post_attn = attn
        hook_attention(self.branch_end(block), attn)

    def native_se_channels(self, block: nn.Module) -> int | None:
        """Input channels of ``block``'s own SE, or ``None`` when it has none."""
        from torch import nn

        se = getattr(block, "se", None)
        if se is None or isinstance(se, nn.Identity):
            return None
        return next(m for m in se.modules() if isinstance(m, nn.Conv2d)).in_channels

    def replace_native_se(self, block: nn.Module, attn: nn.Module | None) -> None:
        """Put ``attn`` in place of ``block``'s own SE (``None``: remove the SE)."""
        from torch import nn

        block.se = attn if attn is not None else nn.Identity()

    def head_prefixes(self, model: nn.Module) -> tuple[str, ...]:
        """State-dict key prefixes of the backbone's own classifier, skipped when loading
        a backbone-only state dict (none by default)."""
        return ()

    def describe(self) -> dict[str, Any]:
        """The metadata as a plain dict."""
        return {
            "name": self.name,
            "stages": self.num_stages,
            "feature_width": self.feature_width,
            "native_se_sites": self.native_se_sites(),
            "dilatable": self.dilatable,
        }
