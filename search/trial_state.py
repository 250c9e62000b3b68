"""Trial checkpoints: the training state after an epoch, so a trial cut short goes on
from its last checkpointed epoch instead of from scratch.

The epochs :class:`CheckpointPolicy` picks (``search.checkpoint``: the last epoch, and
every N epochs or N seconds before it) carry a checkpoint folder in their report to Tune,
holding :data:`STATE_FILE` (see :mod:`leukmodels.checkpoint`) and :data:`EPOCH_FILE`; the
other epochs report their metrics only. Tune keeps the newest checkpoint per trial and
hands it back when it retries the trial after its worker died; after a crash of the
driver, a resume finds it in the trial's folder (:func:`latest_checkpoint`) and passes
its path in the rerun's config (``CHECKPOINT``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from search.storage import is_uri

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
EPOCH_FILE = "epoch.json"


def trial_folders(experiment: str, key: str) -> list[Path]:
    """The folders of the trial whose store key is ``key`` (``<name>_<key>``, see
    search.trial_names; a rerun writes under the same key)."""
    return sorted(Path(experiment).glob(f"*_{key}"))


def load_start_state(folder: str | None) -> dict[str, Any] | None:
    """The training state to start from: Tune's checkpoint of this trial (a retry), else
    the checkpoint folder a resume found, else None (start from scratch)."""
    import torch

    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as path:
            state_path = Path(path) / STATE_FILE
            if state_path.is_file():
                return torch.load(state_path, map_location="cpu", weights_only=True)
    if folder and (Path(folder) / STATE_FILE).is_file():
        try:
            return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
        except Exception as exc:  # a copy cut short by a crash: start afresh, do not fail
            logger.warning(
                "checkpoint %s unreadable (%s); the trial starts from scratch", folder, exc
            )
    return None


@dataclass
class CheckpointPolicy:
    """Which epochs checkpoint: the last one (``epochs``, or an early stop), those
    ``every_epochs`` divides, and the first one ``every_s`` seconds or more after the
    policy was made (the trial's start) or after the previous checkpoint."""

    epochs: int
    every_epochs: int | None = None
    every_s: float | None = None
    since: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.since = time.monotonic()

    def due(self, epoch: int, stopped: bool = False) -> bool:
        """Whether ``epoch``'s report carries a checkpoint (the clock restarts when it does)."""
        now = time.monotonic()
        due = (
            stopped
            or epoch >= self.epochs
            or (self.every_epochs is not None and epoch % self.every_epochs == 0)
            or (self.every_s is not None and now - self.since >= self.every_s)
        )
        if due:
            self.since = now
        return due


def report_with_state(metrics: dict[str, Any], epoch: int, state: dict[str, Any] | None) -> None:
    """``tune.report`` of an epoch's metrics with the training state as its checkpoint
    (metrics only when ``state`` is None)."""
    import torch

    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / STATE_FILE)
        (Path(folder) / EPOCH_FILE).write_text(json.dumps({"epoch": epoch}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def latest_checkpoint(experiment: str, key: str) -> str | None:
    """The checkpoint folder with the latest epoch of trial ``key``, if one is on local disk
    (a rerun numbers its checkpoints afresh, so the epoch file decides, not the name)."""
    if is_uri(experiment):
        return None
    best: tuple[int, Path] | None = None
    folders = [c for t in trial_folders(experiment, key) for c in t.glob("checkpoint_*")]
    for folder in folders:
        try:
            epoch = int(json.loads((folder / EPOCH_FILE).read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (best is None or epoch > best[0]) and complete(folder / STATE_FILE):
            best = (epoch, folder)
    return str(best[1]) if best else None


def complete(state_file: Path) -> bool:
    """Whether ``state_file`` was written whole: ``torch.save`` writes a zip archive, and a
    copy that a crash cut short (Tune copies a checkpoint's files in parallel, so the epoch
    file can be whole while the state is not) has no central directory or a bad CRC."""
    try:
        with zipfile.ZipFile(state_file) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
