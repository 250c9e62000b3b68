"""Pixel pre-processing: CLAHE, Reinhard stain normalisation and colour-space conversion.

All functions take and return uint8 RGB arrays, one image (H, W, 3) or a batch (N, H, W, 3).

- CLAHE: OpenCV CLAHE (clip limit 2, 8x8 tiles) on the L channel of CIELAB.
- Reinhard: each image's CIELAB channel means and standard deviations are mapped to a
  target's. The target is fitted on the training split only; :class:`ReinhardTarget`
  can be fitted from images or from per-image statistics (:func:`lab_stats`), which the
  decode cache stores so that fitting on any split costs nothing.
- Colour spaces, each scaled to uint8 the same way for every image:
  ``hsv``: OpenCV ``RGB2HSV_FULL`` (H, S, V each 0-255, hue over the full circle);
  ``lab``: OpenCV 8-bit CIELAB (L * 255 / 100, a + 128, b + 128);
  ``hed``: ``skimage.color.rgb2hed`` (colour deconvolution), each of H, E, D divided by
  its largest value over all RGB colours whose channels are at least
  :data:`HED_DARKEST` (the extremes of a linear map of optical density lie at corners of
  that cube), times 255, clipped; pixels darker than that saturate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.color import rgb2hed

from leukmodels.config import COLOR_SPACES

CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = 8
HED_DARKEST = 32


def _each(images: np.ndarray, fn) -> np.ndarray:
    if images.ndim == 3:
        return fn(images)
    return np.stack([fn(img) for img in images]) if len(images) else images.copy()


def clahe(
    images: np.ndarray, clip_limit: float = CLAHE_CLIP_LIMIT, tiles: int = CLAHE_TILES
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the CIELAB lightness."""
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))

    def one(img: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB)
        lab[..., 0] = op.apply(np.ascontiguousarray(lab[..., 0]))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

    return _each(images, one)


def _to_lab(image: np.ndarray) -> np.ndarray:
    """float32 CIELAB (L 0-100, a and b about -128..127) of a uint8 RGB image."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def lab_stats(image: np.ndarray) -> np.ndarray:
    """Per-channel CIELAB mean and standard deviation of one image: float32 (2, 3)."""
    mean, std = cv2.meanStdDev(_to_lab(image))  # population std, like numpy's default
    return np.stack([mean.ravel(), std.ravel()]).astype(np.float32)


@dataclass(frozen=True)
class ReinhardTarget:
    """Target CIELAB channel means and standard deviations for Reinhard normalisation."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_stats(cls, stats: np.ndarray) -> ReinhardTarget:
        """Pooled statistics of equally sized images from their :func:`lab_stats` (N, 2, 3)."""
        stats = np.asarray(stats, dtype=np.float64)
        means, stds = stats[:, 0], stats[:, 1]
        mean = means.mean(0)
        var = (stds**2 + means**2).mean(0) - mean**2
        return cls(tuple(map(float, mean)), tuple(map(float, np.sqrt(np.maximum(var, 0)))))


def fit_reinhard(images: Iterable[np.ndarray]) -> ReinhardTarget:
    """Fit the target on (training) images of one size: pooled CIELAB mean and std."""
    stats = [lab_stats(img) for img in images]
    if not stats:
        raise ValueError("cannot fit Reinhard normalisation on zero images")
    return ReinhardTarget.from_stats(np.stack(stats))


def reinhard(
    images: np.ndarray, target: ReinhardTarget, stats: np.ndarray | None = None
) -> np.ndarray:
    """Map each image's CIELAB mean/std onto `target`; `stats` = the images' :func:`lab_stats`."""
    t_mean = np.asarray(target.mean, np.float32)
    t_std = np.asarray(target.std, np.float32)

    def one(img: np.ndarray, st: np.ndarray | None) -> np.ndarray:
        lab = _to_lab(img)
        st = lab_stats(img) if st is None else st
        scale = t_std / np.maximum(st[1], 1e-3)
        lab = (lab - st[0]) * scale + t_mean
        rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
        return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)

    if images.ndim == 3:
        return one(images, stats)
    return np.stack([one(img, None if stats is None else stats[i]) for i, img in enumerate(images)])


def _hed_scale() -> np.ndarray:
    corners = np.array(list(itertools.product([HED_DARKEST, 255], repeat=3)), np.uint8)
    return rgb2hed(corners.reshape(-1, 1, 3)).reshape(-1, 3).max(0).astype(np.float32)


_HED_MAX = _hed_scale()


def to_color_space(images: np.ndarray, space: str) -> np.ndarray:
    """Convert uint8 RGB (H, W, 3) or (N, H, W, 3) to `space`, as uint8 of the same shape."""
    if space == "rgb":
        return images
    if space not in COLOR_SPACES:
        raise ValueError(f"unknown colour space {space!r}; choose one of {list(COLOR_SPACES)}")
    flat = np.ascontiguousarray(images.reshape(-1, images.shape[-2], 3))
    if space == "hsv":
        out = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL)
    elif space == "lab":
        out = cv2.cvtColor(flat, cv2.COLOR_RGB2LAB)
    else:
        hed = rgb2hed(np.maximum(flat, HED_DARKEST)).astype(np.float32)
        out = np.clip(hed / _HED_MAX * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out.reshape(images.shape)
