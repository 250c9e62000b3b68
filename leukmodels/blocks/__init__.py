"""Building blocks beyond timm's: the attention registry (:mod:`.attention`), DDRNet
(:mod:`.ddrnet`, paper 002) and the MTA-CNN multi-task model (:mod:`.multitask`, paper 001)."""

from leukmodels.blocks.attention import (
    ATTENTION_NAMES,
    AttentionBlock,
    create_attn,
    get_attn,
    honoured_options,
    resolved_options,
)

__all__ = [
    "ATTENTION_NAMES",
    "AttentionBlock",
    "create_attn",
    "get_attn",
    "honoured_options",
    "resolved_options",
]
