"""profile(): parameters, FLOPs/MACs, size and latency of a built architecture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from leukmodels import profile as profile_module
from leukmodels.arch import build_model
from leukmodels.config import TrialParams
from leukmodels.profile import profile, profile_once

KEYS = {
    "params",
    "flops",
    "macs",
    "size_mb",
    "latency_ms",
    "backbone",
    "attention",
    "placement",
    "pooling",
    "attention_pooling",
    "spatial_conv",
    "label",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Profile on one thread: two on a shared two-core machine stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_profile_counts_match_the_built_model() -> None:
    params = TrialParams(attention="scab", placement=["stage2", "stage3"], head_bn=True)
    result = profile(params, 4, input_size=64, latency_runs=2)
    assert KEYS <= set(result)
    model = build_model(params, 4)
    assert result["params"] == sum(p.numel() for p in model.parameters())
    tensors = [*model.parameters(), *model.buffers()]
    floats = sum(t.numel() for t in tensors if t.dtype == torch.float32)
    counters = sum(t.numel() for t in tensors if t.dtype == torch.int64)  # BN batch counts
    assert floats + counters == sum(t.numel() for t in tensors)
    assert result["size_mb"] == pytest.approx((4 * floats + 8 * counters) / 2**20)
    assert result["macs"] * 2 == result["flops"] > 0
    assert result["latency_ms"] > 0
    assert result["threads"] == 1
    assert result["placement"] == ["stage2", "stage3"]
    assert result["attention_pooling"] == "both"
    assert result["spatial_conv"] == "dilated"  # SCAB's default, resolved
    assert result["label"] == "resnet18+scab@stage2-3/both head=gap+bn"


def test_resnet18_flops_at_224_match_published_macs() -> None:
    result = profile(TrialParams(), 1000, input_size=224, latency_runs=1)
    assert result["params"] == 11_689_512  # torchvision / timm resnet18
    assert 1.80e9 < result["macs"] < 1.84e9  # 1.82 GMACs is the published figure


def test_flops_scale_with_input_area() -> None:
    small = profile(TrialParams(backbone="mobilenetv1_100"), 2, input_size=64, latency_runs=1)
    large = profile(TrialParams(backbone="mobilenetv1_100"), 2, input_size=128, latency_runs=1)
    assert large["flops"] / small["flops"] == pytest.approx(4.0, rel=0.01)
    assert large["params"] == small["params"]


def test_attention_costs_show_in_profile() -> None:
    runs = {
        a: profile(TrialParams(attention=a), 2, input_size=64, latency_runs=1)
        for a in ("none", "se", "pcab", "pcab_heavy")
    }
    assert runs["none"]["params"] < runs["se"]["params"] < runs["pcab_heavy"]["params"]
    heavy_flops = runs["pcab_heavy"]["flops"] - runs["none"]["flops"]
    light_flops = runs["pcab"]["flops"] - runs["none"]["flops"]
    assert heavy_flops > 10 * light_flops > 0
    assert runs["se"]["attention_pooling"] is None and runs["se"]["spatial_conv"] is None
    assert runs["none"]["placement"] == []


def test_profile_leaves_no_grad_state() -> None:
    profile(TrialParams(backbone="mobilenetv4_conv_small"), 2, input_size=32, latency_runs=1)
    assert torch.is_grad_enabled()


def test_profile_once_measures_each_architecture_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials that differ only in training (lr, optimiser) share one measurement; another
    architecture, class count or input size is measured anew; the names stay the trial's."""
    built: list[TrialParams] = []

    def counting(params: TrialParams, num_classes: int) -> torch.nn.Module:
        built.append(params)
        return build_model(params, num_classes)

    monkeypatch.setattr(profile_module, "build_model", counting)
    monkeypatch.setattr(profile_module, "_MEASURED", {})
    first = profile_once(TrialParams(lr=1e-3), 4, input_size=32, latency_runs=1)
    again = profile_once(TrialParams(lr=1e-2, optimizer="sgd"), 4, input_size=32, latency_runs=1)
    assert len(built) == 1 and again == first
    assert first == {**profile(TrialParams(), 4, input_size=32, latency_runs=1), "latency_ms":
                     first["latency_ms"]}  # fmt: skip
    built.clear()
    se = profile_once(TrialParams(attention="se"), 4, input_size=32, latency_runs=1)
    profile_once(TrialParams(), 3, input_size=32, latency_runs=1)
    profile_once(TrialParams(), 4, input_size=64, latency_runs=1)
    assert len(built) == 3 and se["label"] != first["label"] and se["params"] > first["params"]
