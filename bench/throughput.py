"""Benchmark: trials per hour and idle slots, `leuksearch run` against a plain Tune script.

Issue 15 item 1. One invocation runs the same space (``bench/throughput_space.yaml``: a
resnet18, attention x pooling x optimiser x lr, 3 epochs, 2 trials at a time, 16 trials)
through ``leuksearch run`` (A) and through ``bench/baseline_tune.py`` (B, tutorial-style
Tune + OptunaSearch + ASHA), alternating A, B, A, B ... for ``--rounds``, each in its own
process (its own local Ray), on the synthetic set or ``--data DIR``. Per run it prints:

- wall (the whole command, Ray start included), trials, trials per hour;
- slot utilisation: summed in-trial time (driver start to driver end of each trial) /
  (wall x slots);
- best validation score (the space's metric at the best epoch, over all trials);
- where a slot's time goes, from real timestamps: the driver's start / end of each trial
  (the store's ``ls_trials.started_at`` / ``ended_at`` for A, a Tune callback for B), the
  trial's own stamps (A: ``TrialResult.timings`` and each epoch row's data / compute /
  eval / precise-BN seconds; B: the ``t_*`` keys of its reports), and the gaps between.

Slot-time rows (seconds, summed over trials; the idle rows are slot-seconds):

- actor/process start: the driver's start of the trial -> the trainable function entered
  (Tune calls ``on_trial_start`` once the trial's actor is up, so this is the trainable's
  own start; the worker process's start before that is idle time, shown in its own row
  from the process's start time in /proc, to about a second);
- imports: the trainable's import of the training code (torch, timm, leukmodels);
- trial setup: A only, config decoding, placement, checkpoint lookup;
- data: preparing the data (A: decode cache read, split, pre-processing) and loaders;
- model build, train compute, data wait, eval (per-epoch validation), precise-BN;
- epoch other: in the epoch but none of those (early-stopping bookkeeping, best-weights copy);
- Tune report (in trial): inside ``tune.report`` per epoch, checkpoint included; a function
  trainable waits there until the driver has taken the result (store write, Optuna, Tune);
- test, profiling, checkpoint save: A's completed trials only;
- end: the last report / final result -> the driver marking the trial ended (result
  transfer, the driver's store write of the result, Tune's processing);
- pruned (not split): A's pruned trials keep only epoch rows (no TrialResult), so their
  start, reports and end are one row;
- unaccounted: in-trial time none of the stamps cover;
- idle before the first trial (Ray start, data check), between trials, after the last.

The driver rows (A: time inside the store callback, the store itself, the Optuna searcher
and Tune's experiment checkpoint, measured by wrapping those methods in the driver) are
not slot time; trials wait on them only through "Tune report" and "end".

Run: ``python bench/throughput.py [--rounds 2] [--data DIR] [--db URL] [--out FILE]``
(default store: a temporary SQLite; results JSON in ``--out``); the work folder (stores,
timelines, logs) is printed first and kept. ``python bench/throughput.py --reread OUT WORK``
prints the table again from those. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPACE = HERE / "throughput_space.yaml"
SLOTS = 2
PHASES = (
    "actor/process start", "imports", "trial setup", "data", "model build", "train compute",
    "data wait", "eval", "precise-BN", "epoch other", "Tune report (in trial)", "test",
    "profiling", "checkpoint save", "end", "pruned (not split)", "unaccounted",
)  # fmt: skip
IDLE = ("idle before first trial", "idle between trials", "idle after last trial")
START = ("actor/process start", "imports")  # what a warm worker need not pay per trial


# -- the leuksearch run, in a child process with timers on the driver's hooks -------------

TIMERS: dict[str, list[float]] = {}


def _timed(owner: Any, name: str, label: str) -> None:
    """Wrap ``owner.name`` (a class or module attribute) to add its calls and seconds to
    TIMERS[label]."""
    fn = getattr(owner, name, None)
    if fn is None:
        return

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            slot = TIMERS.setdefault(label, [0, 0.0])
            slot[0] += 1
            slot[1] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def leuksearch_child(argv: list[str], timers_out: str) -> int:
    """``leuksearch run`` (search.cli.main) with the driver's hooks timed."""
    import ray
    from ray.tune.execution.tune_controller import TuneController

    from search import cli, runner
    from search.optuna_study import StudySearcher
    from search.store.store import Store
    from search.tune_callback import StoreCallback

    hooks = ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error",
             "on_step_begin", "on_step_end")  # fmt: skip
    for hook in hooks:
        _timed(StoreCallback, hook, "driver: store callback (store + Optuna report/tell)")
    for name in ("record_epoch", "record_result", "finish_trial", "upsert_trial"):
        _timed(Store, name, "driver: store writes (part of the callback)")
    for name in ("suggest", "on_trial_complete"):
        _timed(StudySearcher, name, "driver: searcher (Optuna ask/tell)")
    _timed(TuneController, "checkpoint", "driver: Tune experiment checkpoint")
    _timed(runner, "start_ray", "driver: Ray start (ray.init; the data check runs meanwhile)")
    _timed(ray, "shutdown", "driver: ray.shutdown")
    code = cli.main(argv)
    Path(timers_out).write_text(json.dumps(TIMERS))
    return code


# -- running both ---------------------------------------------------------------------


def _run(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """Run ``cmd`` (stdout + stderr to ``log``); its start and end time and exit code."""
    # this checkout's code in the run and in the Ray workers it starts (they inherit it)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    t0 = time.time()
    with log.open("w") as fh:
        code = subprocess.call(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": path}
        )
    return t0, time.time(), code


def run_leuksearch(work: Path, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    """One `leuksearch run` of the space; its trials as :func:`leuksearch_trials` reads them."""
    db = args.db or f"sqlite:///{work}/{tag}.db"
    study = f"throughput-{tag}"
    cli = ["run", str(SPACE), "--db", db, "--study", study, "--storage-path", str(work / tag)]
    cli += ["--data", args.data] if args.data else []
    timers = work / f"{tag}-timers.json"
    cmd = [sys.executable, __file__, "--child", str(timers), "--", *cli]
    t0, t1, code = _run(cmd, work / f"{tag}.log")
    out = {"kind": "leuksearch", "tag": tag, "t0": t0, "t1": t1, "exit": code}
    out["driver"] = json.loads(timers.read_text()) if timers.exists() else {}
    out["trials"] = leuksearch_trials(db, study)
    return out


def run_baseline(work: Path, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of bench/baseline_tune.py; its trials from the timeline it writes."""
    timeline = work / f"{tag}-timeline.json"
    cmd = [sys.executable, str(HERE / "baseline_tune.py"), "--timeline", str(timeline),
           "--storage", str(work / tag)] + (["--data", args.data] if args.data else [])  # fmt: skip
    t0, t1, code = _run(cmd, work / f"{tag}.log")
    raw = json.loads(timeline.read_text()) if timeline.exists() else {}
    trials = [baseline_trial(t) for t in raw.values() if "start" in t and "end" in t]
    return {"kind": "baseline", "tag": tag, "t0": t0, "t1": t1, "exit": code, "driver": {},
            "trials": trials}  # fmt: skip


# -- trials: (start, end, status, best, pid, phases) ----------------------------------


def _unix(stamp: str | None) -> float:
    when = datetime.fromisoformat(str(stamp))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _epoch_phases(rows: list[dict[str, Any]]) -> dict[str, float]:
    """train compute / data wait / eval / precise-BN / epoch other of A's epoch rows."""
    out = {"train compute": 0.0, "data wait": 0.0, "eval": 0.0, "precise-BN": 0.0}
    other = 0.0
    for m in rows:
        parts = [m.get(k) or 0.0 for k in ("compute_time_s", "data_time_s", "val_time_s",
                                           "bn_time_s")]  # fmt: skip
        for key, v in zip(out, parts, strict=True):
            out[key] += v
        other += (m.get("epoch_time_s") or 0.0) - sum(parts)
    return {**out, "epoch other": other}


def _completed_phases(tm: Any, start: float, end: float) -> dict[str, float]:
    """A completed leuksearch trial's rows outside its epochs, from its TrialResult timings."""
    inside = tm.total_s - tm.setup_s - tm.train_s - tm.test_s - tm.profile_s - tm.save_s
    return {
        "actor/process start": tm.entry_unix - start,
        "imports": tm.import_s,
        "trial setup": tm.start_unix - tm.entry_unix - tm.import_s,
        "data": tm.setup_s - tm.model_build_s,
        "model build": tm.model_build_s,
        "Tune report (in trial)": tm.report_s,
        "test": tm.test_s,
        "profiling": tm.profile_s,
        "checkpoint save": tm.save_s,
        "end": end - tm.end_unix,
        "_fit_outside_epochs": tm.train_s - tm.report_s + inside,
    }


def leuksearch_trials(db: str, study: str) -> list[dict[str, Any]]:
    """Every ended trial of the study, with its phases."""
    from search.store.store import Store

    out = []
    with Store.open(db) as store:
        info = store.study(study)
        for t in store.trials(info.id) if info else []:
            if not (t.started_at and t.ended_at):
                continue
            start, end = _unix(t.started_at), _unix(t.ended_at)
            rows = [e.metrics for e in store.epochs(t.trial_id)]
            phases = _epoch_phases(rows)
            tm = t.result.timings if t.result is not None else None
            pid = None
            if tm is not None and tm.entry_unix is not None:
                phases.update(_completed_phases(tm, start, end))
                epochs_s = sum(r.get("epoch_time_s") or 0.0 for r in rows)
                phases["epoch other"] += phases.pop("_fit_outside_epochs") - epochs_s
                pid = tm.pid
            else:
                phases["pruned (not split)"] = end - start - sum(phases.values())
            phases["unaccounted"] = end - start - sum(phases.values())
            out.append({"start": start, "end": end, "status": t.status, "best": t.value,
                        "pid": pid, "config": dict(t.params or {}),
                        "rows": [_epoch_costs(r) for r in rows],
                        "worktree_code": tm is not None and tm.entry_unix is not None,
                        "process_start": tm.process_start_unix if tm else None,
                        "epochs": len(rows),
                        "phases": phases})  # fmt: skip
    return out


def baseline_trial(t: dict[str, Any]) -> dict[str, Any]:
    """One baseline trial from its timeline entry."""
    rows = t.get("results") or []
    start, end = t["start"], t["end"]
    phases: dict[str, float] = {}
    if rows:
        first, last = rows[0], rows[-1]
        phases = {
            "actor/process start": first["t_entry"] - start,
            "imports": first["t_import_s"],
            "data": first["t_data_s"],
            "model build": first["t_build_s"],
            "train compute": sum(r["t_compute_s"] for r in rows),
            "data wait": sum(r["t_data_wait_s"] for r in rows),
            "eval": sum(r["t_val_s"] for r in rows),
            "Tune report (in trial)": last["t_report_s"],
            "end": end - last["t_report_unix"],
        }
    phases["unaccounted"] = end - start - sum(phases.values())
    best = max((r["val_accuracy"] for r in rows), default=None)
    code = rows[0].get("t_code", "") if rows else ""
    return {"start": start, "end": end, "status": t.get("status"), "best": best,
            "pid": rows[0].get("pid") if rows else None, "phases": phases,
            "config": dict(t.get("config") or {}),
            "rows": [{"compute": r["t_compute_s"], "eval": r["t_val_s"]} for r in rows],
            "process_start": rows[0].get("t_process_start") if rows else None,
            "epochs": len(rows),
            "worktree_code": code.startswith(str(ROOT))}  # fmt: skip


def _epoch_costs(m: dict[str, Any]) -> dict[str, float]:
    """An epoch row's training compute and its evaluation (validation + precise-BN) seconds."""
    return {"compute": m.get("compute_time_s") or 0.0,
            "eval": (m.get("val_time_s") or 0.0) + (m.get("bn_time_s") or 0.0)}  # fmt: skip


# -- the figures ----------------------------------------------------------------------


def per_level(trials: list[dict[str, Any]], factor: str, key: str) -> dict[str, float]:
    """Mean seconds of ``key`` per epoch, by the level of ``factor`` (epochs pooled)."""
    sums: dict[str, list[float]] = {}
    for t in trials:
        level = str((t.get("config") or {}).get(factor))
        for r in t.get("rows") or []:
            sums.setdefault(level, []).append(r[key])
    return {lv: sum(v) / len(v) for lv, v in sorted(sums.items()) if v}


def start_free_rate(summary: dict[str, Any]) -> float:
    """Trials per hour with no idle slot time and no worker start or imports: the run's
    in-trial work alone, spread over the slots (an upper bound for warm, gap-free slots)."""
    slot = summary["slot_seconds"]
    work = sum(v for k, v in slot.items() if k not in IDLE and k not in START)
    return summary["trials"] / (work / SLOTS) * 3600 if work > 0 else float("nan")


def idle(run: dict[str, Any], busy: float) -> dict[str, float]:
    """Idle slot-seconds before the first trial, between trials and after the last."""
    starts = sorted(t["start"] for t in run["trials"])[:SLOTS]
    ends = sorted((t["end"] for t in run["trials"]), reverse=True)[:SLOTS]
    before = sum(s - run["t0"] for s in starts)
    after = sum(run["t1"] - e for e in ends)
    total = (run["t1"] - run["t0"]) * SLOTS - busy
    return {IDLE[0]: before, IDLE[1]: total - before - after, IDLE[2]: after}


def spawn_before_start(trials: list[dict[str, Any]]) -> tuple[int, float]:
    """Trials whose worker process started within a minute before the driver's start of
    the trial (a fresh process each), and the seconds from process start to that start:
    idle slot time (the slot is reserved) that the trial's own rows do not show."""
    gaps = [t["start"] - t["process_start"] for t in trials if t.get("process_start")]
    fresh = [g for g in gaps if 0 <= g < 60]
    return len(fresh), sum(fresh)


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    """Wall, trials, trials/hour, utilisation, best score and the slot-time breakdown."""
    trials, wall = run["trials"], run["t1"] - run["t0"]
    busy = sum(t["end"] - t["start"] for t in trials)
    phases = {k: sum(t["phases"].get(k, 0.0) for t in trials) for k in PHASES}
    phases.update(idle(run, busy))
    scores = [t["best"] for t in trials if t["best"] is not None]
    pids = {t["pid"] for t in trials if t["pid"] is not None}
    return {
        "run": run["tag"], "kind": run["kind"], "exit": run["exit"], "wall_s": wall,
        "trials": len(trials), "trials_per_hour": len(trials) / wall * 3600,
        "epochs": sum(t.get("epochs", 0) for t in trials),
        "utilisation": busy / (wall * SLOTS), "best_val": max(scores, default=None),
        "statuses": {s: sum(t["status"] == s for t in trials) for s in
                     {t["status"] for t in trials}},
        "worktree_code": sum(bool(t.get("worktree_code")) for t in trials),
        "distinct_pids": len(pids), "pids_known": sum(t["pid"] is not None for t in trials),
        "slot_seconds": phases, "driver": run["driver"], "load": run.get("load"),
        "spawn_before_start": spawn_before_start(trials),
        "epoch_s_by_attention": {k: per_level(trials, "attention", k) for k in
                                 ("compute", "eval")},
    }  # fmt: skip


def _fmt(v: Any) -> str:
    """None as '-', floats under 10 with 3 decimals, other floats with 1."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table, one column per run."""
    head = "| | " + " | ".join(f"{r['run']} ({r['kind']})" for r in rows) + " |"
    lines = [head, "|---|" + "---:|" * len(rows)]

    def line(label: str, values: list[Any]) -> None:
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")

    for key in ("wall_s", "trials", "trials_per_hour", "epochs", "utilisation", "best_val"):
        line(key, [r[key] for r in rows])
    line("trials per hour without idle, process start or imports (bound)",
         [start_free_rate(r) for r in rows])  # fmt: skip
    line("A's bound / B's measured trials per hour (same round)", _bound_ratios(rows))
    line("trials running this checkout's code", [r["worktree_code"] for r in rows])
    line("trials with a pid / distinct pids",
         [f"{r['pids_known']} / {r['distinct_pids']}" for r in rows])  # fmt: skip
    line("load average (1 min) before / after",
         [f"{r['load'][0]:.1f} / {r['load'][1]:.1f}" for r in rows])  # fmt: skip
    for key in (*PHASES, *IDLE):
        line(f"slot s: {key}", [r["slot_seconds"][key] for r in rows])
    line("of the idle: fresh worker process start -> driver's trial start (trials, s)",
         [f"{r['spawn_before_start'][0]}, {r['spawn_before_start'][1]:.1f}" for r in rows])  # fmt: skip
    for key, label in (("compute", "train compute"), ("eval", "eval + precise-BN")):
        levels = sorted({lv for r in rows for lv in r["epoch_s_by_attention"][key]})
        for lv in levels:
            line(f"{label} s per epoch, attention={lv}",
                 [r["epoch_s_by_attention"][key].get(lv) for r in rows])  # fmt: skip
    drivers = sorted({k for r in rows for k in r["driver"]})
    for key in drivers:
        line(f"{key} (calls, s)",
             [f"{r['driver'][key][0]}, {r['driver'][key][1]:.1f}" if key in r["driver"]
              else "-" for r in rows])  # fmt: skip
    return "\n".join(lines)


def _bound_ratios(rows: list[dict[str, Any]]) -> list[Any]:
    """For each leuksearch run, its bound over the next baseline run's trials per hour."""
    out: list[Any] = []
    for i, r in enumerate(rows):
        nxt = next((b for b in rows[i + 1 :] if b["kind"] == "baseline"), None)
        ok = r["kind"] == "leuksearch" and nxt is not None
        out.append(f"{start_free_rate(r) / nxt['trials_per_hour']:.2f}x" if ok else None)
    return out


def reread(saved: str, work: Path) -> int:
    """Print the table again from a saved ``--out`` file, the trials read anew from the
    run's work folder (its stores and timelines), e.g. after the figures changed."""
    runs = json.loads(Path(saved).read_text())["runs"]
    for run in runs:
        tag = run["tag"]
        if run["kind"] == "leuksearch":
            run["trials"] = leuksearch_trials(f"sqlite:///{work}/{tag}.db", f"throughput-{tag}")
        else:
            raw = json.loads((work / f"{tag}-timeline.json").read_text())
            run["trials"] = [baseline_trial(t) for t in raw.values() if "start" in t and "end" in t]
    print(table([summarise(r) for r in runs]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return leuksearch_child(argv[3:], argv[1])
    if argv[:1] == ["--reread"]:  # --reread OUT_JSON WORK_FOLDER
        return reread(argv[1], Path(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", help="an image folder (default: the space's synthetic set)")
    parser.add_argument("--db", help="leuksearch's store URL (default: a temporary SQLite)")
    parser.add_argument("--only", choices=("leuksearch", "baseline"), help="run one side only")
    parser.add_argument("--out", help="write the runs' figures and trials here (JSON)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    print(f"work folder: {work}", file=sys.stderr)
    runs = []
    for r in range(1, args.rounds + 1):
        for kind, fn in (("leuksearch", run_leuksearch), ("baseline", run_baseline)):
            if args.only and kind != args.only:
                continue
            before = os.getloadavg()[0]
            run = fn(work, f"{'A' if kind == 'leuksearch' else 'B'}{r}-{os.getpid()}", args)
            run["load"] = (before, os.getloadavg()[0])
            runs.append(run)
            print(f"{run['tag']}: {run['t1'] - run['t0']:.1f} s, exit {run['exit']}",
                  file=sys.stderr)  # fmt: skip
    rows = [summarise(r) for r in runs]
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "runs": runs}, indent=1))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
