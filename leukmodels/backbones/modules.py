"""Torch helpers for adapters (import this module inside adapter methods, not at the top).

:class:`PooledBackbone` turns any feature extractor into what
:meth:`~leukmodels.backbones.base.BackboneAdapter.create` returns; :func:`hook_attention`
and :func:`insert_after` are the two ways the built-in adapters insert an attention block.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn

from leukmodels.backbones.base import POOL_TYPES


class PooledBackbone(nn.Module):
    """``body`` (image -> feature map of ``width`` channels) + timm's global pooling.

    ``forward_features`` is the map, ``forward`` the pooled ``(B, out_features)`` vector;
    ``out_features`` is ``width``, or twice it for ``pooling='both'``.
    """

    def __init__(self, body: nn.Module, width: int, pooling: str) -> None:
        super().__init__()
        self.body = body
        self.num_features = width
        self.global_pool = SelectAdaptivePool2d(pool_type=POOL_TYPES[pooling], flatten=True)
        self.out_features = width * self.global_pool.feat_mult()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.global_pool(self.forward_features(x))


def _attend(attn: nn.Module, module: nn.Module, args: Any, output: Tensor) -> Tensor:
    """Forward hook (bound to ``attn`` with functools.partial; deep-copies with the model)."""
    return attn(output)


def hook_attention(site: nn.Module, attn: nn.Module) -> None:
    """Replace ``site``'s output by ``attn(output)`` (a forward hook; ``attn`` must also be
    a submodule of the model so that it trains, moves and is saved with it)."""
    site.register_forward_hook(partial(_attend, attn))


def insert_after(seq: nn.Sequential, after: str, name: str, module: nn.Module) -> None:
    """Put ``module`` into ``seq`` right after child ``after``, keeping the other names."""
    children = list(seq.named_children())
    for child_name, _ in children:
        delattr(seq, child_name)
    for child_name, child in children:
        seq.add_module(child_name, child)
        if child_name == after:
            seq.add_module(name, module)
