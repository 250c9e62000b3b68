"""Resume planning after a crash (search.reconcile), without Ray: the store is the truth,
Optuna is brought up to it, and the plan reruns exactly the trials the crash cut short."""

from __future__ import annotations

import numpy as np
import pytest
from factories import trial_result
from optuna.trial import TrialState

from leukmodels import metrics
from search.optuna_space import NUMBER, RESUMES, enqueued_trials
from search.optuna_study import OptunaStudy, StudySearcher
from search.reconcile import plan_resume
from search.space import load_space
from search.store.records import StudyRecord, TrialUpdate
from search.store.store import Store

SPACE = """
study: crashplan
data: {dataset: synthetic, n: 40, image_size: 32}
search: {algorithm: tpe, num_samples: 2, metric: val_f1}
ablation:
  baseline: {attention: none}
  factors: [attention]
space:
  backbone: resnet18
  attention: {choice: [none, se, scab]}
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  epochs: 2
"""
BUDGET = 5  # 3 ablation points + 2 TPE trials


@pytest.fixture
def setup(store_url: str):
    space = load_space("space.yaml", text=SPACE)
    store = Store.open(store_url)
    record = StudyRecord(
        name="crashplan", space_yaml=SPACE, space_hash=space.hash, metric="val_f1", mode="max",
        config={"budget": BUDGET},
    )  # fmt: skip
    study_id = store.ensure_study(record)
    ostudy = OptunaStudy(store.optuna_url, "crashplan", space)
    yield space, store, study_id, ostudy
    store.close()


def _row(store: Store, study_id: int, key: str, cfg: dict, status: str) -> int:
    tid = store.upsert_trial(
        study_id, key, TrialUpdate(params={}, config={}, optuna_number=cfg[NUMBER])
    )
    test = metrics.classification_metrics(
        np.array([0, 1, 1, 0]), np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]),
        ["normal", "all"],
    )  # fmt: skip
    if status == "completed":
        store.record_result(tid, trial_result(test, epochs=2))
    elif status != "running":
        store.finish_trial(tid, status)
    return tid


def test_plan_after_a_crash_reconciles_optuna_and_reruns_what_was_cut(setup) -> None:
    space, store, study_id, ostudy = setup
    queued = enqueued_trials(space)
    ostudy.ensure_enqueued(queued[:2])  # the crash came while enqueueing the third point
    done = ostudy.ask()  # completed in our store, never told to Optuna
    _row(store, study_id, "t0", done, "completed")
    cut = ostudy.ask()  # running when the driver died
    _row(store, study_id, "t1", cut, "running")
    asked = ostudy.ask()  # asked of Optuna, never reached Tune
    failed = ostudy.ask()
    _row(store, study_id, "t3", failed, "failed")
    ostudy.tell(failed[NUMBER], "failed")
    half = ostudy.study.ask()  # the crash came while its parameters were being suggested

    plan = plan_resume(store, store.study("crashplan"), ostudy, queued)

    states = {t.number: t for t in ostudy.trials()}
    assert states[done[NUMBER]].state == TrialState.COMPLETE
    assert states[done[NUMBER]].value == pytest.approx(0.52)  # the stored best_value
    assert states[half.number].state == TrialState.FAIL
    # the cut and the never-started trials rerun under their own (still RUNNING) numbers
    assert [(c[NUMBER], c[RESUMES]) for c in plan.reruns] == [
        (cut[NUMBER], "t1"),
        (asked[NUMBER], None),
    ]
    assert plan.reruns[0] == {**cut, RESUMES: "t1"}
    assert states[cut[NUMBER]].state == TrialState.RUNNING
    # the third ablation point is enqueued now; the budget left is 5 - (1 completed + 1 failed)
    waiting = [t for t in ostudy.trials() if t.state == TrialState.WAITING]
    assert [t.user_attrs["slot"] for t in waiting] == [2]
    assert plan.remaining == 3
    assert any("re-queued" in n for n in plan.notes) and any("FAIL" in n for n in plan.notes)

    # planning again changes nothing in Optuna and plans the same
    again = plan_resume(store, store.study("crashplan"), ostudy, queued)
    assert again.reruns == plan.reruns and again.remaining == plan.remaining
    assert len(ostudy.trials()) == len(states)

    # the searcher hands out the reruns first, then the enqueued point
    searcher = StudySearcher(ostudy, plan.reruns)
    firsts = [searcher.suggest(f"x{i}") for i in range(3)]
    assert [c[NUMBER] for c in firsts[:2]] == [cut[NUMBER], asked[NUMBER]]
    assert firsts[2]["_label"] == queued[2][1]["label"]


def test_retry_failed_requeues_into_the_same_row(setup) -> None:
    space, store, study_id, ostudy = setup
    queued = enqueued_trials(space)
    ostudy.ensure_enqueued(queued)
    for i, status in enumerate(["completed", "failed", "completed", "pruned", "completed"]):
        cfg = ostudy.ask()
        _row(store, study_id, f"t{i}", cfg, status)
        ostudy.tell(cfg[NUMBER], status, 0.5)
    study = store.study("crashplan")
    assert plan_resume(store, study, ostudy, queued).remaining == 0

    plan = plan_resume(store, study, ostudy, queued, retry_failed=True)
    assert plan.reruns == [] and plan.remaining == 1
    cfg = StudySearcher(ostudy).suggest("again")
    assert cfg[RESUMES] == "t1" and cfg["_label"] == queued[1][1]["label"]
    assert cfg[NUMBER] == 5  # a new Optuna trial; trial 1 stays FAIL
    assert ostudy.trials()[1].state == TrialState.FAIL
