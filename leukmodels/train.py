"""One training run: a :class:`TrialConfig` in, per-epoch metrics out, test metrics at the end.

The loop is short on purpose: prepare the data (decode cache, split, pre-processing), build
model / loss / optimiser / schedule, train and validate each epoch, keep the best epoch by
the monitored validation metric, stop early on patience, then evaluate the best weights on
the test split (and on test images with added Gaussian noise, one evaluation per sigma).

``on_epoch(row)`` is called after every epoch with a flat dict of numbers; the search
service reports it to Ray Tune from there. It may raise to stop the trial.
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from leukmodels.arch import build_model
from leukmodels.config import VAL_METRICS, TrialConfig
from leukmodels.data.prepare import make_eval_loader, make_loaders, prepare_data, test_noise_sets
from leukmodels.errors import DataError
from leukmodels.losses import build_loss
from leukmodels.metrics import classification_metrics, uncertain_fraction
from leukmodels.optim import EarlyStopping, build_optimizer, build_scheduler, l1_penalty
from leukmodels.profile import profile

Log = Callable[[str], None]
EpochCallback = Callable[[dict[str, Any]], Any]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str | None) -> torch.device:
    """``name`` if given, else CUDA when available, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: Any,
    device: torch.device,
    scaler: torch.amp.GradScaler,
) -> dict[str, float]:
    """One pass over the training set; returns loss, accuracy and data/compute seconds."""
    model.train()
    amp = device.type == "cuda"
    total_loss, correct, seen = 0.0, 0, 0
    data_s = compute_s = 0.0
    t = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        t_data = time.perf_counter()
        data_s += t_data - t
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)
            loss = loss_fn(logits, y) + l1_penalty(model, params)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        t = time.perf_counter()
        compute_s += t - t_data
    return {
        "train_loss": total_loss / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "data_time_s": data_s,
        "compute_time_s": compute_s,
    }


@torch.inference_mode()
def predict(
    model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device
) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels, class probabilities and mean cross-entropy over ``loader``.

    The loss is plain cross-entropy whatever the training loss (focal, smoothed,
    weighted): a proper scoring rule that compares across trials.
    """
    model.eval()
    ys, probs, total, n = [], [], 0.0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            logits = model(x)
        logits = logits.float()
        total += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        n += len(y)
        ys.append(y.cpu().numpy())
        probs.append(torch.softmax(logits, 1).cpu().numpy())
    if not ys:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0)), float("nan")
    return np.concatenate(ys), np.concatenate(probs), total / max(n, 1)


def _val_row(metrics: dict[str, Any], loss: float) -> dict[str, float]:
    row = {f"val_{k}": metrics[k] for k in VAL_METRICS if isinstance(metrics.get(k), (int, float))}
    row["val_loss"] = loss
    return row


def run_trial(
    config: TrialConfig,
    on_epoch: EpochCallback | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train and test one configuration; returns epochs, test metrics, timings and seeds."""
    say = log or (lambda _msg: None)
    p = config.params
    t_start = time.perf_counter()
    threads = config.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, threads))
    seed_everything(p.seed)
    device = pick_device(config.device)

    data = prepare_data(config.data, p, log=say)
    n_classes = len(data.class_names)
    for name, part in (("training", data.train), ("test", data.test)):
        if len(part) == 0:
            raise DataError(
                f"the {name} split of {config.data.dataset} is empty "
                f"({len(data.train)} train / {len(data.val)} val / {len(data.test)} test images); "
                "use more images or patients, or change data.split"
            )
    say(
        f"data: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
        f"{n_classes} classes, split {data.split.hash}"
        + (f" (decode cache hit: {data.cache_path})" if data.cache_hit else "")
    )
    train_loader, val_loader, test_loader = make_loaders(data, p, seed=p.seed)

    seed_everything(p.seed)
    model = build_model(p, num_classes=n_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(p, list(data.class_counts.values())).to(device)
    optimizer = build_optimizer(model, p)
    scheduler = build_scheduler(optimizer, p, p.epochs, mode=config.monitor_mode)
    stopper = EarlyStopping(p.patience, mode=config.monitor_mode)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    monitor = config.monitor
    has_val = len(data.val) > 0
    if not has_val:
        say("warning: no validation images; the best epoch is chosen on training metrics")

    epochs: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    t_train = time.perf_counter()
    for epoch in range(1, p.epochs + 1):
        t_epoch = time.perf_counter()
        loss_fn.set_epoch(epoch - 1)
        row: dict[str, Any] = {"epoch": epoch, "lr": scheduler.lr}
        row.update(train_one_epoch(model, train_loader, loss_fn, optimizer, p, device, scaler))
        if p.precise_bn:
            # population statistics for the current weights: the running averages of a
            # short run from scratch lag far behind them (Wu & Johnson, "Rethinking BatchNorm")
            update_bn(train_loader, model, device)
        if has_val:
            y, proba, vloss = predict(model, val_loader, device)
            row.update(_val_row(classification_metrics(y, proba, data.class_names), vloss))
        value = row.get(monitor, row.get(monitor.replace("val_", "train_"), row["train_accuracy"]))
        row.setdefault(monitor, value)  # the search always sees the metric it ranks by
        stop = stopper.update(value, epoch)
        if stopper.best_epoch == epoch:
            best_state = copy.deepcopy(model.state_dict())
        scheduler.step(value)
        row["epoch_time_s"] = time.perf_counter() - t_epoch
        epochs.append(row)
        say(
            f"epoch {epoch}/{p.epochs}  loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.3f}"
            + (
                f"  val acc {row['val_accuracy']:.3f}  val f1 {row['val_f1']:.3f}"
                if has_val
                else ""
            )
            + f"  {row['epoch_time_s']:.1f}s"
        )
        if on_epoch is not None:
            on_epoch(dict(row))
        if stop:
            say(f"early stop at epoch {epoch}: no {monitor} gain for {p.patience} epochs")
            break
    train_s = time.perf_counter() - t_train

    if best_state is not None:
        model.load_state_dict(best_state)
    t_test = time.perf_counter()
    y, proba, _ = predict(model, test_loader, device)
    test = classification_metrics(y, proba, data.class_names, positive=config.data.positive_class)
    test["uncertain_fraction"] = uncertain_fraction(proba, p.uncertain_below) if len(y) else None
    noise: dict[str, Any] = {}
    for sigma, images in test_noise_sets(data, p.test_noise, seed=p.seed):
        ys, ps, _ = predict(model, make_eval_loader(images, data.test.labels, p), device)
        noise[f"{sigma:g}"] = classification_metrics(
            ys, ps, data.class_names, positive=config.data.positive_class
        )
    test_s = time.perf_counter() - t_test
    say(
        f"test: accuracy {test['accuracy']:.4f}  f1 {test['f1']:.4f}  (best epoch {stopper.best_epoch})"
    )

    checkpoint_path = None
    if config.checkpoint_dir:
        out = Path(config.checkpoint_dir)
        out.mkdir(parents=True, exist_ok=True)
        checkpoint_path = str(out / "best.pt")
        torch.save(
            {
                "state_dict": model.state_dict(),
                "config": config.model_dump(mode="json"),
                "class_names": data.class_names,
                "best_epoch": stopper.best_epoch,
            },
            checkpoint_path,
        )
    complexity = profile(p, n_classes, input_size=config.data.image_size, latency_runs=5)
    return {
        "params": p.model_dump(mode="json"),
        "data": config.data.model_dump(mode="json"),
        "class_names": data.class_names,
        "epochs": epochs,
        "best_epoch": stopper.best_epoch,
        "best_value": stopper.best,
        "monitor": monitor,
        "test": test,
        "noise": noise,
        "profile": {k: complexity[k] for k in ("params", "flops", "macs", "size_mb", "latency_ms")},
        "split": {"hash": data.split.hash, "warnings": list(data.split.warnings)},
        "data_report": {
            "cache_hit": data.cache_hit,
            "cache_path": str(data.cache_path) if data.cache_path else None,
            "bad_images": list(data.bad_images),
            "n_bad_images": len(data.bad_images),
            "class_counts": data.class_counts,
            "n_no_nucleus": data.n_no_nucleus,
        },
        "timings": {
            "data_prepare_s": data.timings.get("total_s"),
            "data_decode_s": data.timings.get("decode_s"),
            "train_s": train_s,
            "data_wait_s": sum(r["data_time_s"] for r in epochs),
            "compute_s": sum(r["compute_time_s"] for r in epochs),
            "test_s": test_s,
            "total_s": time.perf_counter() - t_start,
        },
        "seed": p.seed,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "checkpoint_path": checkpoint_path,
    }
