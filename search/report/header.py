"""What stands behind a report: dataset, split protocol, fidelity, trials, definitions.

Data facts come from a stored trial configuration (what the runs really used, with any
``--data`` override), else from the space.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from leukmodels.config import DataSpec
from search.report.collect import StudyData
from search.report.splitfacts import split_lines

FULL_DEFINITION = (
    "fully trained trials only: status completed and fidelity full (each ran its whole "
    "epoch budget or stopped by its own early-stopping rule; ASHA never cut it). Ablation "
    "and configuration cells hold only ablation / grid runs (their repeat seeds); exploration "
    "runs (seeds of their own) enter the importance analysis only; retrain runs, which repeat "
    "a stored trial, are left out"
)
UNITS = (
    "percent points (kappa and MCC x 100); params and FLOPs per image; latency in ms per "
    "image (batch 1) on the CPU that ran the trial"
)


def data_spec(data: StudyData) -> DataSpec:
    """The data protocol of the runs (the first stored trial's), else the space's."""
    stored = data.trials["data"].dropna()
    if len(stored):
        return DataSpec.model_validate(stored.iloc[0])
    return data.space.data


def protocol_text(spec: DataSpec, data: StudyData) -> str:
    split = spec.split
    if split.kind == "kfold":
        text = f"stratified {split.k}-fold cross-validation (group: {split.group})"
    elif split.kind == "holdout":
        text = (
            f"holdout {split.train:g}/{split.val:g}/{split.test:g} train/val/test "
            f"(group: {split.group}, split seed {split.seed})"
        )
    else:
        text = "the dataset's predefined split"
    if "protocol" in data.space.factors:
        levels = ", ".join(map(str, data.space.factors["protocol"].levels))
        text += f"; protocols searched: {levels}"
    return text


def fidelity_text(data: StudyData) -> str:
    t = data.trials
    planned = t["epochs_planned"].dropna()
    sched = data.space.search.scheduler
    text = f"up to {int(planned.max()) if len(planned) else '?'} epochs per trial; "
    text += f"scheduler {sched.kind}"
    if sched.kind == "asha":
        text += f" (grace {sched.grace_epochs} epochs, reduction {sched.reduction_factor:g})"
    pruned = int((t["status"] == "pruned").sum())
    return (
        f"{text}; {int(t['full'].sum())} fully trained, {pruned} pruned "
        "(partial fidelity, not in the statistics)"
    )


def header_facts(data: StudyData) -> dict[str, Any]:
    """The header's facts, in reading order."""
    s, sp, t = data.study, data.space, data.trials
    spec = data_spec(data)
    dataset = str(s.dataset or spec.dataset)
    if dataset == "synthetic":
        dataset += (
            f" (generated smears: {spec.n} images, {spec.classes} classes, "
            f"{spec.patients} patients; no paper value describes them)"
        )
    elif spec.limit:
        dataset += f" (at most {spec.limit} images)"
    counts: pd.Series = t.groupby(["kind", "status"]).size()
    trials = ", ".join(f"{n} {kind} {status}" for (kind, status), n in counts.items())
    return {
        "study": s.name,
        "status": s.status,
        "space": f"{s.space_path} (profile {s.profile or 'none'})",
        "dataset": dataset,
        "image size": f"{spec.image_size} px",
        "split protocol": protocol_text(spec, data),
        "fidelity": fidelity_text(data),
        "trials": f"{len(t)} ({trials or 'none'})",
        "search": f"{sp.search.algorithm}, metric {s.metric} ({s.mode}), "
        f"{sp.search.repeats} repeat(s) per ablation point",
        "positive class": positive_text(data),
        "statistics on": FULL_DEFINITION,
        "units": UNITS,
        "code version": s.code_version,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "splits": split_lines(data),
    }


def positive_text(data: StudyData) -> str:
    """The positive class of a two-class study, or why there is none."""
    names = data.trials["positive"].dropna()
    if not len(names):
        return "none (not a two-class task, or no completed run)"
    return (
        f"{names.iloc[0]} (data.positive_class, else the second class): its sensitivity, "
        "specificity, PPV and NPV are reported beside the macro averages"
    )
