"""Training state checkpoints (leukmodels.checkpoint): a trial continued from its state
after an epoch trains only the epochs left, keeps the earlier rows and its best epoch."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from leukmodels import checkpoint
from leukmodels.config import DataSpec, SplitSpec, TrialConfig, TrialParams
from leukmodels.results import EpochRow
from leukmodels.train import run_trial, setup

pytestmark = pytest.mark.slow


def tiny(tmp_path: Path, epochs: int = 3, patience: int | None = None) -> TrialConfig:
    return TrialConfig(
        data=DataSpec(
            dataset="synthetic", n=64, patients=8, image_size=32,
            split=SplitSpec(train=0.5, val=0.25, test=0.25), cache_dir=str(tmp_path / "cache"),
        ),
        params=TrialParams(
            backbone="resnet18", epochs=epochs, batch_size=16, optimizer="adam", lr=1e-3,
            schedule="cosine", patience=patience,
        ),
        threads=1,
    )  # fmt: skip


def saved(state: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as a checkpoint file goes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_continue_after_an_epoch_trains_only_the_rest(tmp_path: Path) -> None:
    states: list[tuple[EpochRow, dict]] = []
    full = run_trial(tiny(tmp_path), on_state=lambda row, state: states.append((row, saved(state))))
    assert [row.epoch for row, _ in states] == [1, 2, 3]
    for _, state in states:  # the best epoch's weights are stored once when they are the model's
        last_is_best = state["stopper"]["best_epoch"] == state["epochs"][-1]["epoch"]
        assert state["best_is_model"] is last_is_best
        assert (state["best_state"] is None) is last_is_best

    seen: list[EpochRow] = []
    cont = run_trial(tiny(tmp_path), on_epoch=seen.append, start=states[0][1])
    assert [r.epoch for r in seen] == [2, 3]  # epoch 1 is not trained again
    assert [r.epoch for r in cont.epochs] == [1, 2, 3]
    assert cont.epochs[0].train_loss == full.epochs[0].train_loss
    # the optimiser and the cosine schedule went on where they were
    assert cont.epochs[1].lr == pytest.approx(full.epochs[1].lr)
    assert cont.best_epoch in (1, 2, 3) and cont.test.confusion is not None

    done = run_trial(tiny(tmp_path), on_epoch=seen.append, start=states[-1][1])
    assert [r.epoch for r in seen] == [2, 3]  # nothing left to train
    assert done.best_epoch == full.best_epoch and done.best_value == full.best_value
    assert done.test.confusion == full.test.confusion  # the same best weights tested


def test_a_state_whose_last_epoch_is_best_restores_those_weights_as_best(tmp_path: Path) -> None:
    states: list[dict] = []
    run_trial(tiny(tmp_path, epochs=1), on_state=lambda row, state: states.append(saved(state)))
    assert states[0]["best_is_model"] and states[0]["best_state"] is None
    run = setup(tiny(tmp_path, epochs=1))
    _, best, _, _ = checkpoint.restore(run, states[0])
    model = run.model.state_dict()
    assert best.keys() == model.keys()
    assert all(torch.equal(best[k], model[k]) and best[k] is not model[k] for k in best)
