"""TrialParams -> nn.Module: a timm backbone, attention at named sites, dilation, a head.

Backbones come from ``timm.create_model(name, pretrained=False)``; weights are only ever
read from the local file ``params.pretrained``. The model is a :class:`LeukNet`: the timm
backbone (its own classifier removed, its global pooling set from ``params.pooling``)
followed by dropout, an optional BatchNorm1d (``head_bn``, paper 004) and one Linear,
returned by ``model.get_classifier()`` (timm convention) so an L1 penalty can target it.

Sites (``sites(backbone)``) are the backbone's stages, ``stage1`` .. ``stageN``:

- ``resnet18`` / ``resnet50``: 4 stages = ``layer1`` .. ``layer4`` (2/2/2/2 BasicBlocks;
  3/4/6/3 Bottlenecks). The attention goes inside every block of the stage, after the
  last conv/BN (``bn2``; Bottleneck ``bn3``) and before the residual add, as paper 000
  does (timm's block ``se`` slot). The blocks' last BN is not zero-initialised
  (timm's ``zero_init_last=False``, as torchvision and paper 000's code), so the
  attention sees non-zero features and gets gradients from the first step.
- ``mobilenetv4_conv_small``: 5 stages (timm ``blocks[0..4]``): 2 conv, 2 conv, 6 UIB,
  6 UIB, 1 conv (1x1 to 960). ``mobilenetv4_conv_medium``: 5 stages: 1 fused IB,
  2 UIB, 8 UIB, 11 UIB, 1 conv. ``mobilenetv3_large_100``: 7 stages: 1 DS, 2 / 3 / 4 /
  2 / 3 IR, 1 conv. ``efficientnetv2_s``: 6 stages: 2 conv (fused, no expansion),
  4 / 4 Fused-MBConv, 6 / 9 / 15 MBConv. ``mobilenetv1_100``: 5 stages of 1 / 2 / 2 /
  6 / 2 depthwise-separable blocks. The attention ends every block of the stage
  (paper 000's "all convolution layers"): on the block's residual branch, after its
  last conv/BN (IR ``bn3``, Fused-MBConv / DS ``bn2``, UIB ``dw_end``, conv ``aa``) and
  before the skip add, the same rule as for ResNet. On the block's output instead, PCAB
  and SCAB (``F + attended``, a gain of 1-2) would compound along the identity path:
  the 15-block last stage of ``efficientnetv2_s`` grew its features' std from 3.9 to
  58 (SCAB) and 995 (PCAB) at initialisation, and fp16 overflowed to NaN on the GPU;
  CBAM (a gain below 1) shrank them instead. The attention module is kept in the block as
  ``post_attn`` (so the backbone's own state-dict keys do not change) and applied by a
  forward hook on the branch's last module.
- ``densenet121``: 4 stages = dense blocks 1-4 (6 / 12 / 24 / 16 layers); one attention
  after each dense block (before its transition), inserted into ``features`` as
  ``attn1`` .. ``attn4`` (a dense block is a ModuleDict that runs every child it holds).

``native_se='replace'`` puts the attention in place of a block's own SE (inside the
block, on its expanded channels) instead of at the end of its branch. Only blocks with an SE
have one: ``efficientnetv2_s`` stages 4-6 and ``mobilenetv3_large_100`` stages 3, 5, 6.
With placement ``all`` the SE blocks are the sites; a named stage without SE, or a
backbone without any, is a :class:`UserError`. ``attention='none'`` with ``replace``
removes the SEs.

``backbone_conv='dilated'`` passes ``output_stride`` (16 or 8) to timm: supported by
resnet18, resnet50, efficientnetv2_s and mobilenetv1_100 (timm's EfficientNet class);
the MobileNetV3/V4 class and DenseNet have no dilation option (a UserError says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn

from leukmodels.blocks.attention import (
    AttentionBlock,
    create_attn,
    honoured_options,
    resolved_options,
)
from leukmodels.config import TrialParams
from leukmodels.errors import UserError
from leukmodels.sites import (  # noqa: F401  (re-exported: the site vocabulary lives there)
    ARCH_FIELDS,
    DILATABLE,
    NATIVE_SE_STAGES,
    STAGE_COUNTS,
    sites,
)

log = logging.getLogger(__name__)

POOL_TYPES = {"gap": "avg", "gmp": "max", "both": "catavgmax"}

_ATTN_PARAM = {
    "reduction": "attention_reduction",
    "pooling": "attention_pooling",
    "spatial_conv": "spatial_conv",
    "kernel_size": "spatial_kernel",
}


class LeukNet(nn.Module):
    """A timm backbone (pooled features out) -> dropout -> [BatchNorm1d] -> Linear."""

    def __init__(
        self,
        backbone: nn.Module,
        in_features: int,
        num_classes: int,
        dropout: float = 0.0,
        head_bn: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = in_features
        self.head_drop = nn.Dropout(dropout)
        self.head_norm = nn.BatchNorm1d(in_features) if head_bn else nn.Identity()
        self.classifier = nn.Linear(in_features, num_classes)
        self.load_report: LoadReport | None = None  # set when pretrained weights are loaded

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone's last feature map, before global pooling."""
        return self.backbone.forward_features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.backbone(x)
        return self.classifier(self.head_norm(self.head_drop(x)))

    def get_classifier(self) -> nn.Linear:
        """The final Linear (the L1 penalty's target)."""
        return self.classifier


@dataclass
class LoadReport:
    """What loading a pretrained state dict did."""

    path: str
    loaded: int = 0
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def count_attention(model: nn.Module) -> int:
    """How many attention blocks (:class:`AttentionBlock`) ``model`` holds."""
    return sum(isinstance(m, AttentionBlock) for m in model.modules())


def attention_options(params: TrialParams) -> dict[str, Any]:
    """The attention options ``params.attention`` honours, from ``params``."""
    honoured = honoured_options(params.attention)
    return {k: getattr(params, f) for k, f in _ATTN_PARAM.items() if k in honoured}


def resolve_sites(params: TrialParams) -> list[str]:
    """The sites that receive attention, validated against the backbone."""
    valid = sites(params.backbone)
    if params.native_se == "replace":
        se_sites = list(NATIVE_SE_STAGES.get(params.backbone, ()))
        if not se_sites:
            raise UserError(
                f"native_se='replace' needs a backbone with its own SE blocks; "
                f"{params.backbone} has none (those that do: {sorted(NATIVE_SE_STAGES)}). "
                "Use native_se='keep'."
            )
        valid_for = se_sites
    else:
        valid_for = valid
    if params.placement == "all":
        return list(valid_for)
    bad = [s for s in params.placement if s not in valid]
    if bad:
        raise UserError(
            f"placement site(s) {bad} do not exist in {params.backbone}; "
            f"its sites are {valid} (or 'all')"
        )
    no_se = [s for s in params.placement if s not in valid_for]
    if no_se:
        raise UserError(
            f"native_se='replace' at {no_se}: those stages of {params.backbone} have no SE "
            f"to replace; stages with SE are {valid_for}"
        )
    return sorted(set(params.placement), key=valid.index)


def _create_backbone(params: TrialParams) -> tuple[nn.Module, int]:
    kwargs: dict[str, Any] = {"global_pool": POOL_TYPES[params.pooling]}
    if params.backbone.startswith("resnet"):
        # timm zero-initialises each block's last BN, which would feed the attention
        # (placed after that BN) zeros and give it no gradient at the first step
        kwargs["zero_init_last"] = False
    if params.backbone_conv == "dilated":
        if params.backbone not in DILATABLE:
            raise UserError(
                f"backbone_conv='dilated' is not available for {params.backbone}: timm builds "
                f"dilated (output_stride 16/8) versions only of {list(DILATABLE)}"
            )
        kwargs["output_stride"] = params.output_stride
    model = timm.create_model(params.backbone, pretrained=False, num_classes=1, **kwargs)
    in_features = model.get_classifier().in_features
    model.reset_classifier(0)
    return model, in_features


def _stages(backbone: nn.Module, name: str) -> list[list[nn.Module]]:
    if name.startswith("resnet"):
        return [list(getattr(backbone, f"layer{i}")) for i in range(1, 5)]
    if name.startswith("densenet"):
        return [[getattr(backbone.features, f"denseblock{i}")] for i in range(1, 5)]
    return [list(stage) for stage in backbone.blocks]


def _out_channels(block: nn.Module) -> int:
    """Channels a block outputs (ResNet blocks: at their ``se`` slot)."""
    if hasattr(block, "bn3"):  # ResNet Bottleneck
        return block.bn3.num_features
    if hasattr(block, "conv2") and hasattr(block, "bn2") and hasattr(block, "se"):
        return block.bn2.num_features  # ResNet BasicBlock
    if type(block).__name__ == "DenseBlock":  # input + growth of every layer
        last = list(block.children())[-1]
        return last.norm1.num_features + last.conv2.out_channels
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features  # timm IR / ER / DS / UIR / ConvBnAct: the last BN


_BRANCH_END = {
    "InvertedResidual": "bn3",
    "EdgeResidual": "bn2",
    "DepthwiseSeparableConv": "bn2",
    "UniversalInvertedResidual": "dw_end",
    "ConvBnAct": "aa",
}
"""The last module of each timm block's residual branch (before drop path and skip add)."""


def _attend(attn: nn.Module, module: nn.Module, args: Any, output: Tensor) -> Tensor:
    """Forward hook (bound to ``attn`` with functools.partial; deep-copies with the model)."""
    return attn(output)


def _branch_end(block: nn.Module) -> nn.Module:
    """Where a timm block's residual branch ends; the block itself when it has no skip."""
    name = _BRANCH_END.get(type(block).__name__)
    if name is not None:
        return getattr(block, name)
    if getattr(block, "has_skip", False):
        raise TypeError(f"no attention site known inside {type(block).__name__}")
    return block


def _insert_after(seq: nn.Sequential, after: str, name: str, module: nn.Module) -> None:
    """Put ``module`` into ``seq`` right after child ``after``, keeping the other names."""
    children = list(seq.named_children())
    for child_name, _ in children:
        delattr(seq, child_name)
    for child_name, child in children:
        seq.add_module(child_name, child)
        if child_name == after:
            seq.add_module(name, module)


def _native_se(block: nn.Module) -> nn.Module | None:
    se = getattr(block, "se", None)
    if se is None or isinstance(se, nn.Identity):
        return None
    return se


def _place_attention(backbone: nn.Module, params: TrialParams, chosen: list[str]) -> None:
    options = attention_options(params)
    stages = _stages(backbone, params.backbone)
    for site in chosen:
        for block in stages[int(site[5:]) - 1]:
            if params.native_se == "replace":
                se = _native_se(block)
                if se is None:
                    raise UserError(
                        f"native_se='replace': a block of {params.backbone} {site} has no SE"
                    )
                channels = next(m for m in se.modules() if isinstance(m, nn.Conv2d)).in_channels
                attn = create_attn(params.attention, channels, **options)
                block.se = attn if attn is not None else nn.Identity()
                continue
            attn = create_attn(params.attention, _out_channels(block), **options)
            if attn is None:
                continue
            if params.backbone.startswith("resnet"):
                block.se = attn  # timm applies it after bn2/bn3, before the residual add
            elif params.backbone.startswith("densenet"):
                _insert_after(backbone.features, f"denseblock{site[5:]}", f"attn{site[5:]}", attn)
            else:
                block.post_attn = attn
                _branch_end(block).register_forward_hook(partial(_attend, attn))


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix
        raise UserError(
            f"pretrained weights {path} could not be read as a state dict: {exc}"
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise UserError(f"pretrained weights {path} hold no state dict of tensors")
    return obj


def load_pretrained(model: LeukNet, path: str | Path, backbone: str) -> LoadReport:
    """Load a local state dict (timm backbone or whole LeukNet) into ``model``.

    The classifier keys are skipped; keys whose shapes differ are a :class:`UserError`;
    missing and unexpected keys are logged and returned in the :class:`LoadReport`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"pretrained weights file {path} does not exist (weights are never downloaded)"
        )
    state = _read_state_dict(path)
    whole = any(k.startswith("backbone.") for k in state)
    target: nn.Module = model if whole else model.backbone
    head = ("classifier.",) if whole else (model.backbone.pretrained_cfg["classifier"] + ".",)
    report = LoadReport(str(path))
    report.skipped = sorted(k for k in state if k.startswith(head))
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    own = target.state_dict()
    clash = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if clash:
        raise UserError(
            f"pretrained weights {path} do not fit {backbone} ({len(clash)} shape mismatches, "
            f"e.g. {clash[:3]}); is it a state dict of another backbone?"
        )
    if not any(k in own for k in state):
        raise UserError(f"pretrained weights {path} share no parameter name with {backbone}")
    result = target.load_state_dict(state, strict=False)
    report.missing = list(result.missing_keys)
    report.unexpected = list(result.unexpected_keys)
    report.loaded = len(state) - len(report.unexpected)
    new_layers = tuple(
        f"{name}." for name, m in target.named_modules() if isinstance(m, AttentionBlock)
    ) + ("classifier.", "head_norm.")
    surprising = [k for k in report.missing if not k.startswith(new_layers)]
    level = logging.WARNING if surprising or report.unexpected else logging.INFO
    log.log(
        level,
        "pretrained %s -> %s: loaded %d tensors, skipped classifier %s; missing %d "
        "(not attention/head: %s); unexpected %d %s",
        path,
        backbone,
        report.loaded,
        report.skipped,
        len(report.missing),
        surprising[:8],
        len(report.unexpected),
        report.unexpected[:8],
    )
    return report


def build_model(params: TrialParams, num_classes: int) -> LeukNet:
    """The classifier ``params`` describe, with ``num_classes`` outputs."""
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    chosen = resolve_sites(params)
    backbone, in_features = _create_backbone(params)
    _place_attention(backbone, params, chosen)
    model = LeukNet(backbone, in_features, num_classes, params.dropout, params.head_bn)
    if params.pretrained:
        model.load_report = load_pretrained(model, params.pretrained, params.backbone)
    return model


def arch_key(params: TrialParams) -> dict[str, Any]:
    """The architecture ``params`` build, as :data:`ARCH_FIELDS` with effective values.

    Attention options are resolved (defaults filled in, options the block ignores set to
    ``None``), placement is the list of sites used, ``output_stride`` is ``None`` for a
    standard backbone: two params with equal keys build the same layers.
    """
    key = {f: getattr(params, f) for f in ARCH_FIELDS}
    placed = params.attention != "none" or params.native_se == "replace"
    key["placement"] = resolve_sites(params) if placed else []
    resolved = resolved_options(params.attention, **attention_options(params))
    for opt, f in _ATTN_PARAM.items():
        key[f] = resolved.get(opt)
    if params.backbone_conv == "standard":
        key["output_stride"] = None
    return key


def _compress(chosen: list[str]) -> str:
    nums = [int(s[5:]) for s in chosen]
    if len(nums) > 1 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"stage{nums[0]}-{nums[-1]}"
    return "stage" + ",".join(map(str, nums))


def arch_label(params: TrialParams) -> str:
    """A short name such as ``resnet18+scab@stage1-4/both``.

    Attention options appear only where they differ from the block's defaults
    (``r8``: reduction 8; ``std5`` / ``dil3``: spatial conv and kernel; ``swap-se``:
    native SE replaced); ``-os8``: dilated backbone; `` head=both+bn``: head pooling
    other than GAP and/or BatchNorm1d.
    """
    key = arch_key(params)
    label = params.backbone
    if params.backbone_conv == "dilated":
        label += f"-os{params.output_stride}"
    if key["placement"]:
        label += f"+{params.attention}@{_compress(key['placement'])}"
        if key["attention_pooling"] is not None:
            label += f"/{key['attention_pooling']}"
        default = resolved_options(params.attention)
        extras = []
        if key["attention_reduction"] != default.get("reduction"):
            extras.append(f"r{key['attention_reduction']}")
        conv = (key["spatial_conv"], key["spatial_kernel"])
        if conv != (default.get("spatial_conv"), default.get("kernel_size")):
            extras.append({"standard": "std", "dilated": "dil"}[conv[0]] + str(conv[1]))
        if params.native_se == "replace":
            extras.append("swap-se")
        if extras:
            label += "," + ",".join(extras)
    if params.pooling != "gap" or params.head_bn:
        label += f" head={params.pooling}" + ("+bn" if params.head_bn else "")
    return label
