"""A trial ASHA stopped is PRUNED in Optuna's storage too (optuna-dashboard agrees with
`leuksearch best`); a fully trained one is COMPLETE, an error FAIL. The searcher is the one
the runner builds, on a real Optuna study in the store's database."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.optuna_space import study_budget
from search.runner import _searcher
from search.space import load_space
from search.store.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_asha_stopped_trials_are_pruned_in_optuna(sqlite_url: str) -> None:
    space = load_space(ROOT / "spaces" / "quickstart.yaml", "smoke")
    queued, _, _ = study_budget(space)
    with Store.open(sqlite_url) as store:
        searcher = _searcher(space, store, "cli-prune", queued[:3])
        for key in ("stopped", "full", "broken"):
            assert searcher.suggest(key) is not None
        for epoch in (1, 2):
            report = {"val_f1": 0.5 + epoch / 10, "epoch": epoch, "training_iteration": epoch}
            searcher.on_trial_result("stopped", report)
        searcher.on_trial_complete("stopped", result={"val_f1": 0.7, "epoch": 2})
        searcher.on_trial_complete("full", result={"val_f1": 0.8, "epoch": 4, "final": True})
        searcher.on_trial_complete("broken", error=True)
        study = optuna.load_study(study_name="cli-prune", storage=store.optuna_url)
    states = [t.state for t in study.get_trials() if t.state != TrialState.WAITING]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]
    pruned = study.get_trials()[0]
    assert pruned.intermediate_values == {1: 0.6, 2: 0.7}  # its curve stays for the dashboard
    assert study.best_trial.number == 1 and study.best_value == 0.8
