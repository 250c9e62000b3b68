"""HSV de-saturation balancing (paper 004): minority-class training images get a grey copy.

Paper 004 doubles its minority class (C-NMC "hem") by converting each of its training
images to HSV and removing the saturation. Here that is: HSV with S = 0, converted back
to RGB (so the copy is the grey image V = max(R, G, B), fed to the network like any other
image). With more than two classes, a class is copied when doubling it brings it closer
to the largest class, i.e. when it has fewer than two thirds of the largest class's
images; for two classes at the paper's 2:1 ratio that is exactly the minority class.
Only the training split is ever balanced, after the split.
"""

from __future__ import annotations

import cv2
import numpy as np


def desaturate(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) or (N, H, W, 3) with its HSV saturation set to 0, back in RGB."""
    flat = np.ascontiguousarray(images.reshape(-1, images.shape[-2], 3))
    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 1] = 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL).reshape(images.shape)


def classes_to_double(counts: np.ndarray) -> list[int]:
    """Classes whose images get a de-saturated copy: fewer than 2/3 of the largest class."""
    counts = np.asarray(counts)
    largest = counts.max() if len(counts) else 0
    return [int(c) for c in np.flatnonzero((counts > 0) & (3 * counts < 2 * largest))]


def desat_copies(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Positions in `labels` (the training split) whose image gets one de-saturated copy."""
    labels = np.asarray(labels)
    doubled = classes_to_double(np.bincount(labels, minlength=n_classes))
    return np.flatnonzero(np.isin(labels, doubled))
