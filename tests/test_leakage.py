"""The leakage guard: identical files, near-duplicates found and grouped, split facts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from leukmodels.config import DataSpec, SplitSpec, TrialParams
from leukmodels.data.leakage import guard, merge_groups, near_pairs, signature
from leukmodels.data.prepare import prepare_data
from leukmodels.data.splits import make_split
from leukmodels.data.synthetic import generate
from leukmodels.errors import DataError
from leukmodels.results import SplitFacts, SplitInfo


def copies(image: np.ndarray) -> list[np.ndarray]:
    """Augmented copies as a data set ships them: flips, quarter turns, brighter, JPEG."""
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return [
        image[:, ::-1],
        image[::-1],
        np.rot90(image, 1),
        np.rot90(image, 3),
        np.clip(image.astype(int) + 25, 0, 255).astype(np.uint8),
        cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1],
    ]


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    return generate(60, 2, size=48, seed=3, patients=12).images


def test_near_duplicates_are_found_and_distinct_cells_are_not(cells: np.ndarray) -> None:
    originals = cells[:10]
    augmented = [c for image in originals for c in copies(image)]
    sigs = np.stack([signature(i) for i in [*cells, *augmented]])
    pairs = {tuple(p) for p in near_pairs(sigs).tolist()}
    n = len(cells)
    for k in range(len(augmented)):
        assert (k // 6, n + k) in pairs, f"copy {k % 6} of cell {k // 6} was missed"
    distinct = [p for p in pairs if p[0] < n and p[1] < n]
    assert distinct == [], "unrelated synthetic cells were called near-duplicates"


def test_guard_drops_copies_in_a_class_and_refuses_them_across_classes() -> None:
    labels = np.array([0, 0, 1, 1])
    names = ["a/x.png", "a/y.png", "b/z.png", "b/w.png"]
    leak = guard(["h1", "h1", "h2", "h3"], np.zeros((0, 2)), labels, None, ["a", "b"], names)
    assert leak.keep.tolist() == [0, 2, 3] and leak.n_duplicates == 1 and leak.copies is None
    with pytest.raises(DataError, match="two classes: a/x.png .class 'a'. and b/z.png"):
        guard(["h1", "h2", "h1", "h3"], np.zeros((0, 2)), labels, None, ["a", "b"], names)
    split = np.array(["train", "train", "train", "test"])
    with pytest.raises(DataError, match=r"own splits: a/x.png \(train\) and b/w.png \(test\)"):
        guard(["h1", "h2", "h3", "h1"], np.zeros((0, 2)), np.zeros(4), split, ["a"], names)


def test_guard_groups_near_duplicates_and_warns_where_it_cannot() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    predefined = np.array(["train", "test", "train", "train", "train", "test"])
    pairs = np.array([[0, 1], [1, 2], [3, 4]])
    leak = guard(list("abcdef"), pairs, labels, predefined, ["p", "q"], list("ABCDEF"))
    assert leak.n_near_groups == 2 and leak.n_near_duplicates == 5
    assert len(set(leak.copies[[0, 1, 2]])) == 1 and leak.copies[3] == leak.copies[4]
    assert "2 near-duplicate pair(s) straddle the dataset's own splits" in leak.warnings[0]
    crossed = guard(list("ab"), np.array([[0, 1]]), np.array([0, 1]), None, ["p", "q"], ["A", "B"])
    assert "carry different classes (e.g. A and B)" in crossed.warnings[0]


def test_merge_groups_joins_patients_linked_by_a_copy() -> None:
    patients = np.array(["p1", "p1", "p2", "p3", "p3"])
    near = np.array([0, 1, 2, 2, 4])  # image 2 (p2) and 3 (p3) are copies
    groups = merge_groups(patients, near)
    assert groups[0] == groups[1] and groups[2] == groups[3] == groups[4]
    assert groups[0] != groups[2]


def test_make_split_keeps_each_copy_group_in_one_split() -> None:
    labels = np.repeat([0, 1], 50)
    near = np.arange(100) // 5  # 20 groups of 5 copies
    split = make_split(labels, SplitSpec(test=0.2, val=0.2, train=0.6, seed=1), copies=near)
    where = {}
    for name, rows in (("train", split.train), ("val", split.val), ("test", split.test)):
        for g in near[rows]:
            assert where.setdefault(int(g), name) == name, f"group {g} straddles splits"
    assert split.copies_grouped and not split.grouped
    assert len(split.test) > 0 and len(split.val) > 0


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path)


def test_prepare_groups_augmented_copies_and_records_the_facts(
    tmp_path: Path, cells: np.ndarray
) -> None:
    labels = generate(60, 2, size=48, seed=3, patients=12).labels
    root = tmp_path / "data"
    for i, (image, label) in enumerate(zip(cells, labels, strict=True)):
        _write(root / f"c{label}" / f"{i:03d}.png", image)
        if i < 12:  # 12 originals with six augmented copies each, and one identical file
            for k, copy in enumerate(copies(image)):
                _write(root / f"c{label}" / f"{i:03d}_aug{k}.png", copy)
    (root / "c0" / "dup.png").write_bytes((root / f"c{labels[20]}" / "020.png").read_bytes())
    if labels[20] != 0:
        (root / "c0" / "dup.png").unlink()
        (root / "c1" / "dup.png").write_bytes((root / "c1" / "020.png").read_bytes())
    spec = DataSpec(dataset=str(root), image_size=32, cache_dir=str(tmp_path / "cache"))
    data = prepare_data(spec, TrialParams())
    facts = data.facts
    assert facts.n_duplicates == 1
    assert facts.n_near_groups == 12 and facts.n_near_duplicates == 12 * 7
    assert facts.near_duplicates == "each group kept in one split"
    assert facts.grouped_by_patient is False and data.split.copies_grouped
    assert sum(facts.sizes.values()) == 60 + 12 * 6
    stems = {}
    names = data.split
    decoded_names = _names(spec)
    for part, rows in (("train", names.train), ("val", names.val), ("test", names.test)):
        for r in rows:
            stem = Path(decoded_names[r]).stem.split("_")[0]
            assert stems.setdefault(stem, part) == part, f"copies of {stem} straddle splits"
    lines = facts.header()
    assert lines[0].startswith(f"split {facts.hash}: train") and "test" in lines[0]
    assert "1 identical file(s) dropped; 84 near-duplicate image(s) in 12 group(s)" in lines[2]
    again = SplitInfo.model_validate_json(facts.model_dump_json())
    assert again == facts and SplitFacts is SplitInfo


def _names(spec: DataSpec) -> list[str]:
    from leukmodels.data.cache import load_or_decode
    from leukmodels.data.registry import resolve_dataset

    return load_or_decode(resolve_dataset(spec), image_size=32, cache_dir=spec.cache_dir).names


def test_ignore_counts_near_duplicates_without_grouping(tmp_path: Path, cells: np.ndarray) -> None:
    root = tmp_path / "data"
    for i, image in enumerate(cells[:16]):
        _write(root / f"c{i % 2}" / f"{i}.png", image)
        _write(root / f"c{i % 2}" / f"{i}_flip.png", image[:, ::-1])
    spec = DataSpec(
        dataset=str(root), image_size=32, cache_dir=str(tmp_path / "c"), near_duplicates="ignore"
    )
    data = prepare_data(spec, TrialParams())
    assert data.facts.n_near_groups == 16 and not data.split.copies_grouped
    assert data.facts.near_duplicates.startswith("counted only")


def test_old_results_without_facts_still_load() -> None:
    old = SplitInfo.model_validate({"hash": "abc", "warnings": ["w"]})
    assert old.sizes is None and old.header() == ["warning: w"]
