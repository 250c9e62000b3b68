"""From a DataSpec and a trial's parameters to split, pre-processed data and DataLoaders.

Order, each step only where it belongs:

1. resolve the dataset (:func:`leukmodels.data.registry.resolve_dataset`);
2. open or build the decode cache (``limit`` subsample, nucleus crop, resize and pad,
   CLAHE), shared by every trial on the machine (:mod:`leukmodels.data.cache`);
3. leakage guard (:mod:`leukmodels.data.leakage`): identical files dropped or refused,
   near-duplicates grouped; then split (:func:`leukmodels.data.splits.make_split`),
   before anything that could leak;
4. Reinhard target fitted on the training split only (from the per-image statistics the
   cache stores), applied to every split;
5. training split only: HSV de-saturated copies of minority classes, then one Gaussian
   noise copy of every training image per offline sigma;
6. per image in the loaders: augmentation (training), colour space, normalisation.

Steps 4-6 are applied when an image is read (:class:`~leukmodels.data.arrays.SplitArrays`),
so preparing costs no pass over the pixels and memory stays that of the shared memory map.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from leukmodels.config import DataSpec, TrialParams
from leukmodels.data.arrays import SplitArrays, StainNorm
from leukmodels.data.augment import build_augment, validate_augment
from leukmodels.data.balance import desat_copies
from leukmodels.data.cache import DecodedSet, load_or_decode
from leukmodels.data.leakage import Leakage, guard
from leukmodels.data.loaders import make_loader
from leukmodels.data.noise import add_gaussian_noise, noisy_copies
from leukmodels.data.preprocess import ReinhardTarget
from leukmodels.data.registry import resolve_dataset
from leukmodels.data.source import DatasetSource
from leukmodels.data.splits import Split, make_split, remap
from leukmodels.errors import DataError
from leukmodels.results import SplitInfo

logger = logging.getLogger("leukmodels.data")
Log = Callable[[str], None]


@dataclass
class PreparedData:
    """A trial's data, split and ready for loaders; see the module docstring for the order."""

    dataset: str
    class_names: list[str]
    train: SplitArrays
    val: SplitArrays
    test: SplitArrays
    class_counts: dict[str, int]  # training set after balancing and noise copies
    split: Split
    cache_hit: bool
    cache_path: Path
    bad_images: list[str]  # "path: reason" of skipped images
    n_no_nucleus: int  # images where the nucleus crop found nothing and kept the whole image
    timings: dict[str, float]  # decode_s, preprocess_s, total_s
    augment: list[Any] | str | None  # the augmentation spec in force
    workers: int
    stain_target: ReinhardTarget | None = None
    has_masks: bool = False
    facts: SplitInfo | None = None  # the split facts a trial records (report header)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _say(log: Log | None, message: str, level: int = logging.INFO) -> None:
    logger.log(level, message)
    if log is not None:
        log(message if level < logging.WARNING else f"warning: {message}")


def _train_plan(rows: np.ndarray, labels: np.ndarray, params: TrialParams, n_classes: int):
    """Rows, de-saturation flags and noise sigmas of the (enlarged) training set."""
    desat = np.zeros(len(rows), dtype=bool)
    if params.balance == "hsv_desat":
        copies = desat_copies(labels[rows], n_classes)
        rows = np.concatenate([rows, rows[copies]])
        desat = np.concatenate([desat, np.ones(len(copies), dtype=bool)])
    positions, sigma = noisy_copies(len(rows), params.offline_noise)
    return rows[positions], desat[positions], sigma


def _decode(
    source: DatasetSource, spec: DataSpec, params: TrialParams, log: Log | None
) -> DecodedSet:
    """The decode cache of `source` (built when missing), announced in the log."""
    decoded = load_or_decode(
        source,
        image_size=spec.image_size,
        nucleus_crop=params.nucleus_crop,
        clahe=params.clahe,
        limit=spec.limit,
        cache_dir=spec.cache_dir,
        skip_bad_images=spec.skip_bad_images,
        log=log or logger.info,  # the decode progress, once, through the logger
    )
    names = decoded.class_names
    _say(log, f"dataset {source.name}: {len(decoded):,} images, {len(names)} classes {names}")
    if params.nucleus_crop and decoded.n_no_nucleus:
        _say(
            log,
            f"nucleus crop found no nucleus in {decoded.n_no_nucleus} image(s); kept them whole",
        )
    return decoded


def _stain_norm(params: TrialParams, decoded: DecodedSet, split: Split) -> StainNorm | None:
    """Reinhard normalisation fitted on the training split only, or None."""
    if params.stain_norm != "reinhard":
        return None
    target = ReinhardTarget.from_stats(decoded.lab_stats[split.train])
    return StainNorm(target, decoded.lab_stats)


def _split_message(spec: DataSpec, split: Split, n_train: int) -> str:
    """The log line for a split: its hash, grouping and sizes (copies counted apart)."""
    sizes = split.sizes()
    return (
        f"split {spec.split.kind} {split.hash}{' (grouped by patient)' if split.grouped else ''}: "
        f"train {sizes['train']:,} (+{n_train - sizes['train']:,} copies), val {sizes['val']:,}, "
        f"test {sizes['test']:,}"
    )


def check_split_sizes(data: PreparedData, dataset: str) -> None:
    """A DataError when the training or test split is empty (every trial would fail)."""
    for name, part in (("training", data.train), ("test", data.test)):
        if len(part) == 0:
            raise DataError(
                f"the {name} split of {dataset} is empty "
                f"({len(data.train)} train / {len(data.val)} val / {len(data.test)} test images); "
                "use more images or patients, or change data.split"
            )


def prepare_data(spec: DataSpec, params: TrialParams, log: Log | None = None) -> PreparedData:
    """Resolve, decode (cached), split and pre-process the data of one trial."""
    start = time.perf_counter()
    augment = params.augment if params.augment is not None else spec.augment
    validate_augment(augment)
    source = resolve_dataset(spec)
    decoded = _decode(source, spec, params, log)
    decoded_at = time.perf_counter()
    names = decoded.class_names
    split, leak = _split(decoded, spec)
    for warning in split.warnings:
        _say(log, warning, logging.WARNING)
    stain = _stain_norm(params, decoded, split)
    rows, desat, sigma = _train_plan(split.train, decoded.labels, params, len(names))

    def arrays(index: np.ndarray, **recipe: Any) -> SplitArrays:
        return SplitArrays(
            decoded.images, index, decoded.labels[index], masks=decoded.masks, stain=stain, **recipe
        )

    train = arrays(rows, desat=desat, sigma=sigma, noise_seed=params.seed)
    counts = train.class_counts(len(names))
    _say(log, _split_message(spec, split, len(train)))
    end = time.perf_counter()
    return PreparedData(
        dataset=source.name,
        class_names=names,
        train=train,
        val=arrays(split.val),
        test=arrays(split.test),
        class_counts={n: int(c) for n, c in zip(names, counts, strict=True)},
        split=split,
        cache_hit=decoded.hit,
        cache_path=decoded.path,
        bad_images=decoded.bad_images,
        n_no_nucleus=decoded.n_no_nucleus,
        timings={
            "decode_s": round(decoded.seconds, 4),
            "preprocess_s": round(end - decoded_at, 4),
            "total_s": round(end - start, 4),
        },
        augment=augment,
        workers=spec.workers,
        stain_target=None if stain is None else stain.target,
        has_masks=decoded.masks is not None,
        facts=split_facts(split, leak, spec),
    )


def _split(decoded: DecodedSet, spec: DataSpec) -> tuple[Split, Leakage]:
    """The leakage guard, then the split of the rows it keeps (indices into `decoded`)."""
    leak = guard(
        decoded.content,
        decoded.near_pairs,
        decoded.labels,
        decoded.predefined,
        decoded.class_names,
        decoded.names,
        group_copies=spec.near_duplicates == "group",
    )
    rows = leak.keep
    split = make_split(
        decoded.labels[rows],
        spec.split,
        groups=None if decoded.patients is None else decoded.patients[rows],
        predefined=None if decoded.predefined is None else decoded.predefined[rows],
        class_names=decoded.class_names,
        copies=leak.copies,
    )
    split = remap(split, rows, spec.split)
    split.warnings[:0] = leak.warnings
    return split, leak


def split_facts(split: Split, leak: Leakage, spec: DataSpec) -> SplitInfo:
    """What a trial records about its split (see :class:`leukmodels.results.SplitInfo`)."""
    if leak.n_near_groups == 0:
        how = "none found"
    elif spec.near_duplicates == "ignore":
        how = "counted only (data.near_duplicates: ignore)"
    elif spec.split.kind == "predefined":
        how = "the dataset's own split is used as given"
    else:
        how = "each group kept in one split" + (" with its patients" if split.grouped else "")
    return SplitInfo(
        hash=split.hash,
        warnings=list(split.warnings),
        sizes=split.sizes(),
        grouped_by_patient=split.grouped,
        n_duplicates=leak.n_duplicates,
        n_near_duplicates=leak.n_near_duplicates,
        n_near_groups=leak.n_near_groups,
        near_duplicates=how,
    )


def make_loaders(
    prepared: PreparedData, params: TrialParams, seed: int, *, with_masks: bool = False
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """(train, val, test) DataLoaders: float32 NCHW, ImageNet-normalised; train shuffled."""
    common = {
        "batch_size": params.batch_size,
        "color_space": params.color_space,
        "workers": prepared.workers,
        "with_masks": with_masks,
    }
    train = make_loader(
        prepared.train,
        augment=build_augment(prepared.augment, seed=seed),
        shuffle=True,
        seed=seed,
        **common,
    )
    return train, make_loader(prepared.val, **common), make_loader(prepared.test, **common)


def test_noise_sets(
    prepared: PreparedData, sigmas: list[float], seed: int
) -> Iterator[tuple[float, np.ndarray]]:
    """(sigma, noisy test images) per sigma (0-255 scale); sigma 0 is the clean set.

    The same seed serves every sigma, so the sweep scales one noise pattern (common random
    numbers: differences between sigmas are not noise-draw differences).
    """
    clean = prepared.test.images()
    for sigma in sigmas:
        yield float(sigma), add_gaussian_noise(clean, float(sigma), seed=seed)


def make_eval_loader(
    images: np.ndarray, labels: np.ndarray, params: TrialParams, *, workers: int = 0
) -> DataLoader:
    """An unshuffled, un-augmented loader over uint8 RGB `images` (e.g. a noisy test set)."""
    data = SplitArrays(np.asarray(images), np.arange(len(images)), np.asarray(labels))
    return make_loader(
        data, batch_size=params.batch_size, color_space=params.color_space, workers=workers
    )


test_noise_sets.__test__ = False  # not a pytest test, despite its name
