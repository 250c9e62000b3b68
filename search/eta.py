"""How long a study has left, from what its trials have taken so far.

A running trial that has reported epochs is projected from its own time per epoch (an
exploration trial, which ASHA may stop, no further than the mean of its kind); one that
has not, and every trial not yet started, is expected to take the mean duration of the
finished trials of its kind (full-fidelity or exploration; all finished trials when its
kind has none yet). The queue is then laid out on ``slots`` parallel lanes (the
concurrency seen so far), each trial on the lane that frees first, and the ETA is when the
last lane ends. Nothing is estimated before the first trial finishes.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean


@dataclass(frozen=True)
class Running:
    """A trial in progress: its kind, seconds since it started, epochs done of ``max_epochs``."""

    kind: str
    elapsed_s: float
    epochs_done: int = 0
    max_epochs: int = 0


def expected_duration(finished: dict[str, list[float]], kind: str) -> float | None:
    """Mean duration of finished trials of ``kind`` (else of all kinds); None if none finished."""
    if finished.get(kind):
        return fmean(finished[kind])
    every = [d for durations in finished.values() for d in durations]
    return fmean(every) if every else None


def remaining_of(trial: Running, finished: dict[str, list[float]]) -> float:
    """Seconds a running trial still needs.

    With epochs reported: its own time per epoch times the epochs left; a full-fidelity
    trial runs them all, an exploration trial (ASHA may stop it) no longer than the mean of
    its kind says, when that is shorter. Without: the mean of its kind, less its time so far.
    """
    mean = expected_duration(finished, trial.kind)
    if trial.epochs_done > 0 and trial.max_epochs >= trial.epochs_done:
        per_epoch = trial.elapsed_s / trial.epochs_done
        by_epochs = per_epoch * (trial.max_epochs - trial.epochs_done)
        if trial.kind == "explore" and mean is not None:
            return min(by_epochs, max(mean - trial.elapsed_s, 0.0))
        return by_epochs
    return max((mean or 0.0) - trial.elapsed_s, 0.0)


def eta_seconds(
    finished: dict[str, list[float]],
    running: Sequence[Running],
    pending: Sequence[str],
    slots: int,
) -> float | None:
    """Seconds until the last trial ends: ``finished`` durations per kind, the ``running``
    trials, the kinds of the ``pending`` ones (in the order they will start) and the number
    of trials that run at once. None before any trial has finished."""
    if not any(finished.values()):
        return None
    lanes = [remaining_of(t, finished) for t in running]
    lanes += [0.0] * max(slots - len(lanes), 0)
    if not lanes:
        lanes = [0.0]
    heapq.heapify(lanes)
    for kind in pending:
        start = heapq.heappop(lanes)
        heapq.heappush(lanes, start + (expected_duration(finished, kind) or 0.0))
    return max(lanes)


def format_seconds(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
