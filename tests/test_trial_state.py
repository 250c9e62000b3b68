"""Trial checkpoints a crash cut short: a resume never picks (or dies on) a partial copy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from search.trial_state import EPOCH_FILE, STATE_FILE, latest_checkpoint, load_start_state


def _checkpoint(trial: Path, index: int, epoch: int, truncate: bool = False) -> Path:
    folder = trial / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    torch.save({"version": 1, "w": torch.arange(4096.0), "epoch": epoch}, folder / STATE_FILE)
    if truncate:  # what a SIGKILL during Tune's parallel file copy leaves
        data = (folder / STATE_FILE).read_bytes()
        (folder / STATE_FILE).write_bytes(data[: len(data) // 2])
    (folder / EPOCH_FILE).write_text(json.dumps({"epoch": epoch}))
    return folder


def test_latest_checkpoint_skips_a_state_file_cut_short(tmp_path: Path) -> None:
    trial = tmp_path / "ablation-0-x_abc123"
    first = _checkpoint(trial, 0, 1)
    second = _checkpoint(trial, 1, 2)
    assert latest_checkpoint(str(tmp_path), "abc123") == str(second)
    cut = _checkpoint(trial, 2, 3, truncate=True)
    assert latest_checkpoint(str(tmp_path), "abc123") == str(second)
    (second / STATE_FILE).write_bytes(b"")  # empty: also not whole
    assert latest_checkpoint(str(tmp_path), "abc123") == str(first)
    assert cut.is_dir()


def test_load_start_state_starts_afresh_on_an_unreadable_state(tmp_path: Path, caplog) -> None:
    good = _checkpoint(tmp_path / "t_k", 0, 1)
    assert load_start_state(str(good))["epoch"] == 1
    bad = _checkpoint(tmp_path / "t_k", 1, 2, truncate=True)
    with caplog.at_level(logging.WARNING, logger="search.trial_state"):
        assert load_start_state(str(bad)) is None
    assert "starts from scratch" in caplog.text
    assert load_start_state(None) is None
