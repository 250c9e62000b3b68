"""Splits: stratified, grouped, k-fold, predefined; small classes; determinism; limit."""

from __future__ import annotations

import numpy as np
import pytest

from leukmodels.config import SplitSpec
from leukmodels.data.splits import limit_indices, make_split
from leukmodels.errors import DataError, UserError


def _data(n_patients: int = 30, per_patient: int = 6, seed: int = 0):
    """Patients with one class each (2:1 imbalance), several images per patient."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    patient_class = (np.arange(n_patients) % 3 == 0).astype(int)
    labels = np.repeat(patient_class, per_patient)
    order = rng.permutation(len(labels))
    return labels[order], patients[order]


def _check_partition(split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    together = np.concatenate(parts)
    assert len(together) == n and len(np.unique(together)) == n  # disjoint, covers everything


def _check_grouped(split, patients) -> None:
    sets = [set(patients[idx]) for idx in (split.train, split.val, split.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_holdout_image_level_stratified() -> None:
    labels = np.array([0] * 100 + [1] * 50)
    split = make_split(labels, SplitSpec(train=0.7, val=0.1, test=0.2, group="none"))
    _check_partition(split, 150)
    assert split.sizes() == {"train": 105, "val": 15, "test": 30}
    assert np.bincount(labels[split.test]).tolist() == [20, 10]
    assert not split.grouped and split.warnings == []


def test_holdout_grouped_by_patient() -> None:
    labels, patients = _data()
    split = make_split(labels, SplitSpec(), groups=patients)
    assert split.grouped
    _check_partition(split, len(labels))
    _check_grouped(split, patients)
    assert set(labels[split.test]) == {0, 1} and set(labels[split.val]) == {0, 1}


def test_group_none_ignores_patients_and_patient_without_patients_fails() -> None:
    labels, patients = _data()
    split = make_split(labels, SplitSpec(group="none"), groups=patients)
    assert not split.grouped
    with pytest.raises(DataError, match="patient"):
        make_split(labels, SplitSpec(group="patient"))


def test_deterministic_and_seed_changes_hash() -> None:
    labels, patients = _data()
    a = make_split(labels, SplitSpec(seed=1), groups=patients)
    b = make_split(labels, SplitSpec(seed=1), groups=patients)
    c = make_split(labels, SplitSpec(seed=2), groups=patients)
    assert a.hash == b.hash and np.array_equal(a.test, b.test)
    assert a.hash != c.hash and not np.array_equal(a.test, c.test)
    d = make_split(labels, SplitSpec(seed=1, group="none"))
    e = make_split(labels, SplitSpec(seed=2, group="none"))
    assert not np.array_equal(d.test, e.test)


def test_small_class_warns_and_stays_in_train() -> None:
    labels = np.array([0] * 40 + [1] * 40 + [2] * 3)
    split = make_split(
        labels, SplitSpec(train=0.8, val=0.1, test=0.1), class_names=["a", "b", "tiny"]
    )
    _check_partition(split, len(labels))
    assert set(np.flatnonzero(labels == 2)) <= set(split.train)
    assert len(split.warnings) == 1
    assert (
        "'tiny' has only 3 images" in split.warnings[0] and "stay in training" in split.warnings[0]
    )
    assert set(labels[split.test]) == {0, 1}


def test_singleton_class_does_not_crash_kfold_or_grouped() -> None:
    labels = np.array([0] * 20 + [1] * 20 + [2])
    split = make_split(labels, SplitSpec(kind="kfold", k=5, fold=4))
    _check_partition(split, 41)
    assert 40 in split.train and split.warnings
    patients = np.array([f"p{i // 2}" for i in range(41)])
    grouped = make_split(labels, SplitSpec(), groups=patients)
    _check_grouped(grouped, patients)
    assert 40 in grouped.train


def test_kfold_folds_partition_the_data() -> None:
    labels, patients = _data()
    tests = []
    for fold in range(5):
        split = make_split(labels, SplitSpec(kind="kfold", k=5, fold=fold), groups=patients)
        _check_partition(split, len(labels))
        _check_grouped(split, patients)
        tests.append(split.test)
    together = np.concatenate(tests)
    assert len(together) == len(labels) and len(np.unique(together)) == len(labels)


def test_kfold_grouped_needs_k_patients() -> None:
    labels = np.array([0, 1] * 6)
    patients = np.array(["a", "b", "c"] * 4)
    with pytest.raises(DataError, match="at least 5 patients"):
        make_split(labels, SplitSpec(kind="kfold", k=5), groups=patients)


def test_predefined_train_test_and_folds() -> None:
    labels = np.array([0, 1] * 30)
    split_col = np.array(["train"] * 40 + ["test"] * 20)
    split = make_split(
        labels, SplitSpec(kind="predefined", val_from_train=0.25), predefined=split_col
    )
    assert set(split.test) == set(range(40, 60))
    assert len(split.val) == 10 and set(split.val) <= set(range(40))
    folds = np.array(["fold_0", "fold_1", "fold_2"] * 20)
    split = make_split(labels, SplitSpec(kind="predefined", fold=2), predefined=folds)
    assert set(folds[split.test]) == {"fold_2"}
    assert set(folds[split.train]) | set(folds[split.val]) == {"fold_0", "fold_1"}
    with pytest.raises(UserError, match="fold_0"):
        make_split(labels, SplitSpec(kind="predefined", fold=3), predefined=folds)
    with pytest.raises(DataError, match="no split or folds"):
        make_split(labels, SplitSpec(kind="predefined"))


def test_limit_is_stratified_deterministic_and_spreads_patients() -> None:
    labels, patients = _data(n_patients=30, per_patient=10)
    picked = limit_indices(labels, 60, groups=patients)
    assert len(picked) == 60 and np.array_equal(picked, limit_indices(labels, 60, groups=patients))
    assert np.bincount(labels[picked]).tolist() == [40, 20]
    assert len(set(patients[picked])) == 30  # every patient kept
    rare = np.array([0] * 99 + [1])
    assert 99 in limit_indices(rare, 10)
    assert len(limit_indices(labels, 10_000)) == len(labels)
