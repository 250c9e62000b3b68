"""Pixel operations: CLAHE, Reinhard, colour spaces, nucleus crop, balancing, noise, resize."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from leukmodels.data.balance import classes_to_double, desat_copies, desaturate
from leukmodels.data.decode import fit_square, mask_from_array, process
from leukmodels.data.noise import add_gaussian_noise, noisy_copies
from leukmodels.data.nucleus import nucleus_box, nucleus_mask
from leukmodels.data.preprocess import (
    ReinhardTarget,
    clahe,
    fit_reinhard,
    lab_stats,
    reinhard,
    to_color_space,
)
from leukmodels.data.synthetic import generate


@pytest.fixture(scope="module")
def cells():
    return generate(12, classes=2, size=96, seed=3, patients=4)


@pytest.mark.parametrize("space", ["rgb", "hsv", "lab", "hed"])
def test_color_spaces_uint8_shape(cells, space: str) -> None:
    batch = cells.images[:4]
    out = to_color_space(batch, space)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    single = to_color_space(batch[0], space)
    assert np.array_equal(single, out[0])
    if space != "rgb":
        assert not np.array_equal(out, batch)
        assert out.std() > 5  # the scaling keeps contrast, not a flat image


def test_hsv_and_lab_match_opencv(cells) -> None:
    img = cells.images[0]
    assert np.array_equal(to_color_space(img, "lab"), cv2.cvtColor(img, cv2.COLOR_RGB2LAB))
    assert np.array_equal(to_color_space(img, "hsv"), cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL))
    with pytest.raises(ValueError, match="unknown colour space"):
        to_color_space(img, "xyz")


def test_clahe_raises_local_contrast_of_a_flat_image() -> None:
    rng = np.random.default_rng(0)
    dull = (120 + rng.integers(0, 8, (64, 64, 1))).repeat(3, axis=2).astype(np.uint8)
    out = clahe(dull)
    assert out.shape == dull.shape and out.dtype == np.uint8
    assert out.std() > 2 * dull.std()


def test_reinhard_maps_statistics_to_target(cells) -> None:
    target = fit_reinhard(cells.images[:6])
    moved = reinhard(cells.images[6:], target)
    for img in moved:
        mean, std = lab_stats(img)
        assert np.allclose(mean, target.mean, atol=2.5)
        assert np.allclose(std, target.std, rtol=0.15, atol=1.0)


def test_reinhard_pooled_stats_equal_fit_on_pixels(cells) -> None:
    images = cells.images[:5]
    pooled = ReinhardTarget.from_stats(np.stack([lab_stats(i) for i in images]))
    lab = cv2.cvtColor(images.reshape(-1, 96, 3).astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    assert np.allclose(pooled.mean, lab.reshape(-1, 3).mean(0), atol=1e-3)
    assert np.allclose(pooled.std, lab.reshape(-1, 3).std(0), atol=1e-2)


def test_nucleus_crop_finds_the_synthetic_nucleus(cells) -> None:
    ious = []
    for img, truth in zip(cells.images, cells.masks, strict=True):
        found = nucleus_mask(img)
        assert found is not None
        ious.append((found & (truth > 0)).sum() / (found | (truth > 0)).sum())
    assert np.mean(ious) > 0.7
    top, left, bottom, right = nucleus_box(cells.images[0])
    ys, xs = np.nonzero(cells.masks[0])
    assert top <= ys.min() and bottom > ys.max() and left <= xs.min() and right > xs.max()


def test_nucleus_crop_falls_back_without_nucleus() -> None:
    grey = np.full((80, 80, 3), 200, np.uint8)
    assert nucleus_box(grey) is None
    out = process(grey, 32, nucleus_crop=True)
    assert not out.nucleus_found and out.image.shape == (32, 32, 3)


def test_process_crops_image_and_mask_together(cells) -> None:
    out = process(cells.images[1], 64, nucleus_crop=True, mask=cells.masks[1])
    assert out.nucleus_found and out.image.shape == (64, 64, 3) and out.mask.shape == (64, 64)
    # the nucleus fills much more of the crop than of the whole image
    assert out.mask.mean() > 1.5 * (cells.masks[1] > 0).mean()


def test_fit_square_keeps_aspect_and_pads_with_background() -> None:
    wide = np.full((30, 90, 3), (230, 220, 210), np.uint8)
    wide[10:20, 40:50] = (90, 40, 140)  # a purple dot in the middle
    out = fit_square(wide, 60)
    assert out.shape == (60, 60, 3)
    assert tuple(out[0, 0]) == (230, 220, 210) and tuple(out[-1, -1]) == (230, 220, 210)
    assert tuple(out[30, 30]) == (90, 40, 140)  # centred, not cut, not stretched
    assert (out[20:40, 27:33] == (90, 40, 140)).all(axis=-1).sum() >= 6 * 6


def test_mask_from_segmented_colour_image() -> None:
    seg = np.zeros((20, 20, 3), np.uint8)
    seg[5:10, 5:12] = (120, 60, 160)
    assert mask_from_array(seg).sum() == 35
    assert mask_from_array(np.where(seg[..., 0] > 0, 255, 0).astype(np.uint8)).sum() == 35


def test_desaturate_removes_colour_keeps_value(cells) -> None:
    grey = desaturate(cells.images[:2])
    assert grey.shape == (2, 96, 96, 3)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert np.abs(grey[..., 0].astype(int) - cells.images[:2].max(-1)).max() <= 1


def test_balancing_doubles_the_minority_only() -> None:
    labels = np.array([0] * 20 + [1] * 10)
    assert classes_to_double(np.bincount(labels)) == [1]
    copies = desat_copies(labels, 2)
    assert len(copies) == 10 and (labels[copies] == 1).all()
    assert classes_to_double(np.array([504, 985, 963, 804])) == [0]  # Taleqani counts
    assert classes_to_double(np.array([50, 50])) == []


def test_noise_is_deterministic_clipped_and_sized() -> None:
    img = np.full((16, 16, 3), 250, np.uint8)
    a = add_gaussian_noise(img, 9, seed=1)
    assert np.array_equal(a, add_gaussian_noise(img, 9, seed=1))
    assert not np.array_equal(a, add_gaussian_noise(img, 9, seed=2))
    assert a.dtype == np.uint8 and a.max() == 255 and 3 < (a.astype(float) - 250).std() < 9
    assert np.array_equal(add_gaussian_noise(img, 0, seed=1), img)
    rows, sigma = noisy_copies(4, [3, 9])
    assert rows.tolist() == [0, 1, 2, 3] * 3 and sigma.tolist() == [0] * 4 + [3] * 4 + [9] * 4
