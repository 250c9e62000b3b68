"""One split's images without copying them: rows of the decode cache plus a recipe per row.

Training copies (de-saturated, noisy) and stain normalisation are applied when an image
is read, deterministically, so a split never materialises the dataset: it indexes the
read-only memory map that every trial on the machine shares. ``images()`` materialises
when an array is really wanted (the test-noise sweep).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leukmodels.data.balance import desaturate
from leukmodels.data.noise import add_gaussian_noise
from leukmodels.data.preprocess import ReinhardTarget, reinhard


@dataclass
class StainNorm:
    """Reinhard normalisation to `target`, with the CIELAB stats of every base row."""

    target: ReinhardTarget
    stats: np.ndarray  # (M, 2, 3), aligned with the base array


def _reopen(value: object) -> object:
    if isinstance(value, tuple) and value and value[0] == "npy-mmap":
        return np.load(value[1], mmap_mode="r")
    return value


@dataclass
class SplitArrays:
    """Images ``base[index[i]]`` (uint8 RGB) and their labels, with optional per-row recipe.

    Per image ``i``, in this order: Reinhard to ``stain.target`` when ``stain`` is set; the
    HSV de-saturated copy when ``desat[i]``; Gaussian noise of ``sigma[i]`` (seeded by
    ``(noise_seed, i)``, so the same every epoch) when ``sigma[i] > 0``.
    """

    base: np.ndarray
    index: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None  # (M, S, S) base masks, 0/1
    desat: np.ndarray | None = None
    sigma: np.ndarray | None = None
    noise_seed: int = 0
    stain: StainNorm | None = None

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int) -> np.ndarray:
        """Image `i` as uint8 (S, S, 3) RGB; may be a read-only view of the cache."""
        row = int(self.index[i])
        image = np.asarray(self.base[row])
        if self.stain is not None:
            image = reinhard(image, self.stain.target, self.stain.stats[row])
        if self.desat is not None and self.desat[i]:
            image = desaturate(image)
        if self.sigma is not None and self.sigma[i] > 0:
            image = add_gaussian_noise(image, float(self.sigma[i]), seed=(self.noise_seed, int(i)))
        return image

    def mask(self, i: int) -> np.ndarray | None:
        """Mask of image `i` (uint8 0/1, (S, S)) or None."""
        return None if self.masks is None else np.asarray(self.masks[int(self.index[i])])

    def images(self) -> np.ndarray:
        """All images materialised as one (N, S, S, 3) uint8 array."""
        shape = self.base.shape[1:]
        out = np.empty((len(self), *shape), dtype=np.uint8)
        for i in range(len(self)):
            out[i] = self.image(i)
        return out

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Images per class."""
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=n_classes)

    def __getstate__(self) -> dict[str, object]:
        """Pickle memory-mapped arrays by file name (DataLoader workers reopen them)."""
        state = dict(self.__dict__)
        for name in ("base", "masks"):
            value = state[name]
            if isinstance(value, np.memmap) and value.filename:
                full = np.load(value.filename, mmap_mode="r")
                if full.shape == value.shape:
                    state[name] = ("npy-mmap", value.filename)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update({k: _reopen(v) for k, v in state.items()})
