"""Train/validation/test splits, made before any augmentation or balancing.

:func:`make_split` implements ``SplitSpec``: stratified holdout, stratified k-fold and the
dataset's own split or folds, each grouped by patient when patients are known (group
``auto``) so that no patient's images land in two splits. Holdout is two carves: the test
share from everything, then the validation share from the rest (``val / (train + val)``).
Image-level carves use scikit-learn's ``StratifiedShuffleSplit``; grouped carves use
``StratifiedGroupKFold`` with ``k = round(1 / share)`` and take one fold, so a grouped
share is approximate (patients are indivisible).

A class with fewer members (patients, when grouped) than a carve needs, that is fewer
than ``ceil(1 / share)`` (and than ``k`` for k-fold), cannot be represented in every
split: it is kept whole in training and a warning says so, instead of failing inside the
stratifier. Everything is deterministic in ``spec.seed``; :attr:`Split.hash` identifies a
split for the store.

``copies`` (near-duplicate groups from :mod:`leukmodels.data.leakage`) are indivisible
too: with patients, a patient and every image linked to one of theirs form one group;
without, each near-duplicate group is a group (the other images are groups of one).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

from leukmodels.config import SplitSpec
from leukmodels.errors import DataError, UserError

_SPLIT_VALUES = {"train", "val", "test"}


@dataclass
class Split:
    """Index arrays (sorted, disjoint) into the dataset, with the warnings raised making them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    hash: str
    grouped: bool  # by patient
    warnings: list[str] = field(default_factory=list)
    copies_grouped: bool = False  # near-duplicate groups kept whole

    def sizes(self) -> dict[str, int]:
        """Number of images per split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_hash(spec: SplitSpec, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> str:
    """Short sha256 of the spec and the sorted index lists."""
    payload = {
        "spec": spec.model_dump(mode="json"),
        "train": sorted(int(i) for i in train),
        "val": sorted(int(i) for i in val),
        "test": sorted(int(i) for i in test),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _needed(share: float) -> int:
    """Members a class needs for a carve of `share` to give both sides at least one."""
    return max(2, math.ceil(1 / share - 1e-9), math.ceil(1 / (1 - share) - 1e-9))


class _Splitter:
    """The state of one split: labels, optional groups, names for messages, warnings."""

    def __init__(
        self,
        labels: np.ndarray,
        groups: np.ndarray | None,
        names: Sequence[str] | None,
        unit: str = "patients",
    ):
        self.labels = labels
        self.groups = groups
        self.unit = unit if groups is not None else "images"
        self.names = names
        self.warnings: list[str] = []
        self.train_only: set[int] = set()  # classes kept whole in training

    def _name(self, label: int) -> str:
        return repr(self.names[label]) if self.names is not None else str(label)

    def _units(self, idx: np.ndarray, label: int) -> int:
        members = idx[self.labels[idx] == label]
        return len(np.unique(self.groups[members])) if self.groups is not None else len(members)

    def set_aside_small(
        self, idx: np.ndarray, needed: int, what: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Split `idx` into (eligible, kept-in-train): classes with < `needed` units are kept."""
        unit = self.unit
        small = []
        for label in np.unique(self.labels[idx]):
            if int(label) in self.train_only:
                small.append(int(label))
                continue
            have = self._units(idx, int(label))
            if have < needed:
                small.append(int(label))
                self.train_only.add(int(label))
                self.warnings.append(
                    f"class {self._name(int(label))} has only {have} {unit}, too few for {what} "
                    f"(needs {needed}); all of its images stay in training"
                )
        keep = np.isin(self.labels[idx], small)
        if self.groups is not None and keep.any():  # whole patients go with their small class
            keep |= np.isin(self.groups[idx], self.groups[idx[keep]])
        return idx[~keep], idx[keep]

    def carve(
        self, idx: np.ndarray, share: float, seed: int, what: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Carve a stratified (grouped) `share` out of `idx`: returns (rest, carved)."""
        if share <= 0 or len(idx) == 0:
            return idx, idx[:0]
        eligible, kept = self.set_aside_small(idx, _needed(share), what)
        if len(eligible) == 0:
            return idx, idx[:0]
        y = self.labels[eligible]
        if self.groups is None:
            n_classes = len(np.unique(y))  # a whole count (floats like 0.1/0.8 round up badly)
            size = min(max(round(share * len(y)), n_classes), len(y) - n_classes)
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
            rest, carved = next(splitter.split(np.zeros(len(y)), y))
        else:
            g = self.groups[eligible]
            k = min(max(2, round(1 / share)), len(np.unique(g)))
            if k < 2:
                self.warnings.append(f"only one patient is left for {what}; it stays in training")
                return idx, idx[:0]
            with warnings.catch_warnings():  # small classes were handled above
                warnings.simplefilter("ignore", UserWarning)
                folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                rest, carved = next(folds.split(np.zeros(len(y)), y, g))
        return np.concatenate([eligible[rest], kept]), eligible[carved]

    def kfold(self, idx: np.ndarray, k: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Stratified (grouped) k-fold over `idx`: returns (train, test) of fold `fold`."""
        eligible, kept = self.set_aside_small(idx, k, f"{k}-fold cross-validation")
        y = self.labels[eligible]
        if self.groups is None:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            parts = list(folds.split(np.zeros(len(y)), y))
        else:
            g = self.groups[eligible]
            if len(np.unique(g)) < k:
                raise DataError(
                    f"{k}-fold cross-validation grouped by patient needs at least {k} patients; "
                    f"the data has {len(np.unique(g))}. Lower split.k or use split.group: none"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                parts = list(folds.split(np.zeros(len(y)), y, g))
        train, test = parts[fold]
        return np.concatenate([eligible[train], kept]), eligible[test]


def _groups_for(spec: SplitSpec, groups: np.ndarray | None) -> np.ndarray | None:
    if spec.group == "none":
        return None
    if groups is None:
        if spec.group == "patient":
            raise DataError(
                "split.group is 'patient' but this dataset does not say which patient each image "
                "comes from; use group: auto or none, or a manifest with a patient column"
            )
        return None
    return np.asarray(groups).astype(str)


def _with_copies(groups: np.ndarray | None, copies: np.ndarray | None) -> np.ndarray | None:
    """Patient groups joined with near-duplicate groups (see the module docstring)."""
    if copies is None:
        return groups
    if groups is None:
        return np.asarray(copies).astype(str)
    from leukmodels.data.leakage import merge_groups

    return merge_groups(groups, copies).astype(str)


def _predefined(
    s: _Splitter,
    everything: np.ndarray,
    predefined: np.ndarray | None,
    spec: SplitSpec,
    val_what: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kind: predefined``: the dataset's own train/val/test (validation carved from train
    when it has none), or its fold ``spec.fold`` as the test split."""
    if predefined is None:
        raise DataError(
            "split.kind is 'predefined' but this dataset has no split or folds of its own; "
            "use kind: holdout or kfold"
        )
    values = np.asarray(predefined).astype(str)
    if set(values) <= _SPLIT_VALUES:
        test = everything[values == "test"]
        if (values == "val").any():
            return everything[values == "train"], everything[values == "val"], test
        train, val = s.carve(
            everything[values == "train"], spec.val_from_train, spec.seed + 1, val_what
        )
        return train, val, test
    folds = sorted(set(values))
    if spec.fold >= len(folds):
        raise UserError(
            f"split.fold {spec.fold} does not exist: the dataset's folds are {folds} "
            f"(fold 0..{len(folds) - 1})"
        )
    test = everything[values == folds[spec.fold]]
    train, val = s.carve(
        everything[values != folds[spec.fold]], spec.val_from_train, spec.seed + 1, val_what
    )
    return train, val, test


def make_split(
    labels: np.ndarray,
    spec: SplitSpec,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    copies: np.ndarray | None = None,
) -> Split:
    """Split indices ``0..len(labels)-1`` per `spec` (see the module docstring).

    `groups` holds the patient of each image (or None); `predefined` the dataset's own
    split ("train"/"val"/"test") or fold names, used by ``kind: predefined``; `copies`
    the near-duplicate group of each image (or None).
    """
    labels = np.asarray(labels, dtype=np.int64)
    everything = np.arange(len(labels))
    patients = _groups_for(spec, groups)
    g = _with_copies(patients, copies)
    s = _Splitter(labels, g, class_names, "patients" if patients is not None else "image groups")
    val_what = "the validation split"
    if spec.kind == "holdout":
        rest, test = s.carve(everything, spec.test, spec.seed, f"a {spec.test:.0%} test split")
        share = spec.val / (spec.train + spec.val)
        train, val = s.carve(rest, share, spec.seed + 1, f"a {spec.val:.0%} {val_what}")
    elif spec.kind == "kfold":
        rest, test = s.kfold(everything, spec.k, spec.fold, spec.seed)
        train, val = s.carve(rest, spec.val_from_train, spec.seed + 1, val_what)
    else:
        train, val, test = _predefined(s, everything, predefined, spec, val_what)
    train, val, test = (np.sort(a).astype(np.int64) for a in (train, val, test))
    return Split(
        train=train,
        val=val,
        test=test,
        hash=split_hash(spec, train, val, test),
        grouped=patients is not None,
        warnings=s.warnings,
        copies_grouped=copies is not None,
    )


def remap(split: Split, rows: np.ndarray, spec: SplitSpec) -> Split:
    """`split`, made over ``rows`` of a dataset, as indices into the whole dataset."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and np.array_equal(rows, np.arange(len(rows))):
        return split
    train, val, test = rows[split.train], rows[split.val], rows[split.test]
    return Split(
        train=train,
        val=val,
        test=test,
        hash=split_hash(spec, train, val, test),
        grouped=split.grouped,
        warnings=split.warnings,
        copies_grouped=split.copies_grouped,
    )


def limit_indices(
    labels: np.ndarray, limit: int | None, groups: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """A stratified, deterministic subsample of at most `limit` indices (sorted).

    Each class keeps its share of `limit` (largest remainders; every class at least one
    image when `limit` allows). With `groups`, a class's images are taken round-robin over
    its patients in random order, so the subsample keeps as many patients as it can and a
    patient-grouped split of it still has many groups.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * limit / n
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: limit - quota.sum()]:
        quota[i] += 1
    if limit >= len(classes):
        for i in np.flatnonzero(quota == 0):  # take one from the largest quota
            quota[np.argmax(quota)] -= 1
            quota[i] = 1
    chosen: list[np.ndarray] = []
    for cls, q in zip(classes, quota, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        if groups is not None:
            g = np.asarray(groups)[members]
            order = rng.permutation(np.unique(g))
            # rank of each image within its patient, then patients in random order
            rank = np.zeros(len(members), dtype=int)
            position = {p: i for i, p in enumerate(order)}
            seen: dict[str, int] = {}
            for j, p in enumerate(g):
                rank[j] = seen.get(p, 0)
                seen[p] = rank[j] + 1
            members = members[np.lexsort(([position[p] for p in g], rank))]
        chosen.append(members[:q])
    return np.sort(np.concatenate(chosen))
