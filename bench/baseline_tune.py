"""Baseline for bench/throughput.py: a plain, tutorial-style Ray Tune + Optuna search.

What a user would write from the Ray Tune docs: ``tune.Tuner`` over a function trainable,
``OptunaSearch`` (TPE) and ``ASHAScheduler``, two trials at a time. It searches the same
space as ``leuksearch run`` of ``bench/throughput_space.yaml`` (the factors' levels, the
data, the epochs, the ASHA rungs and the trial budget are read from that file) on the same
prepared data: the driver prepares it once with leukmodels (``prepare_data``, the same
split and pre-processing a leuksearch trial gets) and hands it to every trial through the
object store (``tune.with_parameters``). Each trial builds the same timm model through
``leukmodels.arch.build_model``, trains it with plain Adam / SGD (momentum 0.9, constant
learning rate) on leukmodels' loaders and reports validation accuracy after every epoch.
Nothing else: no precise BatchNorm, no test evaluation, no profile, no checkpoint, no store.

Besides the metrics, every report carries the trial's own timings (``t_*`` keys: process
start, entry, imports, data loaders, model build, per-epoch data wait / compute / eval,
time in ``tune.report``), and a small callback writes the driver's start / end time of every
trial with its reports to ``--timeline`` (JSON) for bench/throughput.py.

Run: ``python bench/baseline_tune.py [--space bench/throughput_space.yaml] [--data DIR]
[--timeline out.json] [--storage DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEARCHED = ("attention", "pooling", "optimizer", "lr")


def _epoch(model: Any, loader: Any, optimizer: Any) -> tuple[float, float]:
    """One training pass; (data wait, compute) seconds."""
    import torch

    model.train()
    data_s = compute_s = 0.0
    t = time.perf_counter()
    for x, y in loader:
        t_data = time.perf_counter()
        data_s += t_data - t
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t = time.perf_counter()
        compute_s += t - t_data
    return data_s, compute_s


def _validate(model: Any, loader: Any) -> float:
    """Validation accuracy."""
    import torch

    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            seen += len(y)
    return correct / max(seen, 1)


def train_fn(config: dict[str, Any], data: Any, base: Any) -> None:
    """The function trainable: build, train ``base.epochs`` epochs, report each."""
    from search.proc_clock import process_start  # stdlib only: no import cost to measure

    stamps: dict[str, Any] = {"t_entry": time.time(), "t_process_start": process_start()}
    t = time.perf_counter()
    import torch
    from ray import tune

    from leukmodels.arch import build_model
    from leukmodels.data.prepare import make_loaders

    stamps["t_code"] = build_model.__code__.co_filename  # which checkout the worker imports
    stamps["t_import_s"], t = time.perf_counter() - t, time.perf_counter()
    torch.set_num_threads(1)
    params = base.model_copy(update=config)
    train_loader, val_loader, _ = make_loaders(data, params, seed=params.seed)
    stamps["t_data_s"], t = time.perf_counter() - t, time.perf_counter()
    model = build_model(params, num_classes=len(data.class_names))
    if params.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9)
    stamps["t_build_s"], report_s = time.perf_counter() - t, 0.0
    for epoch in range(1, params.epochs + 1):
        data_s, compute_s = _epoch(model, train_loader, optimizer)
        t = time.perf_counter()
        accuracy = _validate(model, val_loader)
        val_s = time.perf_counter() - t
        row = {"epoch": epoch, "val_accuracy": accuracy, "t_data_wait_s": data_s,
               "t_compute_s": compute_s, "t_val_s": val_s, "t_report_s": report_s,
               "t_report_unix": time.time(), **stamps}  # fmt: skip
        t = time.perf_counter()
        tune.report(row)
        report_s += time.perf_counter() - t


def timeline_callback() -> Any:
    """A Tune callback that keeps each trial's driver start / end time and its reports."""
    from ray import tune

    class Timeline(tune.Callback):
        def __init__(self) -> None:
            self.trials: dict[str, dict[str, Any]] = {}

        def _get(self, trial: Any) -> dict[str, Any]:
            return self.trials.setdefault(trial.trial_id, {"config": dict(trial.config)})

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._get(trial)["start"] = time.time()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:  # fmt: skip
            keep = {k: v for k, v in result.items() if k.startswith("t_") or k in
                    ("epoch", "val_accuracy", "pid", "time_this_iter_s")}  # fmt: skip
            self._get(trial).setdefault("results", []).append(keep)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._get(trial).update(end=time.time(), status="completed")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._get(trial).update(end=time.time(), status="error")

    return Timeline()


def search_space(space: Any) -> dict[str, Any]:
    """tune.choice over each searched factor's levels."""
    from ray import tune

    return {name: tune.choice(list(space.factors[name].levels)) for name in SEARCHED}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(HERE / "throughput_space.yaml"))
    parser.add_argument("--data", help="an image folder instead of the space's synthetic set")
    parser.add_argument("--timeline", help="write each trial's times and reports here (JSON)")
    parser.add_argument("--storage", help="Ray Tune's storage folder (default: a temporary one)")
    args = parser.parse_args(argv)
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from leukmodels.data.prepare import prepare_data
    from search.budget import study_budget
    from search.space import load_space

    space = load_space(args.space)
    overrides = {"dataset": str(Path(args.data).resolve())} if args.data else {}
    tc = space.trial_config(space.baseline(), overrides=overrides)
    data = prepare_data(tc.data, tc.params)
    search, sched = space.search, space.search.scheduler
    callback = timeline_callback()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_fn, data=data, base=tc.params), {"cpu": 1}),
        param_space=search_space(space),
        tune_config=tune.TuneConfig(
            metric=search.metric, mode=search.mode,
            search_alg=OptunaSearch(sampler=TPESampler(seed=search.seed)),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=tc.params.epochs,
                                    grace_period=sched.grace_epochs,
                                    reduction_factor=sched.reduction_factor),
            num_samples=study_budget(space)[2], max_concurrent_trials=search.max_concurrent,
        ),
        run_config=tune.RunConfig(
            storage_path=args.storage or tempfile.mkdtemp(prefix="baseline-tune-"),
            callbacks=[callback], verbose=0,
        ),
    )  # fmt: skip
    grid = tuner.fit()
    best = grid.get_best_result(metric=search.metric, mode=search.mode, scope="all")
    print(json.dumps({"best": best.metrics.get(search.metric), "config": best.config}))
    if args.timeline:
        Path(args.timeline).write_text(json.dumps(callback.trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
