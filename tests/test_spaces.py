"""The shipped search spaces (spaces/*.yaml): they load, their profiles are sound, their
smoke profiles are small enough for two CPUs, and their reference rows can be read.

No study is run here (a smoke run takes minutes): spaces/README.md records the measured
smoke run + report times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leukmodels.data import synthetic
from leukmodels.data.registry import DATASETS, SYNTHETIC_SEED
from leukmodels.data.splits import make_split
from search.optuna_space import enqueued_trials, study_budget
from search.report.collect import EXTRA_METRICS, METRICS, SEG_METRICS
from search.space import iter_ablation_points, load_space
from search.space.models import ReferenceFacts

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "spaces").glob("*.yaml"))
NAMES = [p.stem for p in SPACES]
PAPER_SPACES = (
    "attention_placement",
    "attention_pooling",
    "attention_conv",
    "cbam_focal",
    "mobilenet_l1",
    "loss_optimizer",
    "ddrnet_blocks",
    "mta_multitask",
)
NO_PAPER = {"quickstart"}  # the README's demo study: no paper behind it, so no paper profile
SMOKE_MAX_TRIALS = 30
"""Trials a smoke study may run (enqueued runs plus exploration); at 2-3 epochs on tiny
synthetic images this is what fits in ten minutes on two CPUs (see spaces/README.md)."""
SMOKE_MAX_EPOCHS = 5
REFERENCE_METRICS = set(METRICS) | set(EXTRA_METRICS) | set(SEG_METRICS)
ROW_KEYS = {"config", *ReferenceFacts.model_fields}


def space_path(name: str) -> Path:
    return ROOT / "spaces" / f"{name}.yaml"


def profiles_of(name: str) -> list[str]:
    return sorted(load_space(space_path(name)).profiles)


def used_data(space) -> list:
    """The data specs a study of ``space`` can run on: its protocols' or its data section."""
    f = space.factors.get("protocol")
    return [space.protocols[level] for level in f.levels] if f is not None else [space.data]


def smoke_trials(space) -> int:
    return study_budget(space)[2]


def test_every_issue_space_is_shipped() -> None:
    assert set(PAPER_SPACES) <= set(NAMES)


@pytest.mark.parametrize(
    ("name", "profile"),
    [(n, None) for n in NAMES] + [(n, p) for n in NAMES for p in profiles_of(n)],
)
def test_space_loads_with_and_without_each_profile(name: str, profile: str | None) -> None:
    space = load_space(space_path(name), profile)
    assert space.study == name
    # the baseline is a valid trial configuration under every profile
    cfg = space.trial_config(space.baseline())
    assert cfg.params.epochs >= 1
    # every ablation point (and named configuration) builds a trial configuration too
    for _, _, point in iter_ablation_points(space):
        space.trial_config(point)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_and_paper_profiles_exist(name: str) -> None:
    profiles = profiles_of(name)
    assert "smoke" in profiles
    if name not in NO_PAPER:
        assert "paper" in profiles


@pytest.mark.parametrize("name", NAMES)
def test_smoke_profile_is_synthetic_small_and_bounded(name: str) -> None:
    space = load_space(space_path(name), "smoke")
    data = used_data(space)
    assert all(d.dataset == "synthetic" for d in data), "smoke must run on synthetic data"
    assert all(d.image_size <= 64 for d in data)
    assert all(d.n <= 600 for d in data)
    assert space.data.classes in (2, 4)
    assert space.search.resources.gpu == 0 and space.search.resources.cpu <= 2
    assert (space.search.max_concurrent or 1) <= 2
    n = smoke_trials(space)
    assert 1 <= n <= SMOKE_MAX_TRIALS, f"{name} smoke runs {n} trials"
    for _, _, point in iter_ablation_points(space):
        assert space.trial_config(point).params.epochs <= SMOKE_MAX_EPOCHS


@pytest.mark.parametrize("name", NAMES)
def test_smoke_splits_leave_every_split_non_empty(name: str) -> None:
    """Grouped splits need enough synthetic patients per class: an empty validation split
    has no val metric to report and stops the whole study."""
    space = load_space(space_path(name), "smoke")
    for spec in used_data(space):
        data = synthetic.generate(
            n=spec.n,
            classes=spec.classes,
            size=spec.image_size,
            seed=SYNTHETIC_SEED,
            patients=spec.patients,
        )
        folds = range(spec.split.k) if spec.split.kind == "kfold" else [spec.split.fold]
        for fold in folds:
            split = make_split(
                data.labels, spec.split.model_copy(update={"fold": fold}), groups=data.patients
            )
            assert not split.warnings, split.warnings
            for part in (split.train, split.val, split.test):
                assert set(data.labels[part]) == set(range(spec.classes))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NO_PAPER])
def test_paper_profile_uses_the_papers_image_size(name: str) -> None:
    space = load_space(space_path(name), "paper")
    assert all(d.image_size == 224 for d in used_data(space))
    assert all(d.dataset != "synthetic" for d in used_data(space))
    assert space.reference is not None and space.reference.source


@pytest.mark.parametrize(
    ("name", "profile"),
    [(n, None) for n in NAMES] + [(n, p) for n in NAMES for p in profiles_of(n)],
)
def test_reference_rows_name_configurations_metrics_and_datasets(
    name: str, profile: str | None
) -> None:
    space = load_space(space_path(name), profile)
    if space.reference is None:
        return
    configs = space.ablation.configurations if space.ablation else {}
    top = 1.0 if space.reference.scale == "fraction" else 100.0
    for row in space.reference.rows:
        assert row["config"] in configs, f"{name}: {row['config']!r} is not a configuration"
        if "dataset" in row:
            assert row["dataset"] in DATASETS, f"{name}: unknown dataset {row['dataset']!r}"
        values = {k: v for k, v in row.items() if k not in ROW_KEYS}
        assert values, f"{name}: a reference row without a number: {row}"
        for key, value in values.items():
            metric = key.removesuffix("_gain")
            # a misspelt metric would be silently left out of the report
            assert metric in REFERENCE_METRICS, f"{name}: {key!r} is not a report metric"
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
            if key.endswith("_gain"):
                assert -top <= value <= top
            else:
                assert 0 <= value <= top, f"{name}: {key}={value} is off the {top:g} scale"


def test_describe_json_for_mobilenet_l1() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "search.cli", "describe", str(space_path("mobilenet_l1")), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    factors = {f["name"]: f for f in info["factors"]}
    assert factors["test_noise"] == {
        "name": "test_noise",
        "kind": "constant",
        "levels": [[0, 2, 5, 8, 10]],
        "n_levels": 1,
    }
    # what the paper switched together is three separate ablation factors
    assert {"balance", "offline_noise", "augment"} <= set(info["ablation"]["factors"])
    assert factors["l1"]["levels"][:2] == [0.015, 0.0]
    assert sorted(info["protocols"]) == ["fold0", "fold1", "fold2"]
    assert info["ablation_points"] == len(
        iter_ablation_points(load_space(space_path("mobilenet_l1")))
    )


def test_mobilenet_l1_tests_every_trial_under_the_papers_noise_sigmas() -> None:
    for profile in (None, "smoke", "paper"):
        space = load_space(space_path("mobilenet_l1"), profile)
        for _, _, point in iter_ablation_points(space):
            assert space.trial_config(point).params.test_noise == [0, 2, 5, 8, 10]


def test_mobilenet_l1_separates_balancing_noise_and_augmentation() -> None:
    space = load_space(space_path("mobilenet_l1"), "smoke")
    base = space.baseline()
    params = space.trial_config(base).params
    assert (params.balance, params.offline_noise, params.augment) == (
        "hsv_desat",
        [3, 9],
        "paper004",
    )
    labels = {label for _, label, _ in iter_ablation_points(space)}
    # each switched off alone, and all three off together (the paper's Table 9 contrast)
    for factor, off in (("balance", "none"), ("offline_noise", "[]"), ("augment", "none")):
        points = [p for f, lv, p in iter_ablation_points(space) if f == factor and lv == off]
        assert len(points) == 1
        changed = {k for k in base if points[0].get(k) != base[k]}
        assert changed == {factor}
    assert "MobileNet_M imbalanced, no augmentation (fold 2)" in labels


def test_cbam_focal_bundles_the_two_stated_optimiser_settings() -> None:
    space = load_space(space_path("cbam_focal"))
    f = space.factors["optimizer_setting"]
    assert f.kind == "bundle"
    got = {}
    for level in f.levels:
        p = space.trial_config(space.fill({**space.baseline(), "optimizer_setting": level})).params
        got[level] = (p.optimizer, p.lr, p.weight_decay, p.beta1, p.beta2)
    assert sorted(got.values()) == [
        ("adam", 1e-3, 1e-4, 0.9, 0.999),
        ("adamw", 3e-4, 1e-5, 0.9, 0.999),
    ]
    # the baselines are plain backbones: no CBAM, everything else as the proposed model
    configs = dict((n, p) for n, p in _configurations(space))
    for name in ("MobileNetV3", "ResNet50", "DenseNet121"):
        assert configs[name]["attention"] == "none"
        assert configs[name]["loss"] == configs["EfficientNetV2-S+CBAM+Focal"]["loss"]
    # the two splits the paper used, each with a held-out test share of 30 and 40 %
    assert {k: v.split.test for k, v in space.protocols.items()} == {"split70": 0.3, "split60": 0.4}


def test_attention_spaces_vary_only_what_their_table_is_about() -> None:
    pooling = load_space(space_path("attention_pooling"))
    assert pooling.factors["attention_pooling"].levels == ["gap", "gmp", "both"]
    assert pooling.factors["spatial_conv"].levels == ["dilated"]
    conv = load_space(space_path("attention_conv"))
    assert conv.factors["spatial_conv"].levels == ["standard", "dilated"]
    assert conv.factors["attention_pooling"].levels == ["both"]
    for space in (pooling, conv):
        assert space.factors["backbone"].levels == ["mobilenetv4_conv_small"]


def test_attention_placement_protocol_profiles() -> None:
    cv5 = load_space(space_path("attention_placement"), "paper_cv5")
    point = cv5.baseline()
    assert cv5.trial_config(point).data.split.kind == "kfold"
    # a k-fold point runs every fold
    assert len(enqueued_trials(cv5)) == 5 * len(iter_ablation_points(cv5))
    folds = load_space(space_path("attention_placement"), "paper_cnmc_folds")
    subsets = {
        folds.trial_config(folds.fill({**point, "protocol": p})).data.subset
        for p in folds.factors["protocol"].levels
    }
    assert subsets == {"fold_0", "fold_1", "fold_2"}


def _configurations(space):
    from search.report.paper import configurations

    return configurations(space)


def _planted(space, dataset: str):
    """StudyData with one fully trained run (every metric 50 %) of every named configuration
    and of its bare-backbone point: what a finished study on `dataset` would hold."""
    import pandas as pd
    from factories import study_info

    from search.report.collect import StudyData, point_key
    from search.report.paper import bare_point, configurations

    rows = []
    for _, point in configurations(space):
        for p in (point, bare_point(space, point)):
            if p is not None:
                metrics = {m: 50.0 for m in REFERENCE_METRICS}
                rows.append({"key": point_key(space, p), "full": True, "cell": True, "pair": "s0",
                             **metrics,
                             "data": None, "confusion": None, "class_names": None})  # fmt: skip
    study = study_info(dataset=dataset, config={"overrides": {"dataset": dataset}})  # --data
    return StudyData(study=study, space=space, trials=pd.DataFrame(rows))


def _reference(name: str, profile: str | None, dataset: str):
    from search.report.paper import reference_table

    ref = reference_table(_planted(load_space(space_path(name), profile), dataset))
    assert len(ref), f"{name}: no reference values"
    return ref


def _compared(name: str, profile: str | None, dataset: str) -> dict[tuple, bool]:
    """Whether each reference row meets these runs on dataset and protocol (the other facts,
    grouping, pretraining, image size, averaging, are checked by _differing)."""
    out: dict[tuple, bool] = {}
    for r in _reference(name, profile, dataset).itertuples():
        parts = str(r.why_not or "").split("; ")
        out[(r.config, r.dataset, r.protocol, r.metric, r.kind)] = not any(
            p.startswith(("dataset", "protocol", "configuration")) for p in parts
        )
        if r.comparable:
            assert r.ours == 50.0 or (r.kind == "gain" and r.ours == 0.0)
    return out


def test_reference_rows_meet_the_runs_of_their_protocol_on_real_data() -> None:
    """On the paper's dataset, each reference row is set against the configuration run under
    the protocol it names, and only there."""
    # paper 000, ALL-IDB2: holdout rows under `paper`, 5-fold rows under `paper_cv5`
    holdout = _compared("attention_placement", "paper", "all_idb2")
    cv5 = _compared("attention_placement", "paper_cv5", "all_idb2")
    key = ("MobileNetV4+SCAB", "all_idb2", "holdout", "accuracy", "value")
    assert holdout[key] and not cv5[key]
    key = ("ResNet18+SCAB", "all_idb2", "cv5", "accuracy", "gain")
    assert cv5[key] and not holdout[key]
    assert not any(ok for k, ok in holdout.items() if k[1] != "all_idb2")
    # C-NMC's per-fold rows are never set against one split of ours
    for profile in ("paper", "paper_cnmc_folds"):
        got = _compared("attention_placement", profile, "cnmc2019")
        assert not any(ok for k, ok in got.items() if k[2] == "holdout_per_fold")
    # paper 003: both splits, the baselines and the colour spaces
    got = _compared("cbam_focal", None, "all_taleqani")
    assert all(got.values()) and len(got) == 14 * 6
    # paper 004: clean rows per fold compare; noisy-test rows are listed only
    got = _compared("mobilenet_l1", None, "cnmc2019")
    assert got[("MobileNet_M (fold 2)", "cnmc2019", "fold2", "balanced_accuracy", "value")]
    for k, ok in got.items():
        assert ok == ("test noise" not in k[2]), k
    # Tables 12-13 stand-ins and the loss study: the holdout rows on ALL
    for name in ("attention_pooling", "attention_conv", "loss_optimizer"):
        got = _compared(name, "paper", "all_taleqani")
        assert any(got.values())
        assert all(ok == (k[1] == "all_taleqani" and k[2] == "holdout") for k, ok in got.items())


def test_reference_rows_differing_in_size_pretraining_or_leakage_say_so() -> None:
    """Beyond dataset and protocol: what a paper does not state never matches, what differs
    is named, and paper 000's leaked ALL-IDB2 / Mixture rows are marked."""
    ref = _reference("attention_placement", "paper", "all_idb2")
    assert not ref["comparable"].any()  # paper 000 states no image size
    assert ref["why_not"].str.contains("image size: not stated by the paper").all()
    leaked = set(ref.loc[ref["leakage"].notna(), "dataset"])
    assert leaked == {"all_idb2", "mixture_leukemia"}
    assert ref.loc[ref["leakage"].notna(), "leakage"].str.contains("before splitting").all()
    assert ref["measured_under"].str.contains(r"grouping image \(inferred\)").all()
    # paper 004 used ImageNet weights at 224 px; the smoke runs train from scratch at 64 px
    why = _reference("mobilenet_l1", None, "cnmc2019")["why_not"]
    assert why.str.contains("pretrained: paper pretrained weights, ours from scratch").all()
