"""Clean ablation cells and honest report facts (issue 13).

Stores are built from records where no training is needed (metrics computed by
:func:`leukmodels.metrics.classification_metrics` from simulated per-image predictions);
one tiny real training run proves the per-image predictions travel from the training
loop through the store into the report's intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from factories import trial_result
from scipy.stats import ttest_1samp

from leukmodels.config import DataSpec, SplitSpec, TrialConfig, TrialParams
from leukmodels.metrics import classification_metrics
from leukmodels.results import EpochRow, Predictions, SplitInfo, TrialResult
from leukmodels.train import run_trial
from search.optuna_space import KIND, SEED, DefineByRun, decode_config, enqueued_trials
from search.report.ablation import factor_levels, factor_table, level_stats, run_set
from search.report.build import build_report
from search.report.collect import load_study
from search.report.image_metrics import confusion_metric, confusions
from search.report.importance import MIN_TRIALS, factor_importance, metric_study
from search.report.intervals import COVERS_SEEDS_IMAGES
from search.space import Space, load_space
from search.store.records import StudyRecord, TrialUpdate
from search.store.store import Store

SPACE = """\
study: clean
data:
  dataset: synthetic
  n: 64
  image_size: 32
  split: {kind: holdout, train: 0.5, val: 0.25, test: 0.25}
search:
  algorithm: tpe
  num_samples: 12
  metric: val_f1
  repeats: 3
  seed: 5
ablation:
  baseline: {attention: none, pooling: gap}
  factors: [attention, pooling]
space:
  backbone: resnet18
  attention: {choice: [none, scab]}
  pooling: {choice: [gap, gmp]}
  optimizer: adam
  lr: 0.001
  epochs: 2
  test_noise: [0, 5]
"""
NAMES = ["normal", "all"]
N_TEST = 40
Y_TEST = np.repeat([0, 1], N_TEST // 2)


def predicted(accuracy: float, rng: np.random.Generator, y: np.ndarray = Y_TEST) -> np.ndarray:
    """Predictions on ``y`` that are right with probability ``accuracy``."""
    wrong = rng.random(len(y)) > accuracy
    return np.where(wrong, (y + 1) % len(NAMES), y)


def result_for(y_pred: np.ndarray, seed: int, y: np.ndarray = Y_TEST, **kw: Any) -> TrialResult:
    """A trial result whose test metrics and stored predictions are those of ``y_pred``."""
    proba = np.full((len(y), len(NAMES)), 0.1 / (len(NAMES) - 1))
    proba[np.arange(len(y)), y_pred] = 0.9
    metrics = classification_metrics(y, proba, NAMES, positive=kw.pop("positive", None))
    result = trial_result(metrics, seed=seed, split_hash="s1", **kw)
    result.predictions = Predictions(
        y_true=y.tolist(), y_pred=y_pred.tolist(), index=list(range(len(y))), test_set="s1"
    )
    return result


def new_study(store: Store, space: Space, text: str = SPACE, name: str = "clean") -> int:
    return store.ensure_study(
        StudyRecord(
            name=name, space_yaml=text, space_hash=space.hash, space_path="clean.yaml",
            dataset=space.data.dataset, metric="val_f1", mode="max", code_version="test",
        )
    )  # fmt: skip


def add_trial(
    store: Store,
    study_id: int,
    space: Space,
    tag: str,
    point: dict[str, Any],
    result: TrialResult,
    *,
    kind: str,
    val: float = 0.8,
) -> int:
    """A completed, fully trained trial whose best epoch reached ``val`` (val_f1)."""
    config = space.trial_config(point, seed=result.seed).model_dump(mode="json")
    update = TrialUpdate(params=point, config=config, kind=kind, status="running", seed=result.seed)
    tid = store.upsert_trial(study_id, tag, update)
    for e in (1, 2):
        store.record_epoch(tid, EpochRow(epoch=e, val_f1=val - 0.05 * (2 - e), train_loss=1 / e))
    store.record_result(tid, result)
    return tid


def explored(space: Space, extra: int) -> list[dict[str, Any]]:
    """The Ray trial configs the search makes (Optuna's suggestions and what the
    define-by-run function returns, as OptunaSearch merges them): enqueued points, then
    ``extra`` explorers."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    queued = enqueued_trials(space)
    for params, attrs in queued:
        study.enqueue_trial(params, user_attrs=attrs)
    run = DefineByRun(space)
    configs = []
    for _ in range(len(queued) + extra):
        trial = study.ask()
        meta = run(trial)
        configs.append({**trial.params, **meta})
        study.tell(trial, 0.5)
    return configs


def test_exploration_has_seeds_of_its_own_and_never_enters_a_cell(sqlite_url: str) -> None:
    space = load_space("clean.yaml", text=SPACE)
    configs = explored(space, extra=12)
    repeat_seeds = {5, 6, 7}
    ablation = [c for c in configs if c[KIND] == "ablation"]
    explore = [c for c in configs if c[KIND] == "explore"]
    assert {c[SEED] for c in ablation} == repeat_seeds and len(explore) == 12
    explore_seeds = [c[SEED] for c in explore]
    assert len(set(explore_seeds)) == 12 and not set(explore_seeds) & repeat_seeds
    keys = {space.point_key(decode_config(space, c)) for c in ablation}
    hits = [c for c in explore if space.point_key(decode_config(space, c)) in keys]
    assert hits, "an all-categorical space must put explorers on ablation points"

    rng = np.random.default_rng(1)
    with Store.open(sqlite_url) as store:
        sid = new_study(store, space)
        for i, c in enumerate(configs):
            # explorers that survived ASHA look better than the repeats: they must stay out
            acc = 0.99 if c[KIND] == "explore" else 0.7
            result = result_for(predicted(acc, rng), seed=c[SEED])
            add_trial(store, sid, space, f"t{i}", decode_config(space, c), result, kind=c[KIND])
        data = load_study(store, "clean")
    levels, _ = factor_levels(space)
    table = factor_table(data, "attention", levels["attention"], ("accuracy",))
    assert (table["n"] == 3).all() and (table["mean"] < 85).all()
    base = levels["attention"][0]
    assert set(run_set(data, base.key).test_sets) == {f"seed={s},fold=None" for s in repeat_seeds}
    assert table.loc[1, "paired"]  # the same three repeat seeds on both sides
    # exploration trials do count for importance (all of them are fully trained)
    assert len(metric_study(data, "accuracy").trials) == len(configs)
    # each cell's interval (seeds and test images) is at least as wide as Student's t over
    # its three runs' accuracies
    for lv in levels["attention"]:
        runs = data.trials[data.trials["cell"] & (data.trials["key"] == lv.key)]["accuracy"]
        t = ttest_1samp(runs, 0).confidence_interval()
        got = table[table["level"] == lv.label].iloc[0]
        assert got["covers"] == COVERS_SEEDS_IMAGES
        assert got["ci_high"] - got["ci_low"] >= t.high - t.low - 1e-9


@pytest.mark.slow
def test_a_real_trial_stores_its_test_predictions_and_the_report_resamples_them(
    sqlite_url: str, tmp_path: Path
) -> None:
    space = load_space("clean.yaml", text=SPACE)
    config = TrialConfig(
        data=DataSpec(
            dataset="synthetic", n=64, patients=8, image_size=32,
            split=SplitSpec(train=0.5, val=0.25, test=0.25), cache_dir=str(tmp_path / "cache"),
        ),
        params=TrialParams(backbone="resnet18", epochs=1, batch_size=16, lr=1e-3, seed=5),
        threads=1,
    )  # fmt: skip
    result = run_trial(config)
    p = result.predictions
    assert p is not None and len(p.y_true) == result.test.n == len(p.index)
    cm = np.zeros((2, 2), dtype=int)
    np.add.at(cm, (np.array(p.y_true), np.array(p.y_pred)), 1)
    assert cm.tolist() == result.test.confusion
    assert p.test_set == result.split.hash and p.index == sorted(p.index)
    stored = result.model_dump_json()
    assert f"{p.y_true}" not in stored and "z64:" in stored  # packed, not a list per image
    assert TrialResult.model_validate_json(stored).predictions == p

    with Store.open(sqlite_url) as store:
        sid = new_study(store, space)
        add_trial(store, sid, space, "real", space.baseline(), result, kind="ablation")
        data = load_study(store, "clean")
    key = space.point_key(space.baseline())
    preds = run_set(data, key).predictions
    assert preds is not None and np.array_equal(next(iter(preds.values())).y_pred, p.y_pred)
    stats = level_stats(data, key, None, "accuracy")
    assert "images" in stats["covers"] and stats["ci_low"] < stats["mean"] < stats["ci_high"]


def test_the_report_ranks_by_the_validation_metric_never_by_test(
    sqlite_url: str, tmp_path: Path
) -> None:
    space = load_space("clean.yaml", text=SPACE)
    rng = np.random.default_rng(2)
    noise = {"0": classification_metrics(Y_TEST, np.eye(2)[Y_TEST] * 0.8 + 0.1, NAMES)}
    with Store.open(sqlite_url) as store:
        sid = new_study(store, space)
        point = space.fill({"attention": "scab", "pooling": "gmp"})  # no cell of its own
        ids = {}
        for name, acc, val in (("val_best", 0.6, 0.95), ("test_best", 0.99, 0.7)):
            result = result_for(predicted(acc, rng), seed=5, noise=noise)
            ids[name] = add_trial(store, sid, space, name, point, result, kind="explore", val=val)
        report = build_report(store, "clean", tmp_path / "out")
    text = " ".join(b.text for b in report.blocks)
    assert f"by the study's metric val_f1 (max, its best epoch): trial {ids['val_best']}" in text
    assert f"trial {ids['test_best']} (" not in text
    noise_rows = report.tables["noise"]
    assert set(noise_rows["config"]) == {f"best by val_f1 (trial {ids['val_best']})"}
    assert (noise_rows["n"] == 1).all()  # that run alone


def test_importance_needs_thirty_trials_over_three_seeds(sqlite_url: str) -> None:
    space = load_space("clean.yaml", text=SPACE)
    rng = np.random.default_rng(3)
    points = [
        space.fill({"attention": a, "pooling": p}) for a in ("none", "scab") for p in ("gap", "gmp")
    ]
    with Store.open(sqlite_url) as store:
        sid = new_study(store, space)
        for i in range(MIN_TRIALS):  # enough trials, but one seed
            point = points[i % 4]
            acc = 0.6 + 0.3 * (point["attention"] == "scab")
            add_trial(
                store,
                sid,
                space,
                f"a{i}",
                point,
                result_for(predicted(acc, rng), seed=0),
                kind="explore",
            )
        table, notes = factor_importance(load_study(store, "clean"), "accuracy")
        assert table.empty and "30 trial(s) over 1 seed(s)" in notes[0]
        for i in range(2):
            point = points[i % 4]
            add_trial(
                store,
                sid,
                space,
                f"b{i}",
                point,
                result_for(predicted(0.7, rng), seed=i + 1),
                kind="explore",
            )
        table, notes = factor_importance(load_study(store, "clean"), "accuracy")
    assert list(table["factor"])[0] == "attention"
    assert pd.notna(table["fanova"]).all()


def test_binary_report_shows_the_positive_class_split_facts_and_absent_classes(
    sqlite_url: str, tmp_path: Path
) -> None:
    space = load_space("clean.yaml", text=SPACE)
    levels, _ = factor_levels(space)
    rng = np.random.default_rng(4)
    facts = SplitInfo(
        hash="s1", sizes={"train": 120, "val": 40, "test": N_TEST}, grouped_by_patient=True,
        warnings=["class 'rare' kept whole in training"],
    )  # fmt: skip
    recalls = []
    with Store.open(sqlite_url) as store:
        sid = new_study(store, space)
        for lv in levels["attention"] + levels["pooling"][1:]:
            for seed in (5, 6, 7):
                result = result_for(predicted(0.8, rng), seed=seed, positive="all")
                result.split = facts
                if lv.baseline and lv.factor == "attention":
                    recalls.append(100 * result.test.per_class["all"].recall)
                add_trial(store, sid, space, f"{lv.label}{seed}", lv.point, result, kind="ablation")
        only_all = np.ones(N_TEST, dtype=int)  # a test split without class 'normal'
        result = result_for(predicted(0.9, rng, only_all), seed=20, y=only_all)
        odd = add_trial(store, sid, space, "odd", space.baseline(), result, kind="explore")
        report = build_report(store, "clean", tmp_path / "out")
    table = report.tables["binary_attention"]
    base = table[(table["level"] == "none") & (table["metric"] == "sensitivity")].iloc[0]
    assert base["n"] == 3 and base["mean"] == pytest.approx(np.mean(recalls))
    # the positive class's intervals resample the test images too, paired on them
    assert (table["covers"] == COVERS_SEEDS_IMAGES).all()
    scab = table[(table["level"] == "scab") & (table["metric"] == "ppv")].iloc[0]
    assert scab["paired"] and scab["diff_covers"] == COVERS_SEEDS_IMAGES
    assert set(table["metric"]) == {"sensitivity", "pos_specificity", "ppv", "pos_npv"}
    shown = next(b.table for b in report.blocks if b.table is not None and "PPV" in b.table)
    assert list(shown.columns) == ["level", "runs", "sensitivity", "specificity", "PPV", "NPV"]
    assert report.header["positive class"].startswith("all")
    assert any(
        f"class 'normal' is absent from the test split of 1 run(s) (trials {odd})" in m
        for m in report.missing
    )
    splits = report.header["splits"]
    assert "split s1: train 120, val 40, test 40 images" in splits
    assert (
        "grouped by patient" in splits and "warning: class 'rare' kept whole in training" in splits
    )


def test_class_metrics_of_one_class_match_leukmodels() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    proba = np.eye(3)[pred] * 0.7 + 0.1
    per_class = classification_metrics(y, proba, ["a", "b", "c"])["per_class"]
    cm = confusions(y[None], pred[None], 3)[0]
    for metric in ("precision", "recall", "specificity", "f1", "npv"):
        for c, name in enumerate("abc"):
            got = confusion_metric(cm, f"{metric}@{c}")
            assert got == pytest.approx(per_class[name][metric]), (metric, name)
    with pytest.raises(ValueError, match="class metric"):
        confusion_metric(cm, "kappa@1")
