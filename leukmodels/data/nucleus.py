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
from skimage.morphology import disk

REFERENCE_SIDE = 224
OPENING_RADIUS = 3
MIN_OBJECT_AREA = 80
OTSU_FLOOR = 0.1
DEFAULT_MARGIN = 0.2

Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


def _purple510(image: np.ndarray) -> np.ndarray:
    """``R + B - 2G`` of a uint8 RGB image (int16): 510 times the purple index."""
    rgb = image.astype(np.int16)
    return rgb[..., 0] + rgb[..., 2] - 2 * rgb[..., 1]


def purple_index(image: np.ndarray) -> np.ndarray:
    """``(R + B) / 2 - G`` of a uint8 RGB image on the [0, 1] scale, float32 (H, W)."""
    return _purple510(image).astype(np.float32) / 510.0


def otsu_theta(image: np.ndarray) -> float:
    """Otsu's threshold of the purple index (OpenCV, on the index quantised to 256 levels)."""
    levels = ((_purple510(image) + 510) // 4).astype(np.uint8)
    t, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return ((t + 1) * 4 - 510) / 510.0  # foreground is levels > t


def nucleus_mask(image: np.ndarray, theta: float | str = "otsu") -> np.ndarray | None:
    """Boolean mask of the largest nucleus-like object of a uint8 RGB image, or None."""
    if theta == "otsu":
        theta = max(OTSU_FLOOR, otsu_theta(image))
    elif isinstance(theta, bool) or not isinstance(theta, int | float):
        raise ValueError(f"theta must be a number or 'otsu', not {theta!r}")
    scale = min(image.shape[:2]) / REFERENCE_SIDE
    radius = max(1, round(OPENING_RADIUS * scale))
    min_area = max(4, round(MIN_OBJECT_AREA * scale * scale))
    mask = (_purple510(image) >= float(theta) * 510.0).astype(np.uint8)
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
