"""The synthetic generator's ``difficulty``: hard = nucleus shape only, standard unchanged."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from leukmodels.config import DataSpec
from leukmodels.data.registry import resolve_dataset
from leukmodels.data.synthetic import (
    CLASS_NAMES,
    HARD_MORPHOLOGIES,
    _assign,
    _patient_stains,
    _sample,
    generate,
)
from leukmodels.errors import UserError
from search.cli import main


def histogram_accuracy(difficulty: str) -> float:
    """Grouped 5-fold accuracy of logistic regression on 16-bin grey-level histograms."""
    data = generate(600, 2, size=64, seed=11, patients=30, difficulty=difficulty)
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in data.images]
    x = np.stack([np.histogram(g, 16, (0, 256))[0] for g in grey]).astype(float)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    cv = GroupKFold(n_splits=5)
    return float(cross_val_score(model, x, data.labels, groups=data.patients, cv=cv).mean())


def test_a_grey_histogram_sees_the_standard_classes_but_not_the_hard_ones() -> None:
    standard, hard = histogram_accuracy("standard"), histogram_accuracy("hard")
    assert standard > 0.65, f"standard: histogram baseline {standard:.1%}"
    assert hard < 0.62, f"hard: histogram baseline {hard:.1%}"


def _shape(mask: np.ndarray) -> tuple[float, float]:
    """(area, long/short axis) of a nucleus mask, from its second moments."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    cov = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]) / max(m["m00"], 1)
    small, large = np.linalg.eigvalsh(cov)
    return m["m00"], float(np.sqrt(large / max(small, 1e-9)))


def test_hard_classes_differ_in_nucleus_shape_not_area() -> None:
    data = generate(200, 2, size=64, seed=4, patients=20, difficulty="hard")
    shapes = np.array([_shape(m) for m in data.masks])
    normal, blast = shapes[data.labels == 0], shapes[data.labels == 1]
    # the same nucleus area by design; the image border cuts the long ends of some
    # elongated nuclei (a few % less), which the histogram test shows is no cue
    assert abs(normal[:, 0].mean() / blast[:, 0].mean() - 1) < 0.2
    assert np.median(blast[:, 1]) > np.median(normal[:, 1]) + 0.4  # elongated vs round


def test_difficulty_is_checked_and_reaches_the_dataset_spec(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="difficulty must be one of"):
        generate(4, difficulty="extreme")
    standard = resolve_dataset(DataSpec(n=40, image_size=32))
    hard = resolve_dataset(DataSpec(n=40, image_size=32, difficulty="hard"))
    assert standard.fingerprint != hard.fingerprint
    a, b = standard.load(), hard.load()
    assert not np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    same = generate(40, 2, size=32, seed=20240601, patients=40, difficulty="hard").images
    assert np.array_equal(b.images, same)


def test_synth_command_writes_a_hard_set(tmp_path: Path) -> None:
    out = tmp_path / "hard"
    code = main(["synth", str(out), "--n", "8", "--size", "32", "--difficulty", "hard"])
    assert code == 0
    assert len(list(out.glob("*/*.png"))) == 8
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "x"), "--difficulty", "extreme"])
    assert exc.value.code == 2


def test_hard_nucleoli_keep_their_size_and_stay_inside_an_elongated_nucleus() -> None:
    rng = np.random.default_rng(5)
    labels, owners = _assign(400, 2, 20, rng)
    stains = _patient_stains(20, rng)
    p = _sample(labels, owners, list(CLASS_NAMES[2]), stains, rng, HARD_MORPHOLOGIES)
    aspect = p["nuc_aspect"][:, None]
    # nucleolus radius over the radius of the disc with the nucleus's area: one range
    # for both classes (it grew with the elongation, a texture cue LBP picked up)
    size = (p["nucleoli_r"] * np.sqrt(aspect))[p["nucleoli_on"]]
    on = p["nucleoli_on"]
    rows = np.broadcast_to(labels[:, None], on.shape)[on]
    assert abs(size[rows == 1].mean() / size[rows == 0].mean() - 1) < 0.05
    assert size.max() <= HARD_MORPHOLOGIES["all"].nucleolus_radius[1] + 1e-9
    # centres inside the (squeezed) inner half of the ellipse, in its own frame
    c, s = np.cos(p["nuc_angle"])[:, None], np.sin(p["nuc_angle"])[:, None]
    x, y = p["nucleoli_xy"][..., 0], p["nucleoli_xy"][..., 1]
    along, across = c * x + s * y, (c * y - s * x) * aspect
    assert np.hypot(along, across).max() <= 0.5 + 1e-9
    assert np.median(aspect[labels == 1]) > 1.6
