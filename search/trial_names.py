"""Names Ray shows for our trials: ``ablation-3-attention=scab``, ``explore-12``.

Tune uses the name in its logs, its experiment state and the trial's folder (with the
Tune trial id appended there, so folders never clash); the trainable also logs it first
thing, so each actor's log in the Ray dashboard says which trial it runs.
"""

from __future__ import annotations

import re
from typing import Any

from search.optuna_space import FOLD, KIND, LABEL, NUMBER, REPEAT, RESUMES

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")
MAX_LENGTH = 80


def trial_name(trial: Any) -> str:
    """``<kind>-<optuna number>[-<factor>=<level>][-r<repeat>][-f<fold>]`` from the config."""
    return name_from_config(trial.config)


def name_from_config(config: dict[str, Any]) -> str:
    parts = [str(config.get(KIND) or "explore"), str(config.get(NUMBER, "?"))]
    if config.get(LABEL):
        parts.append(str(config[LABEL]))
    if config.get(REPEAT):
        parts.append(f"r{config[REPEAT]}")
    if config.get(FOLD) is not None:
        parts.append(f"f{config[FOLD]}")
    return _UNSAFE.sub("_", "-".join(parts))[:MAX_LENGTH]


def trial_dirname(trial: Any) -> str:
    """The trial's folder: its name and Tune's trial id (unique within the experiment); a
    rerun after a crash writes under its stored trial's id, beside its checkpoints."""
    return f"{trial_name(trial)}_{trial.config.get(RESUMES) or trial.trial_id}"
