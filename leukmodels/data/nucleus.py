"""Nucleus crop (paper 003): purple-index threshold, disk opening, largest object, square box.

The purple index of a pixel is ``(R + B) / 2 - G`` on the [0, 1] scale: stained nuclei are
high in red and blue relative to green. Pixels at or above ``theta`` are foreground;
``theta`` is a number (the paper's range is 0.1-0.3) or ``"otsu"`` (Otsu's threshold of
the index, never below :data:`OTSU_FLOOR`, so that an image without a purple nucleus does
not get a threshold inside its background). The mask is opened with a disk of radius 3
and objects smaller than 80 px are dropped; both are the paper's values at 224 px and
scale with the image's shorter side (radius linearly, area quadratically). The paper's
marker watershed, which only separates touching nuclei, is not needed to pick one object.
The crop is the square around the largest remaining object's bounding box, widened by
``margin`` of its side on every side and clipped to the image.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu
from skimage.morphology import disk

REFERENCE_SIDE = 224
OPENING_RADIUS = 3
MIN_OBJECT_AREA = 80
OTSU_FLOOR = 0.1
DEFAULT_MARGIN = 0.2

Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


def purple_index(image: np.ndarray) -> np.ndarray:
    """``(R + B) / 2 - G`` of a uint8 RGB image on the [0, 1] scale, float32 (H, W)."""
    rgb = image.astype(np.float32) / 255.0
    return (rgb[..., 0] + rgb[..., 2]) / 2.0 - rgb[..., 1]


def nucleus_mask(image: np.ndarray, theta: float | str = "otsu") -> np.ndarray | None:
    """Boolean mask of the largest nucleus-like object of a uint8 RGB image, or None."""
    index = purple_index(image)
    if theta == "otsu":
        spread = float(index.max() - index.min())
        theta = max(OTSU_FLOOR, float(threshold_otsu(index))) if spread > 1e-6 else OTSU_FLOOR
    elif not isinstance(theta, int | float):
        raise ValueError(f"theta must be a number or 'otsu', not {theta!r}")
    scale = min(image.shape[:2]) / REFERENCE_SIDE
    radius = max(1, round(OPENING_RADIUS * scale))
    min_area = max(4, round(MIN_OBJECT_AREA * scale * scale))
    mask = (index >= float(theta)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disk(radius).astype(np.uint8))
    count, labelled, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas))
    if areas[best] < min_area:
        return None
    return labelled == best + 1


def square_box(mask: np.ndarray, margin: float = DEFAULT_MARGIN) -> Box:
    """Square box around the mask's bounding box, `margin` of its side added, clipped to the image."""
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(bottom - top, right - left) * (1 + 2 * margin)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    h, w = mask.shape
    return (
        max(0, int(round(cy - side / 2))),
        max(0, int(round(cx - side / 2))),
        min(h, int(round(cy + side / 2))),
        min(w, int(round(cx + side / 2))),
    )


def nucleus_box(
    image: np.ndarray, theta: float | str = "otsu", margin: float = DEFAULT_MARGIN
) -> Box | None:
    """The crop box of the largest nucleus of a uint8 RGB image, or None when none is found."""
    mask = nucleus_mask(image, theta)
    return None if mask is None else square_box(mask, margin)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The part of an (H, W[, C]) array inside `box`."""
    top, left, bottom, right = box
    return image[top:bottom, left:right]
