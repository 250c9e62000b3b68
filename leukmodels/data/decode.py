"""Decode one image into the cache's form: RGB uint8, square, ``size`` px, with its mask.

Resize policy for images of mixed sizes and shapes: keep the aspect ratio, scale the
longer side to ``size`` (OpenCV area interpolation when shrinking, cubic when growing)
and pad the shorter side symmetrically to a square with the image's own background
colour (the per-channel median of its border pixels), so a cell crop is never cut and
the padding looks like the slide. Masks follow the same geometry (nearest neighbour,
padded with background 0) and are stored as 0/1.

The deterministic pre-processing happens here, in this order: nucleus crop (on the
image as read, before resizing), resize and pad, CLAHE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image

from leukmodels.data.nucleus import crop, nucleus_box
from leukmodels.data.preprocess import clahe as apply_clahe
from leukmodels.data.preprocess import lab_stats

MAX_WORKING_SIDE = 1024
"""Images are decoded with the long side at most this (JPEG draft mode, then area resize)."""
MAX_SOURCE_PIXELS = 64_000_000
"""A file that says it holds more pixels than this is refused before decoding (a cell image
is far smaller; a 'decompression bomb' is a small file claiming billions)."""


@dataclass
class Decoded:
    """One image ready for the cache, with its mask, whether a nucleus was found, LAB stats."""

    image: np.ndarray
    mask: np.ndarray | None
    nucleus_found: bool
    lab_stats: np.ndarray


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(values.max()), 1.0)
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(img.convert("RGB"))


def read_rgb(path: Path | BinaryIO, working_side: int = MAX_WORKING_SIDE) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3); raises on unreadable or truncated files
    and on files claiming more than :data:`MAX_SOURCE_PIXELS` pixels."""
    with Image.open(path) as img:
        if img.width * img.height > MAX_SOURCE_PIXELS:
            raise ValueError(
                f"{img.width} x {img.height} pixels is more than {MAX_SOURCE_PIXELS:,} "
                "(a decompression bomb or not a cell image)"
            )
        img.draft("RGB", (working_side, working_side))  # JPEG: decode at a reduced scale
        img.load()
        rgb = _to_rgb(img)
    if max(rgb.shape[:2]) > working_side:
        rgb = _resize_long_side(rgb, working_side, cv2.INTER_AREA)
    return rgb


def mask_from_array(values: np.ndarray) -> np.ndarray:
    """A 0/1 mask from a label image (nonzero = object) or a segmented colour image.

    A colour image whose channels differ is a segmentation overlay (the Taleqani
    ``Segmented`` images): foreground is whatever differs clearly from its background
    colour, the median of its border pixels.
    """
    if values.ndim == 3 and values.shape[-1] >= 3:
        rgb = values[..., :3].astype(np.int16)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            values = values[..., 0]
        else:
            background = _border_median(values[..., :3]).astype(np.int16)
            return (np.abs(rgb - background).sum(-1) > 60).astype(np.uint8)
    threshold = 127 if values.max() > 1 else 0
    return (values > threshold).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask file to 0/1 uint8 (H, W)."""
    with Image.open(path) as img:
        img.load()
        values = np.asarray(img.convert("RGB") if img.mode in ("P", "CMYK") else img)
    return mask_from_array(values)


def _border_median(image: np.ndarray) -> np.ndarray:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def _resize_long_side(image: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, new, interpolation=interpolation)


def fit_square(image: np.ndarray, size: int, *, is_mask: bool = False) -> np.ndarray:
    """Resize keeping the aspect ratio (long side = `size`) and pad to `size` x `size`."""
    h, w = image.shape[:2]
    if (h, w) != (size, size):
        if is_mask:
            interpolation = cv2.INTER_NEAREST
        else:
            interpolation = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_CUBIC
        image = _resize_long_side(image, size, interpolation)
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    top, left = (size - h) // 2, (size - w) // 2
    fill = 0 if is_mask else [int(round(v)) for v in _border_median(image)]
    return cv2.copyMakeBorder(
        image, top, size - h - top, left, size - w - left, cv2.BORDER_CONSTANT, value=fill
    )


def process(
    image: np.ndarray,
    size: int,
    *,
    nucleus_crop: bool = False,
    clahe: bool = False,
    mask: np.ndarray | None = None,
) -> Decoded:
    """Apply the deterministic pre-processing to one RGB image (and its mask)."""
    found = False
    if mask is not None and mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    if nucleus_crop:
        box = nucleus_box(image)
        if box is not None:
            found = True
            image = crop(image, box)
            mask = None if mask is None else crop(mask, box)
    image = fit_square(image, size)
    if clahe:
        image = apply_clahe(image)
    if mask is not None:
        mask = fit_square((mask > 0).astype(np.uint8), size, is_mask=True)
    return Decoded(image, mask, found, lab_stats(image))
