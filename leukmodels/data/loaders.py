"""torch Datasets and DataLoaders over :class:`~leukmodels.data.arrays.SplitArrays`.

Per image: augmentation (training only, uint8 RGB, image and mask together), colour-space
conversion, then float32 CHW scaled to [0, 1] and normalised with the ImageNet mean and
std (whatever the colour space, so pretrained and scratch models see the same scale).
"""

from __future__ import annotations

import multiprocessing

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from leukmodels.data.arrays import SplitArrays
from leukmodels.data.augment import apply_augment
from leukmodels.data.preprocess import to_color_space

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W), [0, 1] then ImageNet-normalised."""
    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class ImageDataset(Dataset):
    """(image tensor, label) pairs, or (image, label, mask) with ``with_masks``."""

    def __init__(
        self,
        data: SplitArrays,
        color_space: str = "rgb",
        augment: A.Compose | None = None,
        with_masks: bool = False,
    ):
        if with_masks and data.masks is None:
            raise ValueError("with_masks=True but this dataset has no masks")
        self.data = data
        self.color_space = color_space
        self.augment = augment
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        image = self.data.image(i)
        mask = self.data.mask(i) if self.with_masks else None
        if self.augment is not None:
            image, mask = apply_augment(self.augment, image, mask)
        x = to_tensor(to_color_space(image, self.color_space))
        y = torch.tensor(int(self.data.labels[i]), dtype=torch.int64)
        if mask is None:
            return x, y
        return x, y, torch.from_numpy(np.asarray(mask, dtype=np.float32))


def _seed_worker(worker_id: int) -> None:
    """Give each worker's augmentation its own stream, derived from the loader's generator."""
    info = get_worker_info()
    augment = getattr(info.dataset, "augment", None)
    if augment is not None:
        augment.set_random_seed(info.seed % 2**32)


def make_loader(
    data: SplitArrays,
    *,
    batch_size: int,
    color_space: str = "rgb",
    augment: A.Compose | None = None,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 0,
    with_masks: bool = False,
) -> DataLoader:
    """A DataLoader; shuffled loaders drop the last batch only when it would hold one image."""
    dataset = ImageDataset(data, color_space=color_space, augment=augment, with_masks=with_masks)
    generator = torch.Generator().manual_seed(seed)
    extra = {}
    if workers > 0:
        fork = "fork" in multiprocessing.get_all_start_methods()
        extra = {
            "multiprocessing_context": "fork" if fork else None,  # workers share the mapping
            "persistent_workers": True,
            "worker_init_fn": _seed_worker,
        }
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),  # lets train.py's non_blocking copies overlap
        drop_last=shuffle and len(dataset) % batch_size == 1 and len(dataset) > 1,
        **extra,
    )
