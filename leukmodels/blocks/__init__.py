"""Building blocks beyond timm's: the attention registry (:mod:`.attention`)."""

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
