"""The synthetic blood-smear generator: layout, determinism, labels, patients, masks, files."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukmodels.data.synthetic import CLASS_NAMES, SyntheticSet, generate, write_imagefolder
from leukmodels.errors import UserError


@pytest.fixture(scope="module")
def two() -> SyntheticSet:
    return generate(120, classes=2, size=48, seed=7, patients=12)


@pytest.fixture(scope="module")
def four() -> SyntheticSet:
    return generate(80, classes=4, size=64, seed=3, patients=16)


def test_same_seed_same_bytes_other_seed_other_images() -> None:
    a = generate(20, classes=4, size=40, seed=11, patients=8)
    b = generate(20, classes=4, size=40, seed=11, patients=8)
    c = generate(20, classes=4, size=40, seed=12, patients=8)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.masks.tobytes() == b.masks.tobytes()
    assert a.labels.tolist() == b.labels.tolist()
    assert a.patients.tolist() == b.patients.tolist()
    assert a.images.tobytes() != c.images.tobytes()


@pytest.mark.parametrize("classes,size", [(2, 32), (2, 100), (4, 64), (4, 224)])
def test_shapes_and_dtypes(classes: int, size: int) -> None:
    data = generate(6, classes=classes, size=size, seed=0, patients=classes)
    assert data.images.shape == (6, size, size, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (6, size, size) and data.masks.dtype == np.uint8
    assert data.labels.shape == (6,) and data.labels.dtype == np.int64
    assert data.patients.shape == (6,)
    assert data.class_names == CLASS_NAMES[classes]
    assert set(np.unique(data.masks)) <= {0, 1}
    assert len(data) == 6


def test_extreme_sizes_render_a_cell() -> None:
    for size in (16, 512):
        data = generate(2, size=size, seed=1)
        assert data.images.shape == (2, size, size, 3)
        assert (data.masks.sum(axis=(1, 2)) > 0).all()
        assert data.images.std() > 10  # not a blank field


def test_class_names() -> None:
    assert generate(4, classes=2).class_names == ["normal", "all"]
    assert generate(4, classes=4).class_names == ["benign", "early_pre_b", "pre_b", "pro_b"]


@pytest.mark.parametrize("classes", [0, 1, 3, 5])
def test_bad_class_count_names_the_valid_ones(classes: int) -> None:
    with pytest.raises(UserError, match=r"2 or 4"):
        generate(10, classes=classes)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n": 0}, "at least one image"),
        ({"n": 10, "size": 8}, "size"),
        ({"n": 10, "size": 2048}, "size"),
        ({"n": 10, "classes": 4, "patients": 3}, "patient per class"),
    ],
)
def test_other_bad_arguments_are_user_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        generate(**kwargs)


def test_balanced_classes_and_patients(two: SyntheticSet, four: SyntheticSet) -> None:
    assert Counter(two.labels.tolist()) == {0: 60, 1: 60}
    assert Counter(four.labels.tolist()) == {0: 20, 1: 20, 2: 20, 3: 20}
    uneven = generate(10, classes=4, size=32, patients=4)
    assert sorted(Counter(uneven.labels.tolist()).values()) == [2, 2, 3, 3]
    for data, per_class in ((two, 6), (four, 4)):
        owners = {p: data.labels[data.patients == p][0] for p in np.unique(data.patients)}
        assert sorted(Counter(owners.values()).values()) == [per_class] * len(data.class_names)


def test_each_patient_has_one_class(two: SyntheticSet, four: SyntheticSet) -> None:
    for data in (two, four):
        for patient in np.unique(data.patients):
            assert len(np.unique(data.labels[data.patients == patient])) == 1
        assert all(re.fullmatch(r"p\d{3}", p) for p in data.patients)


def test_labels_are_shuffled_not_blocked(two: SyntheticSet) -> None:
    first_half = two.labels[: len(two) // 2]
    assert 0.3 < first_half.mean() < 0.7


def _purple(images: np.ndarray) -> np.ndarray:
    rgb = images.astype(np.float64)
    return (rgb[..., 0] + rgb[..., 2]) / 2 - rgb[..., 1]


@pytest.mark.parametrize("which", ["two", "four"])
def test_masks_cover_the_dark_purple_nucleus(which: str, request: pytest.FixtureRequest) -> None:
    data: SyntheticSet = request.getfixturevalue(which)
    inside = data.masks.astype(bool)
    assert (inside.sum(axis=(1, 2)) > 0.03 * inside[0].size).all()  # every image has a nucleus
    brightness = data.images.astype(np.float64).mean(axis=-1)
    purple = _purple(data.images)
    for i in range(len(data)):
        m = inside[i]
        assert brightness[i][m].mean() < brightness[i][~m].mean() - 30
        assert purple[i][m].mean() > purple[i][~m].mean() + 20


def test_nucleus_colour_alone_does_not_separate_classes() -> None:
    """Per-class mean nucleus colour differs far less than it varies between images.

    Many patients, because each patient's stain shifts all of its images together.
    """
    data = generate(400, classes=2, size=32, seed=2, patients=200)
    means = np.array(
        [img[m.astype(bool)].mean(axis=0) for img, m in zip(data.images, data.masks, strict=True)]
    )  # (N, 3): mean RGB over each nucleus
    gap = np.abs(means[data.labels == 0].mean(axis=0) - means[data.labels == 1].mean(axis=0))
    assert (gap < 0.5 * means.std(axis=0)).all(), (gap, means.std(axis=0))


def test_blasts_show_pale_nucleoli_and_mature_cells_dark_clumps(two: SyntheticSet) -> None:
    """Inside the nucleus, 'normal' has more very dark pixels, 'all' more pale spots."""
    dark, pale = [], []
    for img, mask in zip(two.images, two.masks, strict=True):
        grey = img.astype(np.float64).mean(axis=-1)[mask.astype(bool)]
        median = np.median(grey)
        dark.append(np.mean(grey < median - 35))
        pale.append(np.mean(grey > median + 35))
    dark, pale = np.array(dark), np.array(pale)
    normal, blast = two.labels == 0, two.labels == 1
    assert dark[normal].mean() > 2 * dark[blast].mean()
    assert pale[blast].mean() > pale[normal].mean()


def test_write_imagefolder_layout_and_manifest(tmp_path: Path) -> None:
    out = write_imagefolder(tmp_path / "synth", n=12, classes=2, size=32, seed=5, patients=4)
    assert out == tmp_path / "synth"
    assert sorted(p.name for p in out.iterdir()) == ["_masks", "all", "manifest.csv", "normal"]
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "patient", "mask"]
    assert len(rows) == 12
    data = generate(12, classes=2, size=32, seed=5, patients=4)
    for i, row in enumerate(rows):
        assert row["path"].startswith(f"{row['label']}/{row['patient']}_")
        assert row["mask"].startswith(f"_masks/{row['label']}/")
        image = cv2.imread(str(out / row["path"]), cv2.IMREAD_COLOR)[..., ::-1]
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(image, data.images[i])  # png is lossless
        assert np.array_equal(mask > 127, data.masks[i] == 1)
        assert row["label"] == data.class_names[data.labels[i]]
        assert row["patient"] == data.patients[i]
    files = [p for p in out.rglob("*.png") if not p.relative_to(out).parts[0].startswith("_")]
    assert len(files) == 12
    assert Counter(p.parent.name for p in files) == {"normal": 6, "all": 6}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_write_imagefolder_jpg_and_refuses_non_empty_or_bad_format(tmp_path: Path) -> None:
    out = write_imagefolder(tmp_path / "jpg", n=4, classes=4, size=32, patients=4, fmt="jpg")
    assert len(list(out.glob("*/*.jpg"))) == 4
    assert len(list(out.glob("_masks/*/*.png"))) == 4
    with pytest.raises(UserError, match="not an empty folder"):
        write_imagefolder(out, n=4, classes=4, size=32, patients=4)
    with pytest.raises(UserError, match="format"):
        write_imagefolder(tmp_path / "gif", n=4, fmt="gif")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_imagefolder(empty, n=2, size=32) / "manifest.csv").exists()
