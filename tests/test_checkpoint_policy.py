"""Which epochs checkpoint (search.trial_state.CheckpointPolicy, ``search.checkpoint``)."""

from __future__ import annotations

import pytest

from search.space.models import CheckpointSpec
from search.trial_state import CheckpointPolicy


def due_epochs(policy: CheckpointPolicy, epochs: int, stop_at: int | None = None) -> list[int]:
    return [e for e in range(1, epochs + 1) if policy.due(e, stopped=e == stop_at)]


def test_by_default_only_the_last_epoch_of_short_epochs_checkpoints() -> None:
    spec = CheckpointSpec()
    assert spec.every_epochs is None and spec.every_s == 60.0
    policy = CheckpointPolicy(3, spec.every_epochs, spec.every_s)
    assert due_epochs(policy, 3) == [3]


def test_an_early_stop_checkpoints_its_epoch() -> None:
    assert due_epochs(CheckpointPolicy(10), 4, stop_at=4) == [4]


def test_every_n_epochs_and_the_last() -> None:
    assert due_epochs(CheckpointPolicy(7, every_epochs=3), 7) == [3, 6, 7]
    assert due_epochs(CheckpointPolicy(2, every_epochs=1), 2) == [1, 2]


def test_every_s_counts_from_the_start_and_from_each_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([0.0, 40.0, 70.0, 100.0, 135.0, 140.0])  # start, then one read per epoch
    monkeypatch.setattr("search.trial_state.time.monotonic", lambda: next(clock))
    policy = CheckpointPolicy(10, every_s=60.0)
    # 40 s: not yet; 70 s: due (restart); 100 s: 30 s since; 135 s: 65 s since; 140 s: 5 s
    assert [policy.due(e) for e in range(1, 6)] == [False, True, False, True, False]


def test_every_s_zero_checkpoints_every_epoch() -> None:
    assert due_epochs(CheckpointPolicy(3, every_s=0.0), 3) == [1, 2, 3]
