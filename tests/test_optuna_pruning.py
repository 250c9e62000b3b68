"""A trial ASHA stopped is PRUNED in Optuna's storage too (optuna-dashboard agrees with
`leuksearch best`); a fully trained one is COMPLETE, an error FAIL. The study is the one
the runner drives (search.optuna_study), on a real Optuna study in the store's database."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.optuna_space import NUMBER, study_budget
from search.optuna_study import OptunaStudy, StudySearcher
from search.space import load_space
from search.store.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_asha_stopped_trials_are_pruned_in_optuna(sqlite_url: str) -> None:
    space = load_space(ROOT / "spaces" / "quickstart.yaml", "smoke")
    queued, _, _ = study_budget(space)
    with Store.open(sqlite_url) as store:
        ostudy = OptunaStudy(store.optuna_url, "cli-prune", space)
        ostudy.ensure_enqueued(queued[:3])
        searcher = StudySearcher(ostudy)
        stopped, full, broken = (searcher.suggest(key)[NUMBER] for key in ("s", "f", "b"))
        for epoch in (1, 2):
            ostudy.report(stopped, epoch, 0.5 + epoch / 10)
        ostudy.report(stopped, 2, 0.99)  # a retried epoch is not reported twice
        # what the store callback tells once the store holds each trial's end
        ostudy.tell(stopped, "pruned")
        ostudy.tell(full, "completed", 0.8)
        ostudy.tell(broken, "failed")
        ostudy.tell(full, "completed", 0.1)  # told again after a crash: left as it was
        study = optuna.load_study(study_name="cli-prune", storage=store.optuna_url)
    states = [t.state for t in study.get_trials() if t.state != TrialState.WAITING]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]
    pruned = study.get_trials()[0]
    assert pruned.intermediate_values == {1: 0.6, 2: 0.7}  # its curve stays for the dashboard
    assert study.best_trial.number == 1 and study.best_value == 0.8
