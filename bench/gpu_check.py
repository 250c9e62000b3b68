"""GPU check of the CUDA paths the CPU test suite cannot reach (AMP, channels_last).

Three parts, each written to one JSON file (``--out``):

- ``blocks``: every backbone x attention block (placed at all sites, head pooling 'both'
  with BN) plus the dilated backbones trains one step on CUDA under fp16 autocast with a
  GradScaler and channels_last inputs for a few steps; every loss, weight and logit must
  stay finite; the autocast logits' distance from the fp32 logits is reported.
- ``trial``: ``leukmodels.train.run_trial`` end to end on the GPU for the quickstart
  space's smoke profile (baseline and two attention variants).
- ``throughput``: training images/s at 224 px, batch 64: fp32 NCHW against fp16 autocast
  with channels_last (what ``train.py`` does on CUDA), and the other combinations.

Usage (repository root): ``python bench/gpu_check.py --out gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leukmodels.arch import build_model
from leukmodels.config import ATTENTIONS, BACKBONES, TrialParams
from leukmodels.sites import DILATABLE


def check_block(
    params: TrialParams, size: int = 128, batch: int = 8, steps: int = 6
) -> dict[str, Any]:
    """A few AMP + channels_last training steps, then fp32 against AMP logits.

    GradScaler starts at scale 65536 and skips the steps whose fp16 gradients overflow
    (by design); the check asks that every loss is finite, that some step was applied
    and that all weights stay finite. Logits are compared in training mode (batch
    statistics): eval mode after a few steps would test BN running averages that have
    not converged, not the kernels.
    """
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = build_model(params, num_classes=4).to(dev).to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,), device=dev)
    model.train()
    losses, skipped = [], 0
    t = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        skipped += scaler.get_scale() < scale
        losses.append(loss.item())
    torch.cuda.synchronize()
    step_ms = (time.perf_counter() - t) * 1000 / steps
    weights_finite = all(torch.isfinite(p).all().item() for p in model.parameters())
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with torch.no_grad():
        ref = model(x).float()
        with torch.autocast("cuda", dtype=torch.float16):
            amp = model(x).float()
    diff = (amp - ref).abs().max().item()
    spread = ref.std().item()
    return {
        "losses": [round(v, 4) for v in losses],
        "loss_finite": all(math.isfinite(v) for v in losses),
        "steps_skipped": int(skipped),
        "weights_finite": weights_finite,
        "weights_changed": changed,
        "logits_finite": bool(
            torch.isfinite(amp).all().item() and torch.isfinite(ref).all().item()
        ),
        "max_abs_diff_amp_vs_fp32": diff,
        "rel_diff": diff / max(spread, 1e-12),
        "argmax_agreement": (amp.argmax(1) == ref.argmax(1)).float().mean().item(),
        "step_ms": round(step_ms, 1),
    }


def part_blocks() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    combos = [
        dict(backbone=b, attention=a, placement="all", pooling="both", head_bn=True)
        for b in BACKBONES
        for a in ATTENTIONS
    ]
    combos += [
        dict(backbone=b, attention="scab", backbone_conv="dilated", output_stride=os_)
        for b in DILATABLE
        for os_ in (16, 8)
    ]
    for kw in combos:
        row: dict[str, Any] = dict(kw)
        try:
            row.update(check_block(TrialParams(**kw)))
            # rel_diff and argmax agreement are reported, not judged: on an untrained
            # network whose steps GradScaler has not applied yet, logits are near ties
            row["ok"] = row["loss_finite"] and row["weights_finite"] and row["logits_finite"]
        except Exception as exc:  # noqa: BLE001 - a check records every failure and goes on
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
        print(json.dumps({k: v for k, v in row.items() if k != "tb"}), flush=True)
        rows.append(row)
    return rows


def part_trial() -> list[dict[str, Any]]:
    from leukmodels.train import run_trial
    from search.space import load_space

    space = load_space("spaces/quickstart.yaml", "smoke")
    out = []
    for extra in (
        {},
        {"attention": "scab"},
        {"backbone": "mobilenetv4_conv_small", "attention": "cbam"},
    ):
        point = space.fill({**space.baseline(), **extra})
        config = space.trial_config(point)
        config.device = "cuda"
        t = time.perf_counter()
        try:
            r = run_trial(config)
            row = {
                "params": extra or "baseline",
                "ok": True,
                "wall_s": round(time.perf_counter() - t, 2),
                "test_accuracy": r.test.accuracy,
                "test_f1": r.test.f1,
                "best_epoch": r.best_epoch,
                "timings": r.timings.model_dump(),
                "epochs": [
                    e.model_dump(include={"epoch", "train_loss", "val_accuracy", "epoch_time_s"})
                    for e in r.epochs
                ],
            }
        except Exception as exc:  # noqa: BLE001
            row = {"params": extra, "ok": False, "error": repr(exc), "tb": traceback.format_exc()}
        print(json.dumps({k: v for k, v in row.items() if k not in ("tb", "epochs")}), flush=True)
        out.append(row)
    return out


MODES = {  # name: (autocast dtype or None, channels_last)
    "fp32": (None, False),
    "fp32_cl": (None, True),
    "fp16": (torch.float16, False),
    "fp16_cl": (torch.float16, True),
    "bf16_cl": (torch.bfloat16, True),
}


def _images_per_s(params: TrialParams, mode: str, size: int = 224, batch: int = 64) -> float:
    dtype, cl = MODES[mode]
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(params, num_classes=4).to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    if cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    model.train()

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t)


def part_throughput() -> list[dict[str, Any]]:
    rows = []
    for backbone in ("resnet18", "resnet50", "mobilenetv4_conv_small", "efficientnetv2_s"):
        for attention in ("none", "scab"):
            p = TrialParams(backbone=backbone, attention=attention, pooling="both")
            row: dict[str, Any] = {"backbone": backbone, "attention": attention}
            for mode in MODES:
                try:
                    row[mode] = round(_images_per_s(p, mode), 1)
                except Exception as exc:  # noqa: BLE001
                    row[mode] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--parts", default="blocks,trial,throughput")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stdout)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    import timm

    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
    }
    print(json.dumps(result), flush=True)
    parts = {"blocks": part_blocks, "trial": part_trial, "throughput": part_throughput}
    for name in args.parts.split(","):
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        result[name] = parts[name]()
        result[f"{name}_s"] = round(time.perf_counter() - t, 1)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    ok = all(r.get("ok", True) for part in ("blocks", "trial") for r in result.get(part, []))
    print(f"== all checks ok: {ok}", flush=True)


if __name__ == "__main__":
    main()
