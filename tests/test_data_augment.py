"""Augmentation lists and presets -> albumentations; errors name what is wrong."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from leukmodels.data.augment import (
    NAMES,
    PRESETS,
    apply_augment,
    build_augment,
    validate_augment,
)
from leukmodels.errors import DataError, UserError


def _types(compose: A.Compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms]


def test_empty_specs_build_nothing() -> None:
    for spec in (None, [], "none", "NONE"):
        assert build_augment(spec) is None


def test_paper004_preset_merges_geometry_into_one_affine() -> None:
    compose = build_augment("paper004")
    assert _types(compose) == ["Affine", "HorizontalFlip", "MultiplicativeNoise"]
    affine = compose.transforms[0]
    assert affine.rotate == (-45, 45) and affine.shear["x"] == (-3, 3)
    assert affine.scale["x"] == pytest.approx((1.0, 1.25))  # Keras zoom [0.8, 1]
    assert compose.transforms[2].multiplier == (0.4, 0.8)


def test_brightness_is_multiplicative_like_keras() -> None:
    compose = build_augment([{"brightness": [0.5, 0.5]}], seed=0)
    img = np.full((8, 8, 3), 200, np.uint8)
    assert (compose(image=img)["image"] == 100).all()


def test_every_named_item_and_class_names_build_and_run() -> None:
    spec = [
        "hflip",
        {"vflip": 1.0},
        {"rotate": 10},
        {"shift": 0.05},
        {"zoom": [0.9, 1.0]},
        {"shear": 2},
        "blur",
        {"color_jitter": 0.1},
        {"gaussian_noise": 5},
        {"CLAHE": {"clip_limit": 2.0, "p": 1.0}},
        "ToGray",
    ]
    compose = build_augment(spec, seed=1)
    assert "CLAHE" in _types(compose) and "ToGray" in _types(compose)
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[:16] = 1
    out = compose(image=img, mask=mask)
    assert out["image"].shape == (32, 32, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (32, 32)
    assert set(NAMES) >= {"hflip", "vflip", "rotate", "brightness", "shift", "zoom", "shear"}


def test_seed_makes_augmentation_reproducible() -> None:
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    a = build_augment("basic", seed=7)(image=img)["image"]
    b = build_augment("basic", seed=7)(image=img)["image"]
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "spec, message",
    [
        (["hflip", "sharpen_more"], "unknown augmentation 'sharpen_more'; valid names: hflip"),
        ("fancy", "unknown augmentation preset 'fancy'"),
        ([{"rotate": "lots"}], "augment rotate: expected a number"),
        ([{"brightness": [0.8, 0.4]}], "augment brightness: need 0 < lo <= hi"),
        ([{"zoom": 0.8}], r"augment zoom: expected \[lo, hi\]"),
        (["rotate"], "augment rotate: needs an argument"),
        ([{"rotate": 5}, {"rotate": 6}], "rotate is given twice"),
        ([{"GaussNoise": {"sigma": 3}}], r"augment GaussNoise: unknown argument\(s\) \['sigma'\]"),
        ([{"GaussNoise": {"std_range": [2, 1]}}], "augment GaussNoise: invalid arguments"),
        ([{"hflip": 1, "vflip": 1}], "one-key mapping"),
        (42, "augment must be a list or a preset name"),
        ([{"Compose": {}}], "unknown augmentation 'Compose'"),
    ],
)
def test_errors(spec, message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate_augment(spec)
    with pytest.raises(UserError, match=message):
        build_augment(spec)


def test_presets_validate() -> None:
    for name in PRESETS:
        validate_augment(name)


def _shape_and_mask(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A red off-centre L-shape on grey and its mask (no symmetry a wrong transform hides)."""
    mask = np.zeros((size, size), np.uint8)
    mask[8:40, 10:20] = 1
    mask[30:40, 10:44] = 1
    image = np.full((size, size, 3), 90, np.uint8)
    image[mask > 0] = (230, 30, 30)
    return image, mask


def _aligned(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Share of mask pixels that are red, and of red pixels that are in the mask."""
    red = image[..., 0].astype(int) - image[..., 1].astype(int) > 60
    on = mask > 0
    return (red & on).sum() / max(on.sum(), 1), (red & on).sum() / max(red.sum(), 1)


@pytest.mark.parametrize(
    "spec",
    [
        [{"hflip": 1.0}],
        [{"vflip": 1.0}],
        [{"rotate": 40}],
        [{"RandomResizedCrop": {"size": [64, 64], "scale": [0.3, 0.6], "p": 1.0}}],
        [{"RandomCrop": {"height": 40, "width": 48, "p": 1.0}}],
        "paper004",
    ],
)
def test_image_and_mask_stay_aligned(spec) -> None:
    image, mask = _shape_and_mask()
    compose = build_augment(spec, seed=3)
    moved = 0
    for _ in range(8):
        out_image, out_mask = apply_augment(compose, image, mask)
        assert out_mask.dtype == np.uint8 and set(np.unique(out_mask)) <= {0, 1}
        assert out_mask.shape == out_image.shape[:2]
        if out_mask.sum() < 20:  # a crop that missed the shape
            continue
        in_red, red_in = _aligned(out_image, out_mask)
        assert in_red > 0.9 and red_in > 0.9, (in_red, red_in)
        moved += out_mask.shape != mask.shape or not np.array_equal(out_mask, mask)
    assert moved >= 4  # the transforms did move the shape: the check has teeth


def test_misaligned_mask_is_detected_by_the_check() -> None:
    image, mask = _shape_and_mask()
    in_red, red_in = _aligned(image, np.fliplr(mask))
    assert in_red < 0.5 and red_in < 0.5


def test_image_only_path_is_unchanged_and_bad_masks_fail() -> None:
    image, mask = _shape_and_mask()
    image.flags.writeable = False  # as a view of the cache
    a, none = apply_augment(build_augment("paper004", seed=5), image)
    b = build_augment("paper004", seed=5)(image=image.copy())["image"]
    assert none is None and np.array_equal(a, b)
    with pytest.raises(DataError, match="does not fit"):
        apply_augment(build_augment("basic"), image, mask[:32])
