"""The decode cache: each dataset is decoded once per machine into a memory-mapped uint8 array.

Key: the source's fingerprint (file list, sizes, mtimes, labels), the ``limit`` subsample,
the image size and the deterministic pre-processing (nucleus crop, CLAHE). Colour-space
conversion is not part of it: it happens per image after augmentation, so augmentation,
stain normalisation, balancing and noise always act on RGB (see ``leukmodels.data.prepare``).

Files under the cache folder (``DataSpec.cache_dir``, else $LEUKSEARCH_CACHE, else
~/.cache/leuksearch), per key: ``<key>.npy`` (N, S, S, 3) images, ``<key>.masks.npy``
(N, S, S) 0/1 masks when the data has masks, ``<key>.lab.npy`` (N, 2, 3) per-image CIELAB
mean/std (for Reinhard fitting without a pass over the images) and ``<key>.json`` (labels,
patients, predefined split, class names, bad images, counts). Each file is written to a
temporary name and renamed into place, the JSON last, and a reader trusts only a complete
JSON: a concurrent trial never sees half a cache. The JSON also holds what the leakage
guard needs (:mod:`leukmodels.data.leakage`): each image's name, the hash of its file's
bytes (of its pixels for in-memory images) and the near-duplicate pairs, found once here. Builders on one machine take an
exclusive lock on ``<key>.lock`` so a second trial waits and then reuses the first one's
work; where locking is unavailable both build and the last rename wins (same content).

Unreadable or truncated images are all collected, the cache is written without them,
and then, unless ``skip_bad_images``, a :class:`~leukmodels.errors.DataError` lists them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leukmodels.data.decode import MAX_WORKING_SIDE, process, read_mask, read_rgb
from leukmodels.data.leakage import BITS, content_hash, near_pairs, signature
from leukmodels.data.source import DatasetSource, short_hash
from leukmodels.data.splits import limit_indices
from leukmodels.errors import DataError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

CACHE_VERSION = 2
DEFAULT_CACHE_DIR = "~/.cache/leuksearch"
LIMIT_SEED = 0
"""The ``limit`` subsample is fixed per dataset and limit (not per split seed), so trials share it."""

Log = Callable[[str], None]
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EEXIST,
}


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: `cache_dir`, else $LEUKSEARCH_CACHE, else ~/.cache/leuksearch."""
    value = cache_dir or os.environ.get("LEUKSEARCH_CACHE") or DEFAULT_CACHE_DIR
    return Path(value).expanduser()


def cache_key(
    fingerprint: str, *, image_size: int, nucleus_crop: bool, clahe: bool, limit: int | None
) -> str:
    """The cache entry name for a source and its deterministic pre-processing."""
    return short_hash(
        CACHE_VERSION, fingerprint, image_size, nucleus_crop, clahe, limit, LIMIT_SEED
    )


@dataclass
class DecodedSet:
    """A dataset as decoded: read-only memory-mapped arrays plus their annotations."""

    images: np.ndarray  # (N, S, S, 3) uint8, np.memmap opened read-only
    masks: np.ndarray | None  # (N, S, S) uint8 0/1
    lab_stats: np.ndarray  # (N, 2, 3) float32 per-image CIELAB mean and std
    labels: np.ndarray
    patients: np.ndarray | None
    predefined: np.ndarray | None
    class_names: list[str]
    source_index: np.ndarray  # row -> index in the (un-limited) source
    names: list[str]  # each row's path (or in-memory name), for messages
    content: list[str]  # each row's content hash (leukmodels.data.leakage)
    near_pairs: np.ndarray  # (m, 2) rows that are near-duplicates
    bad_images: list[str]  # "path: reason" of images that could not be decoded
    n_no_nucleus: int
    path: Path
    hit: bool
    seconds: float  # time to open (hit) or build (miss)

    def __len__(self) -> int:
        return len(self.labels)


def _paths(root: Path, key: str) -> dict[str, Path]:
    return {
        "images": root / f"{key}.npy",
        "masks": root / f"{key}.masks.npy",
        "lab": root / f"{key}.lab.npy",
        "meta": root / f"{key}.json",
        "lock": root / f"{key}.lock",
    }


def _open(paths: dict[str, Path], key: str) -> DecodedSet | None:
    """The complete cache entry, opened with mmap_mode='r', or None when absent or stale."""
    start = time.perf_counter()
    try:
        meta = json.loads(paths["meta"].read_text())
        if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
            return None
        images = np.load(paths["images"], mmap_mode="r")
        masks = np.load(paths["masks"], mmap_mode="r") if meta["has_masks"] else None
        lab = np.load(paths["lab"])
    except (OSError, ValueError, KeyError):
        return None
    n = len(meta["labels"])
    if images.shape[0] != n or lab.shape[0] != n or (masks is not None and masks.shape[0] != n):
        return None
    return DecodedSet(
        images=images,
        masks=masks,
        lab_stats=lab,
        labels=np.asarray(meta["labels"], dtype=np.int64),
        patients=None if meta["patients"] is None else np.asarray(meta["patients"]),
        predefined=None if meta["predefined"] is None else np.asarray(meta["predefined"]),
        class_names=list(meta["class_names"]),
        source_index=np.asarray(meta["source_index"], dtype=np.int64),
        names=list(meta["names"]),
        content=list(meta["content"]),
        near_pairs=np.asarray(meta["near_pairs"], dtype=np.int64).reshape(-1, 2),
        bad_images=list(meta["bad_images"]),
        n_no_nucleus=int(meta["n_no_nucleus"]),
        path=paths["images"],
        hit=True,
        seconds=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _writable(root: Path) -> Iterator[None]:
    """Turn a cache folder that cannot be written (permissions, full disk) into a DataError."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        raise DataError(
            f"cannot write the decode cache in {root}: {exc.strerror}. Free some space or point "
            f"data.cache_dir (or $LEUKSEARCH_CACHE) at a writable folder."
        ) from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _compact(path: Path, rows: np.ndarray, dest: Path, chunk: int = 256) -> None:
    """Copy `rows` of the .npy at `path` to `dest` (atomically), a chunk at a time."""
    full = np.load(path, mmap_mode="r")
    tmp = _tmp(dest)
    try:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=full.dtype, shape=(len(rows), *full.shape[1:])
        )
        for start in range(0, len(rows), chunk):
            out[start : start + chunk] = full[rows[start : start + chunk]]
        out.flush()
        del out
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


PROGRESS_MIN_IMAGES = 1000
"""Smaller sets decode in moments: only their 100% line."""


def _progress(log: Log | None, n: int) -> Callable[[int], None]:
    """A callback logging "decoding N images ... P%" each time P passes a multiple of 10
    (only at 100% for sets smaller than PROGRESS_MIN_IMAGES)."""
    last = [0]

    def tick(done: int) -> None:
        step = done * 10 // n
        shown = n >= PROGRESS_MIN_IMAGES or step == 10
        if log is not None and shown and step > last[0]:
            last[0] = step
            log(f"decoding {n:,} images ... {step * 10}%")

    return tick


@dataclass
class _Rows:
    """What decoding writes, one row per image; rows are disjoint, so threads never collide."""

    images: np.ndarray  # (n, S, S, 3) uint8, a writable .npy memmap at a temporary path
    masks: np.ndarray | None  # (n, S, S) uint8, when the source has masks
    lab: np.ndarray  # (n, 2, 3) float32
    ok: np.ndarray  # decoded
    found: np.ndarray  # the nucleus crop found a nucleus
    content: list[str]  # content hash of each row's file (pixels for in-memory images)
    signatures: np.ndarray  # near-duplicate signatures

    @classmethod
    def allocate(cls, tmp_images: Path, n: int, image_size: int, has_masks: bool) -> _Rows:
        """Empty rows; the images go straight into a memory-mapped .npy at `tmp_images`."""
        images = np.lib.format.open_memmap(
            tmp_images, mode="w+", dtype=np.uint8, shape=(n, image_size, image_size, 3)
        )
        return cls(
            images=images,
            masks=np.zeros((n, image_size, image_size), np.uint8) if has_masks else None,
            lab=np.zeros((n, 2, 3), np.float32),
            ok=np.zeros(n, dtype=bool),
            found=np.zeros(n, dtype=bool),
            content=[""] * n,
            signatures=np.zeros((n, 8, -(-BITS // 8)), np.uint8),
        )


@dataclass(frozen=True)
class _Recipe:
    """The deterministic pre-processing a cache entry holds."""

    image_size: int
    nucleus_crop: bool
    clahe: bool


def _decode_row(source: DatasetSource, i: int, j: int, out: _Rows, recipe: _Recipe) -> None:
    """Decode image `i` of `source` into row `j` of `out`."""
    if source.images is not None:
        image = np.asarray(source.images[i])
        mask = None if source.masks is None else np.asarray(source.masks[i])
        out.content[j] = content_hash(np.ascontiguousarray(image).tobytes())
    else:
        data = source.paths[i].read_bytes()  # symlinks resolved: a link is its target
        out.content[j] = content_hash(data)
        working = MAX_WORKING_SIDE if recipe.nucleus_crop else recipe.image_size
        image = read_rgb(io.BytesIO(data), working)
        mask_path = source.mask_paths[i] if source.mask_paths is not None else None
        mask = read_mask(mask_path) if mask_path is not None else None
    item = process(
        image, recipe.image_size, nucleus_crop=recipe.nucleus_crop, clahe=recipe.clahe, mask=mask
    )
    out.images[j] = item.image
    out.lab[j] = item.lab_stats
    out.signatures[j] = signature(item.image)
    if out.masks is not None and item.mask is not None:
        out.masks[j] = item.mask
    out.ok[j], out.found[j] = True, item.nucleus_found


def _decode_all(
    source: DatasetSource,
    rows: np.ndarray,
    out: _Rows,
    recipe: _Recipe,
    threads: int | None,
    log: Log | None,
) -> dict[int, str]:
    """Decode every row on a thread pool; returns "Type: message" per row that failed."""
    errors: dict[int, str] = {}
    tick = _progress(log, len(rows))
    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_decode_row, source, int(rows[j]), j, out, recipe): j
            for j in range(len(rows))
        }
        for done, future in enumerate(as_completed(futures), 1):
            exc = future.exception()
            if exc is not None:  # any decoder failure marks the file as bad
                errors[futures[future]] = f"{type(exc).__name__}: {exc}"
            tick(done)
    return errors


def _decoded_rows(
    source: DatasetSource, rows: np.ndarray, out: _Rows, errors: dict[int, str]
) -> np.ndarray:
    """The rows that decoded; a DataError naming the first failure when none did."""
    kept = np.flatnonzero(out.ok)
    if len(kept) == 0:
        first = min(errors)
        raise DataError(
            f"none of the {len(rows)} images of {source.name} could be decoded; first error: "
            f"{source.describe(int(rows[first]))}: {errors[first]}"
        )
    return kept


def _meta(
    source: DatasetSource,
    rows: np.ndarray,
    kept: np.ndarray,
    out: _Rows,
    errors: dict[int, str],
    *,
    key: str,
    recipe: _Recipe,
    limit: int | None,
) -> dict[str, Any]:
    """The entry's JSON: labels, patients, split, names, leakage facts and bad images."""
    src = rows[kept]
    return {
        "version": CACHE_VERSION,
        "key": key,
        "dataset": source.name,
        "fingerprint": source.fingerprint,
        "image_size": recipe.image_size,
        "nucleus_crop": recipe.nucleus_crop,
        "clahe": recipe.clahe,
        "limit": limit,
        "class_names": list(source.class_names),
        "labels": source.labels[src].tolist(),
        "patients": None if source.patients is None else source.patients[src].tolist(),
        "predefined": None if source.predefined is None else source.predefined[src].tolist(),
        "source_index": src.tolist(),
        "names": [source.describe(int(i)) for i in src],
        "content": [out.content[j] for j in kept],
        "near_pairs": near_pairs(out.signatures[kept]).tolist(),
        "has_masks": out.masks is not None,
        "bad_images": [f"{source.describe(int(rows[j]))}: {errors[j]}" for j in sorted(errors)],
        "n_no_nucleus": int(recipe.nucleus_crop) * int((~out.found[kept]).sum()),
    }


def _build(
    source: DatasetSource,
    paths: dict[str, Path],
    key: str,
    *,
    image_size: int,
    nucleus_crop: bool,
    clahe: bool,
    limit: int | None,
    threads: int | None,
    log: Log | None,
) -> DecodedSet:
    """Decode `source` into the cache entry at `paths`: arrays first, the JSON last."""
    start = time.perf_counter()
    source = source.load()
    rows = limit_indices(source.labels, limit, groups=source.patients, seed=LIMIT_SEED)
    n = len(rows)
    recipe = _Recipe(image_size, nucleus_crop, clahe)
    tmp_images = _tmp(paths["images"])
    out = _Rows.allocate(tmp_images, n, image_size, source.has_masks)
    if log is not None:
        log(f"decoding {n:,} images of {source.name} at {image_size} px into {paths['images']}")
    try:
        errors = _decode_all(source, rows, out, recipe, threads, log)
        kept = _decoded_rows(source, rows, out, errors)
        out.images.flush()  # the mapping may stay open: POSIX renames and reads are unaffected
        if len(kept) < n:
            _compact(tmp_images, kept, paths["images"])
        else:
            os.replace(tmp_images, paths["images"])
    finally:
        tmp_images.unlink(missing_ok=True)
    if out.masks is not None:
        _save_npy(paths["masks"], out.masks[kept])
    _save_npy(paths["lab"], out.lab[kept])
    meta = _meta(source, rows, kept, out, errors, key=key, recipe=recipe, limit=limit)
    meta["decode_s"] = round(time.perf_counter() - start, 3)
    tmp_meta = _tmp(paths["meta"])
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, paths["meta"])
    decoded = _open(paths, key)
    if decoded is None:  # pragma: no cover - we just wrote it
        raise RuntimeError(f"decode cache {paths['meta']} unreadable right after writing it")
    decoded.hit = False
    decoded.seconds = time.perf_counter() - start
    return decoded


def bad_images_error(source_name: str, bad: list[str]) -> DataError:
    """The error for unreadable images: the first 20 listed, the count, the way out."""
    shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
    return DataError(
        f"{len(bad)} unreadable image(s) in {source_name}: {shown}. Replace or remove them, "
        f"or run with --skip-bad-images (data.skip_bad_images: true) to skip and count them."
    )


def load_or_decode(
    source: DatasetSource,
    *,
    image_size: int,
    nucleus_crop: bool = False,
    clahe: bool = False,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad_images: bool = False,
    threads: int | None = None,
    log: Log | None = None,
) -> DecodedSet:
    """Open the decode cache for `source`, building it first when missing (see module doc)."""
    root = cache_root(cache_dir)
    with _writable(root):
        root.mkdir(parents=True, exist_ok=True)
    key = cache_key(
        source.fingerprint,
        image_size=image_size,
        nucleus_crop=nucleus_crop,
        clahe=clahe,
        limit=limit,
    )
    paths = _paths(root, key)
    decoded = _open(paths, key)
    if decoded is None:
        with _writable(root), _locked(paths["lock"]):
            decoded = _open(paths, key)  # another trial may have built it meanwhile
            if decoded is None:
                decoded = _build(
                    source,
                    paths,
                    key,
                    image_size=image_size,
                    nucleus_crop=nucleus_crop,
                    clahe=clahe,
                    limit=limit,
                    threads=threads,
                    log=log,
                )
    elif log is not None:
        log(f"using cached decode {decoded.path}")
    if decoded.bad_images:
        if not skip_bad_images:
            raise bad_images_error(source.name, decoded.bad_images)
        if log is not None:
            log(f"skipped {len(decoded.bad_images)} unreadable image(s)")
    return decoded
