"""A study's trial budget, known before it runs: what ``describe`` prints and ``run`` enqueues.

The numbers come from :func:`search.optuna_space.study_budget`, the function the runner
itself calls, so the budget shown is the number of trials a ``run`` asks Tune for:
full-fidelity trials (ablation points x repeats x folds, or every grid point x repeats x
folds) first, then the exploration trials, each reserving ``search.resources``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from search.optuna_space import study_budget
from search.space import Space, load_space

DEFAULT_PROFILE = "(none)"
"""How the space without a profile is named in a budget table."""


@dataclass(frozen=True)
class Budget:
    """The trials one study of a space (with one profile) runs."""

    profile: str | None
    kind: str
    """What the full-fidelity trials are: ``ablation`` or ``grid`` (``none`` without either)."""
    points: int
    """Distinct configurations run at full fidelity."""
    runs_per_point: int | None
    """Repeats (seeds) x folds of each configuration (None when it differs between points)."""
    full_fidelity: int
    exploration: int
    total: int
    algorithm: str
    epochs: int
    cpu: float
    gpu: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget(space: Space, num_samples: int | None = None) -> Budget:
    """The budget of a study of ``space`` (``num_samples`` as ``run --num-samples``)."""
    queued, explore, total = study_budget(space, num_samples)
    if space.search.algorithm == "grid":
        kind = "grid"
    elif space.ablation is not None:
        kind = "ablation"
    else:
        kind = "none"
    runs = Counter(_point_key(params) for params, _ in queued)
    per_point = set(runs.values())
    res = space.search.resources
    return Budget(
        profile=space.profile,
        kind=kind,
        points=len(runs),
        runs_per_point=per_point.pop() if len(per_point) == 1 else None,
        full_fidelity=len(queued),
        exploration=explore,
        total=total,
        algorithm=space.search.algorithm,
        epochs=space.trial_config(space.baseline()).params.epochs,
        cpu=res.cpu,
        gpu=res.gpu,
    )


def budgets_by_profile(space: Space) -> dict[str, Budget]:
    """The budget without a profile and with each of the space's profiles."""
    out = {DEFAULT_PROFILE: budget(_with_profile(space, None))}
    for name in space.profiles:
        out[name] = budget(_with_profile(space, name))
    return out


def _with_profile(space: Space, profile: str | None) -> Space:
    if profile == space.profile:
        return space
    return load_space(space.path or Path("space.yaml"), profile, text=space.text)


def _point_key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))
