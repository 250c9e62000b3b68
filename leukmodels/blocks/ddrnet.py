"""DDRNet (paper 002, Jawahar et al. 2024) built from its blocks, each one switchable.

Sequence (the paper's Fig. 1, rebuilt from its prose; it has no layer table)::

    stem -> DRDB x n -> GLFEB (-> tanh) -> CSAB (+ GLFEB's output) -> BN -> pool -> dropout -> FC

- **Stem** (paper: "conv 3x3, 32 filters, max-pool, GroupNorm(32), ReLU"): conv 3x3 with
  ``stem_width`` (32) filters, **stride 2** (our choice: the paper gives no stride; stride 2
  + the 2x2 max-pool puts every later block at 1/4 of the input, 56x56 at 224 px and 16x16
  at 64 px, which keeps the full model near 1 GFLOP at 224 px) -> max-pool 2x2 -> norm -> ReLU.
  Its output is the "global feature" GLFEB concatenates.
- **DRDB** (:class:`DRDB`): ``2 * len(dilations)`` sub-blocks in sequence, alternating a
  residual conv path (conv-norm-ReLU-conv-norm + skip) and a residual dilated path (the
  same with both convs dilated; paper: dilations 1, 2, 4 for sub-blocks 2, 4, 6). Each
  sub-block feeds the next; the six outputs are concatenated and fused by a 1x1 conv + norm
  (the paper says "a final conv"; the 1x1 kernel is ours), then added to the block's input
  (a block-level skip, as in the residual dense blocks the DRDB derives from; ours, so that
  stacked DRDBs stay residual). Dropout (``path_dropout``, ``Dropout2d``; the paper gives no
  rate) sits at the end of each sub-block's residual branch, before the skip add. Width:
  the stem's ``stem_width`` throughout (the paper gives none; keeping it lets the skips and
  GLFEB's concatenation line up without projections).
- **GLFEB** (:class:`GLFEB`): three conv-norm-ReLU layers of 64, 128 and 128 channels (paper:
  "64x3x3x64 and 128x3x3x128"), a conv 3x3 to ``c = stem_width`` channels, concatenated
  with the stem's output (``2c`` channels, the paper's "final output 64x3x3x2c"). The
  tanh is applied by the model after it.
- **CSAB**: the registry's ``csab`` (:mod:`leukmodels.blocks.attention`) on the tanh output,
  summed with "the output from the convolution of GLFEB". That conv has ``c`` channels and
  the CSAB output ``2c``, which cannot be added; we add GLFEB's concatenated output (its conv
  output and the stem feature, before the tanh), the ``2c``-channel tensor the tanh reads.
- **Head**: BatchNorm2d on the feature map (always BN, as the paper), then the head of
  timm models: global pooling (``avg`` / ``max`` / ``catavgmax``), dropout (0.2), Linear.

Switched-off blocks are skipped: without GLFEB, CSAB reads the DRDB (or stem) output and
is added to it; without CSAB the features are GLFEB's tanh output (or the DRDB/stem
output). ``norm='gn'`` uses ``GroupNorm(min(gn_groups, C))`` (paper: 32 groups) in the stem,
DRDB and GLFEB; ``norm='bn'`` uses BatchNorm2d there instead.

The model follows timm's interface (``forward_features``, ``forward_head``,
``num_features``, ``get_classifier``, ``reset_classifier``, ``feature_info``), so
``DDRNet(num_classes=0)`` is a backbone that returns pooled features and can sit in
:class:`leukmodels.arch.LeukNet`. :meth:`DDRNet.stages` names its stages
(``stem``, ``drdb1`` .. ``drdbN``, ``glfeb``) for attention sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn

from leukmodels.blocks.attention import create_attn
from leukmodels.errors import UserError

Norm = Literal["gn", "bn"]
NORMS: tuple[str, ...] = ("gn", "bn")
DEFAULT_DILATIONS: tuple[int, ...] = (1, 2, 4)
GLFEB_WIDTHS: tuple[int, int, int] = (64, 128, 128)
GLOBAL_POOLS = ("avg", "max", "catavgmax")


def make_norm(norm: str, channels: int, gn_groups: int = 32) -> nn.Module:
    """``GroupNorm(min(gn_groups, channels))`` for ``'gn'``, ``BatchNorm2d`` for ``'bn'``."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm != "gn":
        raise UserError(f"DDRNet norm {norm!r} is unknown; use one of {list(NORMS)}")
    groups = min(gn_groups, channels)
    if groups < 1 or channels % groups:
        raise UserError(f"GroupNorm: {channels} channels do not split into {groups} groups")
    return nn.GroupNorm(groups, channels)


def conv_norm_act(
    cin: int, cout: int, norm: str, gn_groups: int = 32, dilation: int = 1, act: bool = True
) -> nn.Sequential:
    """3x3 conv (``padding = dilation``, size kept) -> norm [-> ReLU]."""
    layers = [
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
        make_norm(norm, cout, gn_groups),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Stem(nn.Module):
    """conv 3x3 / 2 -> max-pool 2x2 -> norm -> ReLU (output stride 4)."""

    def __init__(self, in_chans: int, width: int, norm: str, gn_groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.norm = make_norm(norm, width, gn_groups)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = width

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.pool(self.conv(x))))


class ResidualPath(nn.Module):
    """``ReLU(x + drop(norm(conv(ReLU(norm(conv(x)))))))``, both convs with ``dilation``."""

    def __init__(
        self, channels: int, norm: str, gn_groups: int, dilation: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.dilation = dilation
        self.branch = nn.Sequential(
            conv_norm_act(channels, channels, norm, gn_groups, dilation),
            conv_norm_act(channels, channels, norm, gn_groups, dilation, act=False),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.branch(x))


class DRDB(nn.Module):
    """Deep residual dilated block: alternating residual conv / dilated paths, concat, fuse.

    Sub-block ``2i`` is a plain residual path, ``2i + 1`` a residual path with dilation
    ``dilations[i]``; the ``2 * len(dilations)`` outputs are concatenated, fused by a 1x1
    conv + norm and added to the input.
    """

    def __init__(
        self,
        channels: int,
        norm: str = "gn",
        gn_groups: int = 32,
        dilations: Sequence[int] = DEFAULT_DILATIONS,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not dilations or any(int(d) < 1 for d in dilations):
            raise UserError(f"DRDB dilations must be >= 1 and not empty, got {list(dilations)}")
        paths = []
        for d in dilations:
            paths.append(ResidualPath(channels, norm, gn_groups, 1, dropout))
            paths.append(ResidualPath(channels, norm, gn_groups, int(d), dropout))
        self.paths = nn.ModuleList(paths)
        self.fuse = nn.Sequential(
            nn.Conv2d(channels * len(paths), channels, 1, bias=False),
            make_norm(norm, channels, gn_groups),
        )
        self.act = nn.ReLU(inplace=True)
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        outs, h = [], x
        for path in self.paths:
            h = path(h)
            outs.append(h)
        return self.act(x + self.fuse(torch.cat(outs, dim=1)))


class GLFEB(nn.Module):
    """Global and local feature enhancement: 3 conv-norm-ReLU, a conv, concat with the stem.

    ``forward(local, global_)`` returns ``cat([conv(...(local)), global_])`` with
    ``out_channels + global_channels`` channels (the block's ``out_channels``; the global
    feature has ``in_channels`` unless ``global_channels`` says otherwise; the model
    applies the tanh).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "gn",
        gn_groups: int = 32,
        widths: Sequence[int] = GLFEB_WIDTHS,
        global_channels: int | None = None,
    ) -> None:
        super().__init__()
        layers, cin = [], in_channels
        for w in widths:
            layers.append(conv_norm_act(cin, int(w), norm, gn_groups))
            cin = int(w)
        self.layers = nn.Sequential(*layers)
        self.conv = nn.Conv2d(cin, out_channels, 3, padding=1)
        global_channels = in_channels if global_channels is None else global_channels
        self.global_channels = global_channels
        self.out_channels = out_channels + global_channels

    def forward(self, local: Tensor, global_: Tensor) -> Tensor:
        return torch.cat([self.conv(self.layers(local)), global_], dim=1)


class DDRNet(nn.Module):
    """DDRNet with each block switchable (see the module docstring for the wiring).

    ``num_classes=0`` gives a backbone: ``forward`` returns the pooled features
    (``num_features`` wide, doubled by ``global_pool='catavgmax'``).
    """

    def __init__(
        self,
        num_classes: int = 4,
        in_chans: int = 3,
        drdb: int = 1,
        glfeb: bool = True,
        csab: bool = True,
        dilations: Sequence[int] = DEFAULT_DILATIONS,
        norm: Norm = "gn",
        stem_width: int = 32,
        gn_groups: int = 32,
        path_dropout: float = 0.1,
        drop_rate: float = 0.2,
        global_pool: str = "avg",
        attn_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if int(drdb) < 0:
            raise UserError(f"DDRNet drdb (number of DRDBs) must be >= 0, got {drdb}")
        self.config = {
            "drdb": int(drdb),
            "glfeb": bool(glfeb),
            "csab": bool(csab),
            "dilations": tuple(int(d) for d in dilations),
            "norm": norm,
        }
        c = stem_width
        self.stem = Stem(in_chans, c, norm, gn_groups)
        self.drdbs = nn.Sequential(
            *(DRDB(c, norm, gn_groups, dilations, path_dropout) for _ in range(int(drdb)))
        )
        self.glfeb = GLFEB(c, c, norm, gn_groups) if glfeb else None
        self.num_features = 2 * c if glfeb else c
        attn = create_attn("csab", self.num_features, **(attn_options or {})) if csab else None
        self.csab = attn
        self.norm = nn.BatchNorm2d(self.num_features)
        self.drop_rate = drop_rate
        self.reset_classifier(num_classes, global_pool)
        self.feature_info = [
            {"num_chs": c, "reduction": 4, "module": name} for name, _ in self.stages()
        ]
        self.feature_info[-1]["num_chs"] = self.num_features
        self.pretrained_cfg = {"classifier": "fc"}

    def stages(self) -> list[tuple[str, nn.Module]]:
        """The stages in order, named ``stem``, ``drdb1`` .. ``drdbN``, ``glfeb``."""
        out: list[tuple[str, nn.Module]] = [("stem", self.stem)]
        out += [(f"drdb{i + 1}", m) for i, m in enumerate(self.drdbs)]
        if self.glfeb is not None:
            out.append(("glfeb", self.glfeb))
        return out

    def stage_groups(self) -> list[list[nn.Module]]:
        """Three fixed stages for a backbone adapter: ``[[stem], [drdb, ...], [glfeb]]``.

        A switched-off block leaves its stage empty. Every block has ``out_channels`` (the
        width of its output, where an attention after it would sit); a DRDB's residual
        branch ends at its ``fuse`` (conv + norm, before the skip add).
        """
        return [[self.stem], list(self.drdbs), [self.glfeb] if self.glfeb is not None else []]

    def get_classifier(self) -> nn.Module:
        """The final Linear (``nn.Identity`` when ``num_classes=0``)."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New head for ``num_classes`` outputs (0: none), optionally a new pooling."""
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise UserError(f"global_pool {global_pool!r}: use one of {list(GLOBAL_POOLS)}")
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
            self.head_drop = nn.Dropout(self.drop_rate)
        self.num_classes = int(num_classes)
        width = self.num_features * self.global_pool.feat_mult()
        self.fc = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """The BN-normalised feature map (``num_features`` x H/4 x W/4)."""
        stem = self.stem(x)
        h = self.drdbs(stem)
        if self.glfeb is not None:
            h = self.glfeb(h, stem)
        attended = torch.tanh(h) if self.glfeb is not None else h
        if self.csab is not None:
            attended = h + self.csab(attended)
        return self.norm(attended)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool -> dropout -> Linear (``pre_logits``: stop before the Linear)."""
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def ddrnet_label(drdb: int, glfeb: bool, csab: bool) -> str:
    """The paper's Table 6 row name, e.g. ``conv+DRDB+GLFEB+CSAB`` (``xN`` for N DRDBs)."""
    parts = ["conv"]
    if drdb:
        parts.append("DRDB" + (f"x{drdb}" if drdb > 1 else ""))
    if glfeb:
        parts.append("GLFEB")
    if csab:
        parts.append("CSAB")
    return "+".join(parts)
