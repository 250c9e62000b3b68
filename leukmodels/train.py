"""One training run: a :class:`TrialConfig` in, a :class:`TrialResult` out.

Read top to bottom: :func:`setup` prepares the data (decode cache, split, pre-processing)
and builds model / loss / optimiser / schedule; :func:`fit` trains and validates each
epoch, keeps the best epoch by the monitored validation metric and stops early on
patience; :func:`evaluate` tests the best weights on the test split (and on test images
with added Gaussian noise, one evaluation per sigma). :func:`run_trial` is the three.

``on_epoch(row)`` is called after every epoch with its :class:`EpochRow`; the search
service reports it to Ray Tune from there. It may raise to stop the trial.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from leukmodels import checkpoint
from leukmodels.arch import build_model
from leukmodels.blocks.multitask import MultiTaskOutput
from leukmodels.config import VAL_METRICS, TrialConfig
from leukmodels.data.prepare import (
    PreparedData,
    check_split_sizes,
    make_eval_loader,
    make_loaders,
    prepare_data,
    test_noise_sets,
)
from leukmodels.errors import DataError, UserError
from leukmodels.losses import build_loss
from leukmodels.metrics import classification_metrics, uncertain_fraction
from leukmodels.mta import batch_loss, build_mta_loss, is_mta, segments
from leukmodels.optim import (
    EarlyStopping,
    Schedule,
    build_optimizer,
    build_scheduler,
    l1_penalty,
)
from leukmodels.profile import profile_once
from leukmodels.results import (
    DataReport,
    EpochRow,
    EvalMetrics,
    Predictions,
    Profile,
    SegmentationMetrics,
    SplitInfo,
    TestMetrics,
    Timings,
    TrialResult,
)
from leukmodels.seg_metrics import SegmentationMeter

logger = logging.getLogger(__name__)
EpochCallback = Callable[[EpochRow], Any]
StateCallback = Callable[[EpochRow, dict[str, Any]], Any]
"""Gets each epoch's row with the training state to continue after it (a checkpoint)."""
SEG_MONITORS = ("val_dice", "val_iou")
_MONITORS = ", ".join(k for k in EpochRow.model_fields if k != "epoch")


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
    for batch in loader:  # (x, y) or, when the trial segments, (x, y, mask)
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        mask = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        t_data = time.perf_counter()
        data_s += t_data - t
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits, loss = batch_loss(loss_fn, model(x), y, mask)
            loss = loss + l1_penalty(model, params)
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
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    seg: SegmentationMeter | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels, class probabilities and mean cross-entropy over ``loader``.

    The loss is plain cross-entropy whatever the training loss (focal, smoothed,
    weighted): a proper scoring rule that compares across trials. With ``seg``, a
    multi-task model's predicted masks are scored against the loader's masks into it.
    """
    model.eval()
    ys, probs, total, n = [], [], 0.0, 0
    for batch in loader:
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            out = model(x)
        logits = out.logits.float() if isinstance(out, MultiTaskOutput) else out.float()
        if seg is not None and isinstance(out, MultiTaskOutput) and out.mask_logits is not None:
            seg.update(out.mask_logits, batch[2])
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


@dataclass
class Run:
    """What :func:`setup` builds for :func:`fit` and :func:`evaluate`."""

    config: TrialConfig
    device: torch.device
    data: PreparedData
    loaders: tuple[DataLoader, DataLoader, DataLoader]  # train, val, test
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping
    started: float  # perf_counter() when setup began
    started_unix: float = 0.0  # time.time() when setup began
    setup_s: float = 0.0
    model_build_s: float = 0.0


def setup(config: TrialConfig) -> Run:
    """Threads and seeds, the data (split, pre-processed), model, loss, optimiser, schedule."""
    started, started_unix = time.perf_counter(), time.time()
    p = config.params
    if config.monitor not in EpochRow.model_fields:
        raise UserError(f"monitor {config.monitor!r} is not an epoch metric; valid: {_MONITORS}")
    if config.monitor in SEG_MONITORS and not segments(p):
        raise UserError(
            f"monitor {config.monitor} is reported by multi-task trials only "
            "(family='mta_cnn', task='multi')"
        )
    torch.set_num_threads(max(1, config.threads or len(os.sched_getaffinity(0))))
    seed_everything(p.seed)
    device = pick_device(config.device)
    data = prepare_data(config.data, p)
    check_split_sizes(data, config.data.dataset)
    logger.info(
        "data: %d train / %d val / %d test, %d classes, split %s%s",
        len(data.train), len(data.val), len(data.test), len(data.class_names), data.split.hash,
        f" (decode cache hit: {data.cache_path})" if data.cache_hit else "",
    )  # fmt: skip
    if len(data.val) == 0 and config.monitor.startswith("val_"):
        raise DataError(
            f"monitor {config.monitor} needs validation images but the validation split of "
            f"{config.data.dataset} is empty ({len(data.train)} train / {len(data.test)} test); "
            "give data.split a validation share or monitor train_loss / train_accuracy"
        )
    loaders = _loaders(data, config)
    seed_everything(p.seed)
    t_build = time.perf_counter()
    model = build_model(p, num_classes=len(data.class_names)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, p)
    built = time.perf_counter()
    return Run(
        config=config,
        device=device,
        data=data,
        loaders=loaders,
        model=model,
        loss_fn=_loss(p, data).to(device),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, p, p.epochs, mode=config.monitor_mode),
        scaler=torch.amp.GradScaler(device.type, enabled=device.type == "cuda"),
        stopper=EarlyStopping(p.patience, mode=config.monitor_mode),
        started=started,
        started_unix=started_unix,
        setup_s=built - started,
        model_build_s=built - t_build,
    )


def _loaders(data: PreparedData, config: TrialConfig) -> tuple[DataLoader, ...]:
    """The train / val / test loaders, with the masks when the trial segments."""
    p = config.params
    if segments(p) and not data.has_masks:
        raise DataError(
            f"task='multi' trains nucleus segmentation, but {config.data.dataset} has no masks "
            "(all_taleqani's Segmented/ folder, a manifest's mask column, or synthetic have them)"
        )
    return make_loaders(data, p, seed=p.seed, with_masks=segments(p))


def _loss(p: Any, data: PreparedData) -> nn.Module:
    """The trial's classification loss; for mta_cnn the weighted multi-task sum."""
    cls_loss = build_loss(p, list(data.class_counts.values()))
    return build_mta_loss(p, cls_loss, data.train) if is_mta(p) else cls_loss


def _seg_meter(run: Run) -> SegmentationMeter | None:
    return SegmentationMeter() if segments(run.config.params) else None


def epoch_row(run: Run, epoch: int) -> EpochRow:
    """Train one epoch, then validate; the row always holds the monitored metric (NaN when
    it is undefined this epoch: it never improves, and nothing stands in for it)."""
    p, monitor = run.config.params, run.config.monitor
    train_loader, val_loader, _ = run.loaders
    run.loss_fn.set_epoch(epoch - 1)
    row: dict[str, Any] = {"epoch": epoch, "lr": run.scheduler.lr}
    row.update(
        train_one_epoch(
            run.model, train_loader, run.loss_fn, run.optimizer, p, run.device, run.scaler
        )
    )
    t = time.perf_counter()
    if p.precise_bn:
        # population statistics for the current weights: the running averages of a
        # short run from scratch lag far behind them (Wu & Johnson, "Rethinking BatchNorm")
        update_bn(train_loader, run.model, run.device)
        row["bn_time_s"] = time.perf_counter() - t
    if len(run.data.val):
        t = time.perf_counter()
        seg = _seg_meter(run)
        y, proba, vloss = predict(run.model, val_loader, run.device, seg)
        row.update(_val_row(classification_metrics(y, proba, run.data.class_names), vloss))
        if seg is not None and seg.count:
            scores = seg.compute()
            row.update(val_dice=scores["dice_macro"], val_iou=scores["iou_macro"])
        row["val_time_s"] = time.perf_counter() - t
    # the search always sees the metric it ranks by: NaN when undefined this epoch (e.g.
    # kappa when every validation image got one class), never another metric in its place
    row.setdefault(monitor, math.nan)
    return EpochRow.model_validate(row)


@dataclass
class Fitted:
    """The epochs trained and the weights of the best one."""

    epochs: list[EpochRow]
    best_state: dict[str, torch.Tensor] | None
    seconds: float
    stopped: bool = False  # early stopping ended training
    report_s: float = 0.0  # in the epoch callbacks (on_epoch, on_state)


def fit(
    run: Run,
    on_epoch: EpochCallback | None = None,
    *,
    start: dict[str, Any] | None = None,
    on_state: StateCallback | None = None,
) -> Fitted:
    """Train epoch by epoch, keep the best epoch's weights, stop early on patience.

    ``start`` (a :func:`leukmodels.checkpoint.capture` state) continues after its last
    epoch; ``on_state`` gets every epoch's row with the state to continue after it.
    """
    p, monitor, stopper = run.config.params, run.config.monitor, run.stopper
    epochs, best_state, done_s, stopped = (
        checkpoint.restore(run, start) if start else ([], None, 0.0, False)
    )
    if start:
        logger.info("continuing after epoch %d", len(epochs))
    begin, report_s = time.perf_counter() - done_s, 0.0
    if stopped:
        return Fitted(epochs, best_state, done_s, stopped=True)
    for epoch in range(len(epochs) + 1, p.epochs + 1):
        t_epoch = time.perf_counter()
        row = epoch_row(run, epoch)
        value = getattr(row, monitor)
        stop = stopper.update(value, epoch)
        if stopper.best_epoch == epoch:
            best_state = copy.deepcopy(run.model.state_dict())
        run.scheduler.step(value)
        row.epoch_time_s = time.perf_counter() - t_epoch
        epochs.append(row)
        val = (
            f"  val acc {row.val_accuracy:.3f}  val f1 {row.val_f1:.3f}"
            if len(run.data.val)
            else ""
        )
        logger.info(
            "epoch %d/%d  loss %.4f  train acc %.3f%s  %.1fs",
            epoch, p.epochs, row.train_loss, row.train_accuracy, val, row.epoch_time_s,
        )  # fmt: skip
        t_report = time.perf_counter()
        if on_epoch is not None:
            on_epoch(row.model_copy())
        if on_state is not None:
            seconds = t_report - begin
            on_state(row.model_copy(), checkpoint.capture(run, epochs, best_state, seconds, stop))
        report_s += time.perf_counter() - t_report
        if stop:
            logger.info(
                "early stop at epoch %d: no %s gain for %d epochs", epoch, monitor, p.patience
            )
            return Fitted(epochs, best_state, time.perf_counter() - begin, True, report_s)
    return Fitted(epochs, best_state, time.perf_counter() - begin, report_s=report_s)


def _noise_metrics(run: Run) -> dict[str, EvalMetrics]:
    """Test metrics per test-time noise sigma (``params.test_noise``)."""
    data, p, positive = run.data, run.config.params, run.config.data.positive_class
    noise: dict[str, EvalMetrics] = {}
    for sigma, images in test_noise_sets(data, p.test_noise, seed=p.seed):
        loader = make_eval_loader(images, data.test.labels, p)
        ys, ps, _ = predict(run.model, loader, run.device)
        noise[f"{sigma:g}"] = EvalMetrics.model_validate(
            classification_metrics(ys, ps, data.class_names, positive=positive)
        )
    return noise


def evaluate(run: Run, fitted: Fitted) -> TrialResult:
    """Test the best epoch's weights (clean, then per noise sigma); save, profile, report."""
    config, data, p, device = run.config, run.data, run.config.params, run.device
    if fitted.best_state is not None:
        run.model.load_state_dict(fitted.best_state)
    start = time.perf_counter()
    positive = config.data.positive_class
    seg = _seg_meter(run)
    y, proba, _ = predict(run.model, run.loaders[2], device, seg)
    test = TestMetrics.model_validate(
        classification_metrics(y, proba, data.class_names, positive=positive)
        | {"uncertain_fraction": uncertain_fraction(proba, p.uncertain_below) if len(y) else None}
    )
    noise = _noise_metrics(run)
    test_s = time.perf_counter() - start
    logger.info(
        "test: accuracy %.4f  f1 %.4f  (best epoch %s)",
        test.accuracy,
        test.f1,
        run.stopper.best_epoch,
    )
    t_profile = time.perf_counter()
    complexity = profile_once(
        p, len(data.class_names), input_size=config.data.image_size, latency_runs=5
    )
    profile_s = time.perf_counter() - t_profile
    t_save = time.perf_counter()
    checkpoint_path = _save_checkpoint(run)
    save_s = time.perf_counter() - t_save
    return TrialResult(
        params=p,
        data=config.data,
        class_names=data.class_names,
        epochs=fitted.epochs,
        best_epoch=run.stopper.best_epoch,
        best_value=run.stopper.best,
        monitor=config.monitor,
        test=test,
        noise=noise,
        profile=Profile.model_validate({k: complexity[k] for k in Profile.model_fields}),
        split=data.facts or SplitInfo(hash=data.split.hash, warnings=list(data.split.warnings)),
        data_report=_data_report(data),
        timings=_timings(run, fitted, test_s=test_s, profile_s=profile_s, save_s=save_s),
        seed=p.seed,
        device=str(device),
        threads=torch.get_num_threads(),
        checkpoint_path=checkpoint_path,
        predictions=_predictions(data, y, proba),
        segmentation=SegmentationMetrics(**seg.compute()) if seg is not None else None,
    )


def _timings(run: Run, fitted: Fitted, **spent: float) -> Timings:
    """Where the trial's time went; ``spent``: test_s, profile_s, save_s."""
    data = run.data
    return Timings(
        data_prepare_s=data.timings.get("total_s"),
        data_decode_s=data.timings.get("decode_s"),
        train_s=fitted.seconds,
        data_wait_s=sum(r.data_time_s or 0.0 for r in fitted.epochs),
        compute_s=sum(r.compute_time_s or 0.0 for r in fitted.epochs),
        total_s=time.perf_counter() - run.started,
        setup_s=run.setup_s,
        model_build_s=run.model_build_s,
        report_s=fitted.report_s,
        start_unix=run.started_unix,
        end_unix=time.time(),
        pid=os.getpid(),
        **spent,
    )


def _predictions(data: PreparedData, y: np.ndarray, proba: np.ndarray) -> Predictions:
    """Per-image test predictions, in test-split order, with the images' dataset rows."""
    return Predictions(
        y_true=y.tolist(),
        y_pred=proba.argmax(1).tolist() if len(y) else [],
        index=data.test.index.tolist(),
        test_set=data.split.hash,
    )


def _data_report(data: PreparedData) -> DataReport:
    return DataReport(
        cache_hit=data.cache_hit,
        cache_path=str(data.cache_path) if data.cache_path else None,
        bad_images=list(data.bad_images),
        n_bad_images=len(data.bad_images),
        class_counts=data.class_counts,
        n_no_nucleus=data.n_no_nucleus,
    )


def _save_checkpoint(run: Run) -> str | None:
    """The best weights with config and class names, when a checkpoint folder is set."""
    if not run.config.checkpoint_dir:
        return None
    out = Path(run.config.checkpoint_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "best.pt"
    torch.save(
        {
            "state_dict": run.model.state_dict(),
            "config": run.config.model_dump(mode="json"),
            "class_names": run.data.class_names,
            "best_epoch": run.stopper.best_epoch,
        },
        path,
    )
    return str(path)


def run_trial(
    config: TrialConfig,
    on_epoch: EpochCallback | None = None,
    *,
    start: dict[str, Any] | None = None,
    on_state: StateCallback | None = None,
) -> TrialResult:
    """Train and test one configuration: :func:`setup`, :func:`fit`, :func:`evaluate`
    (``start`` and ``on_state``: continue from / checkpoint a training state, see :func:`fit`)."""
    run = setup(config)
    return evaluate(run, fit(run, on_epoch, start=start, on_state=on_state))
