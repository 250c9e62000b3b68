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

from leukmodels.data.registry import DATASETS
from search.optuna_space import enqueued_trials
from search.report.collect import EXTRA_METRICS, METRICS
from search.space import iter_ablation_points, load_space

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
)
NO_PAPER = {"quickstart"}  # the README's demo study: no paper behind it, so no paper profile
SMOKE_MAX_TRIALS = 30
"""Trials a smoke study may run (enqueued runs plus exploration); at 2-3 epochs on tiny
synthetic images this is what fits in ten minutes on two CPUs (see spaces/README.md)."""
SMOKE_MAX_EPOCHS = 5
REFERENCE_METRICS = set(METRICS) | set(EXTRA_METRICS)
ROW_KEYS = {"config", "dataset", "protocol"}


def space_path(name: str) -> Path:
    return ROOT / "spaces" / f"{name}.yaml"


def profiles_of(name: str) -> list[str]:
    return sorted(load_space(space_path(name)).profiles)


def used_data(space) -> list:
    """The data specs a study of ``space`` can run on: its protocols' or its data section."""
    f = space.factors.get("protocol")
    return [space.protocols[level] for level in f.levels] if f is not None else [space.data]


def smoke_trials(space) -> int:
    explore = 0 if space.search.algorithm == "grid" else space.search.num_samples
    return len(enqueued_trials(space)) + explore


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
    assert factors["test_noise"] == {"name": "test_noise", "kind": "constant",
                                     "levels": [[0, 2, 5, 8, 10]], "n_levels": 1}
    # what the paper switched together is three separate ablation factors
    assert {"balance", "offline_noise", "augment"} <= set(info["ablation"]["factors"])
    assert factors["l1"]["levels"][:2] == [0.015, 0.0]
    assert sorted(info["protocols"]) == ["fold0", "fold1", "fold2"]
    assert info["ablation_points"] == len(iter_ablation_points(load_space(space_path("mobilenet_l1"))))


def test_mobilenet_l1_tests_every_trial_under_the_papers_noise_sigmas() -> None:
    for profile in (None, "smoke", "paper"):
        space = load_space(space_path("mobilenet_l1"), profile)
        for _, _, point in iter_ablation_points(space):
            assert space.trial_config(point).params.test_noise == [0, 2, 5, 8, 10]


def test_mobilenet_l1_separates_balancing_noise_and_augmentation() -> None:
    space = load_space(space_path("mobilenet_l1"), "smoke")
    base = space.baseline()
    params = space.trial_config(base).params
    assert (params.balance, params.offline_noise, params.augment) == ("hsv_desat", [3, 9], "paper004")
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
    subsets = {folds.trial_config(folds.fill({**point, "protocol": p})).data.subset
               for p in folds.factors["protocol"].levels}
    assert subsets == {"fold_0", "fold_1", "fold_2"}


def _configurations(space):
    from search.report.paper import configurations

    return configurations(space)
