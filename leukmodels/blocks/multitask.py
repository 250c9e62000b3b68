"""MTA-CNN (paper 001, Yalcin et al. 2025): classification + nucleus segmentation, coupled.

The paper gives no layer widths; the factors are its own (coupling on/off, hierarchical vs
flat head, segmentation loss, loss weights) and the layout is ours::

    x -> shared encoder -> [f_2, f_4, f_8, f_16, f_32]        (multi-scale feature maps)
    f_32 -> 1x1 proj -> cls block 1 .. L  -+- pool -> head -> logits (N classes)
                         |  coupling  |    |
    f_32 -> 1x1 proj -> seg block 1 .. L  -+- U-Net decoder with skips f_16 .. f_2
                                              -> mask logits (1 x H x W, input size)

- **Encoder** (:class:`FeatureEncoder`): any module returning a list of feature maps, shallow
  to deep, with ``channels`` and ``reductions`` attributes. :class:`PlainEncoder` is the
  paper's (3x3 convs, BN, ReLU, dropout 0.2): 5 stages at strides 2 .. 32.
  :class:`TimmEncoder` wraps ``timm.create_model(name, features_only=True,
  pretrained=False)`` (resnet18: 64/64/128/256/512 channels at strides 2 .. 32).
- **Task branches**: each task has its own sub-network on the deepest map, ``depth`` (L)
  blocks of ``width`` channels: conv-BN-ReLU blocks for the classification branch; for the
  segmentation branch conv-BN-ReLU blocks (``decoder='unet'``) or transformer blocks over
  the map's tokens (``decoder='transunet'``: timm ViT blocks, learned position embedding
  resampled to the map's size; TransUNet's hybrid CNN-encoder + ViT bottleneck).
- **Coupling** (paper Eqs. 4-11, "task-to-task connections" TTC): after each of the L
  blocks, ``c <- c + alpha_cs * s`` and ``s <- s + alpha_sc * c`` (both from the blocks'
  outputs), ``alpha = sigmoid(beta)`` with one learnable ``beta`` per direction and block;
  ``alpha^{pp} = 1`` (a branch keeps its own features). ``coupling=False``: the branches
  are independent (only the encoder is shared). ``beta`` starts at ``logit(coupling_init)``
  (0.1 by default; the paper gives no initial value).
- **Decoder**: U-Net cascade from the segmentation branch's output: per skip (deep to
  shallow) bilinear upsampling to the skip's size, concatenation, two conv-BN-ReLU; then
  upsampling to the input size, conv-BN-ReLU (16) and a 1x1 conv to one logit channel.
- **Heads**: ``flat`` = dropout + Linear(N). ``hierarchical`` (paper: leukaemic or not,
  then the subtype): one logit ``z`` for "leukaemic" and ``N - 1`` subtype logits ``s``;
  the N-class output is the log-probability ``log P(normal) = log sigmoid(-z)``,
  ``log P(k) = log sigmoid(z) + log_softmax(s)_k`` (:func:`hierarchical_log_probs`). These
  are valid logits (their softmax is P), so argmax/softmax/metrics work unchanged, and
  cross-entropy on them is exactly the hierarchical loss ``BCE(z, leukaemic) + CE(s,
  subtype)`` (the subtype term only for leukaemic images; :func:`hierarchical_loss`).

:func:`build_multitask` builds a :class:`MultiTaskNet` from a :class:`MultiTaskConfig`;
``segmentation=False`` gives the single-task (classification only) model of the ablation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import timm
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from leukmodels.errors import UserError

Decoder = Literal["unet", "transunet"]
Head = Literal["flat", "hierarchical"]
DECODERS: tuple[str, ...] = ("unet", "transunet")
HEADS: tuple[str, ...] = ("flat", "hierarchical")
PLAIN_WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 256)
POS_GRID = 7  # position-embedding grid: the stride-32 map of a 224 px input


@runtime_checkable
class FeatureEncoder(Protocol):
    """A module mapping (B, 3, H, W) to feature maps shallow to deep."""

    channels: list[int]
    reductions: list[int]

    def __call__(self, x: Tensor) -> list[Tensor]: ...


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """conv (same padding) -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainEncoder(nn.Module):
    """The paper's encoder: per stage conv3x3/2-BN-ReLU, conv3x3-BN-ReLU, dropout."""

    def __init__(
        self, in_chans: int = 3, widths: Sequence[int] = PLAIN_WIDTHS, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if not widths or any(int(w) < 1 for w in widths):
            raise UserError(f"plain encoder widths must be >= 1, got {list(widths)}")
        stages, cin = [], in_chans
        for w in widths:
            stages.append(nn.Sequential(conv_bn_relu(cin, int(w), 2), conv_bn_relu(int(w), int(w))))
            cin = int(w)
        self.stages = nn.ModuleList(stages)
        self.drop = nn.Dropout(dropout)
        self.channels = [int(w) for w in widths]
        self.reductions = [2 ** (i + 1) for i in range(len(widths))]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = self.drop(stage(x))
            feats.append(x)
        return feats


class TimmEncoder(nn.Module):
    """A timm backbone as a :class:`FeatureEncoder` (``features_only``, never pretrained)."""

    def __init__(self, name: str, in_chans: int = 3, **kwargs: object) -> None:
        super().__init__()
        try:
            self.model = timm.create_model(
                name, features_only=True, pretrained=False, in_chans=in_chans, **kwargs
            )
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise UserError(f"encoder {name!r}: {exc}") from None
        self.channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))


def build_encoder(
    name: str, dropout: float = 0.2, widths: Sequence[int] | None = None
) -> nn.Module:
    """``'plain'`` (:class:`PlainEncoder`) or any timm model name (:class:`TimmEncoder`)."""
    if name == "plain":
        return PlainEncoder(widths=widths or PLAIN_WIDTHS, dropout=dropout)
    if name.startswith("resnet"):
        # as leukmodels.arch: timm's zero-initialised last BN of each block would give the
        # block's other layers no gradient at the first step
        return TimmEncoder(name, zero_init_last=False)
    return TimmEncoder(name)


class TokenBlock(nn.Module):
    """A timm ViT block applied to a feature map's tokens (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise UserError(f"transformer width {dim} is not divisible by {heads} heads")
        self.block = Block(dim, heads, mlp_ratio=2.0, qkv_bias=True, proj_drop=dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.block(x.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class PosEmbed(nn.Module):
    """Adds a learned position embedding (``POS_GRID``^2 tokens, resampled to h x w)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, POS_GRID * POS_GRID, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        pos = self.pos
        if (h, w) != (POS_GRID, POS_GRID):
            pos = resample_abs_pos_embed(
                pos, [h, w], [POS_GRID, POS_GRID], num_prefix_tokens=0, antialias=False
            )
        return x + pos.transpose(1, 2).reshape(1, c, h, w)


class TaskCoupling(nn.Module):
    """Cross-task mixing ``a + alpha[0] * b``, ``b + alpha[1] * a``; ``alpha = sigmoid(beta)``."""

    def __init__(self, init_alpha: float = 0.1) -> None:
        super().__init__()
        if not 0.0 < init_alpha < 1.0:
            raise UserError(f"coupling_init must be in (0, 1), got {init_alpha}")
        beta = math.log(init_alpha / (1.0 - init_alpha))
        self.beta = nn.Parameter(torch.full((2,), beta))

    @property
    def alpha(self) -> Tensor:
        """``(alpha_cls<-seg, alpha_seg<-cls)``."""
        return torch.sigmoid(self.beta)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        alpha = self.alpha
        return a + alpha[0] * b, b + alpha[1] * a


class UNetDecoder(nn.Module):
    """U-Net cascade: per skip (deep to shallow) upsample, concat, 2x conv-BN-ReLU; 1 logit."""

    def __init__(self, in_channels: int, skip_channels: Sequence[int], head_width: int = 16):
        super().__init__()
        blocks, cin = [], in_channels
        for skip in reversed(list(skip_channels)):
            blocks.append(nn.Sequential(conv_bn_relu(cin + skip, skip), conv_bn_relu(skip, skip)))
            cin = skip
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(conv_bn_relu(cin, head_width), nn.Conv2d(head_width, 1, 1))

    def forward(self, x: Tensor, skips: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        for block, skip in zip(self.blocks, reversed(list(skips)), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.head(x)


def hierarchical_log_probs(leukaemic: Tensor, subtype: Tensor, normal_class: int = 0) -> Tensor:
    """N-class log-probabilities from a leukaemic logit (B,) and N-1 subtype logits (B, N-1).

    ``log P(normal) = log sigmoid(-z)``; the subtypes fill the other class indices in order
    with ``log sigmoid(z) + log_softmax(s)``.
    """
    sub = F.logsigmoid(leukaemic)[:, None] + F.log_softmax(subtype, dim=1)
    normal = F.logsigmoid(-leukaemic)[:, None]
    return torch.cat([sub[:, :normal_class], normal, sub[:, normal_class:]], dim=1)


def hierarchical_loss(
    leukaemic: Tensor, subtype: Tensor, target: Tensor, normal_class: int = 0
) -> Tensor:
    """Batch mean of ``BCE(z, y != normal) + [y != normal] * CE(s, subtype of y)``.

    Equals ``F.cross_entropy(hierarchical_log_probs(z, s), y)`` (the tests check it).
    """
    leuk = target != normal_class
    bce = F.binary_cross_entropy_with_logits(leukaemic, leuk.float(), reduction="none")
    sub_target = torch.where(target > normal_class, target - 1, target)
    sub_target = sub_target.clamp(0, subtype.shape[1] - 1)  # normal images: any valid index
    ce = F.cross_entropy(subtype, sub_target, reduction="none")
    return (bce + torch.where(leuk, ce, torch.zeros_like(ce))).mean()


class HierarchicalHead(nn.Module):
    """Leukaemic-or-not logit and N-1 subtype logits -> N-class log-probabilities."""

    def __init__(
        self, in_features: int, num_classes: int, normal_class: int = 0, dropout: float = 0.0
    ):
        super().__init__()
        if num_classes < 2 or not 0 <= normal_class < num_classes:
            raise UserError(
                f"hierarchical head needs >= 2 classes and 0 <= normal_class < {num_classes}; "
                f"got {num_classes} classes, normal_class {normal_class}"
            )
        self.normal_class = normal_class
        self.drop = nn.Dropout(dropout)
        self.leukaemic = nn.Linear(in_features, 1)
        self.subtype = nn.Linear(in_features, num_classes - 1)

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(leukaemic logit (B,), subtype logits (B, N-1))``."""
        x = self.drop(x)
        return self.leukaemic(x).squeeze(1), self.subtype(x)

    def forward(self, x: Tensor) -> Tensor:
        return hierarchical_log_probs(*self.parts(x), normal_class=self.normal_class)


class MultiTaskOutput(NamedTuple):
    """Class logits (B, N) and nucleus-mask logits (B, 1, H, W), ``None`` when single-task."""

    logits: Tensor
    mask_logits: Tensor | None


@dataclass(frozen=True)
class MultiTaskConfig:
    """What :func:`build_multitask` varies (the search factors of paper 001)."""

    encoder: str = "plain"  # 'plain' or a timm model name
    decoder: Decoder = "unet"
    head: Head = "flat"
    coupling: bool = True
    segmentation: bool = True
    width: int = 128  # task-branch width
    depth: int = 2  # task-branch blocks (one coupling after each)
    heads: int = 4  # transformer heads (decoder='transunet')
    dropout: float = 0.2
    coupling_init: float = 0.1
    normal_class: int = 0
    encoder_widths: tuple[int, ...] = PLAIN_WIDTHS


class MultiTaskNet(nn.Module):
    """Shared encoder, coupled classification / segmentation branches (module docstring)."""

    def __init__(self, encoder: nn.Module, num_classes: int, cfg: MultiTaskConfig) -> None:
        super().__init__()
        if not isinstance(encoder, FeatureEncoder):
            raise TypeError("encoder must return a feature list and carry channels/reductions")
        _check_config(cfg, num_classes)
        self.cfg, self.encoder, w = cfg, encoder, cfg.width
        deep = encoder.channels[-1]
        self.cls_proj = conv_bn_relu(deep, w, kernel=1)
        self.cls_blocks = nn.ModuleList(conv_bn_relu(w, w) for _ in range(cfg.depth))
        self.num_features = w
        self.pool = nn.AdaptiveAvgPool2d(1)
        if cfg.head == "hierarchical":
            self.head = HierarchicalHead(w, num_classes, cfg.normal_class, cfg.dropout)
        else:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(w, num_classes))
        self.seg_proj: nn.Module | None = None
        self.couplings = nn.ModuleList()
        if cfg.segmentation:
            self._build_segmentation(deep, encoder.channels[:-1])

    def _build_segmentation(self, deep: int, skips: list[int]) -> None:
        cfg, w = self.cfg, self.cfg.width
        proj: list[nn.Module] = [conv_bn_relu(deep, w, kernel=1)]
        if cfg.decoder == "transunet":
            proj.append(PosEmbed(w))
            blocks = [TokenBlock(w, cfg.heads, cfg.dropout) for _ in range(cfg.depth)]
        else:
            blocks = [conv_bn_relu(w, w) for _ in range(cfg.depth)]
        self.seg_proj = nn.Sequential(*proj)
        self.seg_blocks = nn.ModuleList(blocks)
        self.decoder = UNetDecoder(w, skips)
        if cfg.coupling:
            self.couplings = nn.ModuleList(
                TaskCoupling(cfg.coupling_init) for _ in range(cfg.depth)
            )

    def get_classifier(self) -> nn.Module:
        """The classification head (its Linear layers are the L1 penalty's target)."""
        return self.head

    def alphas(self) -> list[tuple[float, float]]:
        """The coupling factors per block, ``(cls<-seg, seg<-cls)``; [] when uncoupled."""
        return [tuple(c.alpha.tolist()) for c in self.couplings]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The shared encoder's feature maps, shallow to deep."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> MultiTaskOutput:
        feats = self.forward_features(x)
        c = self.cls_proj(feats[-1])
        if self.seg_proj is None:
            for block in self.cls_blocks:
                c = block(c)
            return MultiTaskOutput(self.head(self.pool(c).flatten(1)), None)
        s = self.seg_proj(feats[-1])
        for i, (cb, sb) in enumerate(zip(self.cls_blocks, self.seg_blocks, strict=True)):
            c, s = cb(c), sb(s)
            if self.couplings:
                c, s = self.couplings[i](c, s)
        mask = self.decoder(s, feats[:-1], x.shape[-2:])
        return MultiTaskOutput(self.head(self.pool(c).flatten(1)), mask)


def _check_config(cfg: MultiTaskConfig, num_classes: int) -> None:
    if cfg.decoder not in DECODERS:
        raise UserError(f"decoder {cfg.decoder!r} is unknown; use one of {list(DECODERS)}")
    if cfg.head not in HEADS:
        raise UserError(f"head {cfg.head!r} is unknown; use one of {list(HEADS)}")
    if num_classes < 1 or cfg.width < 1 or cfg.depth < 1:
        raise UserError(
            f"num_classes, width and depth must be >= 1; got {num_classes}, {cfg.width}, "
            f"{cfg.depth}"
        )
    if cfg.coupling and not cfg.segmentation:
        raise UserError("coupling needs two tasks: set segmentation=True or coupling=False")


def build_multitask(cfg: MultiTaskConfig, num_classes: int) -> MultiTaskNet:
    """The multi-task model ``cfg`` describes, with ``num_classes`` class outputs."""
    encoder = build_encoder(cfg.encoder, cfg.dropout, cfg.encoder_widths)
    return MultiTaskNet(encoder, num_classes, cfg)
