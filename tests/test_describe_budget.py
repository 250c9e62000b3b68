"""``describe --json`` reports, for every space in spaces/ and every profile, the number of
trials ``run`` enqueues: counted in a real Optuna study that the runner's own searcher
set-up fills (no training, no Ray workers), plus the exploration trials it asks Tune for."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from search.cli import main
from search.optuna_study import OptunaStudy
from search.space import load_space
from search.store.store import Store

SPACES = sorted((Path(__file__).resolve().parents[1] / "spaces").glob("*.yaml"))


def _describe(capsys: pytest.CaptureFixture[str], path: Path) -> dict:
    assert main(["describe", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _enqueued(path: Path, profile: str | None, url: str) -> int:
    """How many trials the runner's searcher enqueues in Optuna for this space/profile."""
    from search.optuna_space import study_budget

    space = load_space(path, None if profile == "(none)" else profile)
    queued, _, _ = study_budget(space)
    name = f"cli-{path.stem}-{profile}".replace("(", "").replace(")", "")
    with Store.open(url) as store:
        OptunaStudy(store.optuna_url, name, space).ensure_enqueued(queued)  # as run_study does
        study = optuna.load_study(study_name=name, storage=store.optuna_url)
        return len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_budget_equals_what_run_enqueues(
    path: Path, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    info = _describe(capsys, path)
    assert info["budget"] == info["budgets"]["(none)"]
    space = load_space(path)
    assert set(info["budgets"]) == {"(none)", *space.profiles}
    for profile, b in info["budgets"].items():
        assert b["full_fidelity"] == _enqueued(path, profile, sqlite_url), profile
        prof = load_space(path, None if profile == "(none)" else profile)
        explore = 0 if prof.search.algorithm == "grid" else prof.search.num_samples
        assert b["exploration"] == explore
        assert b["total"] == b["full_fidelity"] + b["exploration"] > 0
        assert (b["cpu"], b["gpu"]) == (prof.search.resources.cpu, prof.search.resources.gpu)


def test_kfold_profile_counts_folds(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: attention_placement's paper_cv5 runs 6 points x 5 folds, not 6."""
    info = _describe(capsys, SPACES[0].parent / "attention_placement.yaml")
    cv5 = info["budgets"]["paper_cv5"]
    assert (cv5["points"], cv5["runs_per_point"], cv5["full_fidelity"]) == (6, 5, 30)
    assert info["budgets"]["(none)"]["total"] == 124


def test_describe_text_prints_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    path = SPACES[0].parent / "quickstart.yaml"
    assert main(["describe", str(path), "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "*smoke" in out and "(none)" in out
    assert "8 full-fidelity (8 ablation points x 1 run(s)) + 2 tpe = 10 trials" in out
