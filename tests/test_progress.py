"""The status a person reads while a study runs: counts of the budget, best, elapsed, ETA.

The ETA arithmetic is checked on hand-worked schedules; :class:`Progress` runs on a
clock the test advances, and its live block is drawn by rich into a recording console.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from search.eta import (
    RECENT_EPOCHS,
    Halving,
    Running,
    eta_seconds,
    expected_duration,
    format_seconds,
    remaining_of,
)
from search.progress import EXPLORE, FULL, Progress, halving_of
from search.space import load_space
from search.trial_names import name_from_config


def test_no_estimate_before_a_trial_finishes() -> None:
    assert eta_seconds({FULL: []}, [Running(FULL, 5.0)], [FULL] * 3, slots=2) is None


def test_eta_lays_the_queue_on_parallel_lanes() -> None:
    finished = {FULL: [10.0, 10.0], EXPLORE: [4.0]}
    running = [Running(FULL, 3.0), Running(EXPLORE, 1.0)]  # 7 s and 3 s left
    # lanes at 7 and 3; FULL (10) -> lane 3 ends at 13; EXPLORE (4) -> lane 7 ends at 11
    assert eta_seconds(finished, running, [FULL, EXPLORE], slots=2) == pytest.approx(13.0)
    # never fewer lanes than running trials: the same
    assert eta_seconds(finished, running, [FULL, EXPLORE], slots=1) == pytest.approx(13.0)
    assert eta_seconds(finished, [], [FULL] * 4, slots=4) == pytest.approx(10.0)
    assert eta_seconds(finished, [], [FULL] * 4, slots=1) == pytest.approx(40.0)


def test_a_running_trial_is_projected_from_its_epochs() -> None:
    finished = {FULL: [100.0], EXPLORE: [50.0]}
    # no epoch times: 2 of 10 epochs in 10 s, 40 s more by its elapsed pace (mean: 90 s)
    assert remaining_of(Running(FULL, 10.0, 2, 10), finished) == pytest.approx(40.0)
    # a full-fidelity trial slower than the mean runs all its epochs at its own pace
    assert remaining_of(Running(FULL, 90.0, 2, 10), finished) == pytest.approx(360.0)
    # without ASHA an exploration trial runs all its epochs too (no cap at its kind's mean)
    assert remaining_of(Running(EXPLORE, 10.0, 1, 10), finished) == pytest.approx(90.0)
    assert expected_duration({FULL: [], EXPLORE: [6.0, 8.0]}, FULL) == pytest.approx(7.0)
    assert remaining_of(Running(FULL, 1.0), {FULL: []}) == 0.0


def test_the_pace_is_the_measured_epoch_times_not_the_start_up() -> None:
    """60 s in, 2 epochs of 5 s each: 50 s were start-up, so 8 epochs left take 40 s, less
    the 2 s already spent in the third (the old estimate said 60 / 2 * 8 = 240 s)."""
    finished = {FULL: [100.0], EXPLORE: []}
    trial = Running(FULL, 60.0, 2, 10, epoch_times=(5.0, 5.0), since_epoch_s=2.0)
    assert remaining_of(trial, finished) == pytest.approx(38.0)
    # the pace is the mean of the last RECENT_EPOCHS epochs (the first one was slow)
    trial = Running(FULL, 60.0, 4, 10, epoch_times=(20.0, 6.0, 5.0, 4.0))
    assert RECENT_EPOCHS == 3 and remaining_of(trial, finished) == pytest.approx(30.0)
    # past its expected end (the final test pass): nothing left, never negative
    trial = Running(FULL, 60.0, 10, 10, epoch_times=(5.0,), since_epoch_s=9.0)
    assert remaining_of(trial, finished) == 0.0


SMOKE = Halving(grace_epochs=2, reduction_factor=3.0, max_epochs=4)  # quick start, smoke
QUICK = Halving(grace_epochs=3, reduction_factor=3.0, max_epochs=12)  # quick start


def test_halving_expects_the_epochs_asha_lets_a_trial_run() -> None:
    assert SMOKE.rungs() == [2] and QUICK.rungs() == [3, 9]
    # smoke: 2 epochs sure, 1/3 of the trials run the last 2 -> 2 + 2/3 of 4
    assert SMOKE.epochs_left(0) == pytest.approx(2 + 2 / 3)
    assert SMOKE.fraction() == pytest.approx(2 / 3)
    assert SMOKE.epochs_left(1) == pytest.approx(1 + 2 / 3)
    assert SMOKE.epochs_left(2) == pytest.approx(2.0)  # past the rung: it survived it
    # 3 sure, 6 by 1/3, 3 by 1/9; one that passed the rung at 3: 6 sure, 3 by 1/3
    assert QUICK.epochs_left(0) == pytest.approx(3 + 6 / 3 + 3 / 9)
    assert QUICK.epochs_left(3) == pytest.approx(6 + 3 / 3)
    assert QUICK.epochs_left(10) == pytest.approx(2.0)
    # a trial with fewer epochs than max_t only meets the rungs below its own end
    assert QUICK.epochs_left(0, max_epochs=6) == pytest.approx(3 + 3 / 3)
    # a rung at 4.5 decides after epoch 5; a grace period at max_t never stops anything
    assert Halving(3, 1.5, 6).rungs() == [3, 5]
    assert Halving(4, 3.0, 4).rungs() == [] and Halving(4, 3.0, 4).fraction() == 1.0


@pytest.mark.parametrize("grace,rf,max_t", [(2, 3.0, 4), (3, 3.0, 12), (1, 3.0, 9), (3, 1.5, 20)])
def test_halving_decides_where_rays_asha_does(grace: int, rf: float, max_t: int) -> None:
    from ray.tune.schedulers.async_hyperband import _Bracket

    bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=rf, s=0)
    milestones = sorted(m for m, _ in bracket._rungs if m < max_t)
    assert [math.ceil(m) for m in milestones] == Halving(grace, rf, max_t).rungs()


@pytest.mark.parametrize("halving", [SMOKE, QUICK])
def test_halving_expects_what_rays_asha_lets_run(halving: Halving) -> None:
    """Trials with random values through Ray's bracket, in arrival order (4 x 1000): they
    run the expected epochs on average (one run alone varies by ~8 % at the 2nd rung)."""
    import numpy as np
    from ray.tune.schedulers.async_hyperband import _Bracket

    means = []
    for seed in range(4):
        bracket = _Bracket(halving.grace_epochs, halving.max_epochs, halving.reduction_factor, 0)
        ran = [
            _run_through(bracket, str(i), value, halving.max_epochs)
            for i, value in enumerate(np.random.default_rng(seed).random(1000))
        ]
        means.append(sum(ran) / len(ran))
    assert sum(means) / len(means) == pytest.approx(halving.epochs_left(0), rel=0.04)


def _run_through(bracket: Any, trial_id: str, value: float, max_t: int) -> int:
    """Epochs a trial of constant ``value`` runs before the bracket stops it (or max_t)."""
    epoch = 1
    while epoch < max_t and bracket.on_result(_Trial(trial_id), epoch, value) == "CONTINUE":
        epoch += 1
    return epoch


class _Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def test_queued_explorers_expect_what_asha_lets_them_run() -> None:
    """Before one has finished, an explorer expects the full-fidelity mean times ASHA's
    share (the old estimate: the whole full-fidelity mean); after, its kind's mean."""
    only_full = {FULL: [90.0], EXPLORE: []}
    assert expected_duration(only_full, EXPLORE, SMOKE) == pytest.approx(60.0)
    assert eta_seconds(only_full, [], [EXPLORE] * 2, slots=2, halving=SMOKE) == pytest.approx(60)
    assert expected_duration(only_full, EXPLORE) == pytest.approx(90.0)  # no ASHA: all epochs
    measured = {FULL: [90.0], EXPLORE: [40.0]}
    assert expected_duration(measured, EXPLORE, SMOKE) == pytest.approx(40.0)
    # the other way round (a resumed study): a full trial is the explorers' mean / share
    assert expected_duration({FULL: [], EXPLORE: [40.0]}, FULL, SMOKE) == pytest.approx(60.0)


def test_a_running_explorer_expects_the_epochs_asha_lets_it_run() -> None:
    finished = {FULL: [90.0], EXPLORE: []}
    # 1 of 4 epochs at 10 s: 1 more sure, the last 2 for 1/3 of explorers -> 16.7 s
    trial = Running(EXPLORE, 30.0, 1, 4, epoch_times=(10.0,))
    assert remaining_of(trial, finished, SMOKE) == pytest.approx(10 * (1 + 2 / 3))
    assert remaining_of(trial, finished) == pytest.approx(30.0)  # no ASHA: all 3 epochs
    # one that passed the rung runs to its end
    trial = Running(EXPLORE, 40.0, 2, 4, epoch_times=(10.0, 10.0))
    assert remaining_of(trial, finished, SMOKE) == pytest.approx(20.0)
    # not started its first epoch: the ASHA-scaled mean, less its time so far
    assert remaining_of(Running(EXPLORE, 15.0), finished, SMOKE) == pytest.approx(45.0)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (None, 4.4, 65, 3725)] == ["-", "4s", "1m05s", "1h02m"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_and_estimates(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    p = Progress(study="s", total=4, full_fidelity=3, metric="val_f1", slots=2, clock=clock)
    caplog.set_level(logging.INFO, logger="search.progress")
    p.started("a", "ablation", "trial 1", 10)
    p.started("b", "ablation", "trial 2", 10)
    clock.now += 20
    p.epoch("a", 5, 0.8)
    assert "ETA -" in p.status_line()  # nothing finished yet
    clock.now += 20
    p.set_best(0.85, 1)
    p.finished("a", "completed")  # took 40 s
    line = caplog.records[-1].getMessage()
    assert line.startswith("-- 1/4 done | running 1 | completed 1 | pruned 0 | failed 0")
    assert "best val_f1 0.8500 (trial 1)" in line and "elapsed 40s" in line
    # b: 40 s in, mean 40 s -> 0 s left; pending: 1 full (40 s) and 1 explore (40 s, no
    # explore finished yet) on 2 lanes -> 40 s
    assert p.eta() == pytest.approx(40.0)
    assert line.endswith("ETA 40s")
    p.tick()  # less than every_s since the last line: nothing logged
    assert len(caplog.records) == 1
    clock.now += 25
    p.tick()
    assert len(caplog.records) == 2
    p.finished("b", "completed")
    assert len(caplog.records) == 3
    clock.now += 1
    p.close()  # the last line already says it all: not said twice
    assert len(caplog.records) == 3
    p.started("c", "ablation", "trial 3", 10)
    p.close()  # a run stopped with a trial running: its state is new, one more line
    assert len(caplog.records) == 4 and "running 1" in caplog.records[-1].getMessage()


def test_progress_projects_from_epoch_times_and_asha() -> None:
    """The callback's epoch times and the study's ASHA reach the estimate: 1m00s here,
    where the old estimate said 2m00s (start-up as epoch time, explorers as full trials)."""
    clock = Clock()
    p = Progress(study="s", total=4, full_fidelity=2, metric="val_f1", slots=2, clock=clock)
    p.halving = SMOKE
    p.started("a", "ablation", "trial 1", 4)
    p.started("b", "ablation", "trial 2", 4)
    clock.now += 30  # 20 s of start-up, then a 10 s epoch
    p.epoch("b", 1, 0.6, epoch_time_s=10.0)
    clock.now += 20
    p.epoch("b", 2, 0.7, epoch_time_s=20.0)
    clock.now += 10
    p.finished("a", "completed")  # 60 s: explorers expect 60 * 2/3 = 40 s
    # b: 2 epochs left at 15 s, 10 s of them done -> 20 s; explorers at 0 -> 40, 20 -> 60
    assert p.eta() == pytest.approx(60.0)
    assert p.status_line().endswith("ETA 1m00s")


def test_the_eta_expects_the_asha_the_runner_sets_up() -> None:
    spaces = Path(__file__).resolve().parents[1] / "spaces"
    assert halving_of(load_space(spaces / "quickstart.yaml", "smoke")) == SMOKE
    assert halving_of(load_space(spaces / "quickstart.yaml")) == QUICK
    assert halving_of(load_space(spaces / "ddrnet_blocks.yaml")) is None  # no scheduler


def test_the_live_page_estimates_from_the_stored_epochs() -> None:
    """search serve's progress: 8 ablation trials done (60 s each), an explorer 40 s in
    with one 10 s epoch recorded 5 s ago, one explorer queued; smoke ASHA, 2 slots.
    Running: 10 s x (1 + 2/3) - 5 s = 11.7 s; queued: 60 s x 2/3 = 40 s (old: 60 s)."""
    from search.live_state import progress_of
    from search.store.records import EpochRecord, StudyInfo, TrialRecord

    now = datetime.now(timezone.utc)
    ago = lambda s: (now - timedelta(seconds=s)).isoformat()  # noqa: E731
    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "quickstart.yaml", "smoke")
    study = StudyInfo.model_construct(
        config={"budget": 10}, status="running", counts={"completed": 8}, created_at=ago(600),
        best_value=None, best_trial_id=None,
    )  # fmt: skip
    common = {"study_id": 1, "repeat": 0, "tune_trial_id": "t"}
    trials = [
        TrialRecord(trial_id=i, kind="ablation", status="completed", epochs_done=4,
                    duration_s=60.0, **common)
        for i in range(1, 9)
    ]  # fmt: skip
    trials.append(
        TrialRecord(trial_id=9, kind="explore", status="running", epochs_done=1,
                    started_at=ago(40), config={"params": {"epochs": 4}}, **common)
    )  # fmt: skip
    epoch = EpochRecord(trial_id=9, epoch=1, metrics={}, epoch_time_s=10.0, recorded_at=ago(5))
    progress = progress_of(study, space, trials, {9: [epoch]})
    assert progress["eta_s"] == pytest.approx(40.0, abs=1.0)
    assert progress["done"] == 8 and progress["running"] == 1


def test_live_block_shows_the_running_trials() -> None:
    clock = Clock()
    p = Progress(study="quickstart", total=10, full_fidelity=8, metric="val_f1", clock=clock)
    p.started("a", "ablation", "trial 3 [ablation] attention=scab", 4)
    p.epoch("a", 2, 0.75)
    console = Console(record=True, width=160)
    console.print(p.render())
    text = console.export_text()
    assert "quickstart" in text and "0/10 done" in text
    assert "trial 3 [ablation] attention=scab" in text and "epoch 2/4" in text
    assert "val_f1 0.7500" in text


def test_trial_names_tell_trials_apart() -> None:
    cfg = {"_kind": "ablation", "_optuna_number": 3, "_label": "attention=scab", "_repeat": 0}
    assert name_from_config(cfg) == "ablation-3-attention=scab"
    cfg = {"_kind": "ablation", "_optuna_number": 7, "_label": "placement=[s1, s2]",
           "_repeat": 2, "_fold": 1}  # fmt: skip
    assert name_from_config(cfg) == "ablation-7-placement=_s1_s2_-r2-f1"
    assert name_from_config({"_kind": "explore", "_optuna_number": 12}) == "explore-12"


def test_decoding_a_small_set_prints_one_line() -> None:
    """The issue's 13 images made ten "decoding ... 10 %" lines: now only the 100% one."""
    from leukmodels.data.cache import PROGRESS_MIN_IMAGES, _progress

    for n, expected in ((13, 1), (PROGRESS_MIN_IMAGES, 10)):
        lines: list[str] = []
        tick = _progress(lines.append, n)
        for done in range(1, n + 1):
            tick(done)
        assert len(lines) == expected, n
