"""Architecture library: attention blocks, placement at sites, dilation, head, weights."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from timm.layers.cbam import CbamModule
from torch import nn

from leukmodels.arch import (
    ARCH_FIELDS,
    arch_key,
    arch_label,
    build_model,
    count_attention,
    sites,
)
from leukmodels.blocks.attention import (
    ATTENTION_NAMES,
    AttentionBlock,
    create_attn,
    get_attn,
    honoured_options,
    resolved_options,
)
from leukmodels.config import ATTENTIONS, BACKBONES, POOLINGS, TrialParams
from leukmodels.errors import UserError

# Blocks per backbone that receive an attention with placement 'all' (timm structures).
BLOCKS_ALL = {
    "resnet18": 8,
    "resnet50": 16,
    "mobilenetv4_conv_small": 17,
    "mobilenetv4_conv_medium": 23,
    "efficientnetv2_s": 40,
    "mobilenetv1_100": 13,
    "mobilenetv3_large_100": 16,
    "densenet121": 4,
    "ddrnet": 3,  # stem, the DRDB, GLFEB
}
# Width of the pooled features with GAP: (input of timm's 1x1 conv head or None, classifier).
POOLED = {
    "resnet18": (None, 512),
    "resnet50": (None, 2048),
    "mobilenetv4_conv_small": (960, 1280),
    "mobilenetv4_conv_medium": (960, 1280),
    "efficientnetv2_s": (None, 1280),
    "mobilenetv1_100": (None, 1024),
    "mobilenetv3_large_100": (960, 1280),
    "densenet121": (None, 1024),
    "ddrnet": (None, 64),
}
OWN_BLOCKS_OFF = {"ddrnet": {"csab": False}}  # DDRNet's own CSAB is an AttentionBlock too


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """64-px batches gain nothing from intra-op threads; two threads on a shared
    two-core machine stall each other (10-30x slower), so this module runs on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    return [m for m in model.modules() if isinstance(m, AttentionBlock)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- every backbone x attention x pooling ----------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "attention", "pooling"), list(itertools.product(BACKBONES, ATTENTIONS, POOLINGS))
)
def test_every_combination_trains(backbone: str, attention: str, pooling: str) -> None:
    own = OWN_BLOCKS_OFF.get(backbone, {})
    params = TrialParams(backbone=backbone, attention=attention, pooling=pooling, **own)
    model = build_model(params, 3)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    blocks = attention_blocks(model)
    expected = 0 if attention == "none" else BLOCKS_ALL[backbone]
    assert len(blocks) == count_attention(model) == expected
    assert all(type(b).name == attention for b in blocks)
    for block in blocks:  # gradients reach every attention block
        grads = [p.grad for p in block.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), block
    assert model.get_classifier().weight.grad.abs().sum() > 0
    # pooling: 'both' concatenates GAP and GMP, doubling what reads the pooled features
    pool_type = {"gap": "avg", "gmp": "max", "both": "catavgmax"}[pooling]
    assert model.backbone.global_pool.pool_type == pool_type
    mult = 2 if pooling == "both" else 1
    conv_head, classifier = POOLED[backbone]
    if conv_head is None:
        assert model.get_classifier().in_features == mult * classifier
    else:  # MobileNetV3/V4: timm's 1x1 conv head sits between the pooling and the Linear
        assert model.backbone.conv_head.in_channels == mult * conv_head
        assert model.get_classifier().in_features == classifier


# --- attention blocks -------------------------------------------------------------------


def test_registry_names_match_contract() -> None:
    assert set(ATTENTION_NAMES) == set(ATTENTIONS)
    assert get_attn("none") is None
    assert create_attn("none", 16) is None
    for name in ATTENTIONS[1:]:
        block = create_attn(name, 32)
        assert isinstance(block, AttentionBlock) and block.name == name


def test_unknown_attention_and_option_are_user_errors() -> None:
    with pytest.raises(UserError, match="'bam'.*scab"):
        get_attn("bam")
    with pytest.raises(UserError, match="dilation"):
        create_attn("scab", 32, dilation=3)
    with pytest.raises(UserError, match="pooling 'mean'"):
        create_attn("cbam", 32, pooling="mean")
    with pytest.raises(UserError, match="odd"):
        create_attn("scab", 32, kernel_size=4)


def _zero_gates(block: nn.Module) -> None:
    """Make every gate logit 0 (sigmoid 0.5): zero weights and biases, BN in eval."""
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
    block.eval()


@pytest.mark.parametrize(
    ("name", "factor"),
    [("pcab", 1.5), ("pcab_heavy", 1.5), ("scab", 1.25), ("cbam", 0.25), ("csab", 0.25)],
)
def test_block_equations_with_neutral_gates(name: str, factor: float) -> None:
    # gates at 0.5: pcab x + 0.5x; scab x + 0.25x; cbam / csab 0.25x (no residual)
    block = create_attn(name, 32)
    _zero_gates(block)
    x = torch.randn(2, 32, 9, 9)
    torch.testing.assert_close(block(x), factor * x)


def test_scab_and_pcab_match_paper_formulas() -> None:
    x = torch.randn(2, 32, 8, 8)
    scab, pcab = create_attn("scab", 32).eval(), create_attn("pcab", 32).eval()
    for block in (scab, pcab):
        with torch.no_grad():
            block.spatial.bn.running_mean.fill_(0.3)
            block.spatial.bn.running_var.fill_(2.0)

    def m_c(block: nn.Module, f: torch.Tensor) -> torch.Tensor:
        w1 = block.channel.fc1.weight[:, :, 0, 0]
        w2 = block.channel.fc2.weight[:, :, 0, 0]
        mlp = lambda v: torch.relu(v @ w1.T) @ w2.T  # noqa: E731
        return (mlp(f.mean((2, 3))) + mlp(f.amax((2, 3))))[:, :, None, None]

    def m_s(block: nn.Module, f: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([f.mean(1, keepdim=True), f.amax(1, keepdim=True)], 1)
        conv = nn.functional.conv2d(maps, block.spatial.conv.weight, padding=2, dilation=2)
        return block.spatial.bn(conv)

    with torch.no_grad():
        f_c = torch.sigmoid(m_c(scab, x)) * x
        torch.testing.assert_close(scab(x), x + torch.sigmoid(m_s(scab, f_c)) * f_c)
        expected = x + torch.sigmoid(m_c(pcab, x) + m_s(pcab, x)) * x
        torch.testing.assert_close(pcab(x), expected)


def test_attention_pooling_selects_global_poolings() -> None:
    x = torch.randn(2, 16, 6, 6)
    gates = {p: create_attn("cbam", 16, pooling=p).channel for p in POOLINGS}
    state = gates["both"].state_dict()
    for gate in gates.values():
        gate.load_state_dict(state)
    with torch.no_grad():
        gap, gmp, both = gates["gap"](x), gates["gmp"](x), gates["both"](x)
    assert not torch.allclose(gap, gmp)
    torch.testing.assert_close(both, gap + gmp)


def test_cbam_defaults_equal_timm_cbam() -> None:
    ours = create_attn("cbam", 64).eval()
    ref = CbamModule(64, rd_divisor=1).eval()
    assert n_params(ours) == n_params(ref)
    ref_state = ref.state_dict()
    mapping = {
        k.replace("spatial.conv.conv.", "spatial.conv.").replace(
            "spatial.conv.bn.", "spatial.bn."
        ): v
        for k, v in ref_state.items()
    }
    ours.load_state_dict(mapping)
    x = torch.randn(2, 64, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_spatial_conv_defaults_and_options() -> None:
    def conv(block: nn.Module) -> nn.Conv2d:
        return block.spatial.conv if hasattr(block.spatial, "conv") else block.spatial

    def shape(c: nn.Conv2d) -> tuple:
        return (c.kernel_size[0], c.dilation[0], c.padding[0], c.in_channels, c.out_channels)

    assert shape(conv(create_attn("scab", 32))) == (3, 2, 2, 2, 1)
    assert shape(conv(create_attn("pcab", 32))) == (3, 2, 2, 2, 1)
    assert shape(conv(create_attn("pcab_heavy", 32))) == (3, 2, 2, 32, 32)
    assert shape(conv(create_attn("cbam", 32))) == (7, 1, 3, 2, 1)
    assert shape(conv(create_attn("csab", 32))) == (5, 1, 2, 32, 1)
    assert shape(conv(create_attn("scab", 32, spatial_conv="standard"))) == (3, 1, 1, 2, 1)
    assert shape(conv(create_attn("cbam", 32, spatial_conv="dilated"))) == (3, 2, 2, 2, 1)
    assert shape(conv(create_attn("csab", 32, kernel_size=7))) == (7, 1, 3, 32, 1)
    assert shape(conv(create_attn("scab", 32, kernel_size=5))) == (5, 2, 4, 2, 1)
    x = torch.randn(1, 32, 7, 7)
    for kw in ({}, {"spatial_conv": "standard", "kernel_size": 5}):
        assert create_attn("scab", 32, **kw)(x).shape == x.shape


def test_reduction_sets_mlp_width_and_se_ignores_spatial_options() -> None:
    assert create_attn("scab", 64, reduction=8).channel.fc1.out_channels == 8
    assert create_attn("scab", 8).channel.fc1.out_channels == 1  # max(1, C // R)
    assert create_attn("se", 64).se.fc1.out_channels == 4
    assert honoured_options("se") == {"reduction"}
    plain = create_attn("se", 64)
    other = create_attn("se", 64, pooling="gmp", spatial_conv="dilated", kernel_size=5)
    assert n_params(plain) == n_params(other)
    assert resolved_options("se", pooling="gmp") == {"reduction": 16}
    assert resolved_options("scab") == {
        "reduction": 16,
        "pooling": "both",
        "spatial_conv": "dilated",
        "kernel_size": 3,
    }


# --- placement --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "placement", "count"),
    [
        ("resnet18", ["stage1", "stage3"], 4),
        ("resnet18", "all", 8),
        ("resnet50", ["stage2"], 4),
        ("mobilenetv4_conv_small", ["stage3"], 6),
        ("mobilenetv4_conv_medium", ["stage4"], 11),
        ("efficientnetv2_s", ["stage6"], 15),
        ("mobilenetv1_100", ["stage4", "stage5"], 8),
        ("mobilenetv3_large_100", ["stage1", "stage7"], 2),
        ("densenet121", ["stage2", "stage4"], 2),
    ],
)
def test_attention_count_equals_blocks_at_sites(
    backbone: str, placement: list[str] | str, count: int
) -> None:
    model = build_model(TrialParams(backbone=backbone, attention="scab", placement=placement), 2)
    assert count_attention(model) == count
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)


def test_sites_per_backbone() -> None:
    assert sites("resnet18") == ["stage1", "stage2", "stage3", "stage4"]
    for backbone in BACKBONES:
        last = sites(backbone)[-1]
        model = build_model(TrialParams(backbone=backbone, attention="se", placement=[last]), 2)
        assert count_attention(model) >= 1
        beyond = f"stage{len(sites(backbone)) + 1}"
        with pytest.raises(UserError, match=f"{beyond}.*{last}"):
            build_model(TrialParams(backbone=backbone, attention="se", placement=[beyond]), 2)


def test_bad_site_message_lists_valid_sites() -> None:
    with pytest.raises(UserError) as info:
        build_model(TrialParams(attention="scab", placement=["stage1", "stage9"]), 2)
    message = str(info.value)
    assert "stage9" in message and "resnet18" in message
    assert "['stage1', 'stage2', 'stage3', 'stage4']" in message


def test_resnet_attention_sits_after_bn2_before_residual_add() -> None:
    model = build_model(TrialParams(attention="scab", placement=["stage2"]), 2).eval()
    block = model.backbone.layer2[1]
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, index: int | None = None):  # clone: timm adds the shortcut in place
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[name] = (args[0] if index == 0 else out).clone()

        return hook

    block.bn2.register_forward_hook(keep("bn2"))
    block.se.register_forward_hook(keep("attn_in", 0))
    block.se.register_forward_hook(keep("attn_out"))
    block.register_forward_hook(keep("block_in", 0))
    block.register_forward_hook(keep("block_out"))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(seen["attn_in"], seen["bn2"])
    assert not torch.allclose(seen["attn_out"], seen["attn_in"])
    expected = torch.relu(seen["attn_out"] + seen["block_in"])  # identity shortcut after it
    torch.testing.assert_close(seen["block_out"], expected)


def test_resnet50_attention_after_bn3() -> None:
    model = build_model(TrialParams(backbone="resnet50", attention="cbam", placement=["stage1"]), 2)
    block = model.backbone.layer1[0]
    assert isinstance(block.se, AttentionBlock)
    assert block.se.channel.fc1.in_channels == block.bn3.num_features == 256


def test_mobilenet_attention_ends_each_residual_branch() -> None:
    """In a block with a skip, out = x + attn(branch(x)); without one, out = attn(branch)."""
    params = TrialParams(backbone="mobilenetv4_conv_small", attention="scab", placement="all")
    model = build_model(params, 2).eval()
    blocks = [b for stage in model.backbone.blocks for b in stage]
    skip = next(b for b in blocks if getattr(b, "has_skip", False))
    plain = next(b for b in blocks if not getattr(b, "has_skip", False))
    seen: dict[str, torch.Tensor] = {}
    for key, block in (("skip", skip), ("plain", plain)):
        block.register_forward_pre_hook(lambda m, a, k=key: seen.__setitem__(k + "_in", a[0]))
        block.register_forward_hook(lambda m, a, out, k=key: seen.__setitem__(k + "_out", out))
        block.post_attn.register_forward_hook(
            lambda m, a, out, k=key: seen.__setitem__(k + "_attn", out)
        )
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(seen["skip_out"], seen["skip_in"] + seen["skip_attn"])
    assert seen["plain_out"] is seen["plain_attn"]
    keys = set(model.state_dict())
    assert "backbone.blocks.2.0.post_attn.channel.fc1.weight" in keys
    bare = build_model(TrialParams(backbone="mobilenetv4_conv_small"), 2)
    assert set(bare.state_dict()) <= keys  # the backbone's own keys are unchanged


def test_residual_attention_does_not_compound_along_the_skip_path() -> None:
    """SCAB/PCAB (gain 1-2) on the block outputs grew the 15-block stage 6 of EfficientNetV2-S
    to a feature std of 58 / 995 (3.9 without attention) and overflowed fp16 on the GPU."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, 64)
    stds = {}
    for attention in ("none", "scab", "pcab"):
        model = build_model(TrialParams(backbone="efficientnetv2_s", attention=attention), 2)
        model.train()
        with torch.no_grad():
            stream = model.backbone.blocks(model.backbone.bn1(model.backbone.conv_stem(x)))
        stds[attention] = stream.std().item()
    assert stds["scab"] < 2 * stds["none"] and stds["pcab"] < 2 * stds["none"], stds


def test_attention_hooks_follow_a_deep_copy() -> None:
    model = build_model(TrialParams(backbone="efficientnetv2_s", attention="scab"), 2).eval()
    twin = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        for p in twin.backbone.blocks[5][0].post_attn.parameters():
            p.add_(1.0)
        torch.testing.assert_close(model(x), before)  # the original runs its own blocks
        assert not torch.allclose(twin(x), before)  # and the copy runs the copy's


def test_densenet_attention_between_block_and_transition() -> None:
    model = build_model(TrialParams(backbone="densenet121", attention="pcab", placement="all"), 2)
    names = [n for n, _ in model.backbone.features.named_children()]
    assert names.index("attn1") == names.index("denseblock1") + 1
    assert names.index("attn4") == names.index("denseblock4") + 1
    assert model.backbone.features.attn4.channel.fc1.in_channels == 1024


def test_native_se_replace() -> None:
    params = TrialParams(backbone="efficientnetv2_s", attention="cbam", native_se="replace")
    model = build_model(params, 2)
    assert count_attention(model) == 30  # the MBConv blocks of stages 4-6
    se_left = [m for m in model.modules() if type(m).__name__ == "SqueezeExcite"]
    assert se_left == []
    block = model.backbone.blocks[3][0]
    assert isinstance(block.se, AttentionBlock) and not hasattr(block, "post_attn")
    assert block.se.channel.fc1.in_channels == block.conv_pw.out_channels  # expanded width
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    removed = build_model(params.model_copy(update={"attention": "none"}), 2)
    assert count_attention(removed) == 0
    assert not any(type(m).__name__ == "SqueezeExcite" for m in removed.modules())
    with pytest.raises(UserError, match=r"stage1.*no SE.*stage4"):
        build_model(params.model_copy(update={"placement": ["stage1", "stage4"]}), 2)
    with pytest.raises(UserError, match="resnet18 has none"):
        build_model(TrialParams(attention="se", native_se="replace"), 2)


@pytest.mark.parametrize(
    ("backbone", "count"), [("efficientnetv2_s", 30), ("mobilenetv3_large_100", 8)]
)
def test_native_se_sites_hold_every_se(backbone: str, count: int) -> None:
    bare = build_model(TrialParams(backbone=backbone), 2)
    assert sum(type(m).__name__ == "SqueezeExcite" for m in bare.modules()) == count
    swapped = build_model(TrialParams(backbone=backbone, attention="se", native_se="replace"), 2)
    assert count_attention(swapped) == count
    assert not any(type(m).__name__ == "SqueezeExcite" for m in swapped.modules())


def test_native_se_kept_by_default() -> None:
    model = build_model(TrialParams(backbone="mobilenetv3_large_100", attention="scab"), 2)
    assert sum(type(m).__name__ == "SqueezeExcite" for m in model.modules()) == 8
    assert count_attention(model) == 16


# --- dilation -----------------------------------------------------------------------------


def _dilations(layer: nn.Module) -> set[int]:
    return {m.dilation[0] for m in layer.modules() if isinstance(m, nn.Conv2d)}


def test_resnet_dilation_by_output_stride() -> None:
    os16 = build_model(TrialParams(backbone_conv="dilated", output_stride=16), 2).backbone
    os8 = build_model(TrialParams(backbone_conv="dilated", output_stride=8), 2).backbone
    std = build_model(TrialParams(output_stride=8), 2).backbone  # standard ignores it
    assert _dilations(os16.layer3) == {1} and max(_dilations(os16.layer4)) > 1
    assert max(_dilations(os8.layer3)) > 1 and max(_dilations(os8.layer4)) > 1
    assert all(_dilations(getattr(std, f"layer{i}")) == {1} for i in range(1, 5))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert std.forward_features(x).shape[-1] == 2
        assert os16.forward_features(x).shape[-1] == 4
        assert os8.forward_features(x).shape[-1] == 8


@pytest.mark.parametrize("backbone", ["efficientnetv2_s", "mobilenetv1_100", "resnet50"])
def test_other_dilated_backbones(backbone: str) -> None:
    params = TrialParams(backbone=backbone, backbone_conv="dilated", attention="scab")
    model = build_model(params, 2)
    assert max(_dilations(model.backbone)) > 1
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 64, 64)).shape[-1] == 4


@pytest.mark.parametrize(
    "backbone", ["mobilenetv4_conv_small", "mobilenetv3_large_100", "densenet121"]
)
def test_undilatable_backbones_say_what_is_supported(backbone: str) -> None:
    with pytest.raises(UserError, match=f"{backbone}.*resnet18.*efficientnetv2_s"):
        build_model(TrialParams(backbone=backbone, backbone_conv="dilated"), 2)


# --- parameter budgets ----------------------------------------------------------------------


def test_scab_is_light_and_pcab_heavy_is_heavy() -> None:
    bare = n_params(build_model(TrialParams(), 2))
    added = {
        a: n_params(build_model(TrialParams(attention=a), 2)) - bare
        for a in ("scab", "pcab", "pcab_heavy")
    }
    assert 0 < added["scab"] < 200_000
    assert added["pcab_heavy"] > 10 * added["pcab"]


# --- head -------------------------------------------------------------------------------------


def test_head_dropout_bn_and_classifier() -> None:
    model = build_model(TrialParams(pooling="both", dropout=0.3, head_bn=True), 4)
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear)
    assert (classifier.in_features, classifier.out_features) == (1024, 4)
    assert isinstance(model.head_norm, nn.BatchNorm1d) and model.head_norm.num_features == 1024
    assert model.head_drop.p == pytest.approx(0.3)
    plain = build_model(TrialParams(), 4)
    assert isinstance(plain.head_norm, nn.Identity)
    model(torch.randn(2, 3, 64, 64))  # L1 on the classifier reaches only its weights
    classifier.weight.abs().sum().backward()
    assert classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


def test_model_output_equals_explicit_head() -> None:
    model = build_model(TrialParams(pooling="both", head_bn=True), 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        pooled = torch.cat([feats.mean((2, 3)), feats.amax((2, 3))], 1)
        torch.testing.assert_close(model(x), model.classifier(model.head_norm(pooled)))


# --- pretrained weights ------------------------------------------------------------------------


def test_missing_pretrained_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(UserError, match=str(missing)):
        build_model(TrialParams(pretrained=str(missing)), 2)


def test_pretrained_timm_backbone_state_dict(tmp_path: Path) -> None:
    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(source.state_dict(), path)
    model = build_model(TrialParams(attention="scab", pretrained=str(path)), 4)
    for name, tensor in source.state_dict().items():
        if not name.startswith("fc."):
            torch.testing.assert_close(model.backbone.state_dict()[name], tensor)
    report = model.load_report
    assert report.skipped == ["fc.bias", "fc.weight"]
    assert report.unexpected == []
    assert report.missing and all(".se." in k for k in report.missing)  # only the attention
    assert model.get_classifier().out_features == 4


def test_pretrained_whole_model_round_trip(tmp_path: Path) -> None:
    params = TrialParams(backbone="mobilenetv4_conv_small", attention="scab", head_bn=True)
    first = build_model(params, 3)
    path = tmp_path / "trial.pt"
    torch.save({"epoch": 3, "state_dict": first.state_dict()}, path)
    second = build_model(params.model_copy(update={"pretrained": str(path)}), 3)
    for name, tensor in first.state_dict().items():
        if name.startswith("classifier."):
            assert not torch.equal(second.state_dict()[name], tensor)  # skipped, fresh
        else:
            torch.testing.assert_close(second.state_dict()[name], tensor)
    assert second.load_report.missing == ["classifier.weight", "classifier.bias"]


def test_pretrained_of_another_backbone_is_user_error(tmp_path: Path) -> None:
    path = tmp_path / "r50.pth"
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), path)
    with pytest.raises(UserError, match="shape mismatch"):
        build_model(TrialParams(pretrained=str(path)), 2)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="could not be read"):
        build_model(TrialParams(pretrained=str(junk)), 2)


# --- architecture identity ------------------------------------------------------------------------


def test_arch_fields_and_key() -> None:
    assert set(ARCH_FIELDS) <= set(TrialParams.model_fields)
    assert "lr" not in ARCH_FIELDS and "pretrained" not in ARCH_FIELDS
    se_a = TrialParams(attention="se", attention_pooling="gap")
    se_b = TrialParams(attention="se", attention_pooling="both", spatial_conv="dilated")
    assert arch_key(se_a) == arch_key(se_b)
    scab = TrialParams(attention="scab")
    assert arch_key(scab) == arch_key(TrialParams(attention="scab", spatial_conv="dilated"))
    assert arch_key(scab) != arch_key(TrialParams(attention="scab", attention_pooling="gap"))
    assert arch_key(scab) == arch_key(
        scab.model_copy(update={"placement": ["stage4", "stage1", "stage2", "stage3"]})
    )
    assert arch_key(TrialParams(attention_pooling="gap")) == arch_key(TrialParams())
    assert arch_key(TrialParams(output_stride=8)) == arch_key(TrialParams())


def test_arch_label() -> None:
    assert arch_label(TrialParams()) == "resnet18"
    assert arch_label(TrialParams(attention="scab")) == "resnet18+scab@stage1-4/both"
    assert arch_label(TrialParams(attention="se")) == "resnet18+se@stage1-4"
    assert (
        arch_label(
            TrialParams(attention="pcab", placement=["stage3", "stage1"], attention_pooling="gap")
        )
        == "resnet18+pcab@stage1,3/gap"
    )
    label = arch_label(
        TrialParams(
            attention="cbam",
            attention_reduction=8,
            spatial_conv="dilated",
            backbone_conv="dilated",
            output_stride=8,
            pooling="both",
            head_bn=True,
        )
    )
    assert label == "resnet18-os8+cbam@stage1-4/both,r8,dil3 head=both+bn"
    swap = TrialParams(backbone="efficientnetv2_s", attention="cbam", native_se="replace")
    assert arch_label(swap) == "efficientnetv2_s+cbam@stage4-6/both,swap-se"


def test_pretrained_report_warns_about_dropped_native_se(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mnv3.pth"
    torch.save(timm.create_model("mobilenetv3_large_100", pretrained=False).state_dict(), path)
    params = TrialParams(
        backbone="mobilenetv3_large_100",
        attention="scab",
        native_se="replace",
        placement=["stage5"],
        pretrained=str(path),
    )
    with caplog.at_level("INFO", logger="leukmodels.arch"):
        model = build_model(params, 2)
    assert sorted({k.split(".se.")[0] for k in model.load_report.unexpected}) == [
        "blocks.4.0",
        "blocks.4.1",
    ]
    assert all(".se." in k for k in model.load_report.missing)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert str(path) in caplog.text and "unexpected 8" in caplog.text
