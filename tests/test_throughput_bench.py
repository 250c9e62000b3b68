"""bench/throughput.py's accounting and the trainable's process-start stamp."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench() -> Any:
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "bench" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_process_start_is_when_the_process_started() -> None:
    before = time.time()
    out = subprocess.run(
        [sys.executable, "-c", "import search.proc_clock as t; print(t.process_start())"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    after = time.time()
    started = float(out.stdout.strip())
    # /proc/stat's boot time is whole seconds: a second of slack either side
    assert before - 1.0 <= started <= after + 1.0
    assert started < after - 0.05  # it started before it imported search and printed


def _trial(start: float, end: float, **phases: float) -> dict[str, Any]:
    phases["unaccounted"] = end - start - sum(phases.values())
    return {"start": start, "end": end, "status": "completed", "best": 0.5, "pid": 7,
            "phases": phases}  # fmt: skip


def test_utilisation_and_idle_split_close_the_slot_time() -> None:
    tp = bench()
    trials = [_trial(2, 5, imports=1.0), _trial(3, 8, eval=2.0), _trial(5.5, 9)]
    run = {"tag": "A1", "kind": "leuksearch", "exit": 0, "t0": 0.0, "t1": 10.0,
           "trials": trials, "driver": {}, "load": (1.0, 1.0)}  # fmt: skip
    row = tp.summarise(run)
    assert row["utilisation"] == pytest.approx(11.5 / 20)
    assert row["trials_per_hour"] == pytest.approx(3 / 10 * 3600)
    slot = row["slot_seconds"]
    assert slot["idle before first trial"] == pytest.approx(2 + 3)
    assert slot["idle after last trial"] == pytest.approx(1 + 2)
    assert slot["idle between trials"] == pytest.approx(0.5)
    assert slot["imports"] == 1.0 and slot["eval"] == 2.0
    assert sum(slot.values()) == pytest.approx(10.0 * tp.SLOTS)
    text = tp.table([row])
    assert "| wall_s | 10.0 |" in text and "| utilisation | 0.575 |" in text


def test_baseline_trial_phases_from_its_reports() -> None:
    tp = bench()
    report = {"t_entry": 101.0, "t_import_s": 2.0, "t_data_s": 0.1, "t_build_s": 0.2,
              "t_compute_s": 1.5, "t_data_wait_s": 0.1, "t_val_s": 0.3, "t_report_s": 0.0,
              "t_report_unix": 105.5, "val_accuracy": 0.4, "pid": 9,
              "t_code": str(ROOT / "leukmodels" / "arch.py")}  # fmt: skip
    second = {**report, "t_report_s": 0.25, "t_report_unix": 107.5, "val_accuracy": 0.6}
    trial = tp.baseline_trial({"start": 100.0, "end": 108.0, "results": [report, second]})
    ph = trial["phases"]
    assert ph["actor/process start"] == pytest.approx(1.0)
    assert ph["train compute"] == pytest.approx(3.0) and ph["eval"] == pytest.approx(0.6)
    assert ph["Tune report (in trial)"] == 0.25 and ph["end"] == pytest.approx(0.5)
    assert sum(ph.values()) == pytest.approx(8.0)
    assert trial["best"] == 0.6 and trial["worktree_code"]


def test_bound_drops_idle_and_worker_start_and_costs_are_split_by_level() -> None:
    tp = bench()
    a = [_trial(2, 5, imports=1.0), _trial(3, 8, eval=2.0), _trial(5.5, 9)]
    a[0]["config"], a[1]["config"] = {"attention": "se"}, {"attention": "none"}
    a[0]["rows"] = [{"compute": 1.0, "eval": 0.5}, {"compute": 3.0, "eval": 0.5}]
    a[1]["rows"] = [{"compute": 4.0, "eval": 1.0}]
    runs = [{"tag": "A1", "kind": "leuksearch", "exit": 0, "t0": 0.0, "t1": 10.0, "trials": a,
             "driver": {}, "load": (1.0, 1.0)},
            {"tag": "B1", "kind": "baseline", "exit": 0, "t0": 0.0, "t1": 12.0,
             "trials": [_trial(1, 11)], "driver": {}, "load": (1.0, 1.0)}]  # fmt: skip
    rows = [tp.summarise(r) for r in runs]
    # A's in-trial work is 11.5 slot-s of which 1 s imports: 3 trials in 10.5 / 2 s
    assert tp.start_free_rate(rows[0]) == pytest.approx(3 / (10.5 / 2) * 3600)
    assert tp._bound_ratios(rows) == [f"{tp.start_free_rate(rows[0]) / 300:.2f}x", None]
    assert rows[0]["epoch_s_by_attention"]["compute"] == {"none": 4.0, "se": 2.0}
    assert rows[0]["epoch_s_by_attention"]["eval"] == {"none": 1.0, "se": 0.5}
    assert "compute s per epoch, attention=se | 2.000 |" in tp.table(rows)
