"""Factor importance with Optuna's evaluators, on the store's fully trained trials.

The trials are copied into an in-memory Optuna study whose objective is the report's
test metric (the search's own Optuna study holds the validation objective, and the
values of ASHA-pruned trials at whatever epoch they were cut): each trial's completed
point, encoded as the search suggested it, with the factor's distribution. Importance is
then ``optuna.importance.get_param_importances`` with PED-ANOVA and fANOVA, given only
from at least :data:`MIN_TRIALS` fully trained trials over at least :data:`MIN_SEEDS`
seeds (exploration trials included): from fewer, a random forest over a handful of
mostly one-factor-at-a-time points means nothing, and the report says so instead.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
)
from optuna.importance import (
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)

from search.optuna_space import distribution
from search.report.collect import StudyData
from search.space import Space

MIN_TRIALS = 30
"""Fully trained trials importance needs."""
MIN_SEEDS = 3
"""Distinct seeds among them (else seed noise cannot be told from a factor's effect)."""


def distributions(space: Space) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every factor the search varies."""
    return {f.name: distribution(f) for f in space.factors.values() if f.searched}


def metric_study(data: StudyData, metric: str) -> optuna.Study:
    """An in-memory study of the fully trained trials with ``metric`` as the objective."""
    dists = distributions(data.space)
    study = optuna.create_study(direction="maximize", study_name=f"{data.study.name}:{metric}")
    t = data.trials
    for _, row in t[t["full"]].iterrows():
        value = row[metric]
        if not math.isfinite(value):
            continue
        params: dict[str, Any] = {}
        used: dict[str, BaseDistribution] = {}
        for name, dist in dists.items():
            if name in row["point"]:
                params[name] = data.space.factors[name].encode(row["point"][name])
                used[name] = dist
        trial = optuna.trial.create_trial(
            params=params,
            distributions=used,
            value=float(value),
            user_attrs={"trial_id": int(row["trial_id"]), "seed": _seed(row["seed"])},
        )
        study.add_trial(trial)
    return study


def _seed(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def too_few(trials: list[optuna.trial.FrozenTrial]) -> str | None:
    """Why importance is not given for these trials, or None when it is."""
    seeds = {t.user_attrs.get("seed") for t in trials} - {None}
    if len(trials) >= MIN_TRIALS and len(seeds) >= MIN_SEEDS:
        return None
    return (
        f"importance (fANOVA, PED-ANOVA) is given from at least {MIN_TRIALS} fully trained "
        f"trials over at least {MIN_SEEDS} seeds; this study has {len(trials)} trial(s) over "
        f"{len(seeds)} seed(s), from which a factor's importance cannot be told from noise."
    )


def factor_importance(data: StudyData, metric: str) -> tuple[pd.DataFrame, list[str]]:
    """Importance (normalised to sum 1) of each varied factor by fANOVA and PED-ANOVA,
    most important first, and notes saying why an evaluator gave nothing."""
    notes: list[str] = []
    cols = ["factor", "fanova", "ped_anova", "distinct_values"]
    study = metric_study(data, metric)
    trials = study.get_trials(deepcopy=False)
    why = too_few(trials)
    if why:
        return pd.DataFrame(columns=cols), [why]
    distinct = {
        name: len({repr(t.params[name]) for t in trials if name in t.params})
        for name in distributions(data.space)
    }
    varied = [name for name, n in distinct.items() if n > 1]
    flat = [name for name, n in distinct.items() if n == 1]
    if flat:
        notes.append(
            f"{', '.join(flat)} took a single value in the fully trained trials: no importance."
        )
    if not varied:
        return pd.DataFrame(columns=cols), [*notes, "no factor varied across fully trained trials."]
    results: dict[str, dict[str, float]] = {}
    for label, evaluator in (
        ("ped_anova", PedAnovaImportanceEvaluator()),
        ("fanova", FanovaImportanceEvaluator(seed=0)),
    ):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results[label] = get_param_importances(study, evaluator=evaluator, params=varied)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{label}: {exc}")
            continue
        for w in caught:
            if issubclass(w.category, optuna.exceptions.ExperimentalWarning):
                continue
            notes.append(f"{label}: {w.message}")
    rows = [
        {
            "factor": name,
            "fanova": results.get("fanova", {}).get(name),
            "ped_anova": results.get("ped_anova", {}).get(name),
            "distinct_values": distinct[name],
        }
        for name in varied
    ]
    frame = pd.DataFrame(rows, columns=cols)
    order = "fanova" if "fanova" in results else "ped_anova"
    return frame.sort_values(order, ascending=False, na_position="last"), notes
