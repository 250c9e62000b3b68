"""The status a person reads while a study runs: counts of the budget, best, elapsed, ETA.

The ETA arithmetic is checked on hand-worked schedules; :class:`Progress` runs on a
clock the test advances, and its live block is drawn by rich into a recording console.
"""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from search.eta import Running, eta_seconds, expected_duration, format_seconds, remaining_of
from search.progress import EXPLORE, FULL, Progress
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
    # 2 of 10 epochs in 10 s: 40 s more by its own pace, the mean would say 90 s
    assert remaining_of(Running(FULL, 10.0, 2, 10), finished) == pytest.approx(40.0)
    # a full-fidelity trial slower than the mean runs all its epochs at its own pace
    assert remaining_of(Running(FULL, 90.0, 2, 10), finished) == pytest.approx(360.0)
    # an exploration trial may be stopped: no further than its kind's mean
    assert remaining_of(Running(EXPLORE, 10.0, 1, 10), finished) == pytest.approx(40.0)
    assert remaining_of(Running(EXPLORE, 10.0, 5, 10), finished) == pytest.approx(10.0)
    assert expected_duration({FULL: [], EXPLORE: [6.0, 8.0]}, FULL) == pytest.approx(7.0)
    assert remaining_of(Running(FULL, 1.0), {FULL: []}) == 0.0


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
