"""Attention blocks looked up by name, in the manner of timm's ``create_attn``.

Every block takes ``channels`` first and returns a tensor of the input's shape; all of
them subclass :class:`AttentionBlock` so a model's attention modules can be counted and
found. Names (``ATTENTION_NAMES``):

``none``
    No module (:func:`create_attn` returns ``None``).
``se``
    Squeeze-and-excitation (Hu et al.): timm's ``SEModule``, GAP only, reduction ``R``.
``cbam``
    CBAM (Woo et al.): ``x * sigmoid(M_c)``, then ``* sigmoid(M_s)``; no residual.
    Written here (timm's ``CbamModule`` always pools avg+max and has a fixed standard
    conv); with the defaults it has the same layers, parameters and output as timm's.
``pcab``
    Paper 000, parallel, as its text defines it: ``x + sigmoid(M_c + M_s) * x``.
``pcab_heavy``
    Paper 000's PCAB as the authors' published code builds it: the spatial branch is a
    full ``C -> C`` dilated 3x3 conv (+ BN) on ``x`` instead of a ``2 -> 1`` conv on the
    mean/max maps. Everything else follows the text (shared MLP on GAP and GMP; no ReLU
    after the spatial BN, which the code adds and the text does not).
``scab``
    Paper 000, sequential: ``F_c = sigmoid(M_c) * x``; ``F_s = sigmoid(M_s(F_c)) * F_c``;
    ``x + F_s``.
``csab``
    Paper 002 (DDRNet): channel attention from GAP and GMP through a shared MLP and a
    sigmoid, then spatial attention by a 5x5 conv on the channel-attended map (paper
    Eq. 11: ``W_2 * A``, a ``C -> 1`` conv) and a sigmoid; in sequence, no residual
    (the paper names none). The paper's ReLU after the sigmoid is the identity and its
    Eq. 12 normalises a one-channel map to 1, so both are left out.

Sub-blocks (paper 000): ``M_c`` = shared MLP ``C -> C/R -> C`` (ReLU, no bias) over the
chosen global poolings, summed; ``M_s`` = conv over the channel-wise mean and max maps
(``2 x H x W -> 1 x H x W``) then BN. Both are logits; each block applies the sigmoid.

Options (keywords of :func:`create_attn`; a block ignores the ones it does not honour,
see :func:`honoured_options`):

- ``reduction``: the MLP's ``R`` (default 16; hidden width ``max(1, C // R)``).
- ``pooling``: ``gap`` / ``gmp`` / ``both``, the global poolings feeding the channel MLP.
- ``spatial_conv``: ``standard`` or ``dilated`` (dilation 2); ``None`` = the block's
  default: dilated for pcab / pcab_heavy / scab, standard for cbam and csab.
- ``kernel_size``: odd spatial kernel; ``None`` = 3 for dilated convs, else the block's
  standard kernel (cbam 7, csab 5, pcab / pcab_heavy / scab 3). Padding keeps H x W.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from timm.layers import SEModule
from torch import Tensor, nn

from leukmodels.config import POOLINGS
from leukmodels.errors import UserError

SPATIAL_CONVS = ("standard", "dilated")
OPTION_NAMES = ("reduction", "pooling", "spatial_conv", "kernel_size")
DILATION = 2
DEFAULT_REDUCTION = 16
DEFAULT_POOLING = "both"


class AttentionBlock(nn.Module):
    """Base of every attention block; ``name`` is its registry name."""

    name: ClassVar[str] = ""
    options: ClassVar[frozenset[str]] = frozenset()
    default_conv: ClassVar[str] = "dilated"
    standard_kernel: ClassVar[int] = 3


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise UserError(f"attention pooling {pooling!r} is unknown; use one of {list(POOLINGS)}")
    return pooling


def _check_reduction(reduction: int) -> int:
    if int(reduction) < 1:
        raise UserError(f"attention reduction must be >= 1, got {reduction}")
    return int(reduction)


def spatial_conv_shape(
    spatial_conv: str | None, kernel_size: int | None, default_conv: str, standard_kernel: int
) -> tuple[int, int]:
    """``(kernel, dilation)`` of a spatial conv from the options and the block's defaults."""
    conv = spatial_conv or default_conv
    if conv not in SPATIAL_CONVS:
        raise UserError(f"spatial conv {conv!r} is unknown; use one of {list(SPATIAL_CONVS)}")
    dilation = DILATION if conv == "dilated" else 1
    kernel = kernel_size or (3 if conv == "dilated" else standard_kernel)
    if kernel < 1 or kernel % 2 == 0:
        raise UserError(f"spatial kernel size must be odd and >= 1 (got {kernel})")
    return kernel, dilation


def _padding(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) // 2


class ChannelGate(nn.Module):
    """``M_c``: shared MLP ``C -> C/R -> C`` over GAP and/or GMP, summed (logits)."""

    def __init__(
        self, channels: int, reduction: int = DEFAULT_REDUCTION, pooling: str = DEFAULT_POOLING
    ) -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        hidden = max(1, channels // _check_reduction(reduction))
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def _mlp(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward(self, x: Tensor) -> Tensor:
        out = None
        if self.pooling in ("gap", "both"):
            out = self._mlp(x.mean((2, 3), keepdim=True))
        if self.pooling in ("gmp", "both"):
            mx = self._mlp(x.amax((2, 3), keepdim=True))
            out = mx if out is None else out + mx
        return out


class SpatialGate(nn.Module):
    """``M_s``: conv over the channel-wise mean and max maps (2 -> 1), then BN (logits)."""

    def __init__(self, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        pad = _padding(kernel_size, dilation)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=pad, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.bn(self.conv(maps))


class FullSpatialGate(nn.Module):
    """The authors' PCAB spatial branch: a ``C -> C`` (dilated) conv on ``x``, then BN."""

    def __init__(self, channels: int, kernel_size: int, dilation: int = DILATION) -> None:
        super().__init__()
        pad = _padding(kernel_size, dilation)
        self.conv = nn.Conv2d(
            channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class SE(AttentionBlock):
    """Squeeze-and-excitation (Hu et al.), timm's ``SEModule`` with ``C // R`` hidden."""

    name = "se"
    options = frozenset({"reduction"})

    def __init__(self, channels: int, reduction: int = DEFAULT_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // _check_reduction(reduction))
        self.se = SEModule(channels, rd_channels=hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(x)


class _ChannelSpatial(AttentionBlock):
    """Shared constructor of blocks with a channel gate and a 2 -> 1 spatial gate."""

    options = frozenset(OPTION_NAMES)

    def __init__(
        self,
        channels: int,
        reduction: int = DEFAULT_REDUCTION,
        pooling: str = DEFAULT_POOLING,
        spatial_conv: str | None = None,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        kernel, dilation = spatial_conv_shape(
            spatial_conv, kernel_size, self.default_conv, self.standard_kernel
        )
        self.channel = ChannelGate(channels, reduction, pooling)
        self.spatial = self._spatial(channels, kernel, dilation)

    def _spatial(self, channels: int, kernel: int, dilation: int) -> nn.Module:
        return SpatialGate(kernel, dilation)


class CBAM(_ChannelSpatial):
    """CBAM (Woo et al.): channel then spatial gating, 7x7 standard conv, no residual."""

    name = "cbam"
    default_conv = "standard"
    standard_kernel = 7

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.sigmoid(self.channel(x))
        return x * torch.sigmoid(self.spatial(x))


class PCAB(_ChannelSpatial):
    """Paper 000 parallel block (text): ``x + sigmoid(M_c(x) + M_s(x)) * x``."""

    name = "pcab"

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.sigmoid(self.channel(x) + self.spatial(x)) * x


class PCABHeavy(PCAB):
    """Paper 000 parallel block as published in code: ``M_s`` is a full C -> C conv."""

    name = "pcab_heavy"

    def _spatial(self, channels: int, kernel: int, dilation: int) -> nn.Module:
        return FullSpatialGate(channels, kernel, dilation)


class SCAB(_ChannelSpatial):
    """Paper 000 sequential block: ``x + sigmoid(M_s(F_c)) * F_c``, ``F_c = sigmoid(M_c) x``."""

    name = "scab"

    def forward(self, x: Tensor) -> Tensor:
        f_c = x * torch.sigmoid(self.channel(x))
        return x + f_c * torch.sigmoid(self.spatial(f_c))


class CSAB(_ChannelSpatial):
    """Paper 002 block: channel gating, then a sigmoid of a 5x5 ``C -> 1`` conv; no residual."""

    name = "csab"
    default_conv = "standard"
    standard_kernel = 5

    def _spatial(self, channels: int, kernel: int, dilation: int) -> nn.Module:
        pad = _padding(kernel, dilation)
        return nn.Conv2d(channels, 1, kernel, padding=pad, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.sigmoid(self.channel(x))
        return x * torch.sigmoid(self.spatial(x))


_REGISTRY: dict[str, type[AttentionBlock] | None] = {
    "none": None,
    "se": SE,
    "cbam": CBAM,
    "pcab": PCAB,
    "pcab_heavy": PCABHeavy,
    "scab": SCAB,
    "csab": CSAB,
}
ATTENTION_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_attn(name: str) -> type[AttentionBlock] | None:
    """The block class registered as ``name`` (``None`` for ``'none'``)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise UserError(f"attention {name!r} is unknown; use one of {list(ATTENTION_NAMES)}")
    return _REGISTRY[key]


def honoured_options(name: str) -> frozenset[str]:
    """The option names the block ``name`` uses; the others are ignored by it."""
    cls = get_attn(name)
    return cls.options if cls is not None else frozenset()


def create_attn(name: str, channels: int, **options: Any) -> AttentionBlock | None:
    """A ``name`` block for ``channels`` channels; options it does not honour are ignored.

    ``None``-valued options mean the block's default. Unknown option names are a
    :class:`UserError`.
    """
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise UserError(f"unknown attention option(s) {unknown}; known: {list(OPTION_NAMES)}")
    cls = get_attn(name)
    if cls is None:
        return None
    kwargs = {k: v for k, v in options.items() if k in cls.options and v is not None}
    return cls(channels, **kwargs)


def resolved_options(name: str, **options: Any) -> dict[str, Any]:
    """The options block ``name`` would use, defaults filled in, ignored ones dropped.

    Two option sets with equal resolved options build the same layers.
    """
    cls = get_attn(name)
    if cls is None:
        return {}
    given = {k: v for k, v in options.items() if v is not None}
    out: dict[str, Any] = {"reduction": _check_reduction(given.get("reduction", DEFAULT_REDUCTION))}
    if "pooling" in cls.options:
        out["pooling"] = _check_pooling(given.get("pooling", DEFAULT_POOLING))
    if "spatial_conv" in cls.options:
        kernel, dilation = spatial_conv_shape(
            given.get("spatial_conv"),
            given.get("kernel_size"),
            cls.default_conv,
            cls.standard_kernel,
        )
        out["spatial_conv"] = "dilated" if dilation > 1 else "standard"
        out["kernel_size"] = kernel
    return out
