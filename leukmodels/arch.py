"""TrialParams -> nn.Module: a registered backbone, attention at named sites, dilation, a head.

Backbones come from their adapter in :mod:`leukmodels.backbones` (the built-ins from
``timm.create_model(name, pretrained=False)``); weights are only ever read from the local
file ``params.pretrained``. The model is a :class:`LeukNet`: the backbone (its own
classifier removed, its global pooling set from ``params.pooling``)
followed by dropout, an optional BatchNorm1d (``head_bn``, paper 004) and one Linear,
returned by ``model.get_classifier()`` (timm convention) so an L1 penalty can target it.

Sites (``sites(backbone)``) are the backbone's stages, ``stage1`` .. ``stageN``. What a
stage is, and where in its blocks the attention goes, is the backbone adapter's to say
(:mod:`leukmodels.backbones`, one file per family; their docstrings hold the details):

- ResNets (:mod:`leukmodels.backbones.resnet`): inside every block of the stage, after the
  last conv/BN and before the residual add, as paper 000 does (timm's block ``se`` slot),
  with the blocks' last BN not zero-initialised.
- MobileNetV4 / V3, EfficientNetV2-S, MobileNetV1 (:mod:`leukmodels.backbones.timm_base`):
  at the end of every block's residual branch, before the skip add (on the block's
  output PCAB/SCAB would compound along the identity path and overflow fp16), kept as
  ``post_attn`` and applied by a forward hook.
- DenseNet-121 (:mod:`leukmodels.backbones.densenet`): one attention after each dense
  block, before its transition, as ``features.attn1`` .. ``attn4``.
- DDRNet (:mod:`leukmodels.backbones.ddrnet`, paper 002): after the stem, at the end of
  each DRDB's fused branch (before its skip add) and after GLFEB; its own blocks are the
  ``drdb`` / ``glfeb`` / ``csab`` / ``drdb_dilations`` / ``ddrnet_norm`` parameters.

``native_se='replace'`` puts the attention in place of a block's own SE (inside the
block, on its expanded channels) instead of at the end of its branch. Only blocks with an SE
have one: ``efficientnetv2_s`` stages 4-6 and ``mobilenetv3_large_100`` stages 3, 5, 6.
With placement ``all`` the SE blocks are the sites; a named stage without SE, or a
backbone without any, is a :class:`UserError`. ``attention='none'`` with ``replace``
removes the SEs.

``backbone_conv='dilated'`` passes ``output_stride`` (16 or 8) to the backbone: supported
by the adapters marked ``dilatable`` (resnet18, resnet50, efficientnetv2_s and
mobilenetv1_100, timm's ResNet and EfficientNet classes); the MobileNetV3/V4 class and
DenseNet have no dilation option (a UserError says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from leukmodels.backbones import BackboneAdapter, get_backbone
from leukmodels.backbones.ddrnet import DDRNET_FIELDS
from leukmodels.blocks.attention import (
    AttentionBlock,
    create_attn,
    honoured_options,
    resolved_options,
)
from leukmodels.config import TrialParams
from leukmodels.errors import UserError
from leukmodels.mta import MTA_FIELDS, build_mta, is_mta, mta_arch_key, mta_label
from leukmodels.sites import (  # noqa: F401  (re-exported: the site vocabulary lives there)
    ARCH_FIELDS,
    dilatable,
    native_se_stages,
    sites,
)

log = logging.getLogger(__name__)

_ATTN_PARAM = {
    "reduction": "attention_reduction",
    "pooling": "attention_pooling",
    "spatial_conv": "spatial_conv",
    "kernel_size": "spatial_kernel",
}


class LeukNet(nn.Module):
    """A backbone (pooled features out) -> dropout -> [BatchNorm1d] -> Linear."""

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
    adapter = get_backbone(params.backbone)
    valid = adapter.sites()
    if params.native_se == "replace":
        se_sites = adapter.native_se_sites()
        if not se_sites:
            raise UserError(
                f"native_se='replace' needs a backbone with its own SE blocks; "
                f"{params.backbone} has none (those that do: {sorted(native_se_stages())}). "
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


def _create_backbone(adapter: BackboneAdapter, params: TrialParams) -> tuple[nn.Module, int]:
    if params.backbone_conv == "dilated" and not adapter.dilatable:
        raise UserError(
            f"backbone_conv='dilated' is not available for {params.backbone}: dilated "
            f"(output_stride 16/8) versions exist only of {list(dilatable())}"
        )
    return adapter.create(params)


def _place_attention(
    adapter: BackboneAdapter, backbone: nn.Module, params: TrialParams, chosen: list[str]
) -> None:
    options = attention_options(params)
    stages = adapter.stages(backbone)
    for site in chosen:
        stage = int(site[5:])
        for block in stages[stage - 1]:
            if params.native_se == "replace":
                channels = adapter.native_se_channels(block)
                if channels is None:
                    raise UserError(
                        f"native_se='replace': a block of {params.backbone} {site} has no SE"
                    )
                adapter.replace_native_se(block, create_attn(params.attention, channels, **options))
                continue
            attn = create_attn(params.attention, adapter.attention_channels(block), **options)
            if attn is not None:
                adapter.add_attention(backbone, stage, block, attn)


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
    """Load a local state dict (bare backbone or whole LeukNet) into ``model``.

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
    head = ("classifier.",) if whole else get_backbone(backbone).head_prefixes(model.backbone)
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


def build_model(params: TrialParams, num_classes: int) -> nn.Module:
    """The classifier ``params`` describe, with ``num_classes`` outputs (a
    :class:`LeukNet`; for ``family='mta_cnn'`` paper 001's multi-task model,
    :func:`leukmodels.mta.build_mta`)."""
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    if is_mta(params):
        return build_mta(params, num_classes)
    if params.task != "single":
        raise UserError("task='multi' needs family='mta_cnn' (paper 001's multi-task model)")
    chosen = resolve_sites(params)
    adapter = get_backbone(params.backbone)
    backbone, in_features = _create_backbone(adapter, params)
    _place_attention(adapter, backbone, params, chosen)
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
    if is_mta(params):
        return mta_arch_key(params, ARCH_FIELDS)
    key = {f: getattr(params, f) for f in ARCH_FIELDS}
    key.update(dict.fromkeys(MTA_FIELDS))
    placed = params.attention != "none" or params.native_se == "replace"
    key["placement"] = resolve_sites(params) if placed else []
    resolved = resolved_options(params.attention, **attention_options(params))
    for opt, f in _ATTN_PARAM.items():
        key[f] = resolved.get(opt)
    if params.backbone_conv == "standard":
        key["output_stride"] = None
    if params.backbone != "ddrnet":
        key.update(dict.fromkeys(DDRNET_FIELDS))
    return key


def _compress(chosen: list[str]) -> str:
    nums = [int(s[5:]) for s in chosen]
    if len(nums) > 1 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"stage{nums[0]}-{nums[-1]}"
    return "stage" + ",".join(map(str, nums))


def ddrnet_arch_label(params: TrialParams) -> str:
    """``ddrnet[conv+DRDB+GLFEB+CSAB]`` (paper 002's Table 6 row), plus ``,bn`` and
    ``,d1-1-1`` where the norm or the dilations differ from the paper's."""
    from leukmodels.blocks.ddrnet import ddrnet_label

    extras = [params.ddrnet_norm] if params.ddrnet_norm != "gn" else []
    if params.drdb and params.drdb_dilations != [1, 2, 4]:
        extras.append("d" + "-".join(map(str, params.drdb_dilations)))
    body = ddrnet_label(params.drdb, params.glfeb, params.csab)
    return f"ddrnet[{body}{''.join(',' + e for e in extras)}]"


def arch_label(params: TrialParams) -> str:
    """A short name such as ``resnet18+scab@stage1-4/both``.

    Attention options appear only where they differ from the block's defaults
    (``r8``: reduction 8; ``std5`` / ``dil3``: spatial conv and kernel; ``swap-se``:
    native SE replaced); ``-os8``: dilated backbone; `` head=both+bn``: head pooling
    other than GAP and/or BatchNorm1d.
    """
    if is_mta(params):
        return mta_label(params)
    key = arch_key(params)
    label = params.backbone
    if params.backbone == "ddrnet":
        label = ddrnet_arch_label(params)
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
