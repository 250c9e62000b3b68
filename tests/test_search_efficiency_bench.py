"""bench/search_efficiency.py's comparison of a study against the full grid, on a fake grid."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from search.space.ablation import iter_ablation_points

ROOT = Path(__file__).resolve().parent.parent
EFFECTS = {"attention": {"none": 0.0, "se": 0.10, "cbam": 0.20}, "pooling": {"gap": 0.0,
           "gmp": -0.05}, "optimizer": {"adam": 0.0, "sgd": -0.15}, "lr": {0.003: 0.0,
           0.03: -0.02}}  # fmt: skip
"""Additive effects of each level on test F1 (baseline 0.5): the winner is cbam/gap/adam/0.003."""


def bench() -> Any:
    path = ROOT / "bench" / "search_efficiency.py"
    spec = importlib.util.spec_from_file_location("search_efficiency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def true_f1(point: dict[str, Any]) -> float:
    return 0.5 + sum(levels[point[f]] for f, levels in EFFECTS.items())


def fake_grid(mod: Any, space: Any) -> dict[str, dict[str, Any]]:
    """Every configuration x seed: its true F1 plus a small seed- and point-dependent wobble."""
    grid = {}
    for i, point in enumerate(space.fill(p) for p in space.grid()):
        for s in mod.SEEDS:
            wobble = 0.004 * ((7 * i + 3 * s) % 5 - 2)
            grid[f"{space.point_key(point)}|{s}"] = {"test_f1": true_f1(point) + wobble,
                                                     "val_f1": 0.0, "epochs": 5, "seconds": 2.0}  # fmt: skip
    return grid


def trial(tid: int, params: dict[str, Any], kind: str, **kw: Any) -> SimpleNamespace:
    """A stored trial as ``Store.trials`` returns it (the fields compare reads)."""
    fields = {"status": "completed", "epochs_done": 5, "duration_s": 1.0, "value": 0.5,
              "result": SimpleNamespace(f1=true_f1(params))}  # fmt: skip
    fields.update(kw)
    return SimpleNamespace(trial_id=tid, params=params, kind=kind, **fields)


def test_compare_finds_the_winner_the_effects_and_the_intervals():
    mod = bench()
    space = mod.load_space(mod.SPACE)
    grid = fake_grid(mod, space)
    base = space.baseline()
    points = [p for _, _, p in iter_ablation_points(space)]
    # each ablation trial scores its configuration's mean over the grid's seeds
    seed_mean = {k: statistics.mean(v) for k, v in mod._grid_means(space, grid).items()}
    ablation = [
        trial(i + 1, p, "ablation", result=SimpleNamespace(f1=seed_mean[space.point_key(p)]))
        for i, p in enumerate(points)
    ]
    best = {"attention": "cbam", "pooling": "gap", "optimizer": "adam", "lr": 0.003}
    explore = [
        trial(10, best, "explore", value=0.9),  # stored without the constant factors
        trial(
            11,
            {**base, "optimizer": "sgd"},
            "explore",
            value=0.95,
            status="pruned",
            epochs_done=2,
            result=None,
        ),
        trial(12, {**base, "lr": 0.03}, "explore", value=0.8),
    ]
    out = mod.compare(space, grid, ablation + explore)

    assert out["grid_runs"] == 72 and out["grid_epochs"] == 360
    assert out["study_trials"] == 9 and out["study_epochs"] == 6 * 5 + 5 + 2 + 5
    assert out["compute_fraction"] == pytest.approx(42 / 360, abs=1e-3)
    assert out["grid_winner"] == space.point_key(space.fill(best))
    assert out["study_pick"] == out["grid_winner"]  # the pruned trial's value is not a pick
    assert out["winner_recovered"] and out["study_pick_grid_rank"] == 1
    levels = {r["level"]: r for r in out["ablation"]}
    assert set(levels) == {"attention=se", "attention=cbam", "pooling=gmp", "optimizer=sgd",
                           "lr=0.03"}  # fmt: skip
    for name, row in levels.items():
        factor, label = name.split("=")
        effect = EFFECTS[factor][float(label) if factor == "lr" else label]
        assert row["study_diff"] == pytest.approx(row["grid_diff"], abs=1e-4)
        assert row["grid_diff"] == pytest.approx(effect, abs=0.01)
        assert row["grid_effect"] == pytest.approx(effect, abs=0.01)  # additive: marginal = one
        assert row["grid_ci"][0] <= row["grid_diff"] <= row["grid_ci"][1]
        assert row["inside"] is True  # a plain bool (JSON), also for se's zero-width interval
    assert out["kendall_tau"] == 1.0 and out["inside_intervals"] == 5
    json.dumps(out)


def test_compare_without_ablation_trials_or_picks():
    mod = bench()
    space = mod.load_space(mod.SPACE)
    out = mod.compare(space, fake_grid(mod, space), [trial(1, space.baseline(), "explore",
                                                           value=None)])  # fmt: skip
    assert out["ablation"] == [] and out["inside_intervals"] == 0
    assert out["study_pick"] is None and out["study_pick_grid_rank"] is None
    assert not out["winner_recovered"]


def test_grid_runs_cached_under_other_code_are_trained_again():
    mod = bench()
    space = mod.load_space(mod.SPACE)
    cache = {k: {**run, "code": "now"} for k, run in fake_grid(mod, space).items()}
    assert mod.missing_runs(space, cache, "now") == []
    stale = sorted(cache)[:3]
    for key in stale:
        cache[key]["code"] = "before"
    del cache[stale[0]]["code"]  # cached before runs carried a fingerprint
    assert sorted(k for k, _, _ in mod.missing_runs(space, cache, "now")) == stale
    assert len(mod.missing_runs(space, {}, "now")) == 72
    assert len(mod.code_fingerprint()) == 12


def test_configurations_that_tie_in_the_grid_share_its_rank():
    """gap and gmp pool a 1x1 map alike at 32 px: a pick tied with the winner recovers it."""
    mod = bench()
    space = mod.load_space(mod.SPACE)
    grid = fake_grid(mod, space)
    for key in list(grid):  # make pooling a no-op, as it is on the real grid
        point, seed = key.rsplit("|", 1)
        twin = point.replace('"pooling":"gmp"', '"pooling":"gap"')
        grid[key] = dict(grid[f"{twin}|{seed}"])
    best_gmp = {"attention": "cbam", "pooling": "gmp", "optimizer": "adam", "lr": 0.003}
    se = {"attention": "se", "pooling": "gmp", "optimizer": "adam", "lr": 0.003}
    for pick, rank in ((best_gmp, 1), (se, 5)):  # behind cbam x gap/gmp x both lr
        out = mod.compare(space, grid, [trial(1, pick, "explore", value=0.9)])
        assert out["study_pick_grid_rank"] == rank and out["winner_recovered"] == (rank == 1)


def test_self_agreement_is_perfect_without_seed_noise_and_drops_with_it():
    mod = bench()
    space = mod.load_space(mod.SPACE)
    grid = fake_grid(mod, space)
    quiet = mod.self_agreement(space, grid)
    assert [r["held_out_seed"] for r in quiet] == list(mod.SEEDS)
    # the wobble (< 0.01) is far below every effect: each seed alone ranks like the rest
    assert all(r["tau"] == pytest.approx(1.0) and r["winner_rank"] == 1 for r in quiet)
    # seed noise far larger than the effects: the grid no longer agrees with itself
    noisy = {k: {**r, "test_f1": r["test_f1"] + (0.6 if k.endswith("|0") and "sgd" in k
             else 0.0)} for k, r in grid.items()}  # fmt: skip
    held0 = mod.self_agreement(space, noisy)[0]
    assert held0["tau"] < 1.0 and held0["winner_rank"] > 1
