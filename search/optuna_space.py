"""A :class:`~search.space.Space` as an Optuna define-by-run function, and the trials to enqueue.

Each factor becomes one ``suggest_*`` call in declaration order; a factor whose ``when``
condition is false is not suggested (Optuna sees a conditional space, TPE handles it).
Constant factors are not suggested at all. Categorical levels that are not plain scalars
(subsets, lists) travel as string labels and are decoded in the trial.

Points that must run before the search explores (the ablation set, or every grid point
for ``algorithm: grid``) are enqueued in the Optuna study with ``user_attrs`` saying what
they are; the define-by-run function copies those attributes into the trial's config.
Exploration trials get seeds of their own (:func:`exploration_seed`), distinct from every
ablation repeat's seed, so that none duplicates (or pretends to pair with) a repeat.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution

from search.factors import Factor
from search.space import Space, iter_ablation_points

KIND = "_kind"  # explore | ablation | grid
REPEAT = "_repeat"
SEED = "_seed"
FOLD = "_fold"
LABEL = "_label"  # ablation: "<factor>=<level>"
NUMBER = "_optuna_number"
RESUMES = "_resumes"  # a rerun after a crash: the Tune trial id its store row was made under
CHECKPOINT = "_checkpoint"  # a rerun after a crash: the checkpoint folder it continues from
META_KEYS = (KIND, REPEAT, SEED, FOLD, LABEL, NUMBER, RESUMES, CHECKPOINT)


def distribution(f: Factor) -> BaseDistribution:
    """The Optuna distribution of a searched factor (categoricals by their encoded levels)."""
    return f.distribution()


class DefineByRun:
    """The function OptunaSearch calls with each Optuna trial (a class so Tune can pickle it)."""

    def __init__(self, space: Space) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        space = self.space
        decoded: dict[str, Any] = {}
        for f in space.factors.values():
            if space.active(f, space.context(decoded)):
                decoded[f.name] = f.suggest(trial)
        return meta_for(space, dict(trial.user_attrs), trial.number)


def meta_for(space: Space, attrs: dict[str, Any], number: int) -> dict[str, Any]:
    """Our meta keys of a trial's config, from its Optuna ``user_attrs`` and number."""
    seed = attrs.get("seed")
    return {
        KIND: attrs.get("kind", "explore"),
        REPEAT: int(attrs.get("repeat", 0)),
        SEED: int(seed) if seed is not None else exploration_seed(space, number),
        FOLD: attrs.get("fold"),
        LABEL: attrs.get("label"),
        NUMBER: number,
        RESUMES: attrs.get("resumes"),
    }


def repeat_seeds(space: Space) -> list[int]:
    """The seeds of the repeats of every enqueued point: ``search.seed + r``."""
    return [space.search.seed + r for r in range(space.search.repeats)]


def exploration_seed(space: Space, number: int) -> int:
    """The seed of exploration trial ``number`` (its Optuna number): past every repeat seed,
    one per trial, the same on every resume."""
    return space.search.seed + space.search.repeats + number


def encode_point(space: Space, point: dict[str, Any]) -> dict[str, Any]:
    """Optuna parameters for a decoded point (only the factors Optuna suggests)."""
    out = {}
    for name, value in point.items():
        f = space.factors[name]
        if not f.searched:
            continue
        out[name] = f.encode(value)
    return out


def decode_config(space: Space, config: dict[str, Any]) -> dict[str, Any]:
    """A decoded, completed point from a Ray trial config (meta keys dropped)."""
    point = {}
    for name, value in config.items():
        if name in META_KEYS or name not in space.factors:
            continue
        point[name] = space.factors[name].decode(value)
    return space.fill(point)


def runs_per_point(space: Space, point: dict[str, Any]) -> list[tuple[int, int, int | None]]:
    """(repeat, seed, fold) for every run of one enqueued point.

    ``search.repeats`` seeds each; for k-fold protocols every fold is run for every seed.
    """
    split = space.trial_config(point).data.split
    k = split.k if split.kind == "kfold" else None
    out = []
    for r, seed in enumerate(repeat_seeds(space)):
        if k is None:
            out.append((r, seed, None))
        else:
            out.extend((r * k + fold, seed, fold) for fold in range(k))
    return out


def enqueued_trials(space: Space) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Optuna params, user_attrs) for every trial that runs before exploration; ``slot``
    (the position in this list) tells a resume which of them Optuna already holds."""
    out = []
    if space.search.algorithm == "grid":
        points = [("grid", None, space.fill(p)) for p in space.grid()]
    else:
        points = [
            ("ablation", f"{factor}={label}", p) for factor, label, p in iter_ablation_points(space)
        ]
    for kind, label, point in points:
        for repeat, seed, fold in runs_per_point(space, point):
            attrs = {"kind": kind, "repeat": repeat, "seed": seed}
            if fold is not None:
                attrs["fold"] = fold
            if label:
                attrs["label"] = label
            attrs["slot"] = len(out)
            out.append((encode_point(space, point), attrs))
    return out


def study_budget(space: Space, num_samples: int | None = None) -> tuple[list, int, int]:
    """(enqueued trials, exploration trials, total) of a study of ``space``.

    ``num_samples`` (the command line's) replaces ``search.num_samples``; a grid explores
    nothing beyond its points.
    """
    queued = enqueued_trials(space)
    samples = space.search.num_samples if num_samples is None else num_samples
    explore = 0 if space.search.algorithm == "grid" else samples
    return queued, explore, len(queued) + explore
