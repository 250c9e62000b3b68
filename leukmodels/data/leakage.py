"""Leakage guard: identical files and near-duplicate images, found before any split.

Two images leak between splits when one is a copy of the other. Two kinds are found:

- **identical files** (same bytes; a symlink and its target are one file): copies
  within one class (and one predefined split) are dropped, keeping the first; the same
  file in two classes, or in two of the dataset's own splits, is a
  :class:`~leukmodels.errors.DataError` naming both paths;
- **near-duplicates** (augmented copies: flipped, rotated by 90 degrees, brighter,
  re-compressed): a perceptual signature, the signs of the low-frequency DCT
  coefficients of a 64 x 64 grey thumbnail (:data:`SIDE` x :data:`SIDE` of them, against
  their median, as in pHash), compared over the 8 flips and quarter turns. Images whose
  signatures differ in at most :data:`NEAR_BITS` of :data:`BITS` bits are linked, and each
  linked group becomes one split group, so the copies of one original never straddle
  train and test (``bench/near_duplicates.py`` measures recall and false positives).

Signatures and content hashes are computed once, when the decode cache is built
(:mod:`leukmodels.data.cache`); :func:`near_pairs` runs there too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from leukmodels.errors import DataError

SIDE = 16
"""The signature keeps the SIDE x SIDE lowest DCT frequencies of a 4*SIDE px thumbnail."""
BITS = SIDE * SIDE - 1
"""Signature length: every coefficient but the mean (DC)."""
NEAR_BITS = 40
"""Near-duplicates differ in at most this many signature bits (about 16 %)."""
_U = np.arange(SIDE)


def content_hash(data: bytes) -> str:
    """The identity of a file's bytes (BLAKE2b, 96 bits, hex)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def signature(image: np.ndarray) -> np.ndarray:
    """The perceptual signature of a uint8 RGB image under its 8 flips/quarter turns.

    Returns (8, ceil(BITS / 8)) uint8 packed bits; row 0 is the image as it is. A flip
    multiplies DCT coefficient (u, v) by (-1)^v or (-1)^u and a transpose swaps u and v,
    so the variants come from one DCT.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (4 * SIDE, 4 * SIDE), interpolation=cv2.INTER_AREA)
    block = cv2.dct(small)[:SIDE, :SIDE]
    variants = []
    for coefficients in (block, block.T):
        for flip_u in (0, 1):
            for flip_v in (0, 1):
                sign = np.outer((-1.0) ** (_U * flip_u), (-1.0) ** (_U * flip_v))
                ac = (coefficients * sign).ravel()[1:]
                variants.append(ac > np.median(ac))
    return np.packbits(np.asarray(variants), axis=1)


def near_pairs(signatures: np.ndarray, max_bits: int = NEAR_BITS, block: int = 1024) -> np.ndarray:
    """Index pairs (i < j) whose signatures differ in at most `max_bits` bits, (m, 2).

    The distance of i to j is the smallest over j's 8 variants; computed as a matrix
    product of +-1 vectors, `block` rows at a time (cost grows as n^2: about a second
    for a few thousand images).
    """
    n = len(signatures)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    bits = np.unpackbits(signatures, axis=2)[:, :, :BITS].astype(np.float32) * 2 - 1
    plain = bits[:, 0]  # (n, BITS)
    found = []
    for start in range(0, n, block):
        rows = plain[start : start + block]
        agree = np.full((len(rows), n), -np.inf, dtype=np.float32)
        for v in range(bits.shape[1]):
            np.maximum(agree, rows @ bits[:, v].T, out=agree)
        distance = (BITS - agree) / 2
        i, j = np.nonzero(distance <= max_bits)
        i = i + start
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found).astype(np.int64)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """The connected component of each of `n` nodes linked by `pairs` (labels 0..)."""
    if len(pairs) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def merge_groups(*groupings: np.ndarray) -> np.ndarray:
    """One group per connected set of images that share a value in any grouping."""
    n = len(groupings[0])
    edges, offset = [], n
    for values in groupings:
        _, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
        edges.append(np.stack([np.arange(n), codes + offset], axis=1))
        offset += int(codes.max()) + 1 if n else 0
    return components(offset, np.concatenate(edges))[:n]


@dataclass
class Leakage:
    """What the guard found: the rows kept, their near-duplicate groups, counts, warnings.

    ``copies`` (one label per kept row; equal labels = one group) is None when no
    near-duplicates were found or grouping is off.
    """

    keep: np.ndarray
    copies: np.ndarray | None
    n_duplicates: int = 0
    n_near_duplicates: int = 0
    n_near_groups: int = 0
    warnings: list[str] = field(default_factory=list)


def _why_identical(a: int, b: int, labels, predefined, class_names, names) -> str | None:
    if labels[a] != labels[b]:
        return (
            f"the same image is in two classes: {names[a]} (class {class_names[labels[a]]!r}) "
            f"and {names[b]} (class {class_names[labels[b]]!r})"
        )
    if predefined is not None and predefined[a] != predefined[b]:
        return (
            f"the same image is in two of the dataset's own splits: {names[a]} "
            f"({predefined[a]}) and {names[b]} ({predefined[b]})"
        )
    return None


def drop_identical(
    content: Sequence[str],
    labels: np.ndarray,
    predefined: np.ndarray | None,
    class_names: Sequence[str],
    names: Sequence[str],
) -> np.ndarray:
    """Rows to keep: the first of each set of identical files (see the module docstring)."""
    first: dict[str, int] = {}
    keep = []
    for i, digest in enumerate(content):
        j = first.setdefault(digest, i)
        if j == i:
            keep.append(i)
        elif why := _why_identical(j, i, labels, predefined, class_names, names):
            raise DataError(
                f"{why}. Identical files contradict their labels and leak between splits; "
                "remove one of them"
            )
    return np.asarray(keep, dtype=np.int64)


def _example(pairs: np.ndarray, names: Sequence[str]) -> str:
    i, j = pairs[0]
    return f"e.g. {names[i]} and {names[j]}"


def guard(
    content: Sequence[str],
    pairs: np.ndarray,
    labels: np.ndarray,
    predefined: np.ndarray | None,
    class_names: Sequence[str],
    names: Sequence[str],
    group_copies: bool = True,
) -> Leakage:
    """Drop identical files, refuse contradicting ones, group near-duplicates.

    `pairs` are near-duplicate row pairs (:func:`near_pairs`) over the same rows as
    `content`, `labels`, `predefined` and `names` (paths, for messages).
    """
    keep = drop_identical(content, labels, predefined, class_names, names)
    out = Leakage(keep=keep, copies=None, n_duplicates=len(labels) - len(keep))
    position = np.full(len(labels), -1)
    position[keep] = np.arange(len(keep))
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = position[pairs[(position[pairs] >= 0).all(axis=1)]] if len(pairs) else pairs
    if len(pairs) == 0:
        return out
    group = components(len(keep), pairs)
    sizes = np.bincount(group)
    out.n_near_groups = int((sizes > 1).sum())
    out.n_near_duplicates = int(sizes[sizes > 1].sum())
    kept_names = [names[i] for i in keep]
    crossing = pairs[labels[keep][pairs[:, 0]] != labels[keep][pairs[:, 1]]]
    if len(crossing):
        out.warnings.append(
            f"{len(crossing)} near-duplicate pair(s) carry different classes "
            f"({_example(crossing, kept_names)}); check their labels"
        )
    if predefined is not None:
        split = predefined[keep]
        straddle = pairs[split[pairs[:, 0]] != split[pairs[:, 1]]]
        if len(straddle):
            out.warnings.append(
                f"{len(straddle)} near-duplicate pair(s) straddle the dataset's own splits "
                f"({_example(straddle, kept_names)}); a predefined split is used as given"
            )
    if group_copies:
        out.copies = group
    return out
