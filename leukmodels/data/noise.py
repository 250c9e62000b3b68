"""Gaussian pixel noise: offline training copies and the test-time robustness sweep (paper 004).

Sigmas are on the 0-255 scale; noise is zero-mean, independent per pixel and channel,
added in float and clipped back to uint8. It is deterministic: the same (seed, key)
always gives the same noise, so an offline copy is the same image every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def add_gaussian_noise(
    images: np.ndarray, sigma: float, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """A copy of uint8 `images` plus N(0, sigma) noise, clipped to 0-255."""
    if sigma <= 0:
        return images.copy()
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, images.shape).astype(np.float32)
    return np.clip(images.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)


def noisy_copies(n: int, sigmas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Offline noise plan for `n` training images: each gets one extra copy per sigma.

    Returns (positions, sigma) for the whole enlarged set: the originals (sigma 0) first,
    then one block of copies per sigma, in order.
    """
    positions = np.tile(np.arange(n), 1 + len(sigmas))
    sigma = np.repeat(np.asarray([0.0, *sigmas], dtype=np.float32), n)
    return positions, sigma
