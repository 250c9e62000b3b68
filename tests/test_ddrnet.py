"""DDRNet (paper 002): every block combination builds and trains; the wiring is the documented one."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leukmodels.arch import LeukNet
from leukmodels.blocks.attention import CSAB
from leukmodels.blocks.ddrnet import DRDB, GLFEB, DDRNet, ddrnet_label
from leukmodels.errors import UserError

GRID = list(itertools.product([0, 1], [False, True], [False, True]))


def _train_step(model: nn.Module, num_classes: int = 4) -> None:
    torch.manual_seed(0)
    model.train()
    x = torch.randn(2, 3, 64, 64)
    y = torch.tensor([0, num_classes - 1])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("drdb", "glfeb", "csab"), GRID)
@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_every_block_combination_trains(drdb: int, glfeb: bool, csab: bool, norm: str) -> None:
    model = DDRNet(4, drdb=drdb, glfeb=glfeb, csab=csab, norm=norm)
    _train_step(model)
    assert model.num_features == (64 if glfeb else 32)
    assert (model.csab is not None) == csab and isinstance(model.csab, CSAB | None)
    assert (model.glfeb is not None) == glfeb and len(model.drdbs) == drdb
    norms = (nn.GroupNorm, nn.BatchNorm2d) if norm == "gn" else (nn.BatchNorm2d,)
    assert isinstance(model.stem.norm, norms[0])
    assert not any(isinstance(m, nn.GroupNorm) for m in model.modules()) or norm == "gn"


def test_two_drdbs_and_other_dilations_train() -> None:
    model = DDRNet(3, drdb=2, dilations=(2, 3), path_dropout=0.2)
    _train_step(model, num_classes=3)
    assert [name for name, _ in model.stages()] == ["stem", "drdb1", "drdb2", "glfeb"]
    block = model.drdbs[0]
    assert len(block.paths) == 4  # 2 x len(dilations), alternating plain / dilated
    assert [p.dilation for p in block.paths] == [1, 2, 1, 3]
    convs = [m for m in block.paths[3].modules() if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in convs] == [(3, 3), (3, 3)]
    assert block.fuse[0].in_channels == 4 * 32  # the four outputs concatenated


def test_paper_drdb_has_six_sub_blocks_and_keeps_shape() -> None:
    block = DRDB(32)
    assert len(block.paths) == 6
    assert [p.dilation for p in block.paths] == [1, 1, 1, 2, 1, 4]
    assert isinstance(block.paths[0].branch[0][1], nn.GroupNorm)
    assert block.paths[0].branch[0][1].num_groups == 32
    x = torch.randn(2, 32, 16, 16)
    assert block(x).shape == x.shape


def test_glfeb_concatenates_the_global_feature() -> None:
    glfeb = GLFEB(32, 32)
    widths = [m.out_channels for m in glfeb.layers.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 128] and glfeb.conv.out_channels == 32
    local, global_ = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8)
    out = glfeb(local, global_)
    assert out.shape == (2, 64, 8, 8)
    assert torch.equal(out[:, 32:], global_)


def test_features_are_stride_4_and_the_head_follows_timm() -> None:
    model = DDRNet(4).eval()
    x = torch.randn(1, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (1, 64, 16, 16)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (1, 64)
    assert torch.allclose(model(x), model.get_classifier()(pre))
    assert model.feature_info[-1] == {"num_chs": 64, "reduction": 4, "module": "glfeb"}


def test_backbone_mode_fits_leuknet() -> None:
    backbone = DDRNet(num_classes=0, global_pool="catavgmax", drdb=1)
    x = torch.randn(2, 3, 64, 64)
    assert backbone(x).shape == (2, 128)  # avg and max of 64 channels
    net = LeukNet(backbone, 128, num_classes=4, dropout=0.2, head_bn=True)
    assert net(x).shape == (2, 4) and net.forward_features(x).shape == (2, 64, 16, 16)
    backbone.reset_classifier(5)
    assert backbone(x).shape == (2, 5)


def test_csab_sum_uses_the_glfeb_output() -> None:
    model = DDRNet(4, drdb=0).eval()
    x = torch.randn(1, 3, 64, 64)
    stem = model.stem(x)
    h = model.glfeb(stem, stem)
    expected = model.norm(h + model.csab(torch.tanh(h)))
    assert torch.allclose(model.forward_features(x), expected, atol=1e-6)


def test_blocks_add_parameters_and_flops() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    stats = {}
    for drdb, glfeb, csab in GRID:
        model = DDRNet(4, drdb=drdb, glfeb=glfeb, csab=csab).eval()
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            model(torch.zeros(1, 3, 64, 64))
        params = sum(p.numel() for p in model.parameters())
        stats[ddrnet_label(drdb, glfeb, csab)] = (params, counter.get_total_flops())
    assert len(stats) == 8 and "conv+DRDB+GLFEB+CSAB" in stats and "conv" in stats
    base_p, base_f = stats["conv"]
    for label, (params, flops) in stats.items():
        if label != "conv":
            assert params > base_p and flops > base_f, label


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="norm"):
        DDRNet(norm="ln")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="drdb"):
        DDRNet(drdb=-1)
    with pytest.raises(UserError, match="dilations"):
        DDRNet(dilations=())
    with pytest.raises(UserError, match="groups"):
        DDRNet(stem_width=24, gn_groups=16)
    with pytest.raises(UserError, match="global_pool"):
        DDRNet(global_pool="median")


@pytest.mark.parametrize(("drdb", "glfeb"), [(0, False), (2, True), (1, False)])
def test_stage_groups_and_out_channels_match_the_outputs(drdb: int, glfeb: bool) -> None:
    model = DDRNet(4, drdb=drdb, glfeb=glfeb).eval()
    groups = model.stage_groups()
    assert [len(g) for g in groups] == [1, drdb, int(glfeb)]
    seen: dict[nn.Module, int] = {}
    hooks = [
        block.register_forward_hook(lambda m, a, out: seen.__setitem__(m, out.shape[1]))
        for group in groups
        for block in group
    ]
    model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == {block: block.out_channels for group in groups for block in group}
    for block in groups[1]:  # a DRDB's residual branch ends at the fuse (before the add)
        assert block.fuse[0].out_channels == block.out_channels


# --- the registered backbone 'ddrnet' and its space -------------------------------------------


@pytest.mark.parametrize(("drdb", "glfeb", "csab"), GRID)
def test_registered_ddrnet_builds_every_block_combination(
    drdb: int, glfeb: bool, csab: bool
) -> None:
    from leukmodels.arch import arch_label, build_model
    from leukmodels.config import TrialParams

    params = TrialParams(backbone="ddrnet", drdb=drdb, glfeb=glfeb, csab=csab, dropout=0.2)
    model = build_model(params, 4)
    assert isinstance(model.backbone, DDRNet) and len(model.backbone.drdbs) == drdb
    assert (model.backbone.glfeb is not None, model.backbone.csab is not None) == (glfeb, csab)
    assert model.backbone.fc.__class__ is nn.Identity and model.head_drop.p == 0.2
    assert model.backbone.head_drop.p == 0.0  # the dropout is LeukNet's, not twice
    _train_step(model)
    assert arch_label(params) == f"ddrnet[{ddrnet_label(drdb, glfeb, csab)}]"


def test_ddrnet_params_reach_the_model_and_the_arch_key() -> None:
    from leukmodels.arch import arch_key, arch_label, build_model
    from leukmodels.config import TrialParams

    params = TrialParams(
        backbone="ddrnet", drdb=2, ddrnet_norm="bn", drdb_dilations=[1, 3], pooling="both"
    )
    model = build_model(params, 3)
    assert len(model.backbone.drdbs) == 2
    assert [p.dilation for p in model.backbone.drdbs[1].paths] == [1, 1, 1, 3]
    assert not any(isinstance(m, nn.GroupNorm) for m in model.backbone.modules())
    assert model.get_classifier().in_features == 128  # GAP + GMP of 64 channels
    assert arch_label(params) == "ddrnet[conv+DRDBx2+GLFEB+CSAB,bn,d1-3] head=both"
    # other backbones ignore the DDRNet fields: the same architecture whatever they say
    assert arch_key(TrialParams(drdb=0, csab=False)) == arch_key(TrialParams())
    assert arch_key(params) != arch_key(params.model_copy(update={"ddrnet_norm": "gn"}))
    with pytest.raises(ValueError, match="drdb_dilations"):
        TrialParams(backbone="ddrnet", drdb_dilations=[0, 2])


def test_attention_sites_of_the_registered_ddrnet() -> None:
    from leukmodels.arch import build_model, count_attention
    from leukmodels.config import TrialParams

    params = TrialParams(backbone="ddrnet", attention="se", drdb=2, csab=False)
    model = build_model(params, 2)
    assert count_attention(model) == 4  # stem, 2 DRDBs, GLFEB
    _train_step(model, num_classes=2)
    one = TrialParams(backbone="ddrnet", attention="cbam", placement=["stage2"], csab=False)
    assert count_attention(build_model(one, 2)) == 1


def test_describe_and_profile_of_the_ddrnet_space(capsys: pytest.CaptureFixture) -> None:
    """The issue's "done when": describe lists the block factors and a grid of 8; profile
    gives 8 complexity rows, one per block combination, the bare conv the smallest."""
    import json
    from pathlib import Path

    from search.cli import main

    space = str(Path(__file__).resolve().parents[1] / "spaces" / "ddrnet_blocks.yaml")
    assert main(["describe", space, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    factors = {f["name"]: f for f in info["factors"]}
    assert {"drdb", "glfeb", "csab"} <= set(info["searched"])
    assert factors["drdb"]["levels"] == [0, 1] and info["grid_size"] == 8
    args = ["profile", space, "--input-size", "32", "--latency-runs", "1", "--json"]
    assert main([*args, "--num-classes", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    labels = {r["label"] for r in rows}
    assert len(rows) == 8 == len(labels)
    assert labels == {f"ddrnet[{ddrnet_label(*g)}]" for g in GRID}
    by = {r["label"]: r for r in rows}
    assert min(rows, key=lambda r: r["params"]) is by["ddrnet[conv]"]
    assert by["ddrnet[conv+DRDB+GLFEB+CSAB]"]["flops"] == max(r["flops"] for r in rows)
