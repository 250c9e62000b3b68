"""How long a study has left, from what its trials have taken so far.

Three kinds of estimate, laid on lanes at the end:

* A running trial that has reported epochs is projected from its own measured epoch
  times (``epoch_time_s``, the mean of the last :data:`RECENT_EPOCHS`), not from its
  elapsed time, which also holds its start-up (model build, data mapping): that pace
  times the epochs it is expected to still run, less the time already spent in the
  current epoch. A full-fidelity trial runs all its epochs; an exploration trial only
  as many as ASHA is expected to let it (below). Without epoch times its elapsed time
  per epoch stands in; without any epoch, the mean of its kind less its elapsed time.
* A trial not started yet is expected to take the mean duration of the finished trials
  of its kind. Before any exploration trial has finished, that is the full-fidelity mean
  times the fraction of the epochs ASHA is expected to let an exploration trial run
  (before any full-fidelity trial has finished, the exploration mean divided by it).
* ASHA (:class:`Halving`, as search.asha sets it up: grace period, reduction factor,
  ``max_t``) decides at rungs ``grace * rf**k`` below ``max_t``; at each, about ``1/rf``
  of the trials go on. So a trial that has run ``done`` epochs is expected to run the
  epochs up to the next rung, ``1/rf`` of those up to the one after, ``1/rf**2`` of the
  next stretch, and so on to ``max_t``. (Smoke quick start: grace 2, rf 3, 4 epochs ->
  one rung at 2, an exploration trial expected to run 2 + 2/3 epochs, 2/3 of them.)

The queue is then laid out on ``slots`` parallel lanes (the concurrency seen so far),
each trial on the lane that frees first, and the ETA is when the last lane ends. Nothing
is estimated before the first trial finishes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

FULL = "full"
EXPLORE = "explore"
RECENT_EPOCHS = 3  # a running trial's pace: the mean of its last few epoch times


@dataclass(frozen=True)
class Halving:
    """ASHA's settings: it decides at ``grace_epochs * reduction_factor**k`` epochs (those
    below ``max_epochs``) and lets about ``1 / reduction_factor`` of the trials go on."""

    grace_epochs: int
    reduction_factor: float
    max_epochs: int

    def rungs(self) -> list[int]:
        """The epochs after which ASHA may stop a trial (a rung at 4.5 decides at 5)."""
        out: list[int] = []
        milestone = float(self.grace_epochs)
        while milestone < self.max_epochs:
            out.append(math.ceil(milestone))
            milestone *= self.reduction_factor
        return out

    def epochs_left(self, done: int, max_epochs: int | None = None) -> float:
        """Expected epochs still to run for a trial of ``max_epochs`` that has ``done``."""
        end = self.max_epochs if max_epochs is None else max_epochs
        points = [done, *(r for r in self.rungs() if done < r < end), end]
        return sum(
            (b - a) / self.reduction_factor**i
            for i, (a, b) in enumerate(zip(points, points[1:], strict=False))
        )

    def fraction(self) -> float:
        """The share of its epochs an exploration trial is expected to run."""
        return self.epochs_left(0) / self.max_epochs if self.max_epochs > 0 else 1.0


@dataclass(frozen=True)
class Running:
    """A trial in progress: its kind, seconds since it started, epochs done of
    ``max_epochs``, the measured times of its epochs and the seconds since the last one."""

    kind: str
    elapsed_s: float
    epochs_done: int = 0
    max_epochs: int = 0
    epoch_times: tuple[float, ...] = ()
    since_epoch_s: float = 0.0


def expected_duration(
    finished: dict[str, list[float]], kind: str, halving: Halving | None = None
) -> float | None:
    """Mean duration of finished trials of ``kind``; else the other kind's mean, scaled by
    the share of epochs ASHA lets an exploration trial run; None if none finished."""
    if finished.get(kind):
        return fmean(finished[kind])
    share = halving.fraction() if halving is not None else 1.0
    if kind == EXPLORE and finished.get(FULL):
        return fmean(finished[FULL]) * share
    if kind == FULL and finished.get(EXPLORE):
        return fmean(finished[EXPLORE]) / share
    every = [d for durations in finished.values() for d in durations]
    return fmean(every) if every else None


def epochs_to_run(trial: Running, halving: Halving | None = None) -> float:
    """Epochs a running trial is expected to still run (ASHA may stop an explorer)."""
    if trial.kind == EXPLORE and halving is not None:
        return halving.epochs_left(trial.epochs_done, trial.max_epochs)
    return float(trial.max_epochs - trial.epochs_done)


def remaining_of(
    trial: Running, finished: dict[str, list[float]], halving: Halving | None = None
) -> float:
    """Seconds a running trial still needs: its pace times the epochs it is expected to
    run, less its time in the current epoch; without epochs, its kind's mean less its
    time so far."""
    if trial.epochs_done > 0 and trial.max_epochs >= trial.epochs_done:
        left = epochs_to_run(trial, halving)
        if trial.epoch_times:
            pace = fmean(trial.epoch_times[-RECENT_EPOCHS:])
            return max(pace * left - trial.since_epoch_s, 0.0)
        return trial.elapsed_s / trial.epochs_done * left
    mean = expected_duration(finished, trial.kind, halving)
    return max((mean or 0.0) - trial.elapsed_s, 0.0)


def eta_seconds(
    finished: dict[str, list[float]],
    running: Sequence[Running],
    pending: Sequence[str],
    slots: int,
    halving: Halving | None = None,
) -> float | None:
    """Seconds until the last trial ends: ``finished`` durations per kind, the ``running``
    trials, the kinds of the ``pending`` ones (in the order they will start), the number
    of trials that run at once and the study's ASHA. None before any trial has finished."""
    if not any(finished.values()):
        return None
    lanes = [remaining_of(t, finished, halving) for t in running]
    lanes += [0.0] * max(slots - len(lanes), 0)
    if not lanes:
        lanes = [0.0]
    heapq.heapify(lanes)
    for kind in pending:
        start = heapq.heappop(lanes)
        heapq.heappush(lanes, start + (expected_duration(finished, kind, halving) or 0.0))
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
