"""MTA-CNN multi-task model (paper 001): variants train; coupling, heads and losses as documented."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leukmodels.blocks.multitask import (
    FeatureEncoder,
    MultiTaskConfig,
    MultiTaskNet,
    PlainEncoder,
    TaskCoupling,
    TimmEncoder,
    build_multitask,
    hierarchical_log_probs,
    hierarchical_loss,
)
from leukmodels.errors import DataError, UserError
from leukmodels.losses import CrossEntropy
from leukmodels.seg_losses import (
    SEG_LOSSES,
    BinaryFocalLoss,
    MultiTaskLoss,
    SoftDiceLoss,
    build_seg_loss,
    foreground_weight,
)

SMALL = {"width": 32, "encoder_widths": (8, 16, 16, 32, 32)}
VARIANTS = list(
    itertools.product(
        ["plain", "resnet18"], ["unet", "transunet"], [True, False], ["flat", "hierarchical"]
    )
)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 64, 64)
    mask[0, 20:40, 16:44] = 1
    mask[1, 8:30, 30:60] = 1
    return x, torch.tensor([0, 3]), mask


def _step(model: MultiTaskNet, seg_loss: str = "bce") -> dict[str, torch.Tensor]:
    x, y, mask = _batch()
    model.train()
    loss_fn = MultiTaskLoss(
        CrossEntropy(), build_seg_loss(seg_loss, fg_weight=foreground_weight(mask.numpy()))
    )
    out = model(x)
    assert out.logits.shape == (2, 4)
    total, parts = loss_fn(out.logits, y, out.mask_logits, mask)
    total.backward()
    assert torch.isfinite(total) and set(parts) == (
        {"cls", "seg"} if out.mask_logits is not None else {"cls"}
    )
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert all(g.abs().sum() > 0 for g in grads.values()), [
        n for n, g in grads.items() if g.abs().sum() == 0
    ]
    return grads


@pytest.mark.parametrize(("encoder", "decoder", "coupling", "head"), VARIANTS)
def test_every_variant_trains(encoder: str, decoder: str, coupling: bool, head: str) -> None:
    torch.manual_seed(0)
    cfg = MultiTaskConfig(encoder=encoder, decoder=decoder, coupling=coupling, head=head, **SMALL)
    model = build_multitask(cfg, num_classes=4)
    x, _, _ = _batch()
    out = model.eval()(x)
    assert out.mask_logits.shape == (2, 1, 64, 64)
    if head == "hierarchical":  # log-probabilities: they normalise
        assert torch.allclose(out.logits.logsumexp(1), torch.zeros(2), atol=1e-5)
    _step(model, seg_loss="focal" if coupling else "dice")
    assert len(model.alphas()) == (2 if coupling else 0)


@pytest.mark.parametrize("seg_loss", SEG_LOSSES)
@pytest.mark.parametrize("encoder", ["plain", "resnet18"])
def test_every_seg_loss_trains(seg_loss: str, encoder: str) -> None:
    torch.manual_seed(0)
    model = build_multitask(MultiTaskConfig(encoder=encoder, **SMALL), num_classes=4)
    _step(model, seg_loss)


def test_single_task_model_has_no_decoder() -> None:
    model = build_multitask(
        MultiTaskConfig(segmentation=False, coupling=False, **SMALL), num_classes=4
    )
    out = model(_batch()[0])
    assert out.mask_logits is None and not hasattr(model, "decoder")
    _step(model)
    with pytest.raises(UserError, match="coupling needs two tasks"):
        build_multitask(MultiTaskConfig(segmentation=False, **SMALL), 4)


@pytest.mark.parametrize("coupling", [True, False])
def test_coupling_carries_segmentation_features_into_the_classifier(coupling: bool) -> None:
    torch.manual_seed(0)
    model = build_multitask(MultiTaskConfig(coupling=coupling, **SMALL), 4).eval()
    x = _batch()[0]
    before = model(x).logits
    changed = copy.deepcopy(model)
    with torch.no_grad():
        for p in changed.seg_blocks.parameters():
            p.add_(torch.randn_like(p))
    after = changed(x).logits
    assert (not torch.allclose(before, after)) == coupling


def test_coupling_alpha_is_sigmoid_beta_and_learns() -> None:
    coupling = TaskCoupling(init_alpha=0.1)
    assert torch.allclose(coupling.alpha, torch.tensor([0.1, 0.1]))
    a, b = torch.ones(1, 2, 3, 3), torch.full((1, 2, 3, 3), 2.0)
    a2, b2 = coupling(a, b)
    assert torch.allclose(a2, a + 0.1 * b) and torch.allclose(b2, b + 0.1 * a)
    (a2.sum() + 2 * b2.sum()).backward()
    assert (coupling.beta.grad != 0).all()
    with torch.no_grad():
        coupling.beta.fill_(0.0)
    assert torch.allclose(coupling.alpha, torch.tensor([0.5, 0.5]))
    with pytest.raises(UserError):
        TaskCoupling(init_alpha=1.0)


@pytest.mark.parametrize("normal_class", [0, 2, 3])
def test_hierarchical_cross_entropy_is_bce_plus_subtype_ce(normal_class: int) -> None:
    g = torch.Generator().manual_seed(1)
    z, s = torch.randn(8, generator=g), torch.randn(8, 3, generator=g)
    y = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    logp = hierarchical_log_probs(z, s, normal_class)
    assert torch.allclose(logp.exp().sum(1), torch.ones(8), atol=1e-6)
    assert torch.allclose(logp[:, normal_class], F.logsigmoid(-z))
    ce = F.cross_entropy(logp, y)
    assert torch.allclose(ce, hierarchical_loss(z, s, y, normal_class), atol=1e-6)
    # by hand, one leukaemic image: log P = log sigmoid(z) + log softmax(s)[subtype]
    i = 1 if normal_class != 1 else 2
    sub = y[i] - (1 if y[i] > normal_class else 0)
    assert torch.isclose(logp[i, y[i]], F.logsigmoid(z[i]) + F.log_softmax(s[i], 0)[sub])


def test_encoders_fit_the_interface_and_give_strides_2_to_32() -> None:
    plain, timm_enc = PlainEncoder(widths=(8, 16, 16, 32, 32)), TimmEncoder("resnet18")
    x = torch.randn(1, 3, 64, 64)
    for enc in (plain, timm_enc):
        assert isinstance(enc, FeatureEncoder)
        feats = enc(x)
        assert enc.reductions == [2, 4, 8, 16, 32]
        assert [f.shape[1] for f in feats] == enc.channels
        assert [64 // f.shape[-1] for f in feats] == enc.reductions
    assert timm_enc.channels == [64, 64, 128, 256, 512]
    with pytest.raises(UserError, match="encoder 'no_such_net'"):
        TimmEncoder("no_such_net")
    with pytest.raises(TypeError, match="encoder"):
        MultiTaskNet(nn.Conv2d(3, 3, 1), 4, MultiTaskConfig())


def test_mask_logits_have_the_input_size_for_odd_sizes() -> None:
    model = build_multitask(MultiTaskConfig(encoder="resnet18", decoder="transunet", **SMALL), 2)
    out = model.eval()(torch.randn(1, 3, 72, 56))
    assert out.mask_logits.shape == (1, 1, 72, 56) and out.logits.shape == (1, 2)


def test_bad_configs_are_user_errors() -> None:
    with pytest.raises(UserError, match="decoder"):
        build_multitask(MultiTaskConfig(decoder="fpn"), 4)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="head"):
        build_multitask(MultiTaskConfig(head="tree"), 4)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="divisible"):
        build_multitask(MultiTaskConfig(decoder="transunet", width=30, heads=4), 4)
    with pytest.raises(UserError, match="hierarchical"):
        build_multitask(MultiTaskConfig(head="hierarchical", normal_class=4), 4)


# --- losses -----------------------------------------------------------------------------


def test_foreground_weight_is_background_over_foreground() -> None:
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2, :2] = 1  # 4 fg
    masks[1, 0, :] = 255  # 4 fg, nonzero counts
    assert foreground_weight(masks) == 24 / 8
    assert foreground_weight(iter(masks)) == 3.0
    with pytest.raises(DataError, match="no foreground"):
        foreground_weight(np.zeros((1, 4, 4)))


def test_focal_loss_matches_the_formula() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 5, 5, generator=g)
    target = (torch.rand(2, 5, 5, generator=g) > 0.6).float()
    a_c, gamma = 3.0, 2.0
    p = torch.sigmoid(logits.squeeze(1))
    direct = -(
        a_c * target * (1 - p) ** gamma * torch.log(p) + (1 - target) * p**gamma * torch.log(1 - p)
    ).mean()
    assert torch.allclose(BinaryFocalLoss(a_c, gamma)(logits, target), direct, atol=1e-6)
    # gamma 0 and a_c 1 is plain BCE
    bce = F.binary_cross_entropy_with_logits(logits.squeeze(1), target)
    assert torch.allclose(BinaryFocalLoss(1.0, 0.0)(logits, target), bce, atol=1e-6)
    assert torch.allclose(build_seg_loss("bce")(logits, target), bce)


def test_soft_dice_by_hand() -> None:
    logits = torch.tensor([[[20.0, 20.0], [-20.0, -20.0]]])  # p ~ [[1, 1], [0, 0]]
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # inter 1, sum p 2, sum t 1: dice = (2 + 1) / (3 + 1)
    assert torch.isclose(SoftDiceLoss()(logits, target), torch.tensor(1 - 3 / 4), atol=1e-6)
    perfect = SoftDiceLoss()(torch.full((1, 2, 2), -30.0), torch.zeros(1, 2, 2))
    assert perfect < 1e-6


def test_multitask_loss_is_the_weighted_sum() -> None:
    x, y, mask = _batch()
    logits, mask_logits = torch.randn(2, 4), torch.randn(2, 1, 64, 64)
    loss = MultiTaskLoss(CrossEntropy(), build_seg_loss("dice"), weights=(0.5, 2.0))
    total, parts = loss(logits, y, mask_logits, mask)
    assert torch.isclose(total, 0.5 * parts["cls"] + 2.0 * parts["seg"])
    only_cls, parts = loss(logits, y)
    assert set(parts) == {"cls"} and torch.isclose(only_cls, 0.5 * parts["cls"])
    with pytest.raises(UserError):
        build_seg_loss("lovasz")
    with pytest.raises(UserError, match="a_c"):
        build_seg_loss("focal")
    with pytest.raises(UserError):
        MultiTaskLoss(CrossEntropy(), None, weights=(1.0, -1.0))
