"""Size, compute and CPU latency of the model a TrialParams describes.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one image; it counts a
multiply-add as 2 FLOPs, so ``macs = flops / 2`` (convolutions and matmuls only, as the
counter does; element-wise ops such as the attention gates are not counted).

:func:`profile_once` is :func:`profile` measured once per architecture in a process
(a search's worker profiles every trial it runs; trials of one architecture share it).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from leukmodels.arch import arch_key, arch_label, build_model
from leukmodels.config import TrialParams

_MEASURED: dict[str, dict[str, Any]] = {}


def profile(
    params: TrialParams, num_classes: int, input_size: int = 224, latency_runs: int = 10
) -> dict[str, Any]:
    """Parameters, FLOPs, MACs, size (MiB) and batch-1 CPU latency (ms, median).

    ``size_mb`` is parameter + buffer bytes / 2**20. Latency is the median of
    ``latency_runs`` timed forwards after a warm-up run (and the counted one), under
    ``torch.inference_mode``, with the caller's torch thread count (``threads``).
    """
    model = build_model(params, num_classes).eval()
    return {**describe(params), **measure(model, input_size, latency_runs)}


def profile_once(
    params: TrialParams, num_classes: int, input_size: int = 224, latency_runs: int = 10
) -> dict[str, Any]:
    """:func:`profile`, measured once per architecture (:func:`leukmodels.arch.arch_key`),
    class count, input size, latency runs and torch thread count in this process."""
    key = json.dumps(
        [arch_key(params), num_classes, input_size, latency_runs, torch.get_num_threads()],
        sort_keys=True,
        default=str,
    )
    if key not in _MEASURED:
        model = build_model(params, num_classes).eval()
        _MEASURED[key] = measure(model, input_size, latency_runs)
    return {**describe(params), **_MEASURED[key]}


def measure(model: torch.nn.Module, input_size: int, latency_runs: int) -> dict[str, Any]:
    """Parameters, FLOPs, MACs, size and latency of an eval-mode ``model`` on one RGB
    image ``input_size`` pixels square (see :func:`profile`)."""
    x = torch.zeros(1, 3, input_size, input_size)
    n_params = sum(p.numel() for p in model.parameters())
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        flops = int(counter.get_total_flops())
        model(x)  # warm-up
        times = []
        for _ in range(max(1, latency_runs)):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000.0)
    return {
        "params": n_params,
        "flops": flops,
        "macs": flops // 2,
        "size_mb": size / 2**20,
        "latency_ms": statistics.median(times),
        "input_size": input_size,
        "threads": torch.get_num_threads(),
    }


def describe(params: TrialParams) -> dict[str, Any]:
    """The architecture's names: backbone, attention, placement, pooling, label."""
    key = arch_key(params)
    return {
        "backbone": key["backbone"] or params.family,  # mta_cnn: no backbone of its own
        "attention": params.attention,
        "placement": key["placement"],
        "pooling": params.pooling,
        "attention_pooling": key["attention_pooling"],
        "spatial_conv": key["spatial_conv"],
        "label": arch_label(params),
    }
