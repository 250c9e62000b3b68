"""A trial's configuration as a self-contained file (``leuksearch export``) and back.

The file holds everything ``leukmodels.train.run_trial`` needs (the TrialConfig: data
protocol, every parameter, the seed) under ``config``, plus where it came from and what it
scored (``source``, for the record; never read back). ``leuksearch trial --config FILE``
and ``leuksearch retrain --config FILE`` accept it on any machine: no space file and no
database are needed, only the data (``--data`` points at it where it lives there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from leukmodels.config import TrialConfig
from leukmodels.errors import UserError
from search.space_limits import checked_config
from search.store.records import StudyInfo, TrialRecord
from search.yamlsrc import load_yaml

FORMAT = "leuksearch-trial/1"
"""The ``format`` key of an exported file."""


def export_document(trial: TrialRecord, study: StudyInfo | None) -> dict[str, Any]:
    """The exported file's content for a stored trial (UserError if it has no config)."""
    if not trial.config:
        raise UserError(f"trial {trial.trial_id} has no stored configuration to export")
    config = checked_config(trial.config, f"the stored configuration of trial {trial.trial_id}")
    config.checkpoint_dir = None  # a path on the machine that ran it
    # threads stay: the CPU kernels' summation order, hence the exact numbers, depend on them
    result = trial.result
    return {
        "format": FORMAT,
        "source": {
            "study": study.name if study else None,
            "trial_id": trial.trial_id,
            "kind": trial.kind,
            "status": trial.status,
            "params": trial.params,
            "seed": trial.seed,
            "split_hash": trial.split_hash,
            "code_version": study.code_version if study else None,
            "test_metrics": _plain_metrics(result.metrics) if result and result.metrics else None,
        },
        "config": config.model_dump(mode="json"),
    }


def _plain_metrics(metrics: Any) -> dict[str, Any]:
    data = metrics.model_dump(mode="json")
    return {k: v for k, v in data.items() if isinstance(v, (int, float)) or v is None}


def dump(document: dict[str, Any], fmt: str) -> str:
    """``document`` as YAML or JSON text."""
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def read_config(path: str | Path) -> TrialConfig:
    """The TrialConfig in an exported file (YAML or JSON; JSON is YAML too); UserError
    naming the file when it is not one."""
    if not Path(path).is_file():
        raise UserError(f"trial configuration file not found: {path}")
    src = load_yaml(path)
    doc = src.data
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "config" not in doc:
        raise UserError(
            f"{src.path}: not a trial configuration exported by `leuksearch export` "
            f"(expected format: {FORMAT} and a config section)"
        )
    return checked_config(doc["config"], f"{src.path}: invalid trial configuration")
