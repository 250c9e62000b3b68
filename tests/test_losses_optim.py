"""leukmodels.losses and leukmodels.optim on real tensors, optimisers and schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leukmodels.config import TrialParams
from leukmodels.errors import UserError
from leukmodels.losses import CEThenFocal, build_loss, inverse_frequency_weights
from leukmodels.optim import EarlyStopping, build_optimizer, build_scheduler, l1_penalty


def batch(seed: int = 0, n: int = 16, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * 3, torch.randint(0, k, (n,), generator=g)


class Tiny(nn.Module):
    """A conv + norm body and a linear head, with timm's get_classifier()."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


# --- losses ---------------------------------------------------------------------------


def test_focal_with_gamma_zero_and_no_alpha_is_cross_entropy() -> None:
    logits, target = batch()
    loss = build_loss(TrialParams(loss="focal", focal_gamma=0.0, focal_alpha=None), [1] * 4)
    assert loss(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item())


def test_focal_down_weights_easy_examples_and_scales_by_alpha() -> None:
    logits, target = batch(1)
    ce = F.cross_entropy(logits, target, reduction="none")
    pt = torch.exp(-ce)
    expected = (0.25 * (1 - pt) ** 2 * ce).mean()
    loss = build_loss(TrialParams(loss="focal", focal_gamma=2.0, focal_alpha=0.25), [1] * 4)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss(logits, target).item() < 0.25 * ce.mean().item()


def test_label_smoothing_equals_torch() -> None:
    logits, target = batch(2)
    loss = build_loss(TrialParams(loss="label_smoothing", label_smoothing=0.2), [1] * 4)
    expected = F.cross_entropy(logits, target, label_smoothing=0.2)
    assert loss(logits, target).item() == pytest.approx(expected.item())
    assert loss(logits, target).item() != pytest.approx(F.cross_entropy(logits, target).item())


def test_weighted_ce_uses_inverse_frequency_weights_with_mean_one() -> None:
    w = inverse_frequency_weights([10, 20, 40, 0])
    inv = torch.tensor([1 / 10, 1 / 20, 1 / 40])
    assert w[:3].tolist() == pytest.approx((inv / inv.mean()).tolist())
    assert w[:3].mean().item() == pytest.approx(1.0)
    assert w[3].item() == 0.0
    logits, target = batch(3)
    loss = build_loss(TrialParams(loss="weighted_ce"), [10, 20, 40, 0])
    assert loss(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=w).item()
    )
    with pytest.raises(UserError):
        inverse_frequency_weights([0, 0])


def test_ce_then_focal_switches_at_the_switch_epoch() -> None:
    logits, target = batch(4)
    params = TrialParams(loss="ce_then_focal", focal_switch_epoch=3, focal_gamma=2.0)
    loss = build_loss(params, [1] * 4)
    assert isinstance(loss, CEThenFocal)
    ce = F.cross_entropy(logits, target).item()
    focal = build_loss(TrialParams(loss="focal", focal_gamma=2.0), [1] * 4)(logits, target).item()
    assert ce != pytest.approx(focal)
    seen = []
    for epoch in range(5):
        loss.set_epoch(epoch)
        seen.append(loss(logits, target).item())
    assert seen[:3] == pytest.approx([ce] * 3)
    assert seen[3:] == pytest.approx([focal] * 2)


@pytest.mark.parametrize("name", ["ce", "weighted_ce", "focal", "label_smoothing", "ce_then_focal"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_gradients_are_finite_even_for_confident_logits(name: str, gamma: float) -> None:
    logits, target = batch(5)
    logits[0] = 0.0
    logits[0, target[0]] = 200.0  # p_t == 1 in float32
    logits.requires_grad_(True)
    loss = build_loss(TrialParams(loss=name, focal_gamma=gamma, focal_switch_epoch=0), [3, 5, 0, 8])
    value = loss(logits, target)
    value.backward()
    assert math.isfinite(value.item())
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


# --- optimisers -----------------------------------------------------------------------


def test_sgd_momentum_and_nesterov() -> None:
    opt = build_optimizer(Tiny(), TrialParams(optimizer="sgd", lr=0.05, momentum=0.8))
    assert isinstance(opt, torch.optim.SGD)
    (group,) = opt.param_groups
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.05, 0.8, False)
    assert group["weight_decay"] == 0.0
    opt = build_optimizer(Tiny(), TrialParams(optimizer="sgd", nesterov=True, momentum=0.9))
    assert opt.param_groups[0]["nesterov"] is True
    with pytest.raises(UserError, match="momentum"):
        build_optimizer(Tiny(), TrialParams(optimizer="sgd", nesterov=True, momentum=0.0))


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_family_betas_and_weight_decay_groups(name: str, cls: type) -> None:
    model = Tiny()
    params = TrialParams(optimizer=name, lr=3e-4, beta1=0.8, beta2=0.99, weight_decay=1e-5)
    opt = build_optimizer(model, params)
    assert type(opt) is cls
    no_decay, decay = opt.param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 1e-5
    for group in opt.param_groups:
        assert group["lr"] == 3e-4 and group["betas"] == (0.8, 0.99)
    # Biases and BatchNorm scales are not decayed; conv and linear weights are.
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_rmsprop() -> None:
    opt = build_optimizer(Tiny(), TrialParams(optimizer="rmsprop", lr=1e-3, momentum=0.5))
    assert isinstance(opt, torch.optim.RMSprop)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["alpha"]) == (1e-3, 0.5, 0.9)


# --- schedules ------------------------------------------------------------------------


def sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return build_optimizer(Tiny(), TrialParams(lr=lr))


def run(schedule, epochs: int, metrics: list[float] | None = None) -> list[float]:
    """The lr after each epoch-end step."""
    lrs = []
    for e in range(epochs):
        schedule.optimizer.step()
        schedule.step(None if metrics is None else metrics[e])
        lrs.append(schedule.lr)
    return lrs


def test_constant_schedule() -> None:
    opt = sgd()
    assert run(build_scheduler(opt, TrialParams(schedule="constant"), 5), 5) == [0.1] * 5


def test_cosine_reaches_min_lr_at_the_end() -> None:
    opt = sgd(0.1)
    schedule = build_scheduler(opt, TrialParams(schedule="cosine", min_lr=1e-4), 10)
    assert schedule.lr == 0.1
    lrs = run(schedule, 10)
    assert lrs[-1] == pytest.approx(1e-4)
    assert lrs[4] == pytest.approx(1e-4 + (0.1 - 1e-4) * 0.5)  # halfway
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


def test_step_schedule() -> None:
    opt = sgd(0.1)
    schedule = build_scheduler(opt, TrialParams(schedule="step", step_size=2, step_gamma=0.5), 6)
    assert run(schedule, 6) == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025, 0.0125])


def test_plateau_reduces_after_patience_in_max_mode() -> None:
    opt = sgd(0.1)
    params = TrialParams(schedule="plateau", plateau_patience=2, plateau_factor=0.1, min_lr=0.002)
    schedule = build_scheduler(opt, params, 20)
    # Rising scores never reduce (higher is better).
    assert run(schedule, 4, [0.5, 0.6, 0.7, 0.8]) == pytest.approx([0.1] * 4)
    # Two epochs without improvement are tolerated; the third reduces.
    assert run(schedule, 3, [0.8, 0.7, 0.8]) == pytest.approx([0.1, 0.1, 0.01])
    # Never below min_lr.
    assert run(schedule, 3, [0.1, 0.1, 0.1])[-1] == pytest.approx(0.002)
    with pytest.raises(UserError, match="validation"):
        schedule.step(None)


def test_plateau_in_min_mode_for_a_loss() -> None:
    params = TrialParams(schedule="plateau", plateau_patience=0, plateau_factor=0.5)
    schedule = build_scheduler(sgd(0.1), params, 5, mode="min")
    assert run(schedule, 3, [1.0, 0.9, 0.95]) == pytest.approx([0.1, 0.1, 0.05])


# --- L1 and early stopping ------------------------------------------------------------


def test_l1_penalty_on_classifier_weights() -> None:
    model = Tiny()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 0.5]] * 3))
        model.fc.bias.fill_(100.0)  # biases are not penalised
    penalty = l1_penalty(model, TrialParams(l1=0.015))
    assert penalty.item() == pytest.approx(0.015 * 3 * 3.5)
    penalty.backward()
    torch.testing.assert_close(
        model.fc.weight.grad, torch.tensor([[0.015, -0.015, 0.0, 0.015]] * 3)
    )
    assert model.fc.bias.grad is None
    zero = l1_penalty(model, TrialParams(l1=0.0))
    assert zero.item() == 0.0 and zero.ndim == 0


def test_early_stopping_semantics() -> None:
    stop = EarlyStopping(patience=2)
    assert [stop.update(v, e) for e, v in enumerate([0.5, 0.7, 0.6, 0.7])] == [
        False,
        False,
        False,
        True,  # 0.7 again is not a strict improvement: two epochs without one
    ]
    assert (stop.best, stop.best_epoch) == (0.7, 1)

    stop = EarlyStopping(patience=2, mode="min")
    assert [stop.update(v, e) for e, v in enumerate([1.0, 0.8, 0.9, 0.7, 0.75])] == [False] * 5
    assert (stop.best, stop.best_epoch) == (0.7, 3)

    never = EarlyStopping(patience=None)
    assert not any(never.update(0.0, e) for e in range(50))
    assert never.best_epoch == 0

    nan = EarlyStopping(patience=1)
    assert nan.update(float("nan"), 0) is True
    assert nan.best is None
