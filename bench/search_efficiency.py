"""Benchmark: how much of the full grid's answer one leuksearch study recovers, at what cost.

The space (``bench/efficiency_space.yaml``): attention (none, se, cbam) x pooling (gap,
gmp) x optimiser (adam, sgd) x lr (0.003, 0.03) = 24 configurations of a resnet18 on
32 px synthetic smears, 5 epochs. The **grid** trains every configuration with 3 seeds to
full fidelity (``leukmodels.train.run_trial``, ``--workers`` processes; cached per run in
``bench/results/efficiency_grid.json`` with a fingerprint of the code, so a rerun only
trains what is missing or was trained by other code; gap and gmp pool resnet18's 1x1 map
at 32 px alike, so pairs of configurations tie). The
**study** is ``leuksearch run`` of the same space (its ablation set, then TPE with ASHA)
into a SQLite store. Reported:

- compute: epochs trained (and trial seconds) by the study / by the grid;
- winner: the grid's best configuration (mean test F1 over seeds) vs the study's best
  trial by its own metric (val_f1), and that pick's rank in the grid;
- Kendall tau between the grid's and the study's effects of each non-baseline level
  (grid: marginal mean minus the baseline level's; study: its ablation trial minus its
  baseline trial);
- ablation differences: each one-at-a-time difference of the study against the grid's
  95 % t-interval of the same difference (paired by seed).

Run: ``python bench/search_efficiency.py [--samples 8] [--grid-only] [--study-db URL]``;
prints JSON.
Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from scipy import stats

from search.space import Space, load_space

HERE = Path(__file__).resolve().parent
SPACE = HERE / "efficiency_space.yaml"
CACHE = HERE / "results" / "efficiency_grid.json"
SEEDS = (0, 1, 2)


def _train(point: dict[str, Any], seed: int, cache_dir: str) -> dict[str, Any]:
    """One full-fidelity run of the grid (in a worker process)."""
    from leukmodels.train import run_trial

    space = load_space(SPACE)
    tc = space.trial_config(point, seed=seed)
    tc.threads = 1
    tc.data.cache_dir = cache_dir
    r = run_trial(tc)
    return {"val_f1": r.best_value, "test_f1": r.test.f1, "epochs": r.epochs_done,
            "seconds": r.timings.total_s}  # fmt: skip


def code_fingerprint() -> str:
    """What a cached run depends on besides its point and seed: the training and data
    code (every ``leukmodels`` source file) and torch's version. Runs cached under another
    fingerprint are trained again (30 runs cached before the synthetic data changed
    disagreed with fresh ones by up to 0.08 test F1)."""
    import torch

    root = HERE.parent / "leukmodels"
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def missing_runs(
    space: Space, cache: dict[str, dict[str, Any]], code: str
) -> list[tuple[str, dict[str, Any], int]]:
    """(cache key, point, seed) of every grid run the cache lacks under ``code``."""
    todo = []
    for point in (space.fill(p) for p in space.grid()):
        for seed in SEEDS:
            key = f"{space.point_key(point)}|{seed}"
            if cache.get(key, {}).get("code") != code:
                todo.append((key, point, seed))
    return todo


def run_grid(space: Space, workers: int) -> dict[str, dict[str, Any]]:
    """Every grid point x seed, from the cache where it holds the run under the current
    :func:`code_fingerprint`."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    code = code_fingerprint()
    todo = missing_runs(space, cache, code)
    data_cache = tempfile.mkdtemp(prefix="efficiency-cache-")
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_train, p, s, data_cache): k for k, p, s in todo}
        for future, key in futures.items():
            cache[key] = {**future.result(), "code": code}
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return cache


def run_study(samples: int, db: str) -> tuple[list[Any], float]:
    """One leuksearch study of the space; its trials and wall seconds."""
    from search.runner import RunOptions, run_study

    space = load_space(SPACE)
    opts = RunOptions(db=db, study="efficiency", num_samples=samples,
                      storage_path=tempfile.mkdtemp(prefix="efficiency-runs-"))  # fmt: skip
    t0 = time.perf_counter()
    run_study(space, opts)
    return stored_trials(db), time.perf_counter() - t0


def stored_trials(db: str) -> list[Any]:
    """The trials of the study ``efficiency`` stored at ``db``."""
    from search.store.store import Store

    with Store.open(db) as store:
        return store.trials(store.require_study("efficiency").id)


def _grid_means(space: Space, grid: dict[str, dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for key, run in grid.items():
        out.setdefault(key.rsplit("|", 1)[0], []).append(run["test_f1"])
    return out


def _interval(diffs: list[float]) -> tuple[float, float]:
    """The 95 % t-interval of the mean of ``diffs`` (plain floats, widened by 1e-9 so a
    zero-width interval still holds its own mean despite rounding)."""
    mean, n = statistics.mean(diffs), len(diffs)
    half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(diffs) / n**0.5 + 1e-9
    return mean - half, mean + half


def _key(space: Space, params: dict[str, Any] | None) -> str:
    """A stored trial's point key as the grid's cache writes it (completed by ``fill``)."""
    return space.point_key(space.fill(dict(params or {})))


def _level_effect(space: Space, means: dict[str, float], factor: str, level: Any) -> float:
    """The grid's marginal effect of ``factor`` at ``level``: the mean over configurations
    with that level minus the mean over those with the baseline's level."""
    f, base = space.factors[factor], space.baseline()[factor]

    def marginal(value: Any) -> float:
        want = f.canonical(value)
        return statistics.mean(m for k, m in means.items() if json.loads(k)[factor] == want)

    return marginal(level) - marginal(base)


def ablation_rows(
    space: Space, grid: dict[str, dict], ablation: dict[str, float]
) -> list[dict[str, Any]]:
    """Each one-at-a-time level the study trained (with its baseline) against the grid:
    the study's difference, the grid's paired mean difference and 95 % t-interval over
    seeds, and the grid's marginal effect of the level."""
    from search.space.ablation import iter_ablation_points

    means = {k: statistics.mean(v) for k, v in _grid_means(space, grid).items()}
    base_key = space.point_key(space.baseline())
    rows = []
    for factor, label, point in iter_ablation_points(space):
        key = space.point_key(point)
        if factor in ("baseline", "configuration") or base_key not in ablation:
            continue  # a named configuration changes several factors: no level effect
        if key not in ablation:
            continue
        paired = [grid[f"{key}|{s}"]["test_f1"] - grid[f"{base_key}|{s}"]["test_f1"]
                  for s in SEEDS]  # fmt: skip
        lo, hi = _interval(paired)
        study_diff = ablation[key] - ablation[base_key]
        rows.append({"level": f"{factor}={label}", "study_diff": round(study_diff, 4),
                     "grid_diff": round(statistics.mean(paired), 4),
                     "grid_ci": [round(lo, 4), round(hi, 4)], "inside": lo <= study_diff <= hi,
                     "grid_effect": round(_level_effect(space, means, factor, point[factor]), 4)})  # fmt: skip
    return rows


def _rank(means: dict[str, float], key: str | None) -> int | None:
    """1 + the number of configurations with a strictly higher grid mean: configurations
    that train the same network (gap and gmp over a 1x1 map) tie, and share a rank."""
    if key not in means:
        return None
    return 1 + sum(m > means[key] for m in means.values())


def self_agreement(space: Space, grid: dict[str, dict]) -> list[dict[str, Any]]:
    """How far the grid agrees with itself, per held-out seed ``s``: a study with one
    repeat whose ablation runs reproduced the grid's seed-``s`` runs exactly (ours do, bit
    for bit) would get Kendall tau ``tau`` against the level effects of the other seeds,
    and the other seeds' winner ranks ``winner_rank`` among seed ``s``'s configurations.
    The ceiling of what this bench can ask of a study at its size."""
    from search.space.ablation import iter_ablation_points

    base = space.point_key(space.baseline())
    levels = [(factor, point) for factor, _, point in iter_ablation_points(space)
              if factor not in ("baseline", "configuration")]  # fmt: skip
    out = []
    for s in SEEDS:
        rest = {k: statistics.mean(v) for k, v in _grid_means(
            space, {k: r for k, r in grid.items() if not k.endswith(f"|{s}")}).items()}  # fmt: skip
        alone = {k: v[0] for k, v in _grid_means(
            space, {k: r for k, r in grid.items() if k.endswith(f"|{s}")}).items()}  # fmt: skip
        keys = [space.point_key(point) for _, point in levels]
        one = [alone[k] - alone[base] for k in keys]
        effects = [_level_effect(space, rest, f, point[f]) for f, point in levels]
        tau = float(stats.kendalltau(effects, one).statistic) if len(levels) >= 2 else math.nan
        winner = max(rest, key=rest.get)
        out.append({"held_out_seed": s, "tau": round(tau, 3),
                    "winner_rank": _rank(alone, winner)})  # fmt: skip
    return out


def compare(space: Space, grid: dict[str, dict], trials: list[Any]) -> dict[str, Any]:
    """Compute, winner, Kendall tau of level effects, ablation differences in intervals."""
    means = {k: statistics.mean(v) for k, v in _grid_means(space, grid).items()}
    order = sorted(means, key=means.get, reverse=True)
    done = [t for t in trials if t.status == "completed" and t.result is not None]
    ranked = [t for t in done if t.value is not None]
    pick = max(ranked, key=lambda t: (t.value, -t.trial_id)) if ranked else None
    pick_key = _key(space, pick.params) if pick is not None else None
    ablation = {_key(space, t.params): t.result.f1 for t in done if t.kind == "ablation"}
    rows = ablation_rows(space, grid, ablation)
    tau = math.nan
    if len(rows) >= 2:
        tau = float(stats.kendalltau([r["grid_effect"] for r in rows],
                                     [r["study_diff"] for r in rows]).statistic)  # fmt: skip
    grid_epochs = sum(r["epochs"] for r in grid.values())
    study_epochs = sum(t.epochs_done for t in trials)
    return {
        "grid_runs": len(grid), "grid_epochs": grid_epochs,
        "grid_seconds": round(sum(r["seconds"] for r in grid.values()), 1),
        "study_trials": len(trials), "study_epochs": study_epochs,
        "study_seconds": round(sum(t.duration_s or 0.0 for t in trials), 1),
        "compute_fraction": round(study_epochs / grid_epochs, 3),
        "grid_winner": order[0], "grid_winner_f1": round(means[order[0]], 4),
        "study_pick": pick_key,
        "study_pick_grid_rank": _rank(means, pick_key),
        "winner_recovered": _rank(means, pick_key) == 1,
        "kendall_tau": round(tau, 3), "ablation": rows,
        "inside_intervals": sum(r["inside"] for r in rows),
        "grid_self_agreement": self_agreement(space, grid),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="TPE trials after the ablation")
    parser.add_argument("--workers", type=int, default=2, help="grid processes")
    parser.add_argument("--grid-only", action="store_true")
    parser.add_argument("--db", default=None, help="store URL (default: a temporary SQLite)")
    parser.add_argument("--study-db", default=None,
                        help="compare the study already stored there instead of running one")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    space = load_space(SPACE)
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    t0 = time.perf_counter()
    grid = run_grid(space, args.workers)
    out["grid_wall_s"] = round(time.perf_counter() - t0, 1)
    if args.grid_only:
        print(json.dumps(out))
        return 0
    if args.study_db:
        trials, wall = stored_trials(args.study_db), None
    else:
        db = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='efficiency-db-')}/study.db"
        trials, wall = run_study(args.samples, db)
    out["study_wall_s"] = None if wall is None else round(wall, 1)
    out.update(compare(space, grid, trials))
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
