"""Paper 001's multi-task trials: TrialParams -> model, loss, training loop, stored Dice.

Block-level variants and the losses are tested in tests/test_multitask.py; here every
variant a space can name builds through ``build_model`` and trains one step, the trial
loop trains classification + segmentation on the synthetic nucleus masks, and a trial
without masks stops with a DataError.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import torch

from leukmodels.arch import arch_key, arch_label, build_model
from leukmodels.blocks.multitask import MultiTaskNet
from leukmodels.config import DataSpec, SplitSpec, TrialConfig, TrialParams
from leukmodels.data.synthetic import write_imagefolder
from leukmodels.errors import DataError, UserError
from leukmodels.losses import build_loss
from leukmodels.mta import batch_loss, build_mta_loss
from leukmodels.train import run_trial

MULTI = [  # every coupling x decoder x head; the segmentation losses in turn
    {
        "task": "multi",
        "coupling": c,
        "decoder": d,
        "cls_head": h,
        "seg_loss": ("focal", "bce", "dice")[i % 3],
    }
    for i, (c, d, h) in enumerate(
        itertools.product([False, True], ["unet", "transunet"], ["flat", "hierarchical"])
    )
]
SINGLE = [{"task": "single", "cls_head": h} for h in ("flat", "hierarchical")]
VARIANTS = [{**v, "encoder": "plain"} for v in MULTI + SINGLE] + [
    {"task": "multi", "coupling": True, "decoder": "unet", "encoder": "resnet18"},
    {"task": "single", "encoder": "mobilenetv4_conv_small"},
]


class _Masks:
    """A training split stand-in for a_c: the SplitArrays attributes the loss reads."""

    def __init__(self, masks: torch.Tensor) -> None:
        self.masks = masks.numpy().astype("uint8")
        self.index = list(range(len(masks)))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_every_multitask_variant_trains_through_build_model(variant: dict) -> None:
    torch.manual_seed(0)
    params = TrialParams(family="mta_cnn", task_width=32, dropout=0.2, **variant)
    model = build_model(params, 4)
    assert isinstance(model, MultiTaskNet)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    mask = torch.zeros(2, 64, 64)
    mask[0, 20:40, 16:44] = 1
    mask[1, 8:30, 30:60] = 1
    loss_fn = build_mta_loss(params, build_loss(params, [1, 1, 1, 1]), _Masks(mask))
    model.train()
    out = model(x)
    multi = variant["task"] == "multi"
    assert (out.mask_logits is not None) == multi
    if multi:
        assert out.mask_logits.shape == (2, 1, 64, 64)
        assert loss_fn.seg_loss is not None and len(model.alphas()) == 2 * variant["coupling"]
    logits, loss = batch_loss(loss_fn, out, y, mask if multi else None)
    loss.backward()
    assert logits.shape == (2, 4) and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert arch_label(params).startswith(f"mta_cnn[{variant['encoder']},")


def test_arch_key_and_label_of_multitask_trials() -> None:
    multi = TrialParams(family="mta_cnn", task="multi", coupling=True, decoder="transunet")
    assert arch_label(multi) == "mta_cnn[plain,cls+seg/transunet,coupled,flat]"
    single = TrialParams(family="mta_cnn", cls_head="hierarchical")
    assert arch_label(single) == "mta_cnn[plain,cls,hierarchical]"
    # an mta_cnn's layers do not depend on the classifier fields, nor a single task's on
    # the decoder; a classifier's do not depend on the mta fields
    assert arch_key(single) == arch_key(single.model_copy(update={"backbone": "resnet50"}))
    assert arch_key(single) == arch_key(single.model_copy(update={"decoder": "transunet"}))
    assert arch_key(TrialParams()) == arch_key(TrialParams(encoder="resnet18", task_width=8))
    assert arch_key(multi) != arch_key(multi.model_copy(update={"coupling": False}))


def test_inconsistent_task_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="family='mta_cnn'"):
        build_model(TrialParams(task="multi"), 4)
    with pytest.raises(UserError, match="coupling"):
        build_model(TrialParams(family="mta_cnn", coupling=True), 4)
    with pytest.raises(ValueError, match="encoder"):
        TrialParams(family="mta_cnn", encoder="vgg99")


def _config(tmp_path: Path, dataset: str = "synthetic", **params: object) -> TrialConfig:
    base = {
        "family": "mta_cnn", "task": "multi", "coupling": True, "seg_loss": "focal",
        "task_width": 32, "dropout": 0.2, "epochs": 4, "batch_size": 16,
        "optimizer": "adam", "lr": 3e-3,
    }  # fmt: skip
    return TrialConfig(
        data=DataSpec(
            dataset=dataset,
            classes=4,
            n=192,
            patients=24,
            image_size=32,
            split=SplitSpec(train=0.5, val=0.25, test=0.25),
            augment=["hflip", "vflip"],
            cache_dir=str(tmp_path / "cache"),
        ),
        params=TrialParams(**{**base, **params}),
        threads=2,
        monitor="val_dice",
    )


@pytest.mark.slow
def test_multitask_trial_learns_the_synthetic_nuclei(tmp_path: Path) -> None:
    """The issue's target: a multi-task trial on the synthetic set reaches Dice >= 0.8
    (2 epochs of 96 images at 48 px; measured: val Dice 0.88 after the first epoch, see
    bench/README.md)."""
    config = _config(tmp_path, epochs=2, batch_size=8, lr=2e-3, task_width=128)
    config.data = config.data.model_copy(update={"image_size": 48})
    result = run_trial(config)
    seg = result.segmentation
    assert seg is not None
    assert seg.dice_macro >= 0.8, seg
    assert 0 < seg.iou_macro <= seg.dice_macro <= 1 and 0 < seg.iou_pooled <= seg.dice_pooled
    assert all(e.val_dice is not None and e.val_iou is not None for e in result.epochs)
    assert result.best_epoch == max(
        range(1, len(result.epochs) + 1), key=lambda i: result.epochs[i - 1].val_dice
    )


@pytest.mark.slow
def test_multitask_trial_without_masks_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "nomasks"
    write_imagefolder(folder, n=32, classes=4, size=32, patients=8)
    shutil.rmtree(folder / "_masks")  # an ImageFolder without its masks or manifest
    (folder / "manifest.csv").unlink()
    with pytest.raises(DataError, match="no masks"):
        run_trial(_config(tmp_path, dataset=str(folder), epochs=1))


def test_the_papers_impossible_kappa_is_flagged() -> None:
    from search.report.reference_checks import impossible_values
    from search.space import load_space

    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "mta_multitask.yaml")
    flags = impossible_values(space.reference.rows, space.reference.scale)
    assert len(flags) == 1 and "kappa 97.9 > accuracy 97.88 is impossible" in flags[0]
    fine = {"config": "x", "accuracy": 90.0, "kappa": 80.0}
    assert impossible_values([fine], "percent") == []
    assert "outside" in impossible_values([{**fine, "f1": 1.2}], "fraction")[0]
