"""The training loop: reproducible on the CPU, per-epoch callback, early stopping, checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from leukmodels.config import DataSpec, SplitSpec, TrialConfig, TrialParams
from leukmodels.results import EpochRow
from leukmodels.train import run_trial

pytestmark = pytest.mark.slow


def tiny(tmp_path: Path, **params: object) -> TrialConfig:
    base = {"backbone": "resnet18", "epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 1e-3}
    return TrialConfig(
        data=DataSpec(
            dataset="synthetic",
            n=96,
            patients=12,
            image_size=32,
            split=SplitSpec(train=0.5, val=0.25, test=0.25),
            augment=["hflip", "vflip"],
            cache_dir=str(tmp_path / "cache"),
        ),
        params=TrialParams(**{**base, **params}),
        threads=1,
    )


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path: Path) -> None:
    a = run_trial(tiny(tmp_path, seed=3))
    b = run_trial(tiny(tmp_path, seed=3))
    c = run_trial(tiny(tmp_path, seed=4))
    losses = lambda r: [e.train_loss for e in r.epochs]  # noqa: E731
    assert losses(a) == losses(b)
    assert a.test.confusion == b.test.confusion
    assert losses(a) != losses(c)
    assert a.split.hash == b.split.hash
    assert a.seed == 3


def test_callback_per_epoch_early_stopping_and_checkpoint(tmp_path: Path) -> None:
    seen: list[EpochRow] = []
    cfg = tiny(tmp_path, epochs=6, patience=1)
    cfg.checkpoint_dir = str(tmp_path / "ck")
    result = run_trial(cfg, on_epoch=seen.append)
    assert [r.epoch for r in seen] == [r.epoch for r in result.epochs]
    # where patience 1 must stop: the first epoch that does not beat the best so far
    values = [r.val_f1 for r in seen]
    expected = next(
        (i + 1 for i in range(1, 6) if i < len(values) and values[i] <= max(values[:i])), 6
    )
    assert len(seen) == expected
    assert all(
        {"train_loss", "val_f1", "val_accuracy", "lr", "epoch_time_s"} <= set(r.report())
        for r in seen
    )
    best = result.best_epoch
    assert result.best_value == max(r.val_f1 for r in seen)
    assert seen[best - 1].val_f1 == result.best_value
    ck = torch.load(result.checkpoint_path, weights_only=False)
    assert ck["best_epoch"] == best and ck["class_names"] == ["normal", "all"]
    timings = result.timings
    assert timings.data_prepare_s is not None and timings.data_prepare_s > 0
    assert 0 < timings.compute_s <= timings.train_s < timings.total_s
    assert timings.data_wait_s >= 0 and timings.test_s > 0
    # the fine-grained timers (bench/throughput.py): parts within their wholes
    for r in seen:
        parts = r.compute_time_s + r.data_time_s + r.bn_time_s + r.val_time_s
        assert r.bn_time_s > 0 and r.val_time_s > 0 and parts <= r.epoch_time_s
    assert 0 < timings.model_build_s < timings.setup_s < timings.total_s
    assert timings.data_prepare_s <= timings.setup_s
    assert 0 <= timings.report_s < timings.train_s and timings.save_s > 0
    assert timings.profile_s > 0 and timings.pid == os.getpid()
    assert timings.start_unix < timings.end_unix <= time.time()
    assert timings.end_unix - timings.start_unix == pytest.approx(timings.total_s, abs=0.5)
    for key in (
        "accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "npv",
        "kappa",
        "mcc",
        "auc",
        "confusion",
    ):
        assert key in result.test.model_dump()
    assert result.profile.params > 1_000_000


def test_test_time_noise_sweep_is_reported_per_sigma(tmp_path: Path) -> None:
    result = run_trial(tiny(tmp_path, epochs=1, test_noise=[0, 2, 5, 8, 10]))
    assert list(result.noise) == ["0", "2", "5", "8", "10"]
    assert result.noise["0"].confusion == result.test.confusion
    assert all(0 <= m.accuracy <= 1 for m in result.noise.values())


def test_no_validation_split_is_a_data_error_for_a_validation_monitor(tmp_path: Path) -> None:
    from leukmodels.errors import DataError

    cfg = tiny(tmp_path, epochs=1)
    cfg.data.split = SplitSpec(train=0.75, val=0.0, test=0.25)
    with pytest.raises(DataError, match="val_f1 needs validation images.*empty"):
        run_trial(cfg)
    cfg.monitor, cfg.monitor_mode = "train_loss", "min"  # a training monitor is honest
    rows: list[EpochRow] = []
    result = run_trial(cfg, on_epoch=rows.append)
    assert rows[0].val_f1 is None and rows[0].val_accuracy is None  # never train metrics
    assert result.best_value == rows[0].train_loss


def test_empty_test_split_is_a_data_error(tmp_path: Path) -> None:
    from leukmodels.errors import DataError

    cfg = tiny(tmp_path, epochs=1)
    cfg.data.n, cfg.data.patients = 16, 2
    with pytest.raises(DataError, match="split .* is empty"):
        run_trial(cfg)


def test_a_monitor_that_no_epoch_reports_is_a_user_error(tmp_path: Path) -> None:
    from leukmodels.errors import UserError

    cfg = tiny(tmp_path, epochs=1)
    cfg.monitor = "val_dicee"
    with pytest.raises(UserError, match="val_dicee.*val_f1"):
        run_trial(cfg)
    cfg.monitor = "val_dice"  # reported by multi-task trials only
    with pytest.raises(UserError, match="val_dice.*task='multi'"):
        run_trial(cfg)
