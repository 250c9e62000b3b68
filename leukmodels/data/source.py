"""A resolved dataset: where its images are, their labels, patients and predefined split.

Every way of naming a dataset (the synthetic set, a registry name, an ImageFolder, a CSV
manifest) resolves to one :class:`DatasetSource`. Only its ``fingerprint`` is needed to
find a decode cache; the arrays are needed to build one, so a source can defer them
(``loader``) when producing them is expensive (the synthetic generator).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def norm_name(name: str) -> str:
    """Folder-name key for case- and punctuation-insensitive matching ("C-NMC_Leukemia" -> "cnmcleukemia")."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def is_image(path: Path) -> bool:
    """True for a regular file with an image extension we decode (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def is_ignored(name: str) -> bool:
    """Folders starting with '.' or '_' are never data (hidden folders, ``_masks``)."""
    return name.startswith((".", "_"))


def short_hash(*parts: object) -> str:
    """First 16 hex digits of the sha256 of the parts' text."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def files_fingerprint(
    name: str,
    root: Path,
    paths: Sequence[Path],
    labels: np.ndarray,
    class_names: Sequence[str],
    patients: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
    mask_paths: Sequence[Path | None] | None = None,
) -> str:
    """Hash of the file list (paths relative to `root`, sizes, mtimes) and its annotations.

    Any added, removed, replaced or relabelled file changes it; moving the whole dataset
    folder does not (paths are relative).
    """
    digest = hashlib.sha256()
    digest.update(f"{name}\0{list(class_names)}\0".encode())

    def stat(path: Path | None) -> str:
        if path is None:
            return "-"
        st = path.stat()
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        return f"{rel.as_posix()}:{st.st_size}:{st.st_mtime_ns}"

    for i, path in enumerate(paths):
        row = [stat(path), str(int(labels[i]))]
        row.append("" if patients is None else str(patients[i]))
        row.append("" if predefined is None else str(predefined[i]))
        row.append("" if mask_paths is None else stat(mask_paths[i]))
        digest.update(("|".join(row) + "\n").encode())
    return digest.hexdigest()[:16]


@dataclass
class DatasetSource:
    """One dataset, resolved: file paths (or in-memory images) with their annotations.

    ``labels`` index ``class_names``; ``patients`` (str per image) is None when unknown;
    ``predefined`` (str per image) holds the dataset's own split ("train"/"val"/"test") or
    fold name ("fold_0", ...), or is None. ``paths`` or ``images`` (uint8 NHWC RGB) is set;
    masks likewise by ``mask_paths`` (None entries where an image has none) or ``masks``
    (uint8 NHW, nonzero = nucleus). ``layout`` says how the data is laid out, for messages.
    """

    name: str
    fingerprint: str
    layout: str
    root: Path | None = None
    class_names: list[str] | None = None
    labels: np.ndarray | None = None
    paths: list[Path] | None = None
    images: np.ndarray | None = None
    patients: np.ndarray | None = None
    predefined: np.ndarray | None = None
    mask_paths: list[Path | None] | None = None
    masks: np.ndarray | None = None
    loader: Callable[[], DatasetSource] | None = field(default=None, repr=False)

    def load(self) -> DatasetSource:
        """The source with its arrays present (runs a deferred loader once)."""
        if self.labels is None and self.loader is not None:
            loaded = self.loader()
            return replace(loaded, fingerprint=self.fingerprint, loader=None)
        return self

    def __len__(self) -> int:
        if self.labels is None:
            raise RuntimeError("source not loaded; call .load() first")
        return len(self.labels)

    @property
    def has_masks(self) -> bool:
        """Whether at least one image has a mask."""
        if self.masks is not None:
            return True
        return self.mask_paths is not None and any(p is not None for p in self.mask_paths)

    def describe(self, i: int) -> str:
        """A human name for image `i`: its path, or its index for in-memory images."""
        if self.paths is not None:
            return str(self.paths[i])
        return f"{self.name}[{i}]"
