"""Named datasets of the papers, their on-disk layouts and class maps; dataset resolution.

:func:`resolve_dataset` turns ``DataSpec.dataset`` into a :class:`DatasetSource`:

- ``"synthetic"``: :func:`leukmodels.data.synthetic.generate` with ``DataSpec.classes``,
  ``n``, ``patients`` at ``image_size``. The generation seed is fixed
  (:data:`SYNTHETIC_SEED`), so a spec always means the same images; generation is
  deferred until the decode cache misses.
- a registry name (:data:`DATASETS`, case- and punctuation-insensitive), looked up under
  each data root in turn (:func:`data_roots`).
- a path to a folder (ImageFolder) or to a ``.csv`` manifest (:mod:`leukmodels.data.folder`);
  a name with a '/' or starting with '.' or '~' is always a path (``./cnmc2019`` is a
  folder, ``cnmc2019`` the registry entry).

Folder names inside a layout are matched case-insensitively ignoring '-', '_' and spaces,
and a folder nested twice under the same name (as the Kaggle zips do) is followed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leukmodels.config import DataSpec
from leukmodels.data.folder import list_images, read_manifest, scan_image_folder
from leukmodels.data.source import (
    DatasetSource,
    files_fingerprint,
    is_ignored,
    norm_name,
    short_hash,
)
from leukmodels.errors import DataError, UserError

DEFAULT_DATA_ROOT = "~/.leuksearch/data"
SYNTHETIC_SEED = 20240601
"""Generation seed of the built-in synthetic dataset (fixed: a spec always means the same images)."""

MUNICH_CLASSES = (
    "BAS", "EBO", "EOS", "KSC", "LYA", "LYT", "MMZ", "MOB",
    "MON", "MYB", "MYO", "NGB", "NGS", "PMB", "PMO",
)  # fmt: skip
"""Munich AML (Matek et al. 2019) morphological classes, as its folder names."""

MIXTURE_CLASS_MAP = {
    "normal": ("all_idb2", ("normal",)),
    "all": ("all_idb2", ("blast",)),
    "aml": ("munich_aml", ("MYB", "MOB", "PMO")),
}
"""mixture_leukemia: ALL-IDB2 normal cells -> normal, ALL-IDB2 blasts -> all, and the Munich
AML leukaemic blast classes (myeloblast MYB, monoblast MOB, atypical promyelocyte PMO) ->
aml. The other Munich classes (mature or non-blast cells) are left out."""


def data_roots(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where named datasets are looked for, in order: `root`, $LEUKSEARCH_DATA, ~/.leuksearch/data."""
    found: list[Path] = []
    for value in (root, os.environ.get("LEUKSEARCH_DATA"), DEFAULT_DATA_ROOT):
        if value:
            path = Path(value).expanduser()
            if path not in found:
                found.append(path)
    return found


def find_child(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The sub-folder of `folder` whose normalised name is one of `names` (normalised), if any."""
    if not folder.is_dir():
        return None
    wanted = {norm_name(n) for n in names}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and norm_name(entry.name) in wanted:
            return entry
    return None


def descend(start: Path, levels: tuple[tuple[str, ...], ...]) -> Path | None:
    """Follow `levels` of folder-name aliases down from `start`; repeated nesting is followed."""
    current = start
    for aliases in levels:
        child = find_child(current, aliases)
        if child is None:
            return None
        while child is not None:
            current, child = child, find_child(child, aliases)
    return current


@dataclass(frozen=True)
class RegisteredDataset:
    """A named dataset: accepted top-folder names, inner folders, expected layout, parser."""

    name: str
    aliases: tuple[str, ...]
    inner: tuple[tuple[str, ...], ...]
    layout: str
    parse: Callable[[Path, DataSpec], DatasetSource]

    def locate(self, root: Path) -> tuple[Path | None, Path | None]:
        """(top folder under `root`, or `root` itself; the inner folder), None where absent."""
        keys = {norm_name(a) for a in self.aliases}
        tops = [root] if norm_name(root.name) in keys else []
        child = find_child(root, self.aliases)
        if child is not None:
            tops.append(child)
        for top in tops:
            while (nested := find_child(top, self.aliases)) is not None:
                top = nested  # zips often nest a folder inside one of the same name
            inner = descend(top, self.inner) if self.inner else top
            if inner is not None:
                return top, inner
        return (tops[0] if tops else None), None


def _files(
    name: str, top: Path, paths: list[Path], labels: list[int], classes: list[str], **kw
) -> DatasetSource:
    label_array = np.asarray(labels, dtype=np.int64)
    patients = kw.get("patients")
    predefined = kw.get("predefined")
    masks = kw.get("mask_paths")
    patients = None if patients is None else np.asarray(patients)
    predefined = None if predefined is None else np.asarray(predefined)
    if masks is not None and all(m is None for m in masks):
        masks = None
    return DatasetSource(
        name=name,
        fingerprint=files_fingerprint(
            name, top, paths, label_array, classes, patients, predefined, masks
        ),
        layout=DATASETS[name].layout,
        root=top,
        class_names=classes,
        labels=label_array,
        paths=paths,
        patients=patients,
        predefined=predefined,
        mask_paths=masks,
    )


def _no_subset(spec: DataSpec) -> None:
    if spec.subset is not None:
        raise UserError(
            f"dataset {spec.dataset!r} has no subsets; remove data.subset ({spec.subset!r})"
        )


# --- ALL-IDB2 ------------------------------------------------------------------------------
_IDB2_FILE = re.compile(r"^im(\d+)_([01])\.(tif|tiff|jpg|jpeg|png|bmp)$", re.IGNORECASE)


def _parse_all_idb2(folder: Path, spec: DataSpec) -> DatasetSource:
    _no_subset(spec)
    paths, labels = [], []
    for path in sorted(folder.iterdir()):
        match = _IDB2_FILE.match(path.name)
        if match and path.is_file():
            paths.append(path)
            labels.append(int(match.group(2)))
    if len(set(labels)) < 2:
        raise DataError(
            f"{folder} holds no ImNNN_L.tif images of both classes; expected {DATASETS['all_idb2'].layout}"
        )
    return _files("all_idb2", folder.parent, paths, labels, ["normal", "blast"])


# --- C-NMC 2019 ----------------------------------------------------------------------------
_CNMC_FILE = re.compile(r"^UID_(H?\d+)_\d+_\d+_(all|hem)\.", re.IGNORECASE)
CNMC_FOLDS = ("fold_0", "fold_1", "fold_2")


def cnmc_patient(filename: str) -> str | None:
    """Subject id from a C-NMC name: ``UID_11_10_1_all.bmp`` -> "11", ``UID_H10_4_1_hem.bmp`` -> "H10"."""
    match = _CNMC_FILE.match(filename)
    return match.group(1).upper() if match else None


def _parse_cnmc2019(folder: Path, spec: DataSpec) -> DatasetSource:
    if spec.subset is not None and norm_name(spec.subset) not in {norm_name(f) for f in CNMC_FOLDS}:
        raise UserError(
            f"cnmc2019 subset {spec.subset!r} is unknown; choose one of {list(CNMC_FOLDS)} or none"
        )
    wanted = [
        f for f in CNMC_FOLDS if spec.subset is None or norm_name(f) == norm_name(spec.subset)
    ]
    classes = ["hem", "all"]
    paths, labels, patients, folds = [], [], [], []
    for fold in wanted:
        fold_dir = find_child(folder, (fold,))
        if fold_dir is None:
            raise DataError(
                f"cnmc2019: {folder} has no {fold}/ folder; expected {DATASETS['cnmc2019'].layout}"
            )
        for label, cls in enumerate(classes):
            class_dir = find_child(fold_dir, (cls,))
            images = list_images(class_dir) if class_dir is not None else []
            if not images:
                raise DataError(
                    f"cnmc2019: {fold_dir} has no {cls}/ images; expected {DATASETS['cnmc2019'].layout}"
                )
            for path in images:
                paths.append(path)
                labels.append(label)
                patients.append(cnmc_patient(path.name) or f"<image {path.name}>")
                folds.append(fold)
    predefined = folds if spec.subset is None else None
    return _files(
        "cnmc2019", folder.parent, paths, labels, classes, patients=patients, predefined=predefined
    )


# --- ALL (Taleqani hospital, Aria et al.) ---------------------------------------------------
TALEQANI_CLASSES = ("Benign", "Early", "Pre", "Pro")


def _taleqani_class(folder_name: str) -> str | None:
    key = norm_name(folder_name).replace("malignant", "")
    for cls in TALEQANI_CLASSES:
        if key.startswith(cls.lower()):
            return cls
    return None


def _parse_all_taleqani(folder: Path, spec: DataSpec) -> DatasetSource:
    _no_subset(spec)
    segmented = find_child(folder.parent, ("Segmented",))
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        cls = _taleqani_class(entry.name) if entry.is_dir() and not is_ignored(entry.name) else None
        if cls is not None:
            found[cls] = entry
    missing = [c for c in TALEQANI_CLASSES if c not in found]
    if missing:
        raise DataError(
            f"all_taleqani: {folder} lacks class folder(s) {missing}; expected {DATASETS['all_taleqani'].layout}"
        )
    mask_dirs: dict[str, Path] = {}
    if segmented is not None:  # matched by class, whatever its folders are called there
        for entry in sorted(segmented.iterdir()):
            if entry.is_dir() and (cls := _taleqani_class(entry.name)) is not None:
                mask_dirs.setdefault(cls, entry)
    paths, labels, masks = [], [], []
    for label, cls in enumerate(TALEQANI_CLASSES):
        mask_dir = mask_dirs.get(cls)
        by_stem = {p.stem.lower(): p for p in list_images(mask_dir)} if mask_dir is not None else {}
        for path in list_images(found[cls]):
            paths.append(path)
            labels.append(label)
            masks.append(by_stem.get(path.stem.lower()))
    return _files(
        "all_taleqani", folder.parent, paths, labels, list(TALEQANI_CLASSES), mask_paths=masks
    )


# --- Kaggle blood cells (dataset2-master) ---------------------------------------------------
BLOOD_CELL_CLASSES = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")


def _parse_blood_cells(folder: Path, spec: DataSpec) -> DatasetSource:
    _no_subset(spec)
    paths, labels, split = [], [], []
    for part in ("TRAIN", "TEST"):
        part_dir = find_child(folder, (part,))
        if part_dir is None:
            raise DataError(
                f"blood_cells_kaggle: {folder} has no {part}/ folder; expected {DATASETS['blood_cells_kaggle'].layout}"
            )
        for label, cls in enumerate(BLOOD_CELL_CLASSES):
            class_dir = find_child(part_dir, (cls,))
            images = list_images(class_dir) if class_dir is not None else []
            if not images:
                raise DataError(
                    f"blood_cells_kaggle: {part_dir} has no {cls}/ images; expected {DATASETS['blood_cells_kaggle'].layout}"
                )
            paths += images
            labels += [label] * len(images)
            split += [part.lower()] * len(images)
    classes = [c.lower() for c in BLOOD_CELL_CLASSES]
    return _files("blood_cells_kaggle", folder, paths, labels, classes, predefined=split)


# --- Munich AML cytomorphology ---------------------------------------------------------------
def _munich_images(folder: Path) -> dict[str, list[Path]]:
    return {
        cls: list_images(d)
        for cls in MUNICH_CLASSES
        if (d := find_child(folder, (cls,))) is not None and list_images(d)
    }


def _parse_munich_aml(folder: Path, spec: DataSpec) -> DatasetSource:
    _no_subset(spec)
    by_class = _munich_images(folder)
    if len(by_class) < 2:
        raise DataError(
            f"munich_aml: {folder} holds images in {len(by_class)} of the class folders "
            f"{list(MUNICH_CLASSES)}; expected {DATASETS['munich_aml'].layout}"
        )
    classes = list(by_class)
    paths = [p for c in classes for p in by_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in by_class[c]]
    return _files("munich_aml", folder, paths, labels, classes)


def _parse_mixture(folder: Path, spec: DataSpec) -> DatasetSource:
    raise AssertionError("mixture_leukemia is resolved from its parts")  # pragma: no cover


DATASETS: dict[str, RegisteredDataset] = {
    d.name: d
    for d in (
        RegisteredDataset(
            "all_idb2",
            ("ALL_IDB2", "all_idb2", "ALL-IDB 2"),
            (("img",),),
            "<root>/ALL_IDB2/img/ImNNN_L.tif (L = 1 blast, 0 normal)",
            _parse_all_idb2,
        ),
        RegisteredDataset(
            "cnmc2019",
            ("C-NMC_Leukemia", "cnmc2019", "C-NMC 2019", "C-NMC", "C_NMC_2019"),
            (("training_data", "training", "train"),),
            "<root>/C-NMC_Leukemia/training_data/fold_{0,1,2}/{all,hem}/UID_<patient>_<image>_<cell>_all.bmp "
            "and UID_H<patient>_<image>_<cell>_hem.bmp",
            _parse_cnmc2019,
        ),
        RegisteredDataset(
            "all_taleqani",
            (
                "all_taleqani",
                "taleqani",
                "Blood cell Cancer [ALL]",
                "ALL image dataset",
                "leukemia",
            ),
            (("Original",),),
            "<root>/all_taleqani/Original/{Benign,[Malignant] Early Pre-B,[Malignant] Pre-B,"
            "[Malignant] Pro-B}/<image>.jpg, optionally Segmented/<same class folders> beside "
            "Original/ (used as nucleus masks)",
            _parse_all_taleqani,
        ),
        RegisteredDataset(
            "blood_cells_kaggle",
            ("blood_cells_kaggle", "blood-cells", "blood_cells", "dataset2-master"),
            (("images",),),
            "<root>/blood_cells_kaggle/dataset2-master/images/{TRAIN,TEST}/"
            "{EOSINOPHIL,LYMPHOCYTE,MONOCYTE,NEUTROPHIL}/<image>.jpeg",
            _parse_blood_cells,
        ),
        RegisteredDataset(
            "munich_aml",
            ("AML-Cytomorphology_LMU", "munich_aml", "AML-Cytomorphology"),
            (),
            f"<root>/AML-Cytomorphology_LMU/<class>/<image>.tiff with class folders {', '.join(MUNICH_CLASSES)}",
            _parse_munich_aml,
        ),
        RegisteredDataset(
            "mixture_leukemia",
            (),
            (),
            "ALL_IDB2 and AML-Cytomorphology_LMU under the same root (see all_idb2 and "
            "munich_aml); classes normal/all from ALL-IDB2, aml from Munich MYB, MOB, PMO",
            _parse_mixture,
        ),
    )
}
_ALIASES = {norm_name(k): k for k in DATASETS} | {
    "allidb2": "all_idb2",
    "cnmc": "cnmc2019",
    "cnmcleukemia": "cnmc2019",
    "taleqani": "all_taleqani",
    "bloodcells": "blood_cells_kaggle",
    "munich": "munich_aml",
    "amlcytomorphologylmu": "munich_aml",
    "mixture": "mixture_leukemia",
}


def registry_name(dataset: str) -> str | None:
    """The registry name `dataset` refers to (case/punctuation-insensitive), or None."""
    return _ALIASES.get(norm_name(dataset))


def _find_registered(entry: RegisteredDataset, spec: DataSpec) -> DatasetSource:
    looked: list[str] = []
    for root in data_roots(spec.root):
        top, inner = entry.locate(root)
        if inner is not None:
            return entry.parse(inner, spec)
        aliases = "|".join(entry.aliases)
        if top is None:
            looked.append(f"{root}/{{{aliases}}}")
        else:
            inner = "/".join(levels[0] for levels in entry.inner)
            looked.append(f"{top} (found, but no {inner}/ inside)")
    raise DataError(
        f"dataset {entry.name!r} not found. Looked in: {'; '.join(looked)}. Expected layout: "
        f"{entry.layout}. Put it under --data-root, $LEUKSEARCH_DATA or {DEFAULT_DATA_ROOT}, "
        f"or set data.root."
    )


def _mixture(spec: DataSpec) -> DatasetSource:
    _no_subset(spec)
    parts = {name: _find_registered(DATASETS[name], spec) for name in ("all_idb2", "munich_aml")}
    paths, labels = [], []
    classes = list(MIXTURE_CLASS_MAP)
    for label, (cls, (part, members)) in enumerate(MIXTURE_CLASS_MAP.items()):
        source = parts[part]
        keep = [i for i, lab in enumerate(source.labels) if source.class_names[lab] in members]
        if not keep:
            raise DataError(
                f"mixture_leukemia: {part} has no images of {members} for class {cls!r}"
            )
        paths += [source.paths[i] for i in keep]
        labels += [label] * len(keep)
    label_array = np.asarray(labels, dtype=np.int64)
    return DatasetSource(
        name="mixture_leukemia",
        fingerprint=short_hash(
            "mixture_leukemia", MIXTURE_CLASS_MAP, *(p.fingerprint for p in parts.values())
        ),
        layout=DATASETS["mixture_leukemia"].layout,
        root=None,
        class_names=classes,
        labels=label_array,
        paths=paths,
    )


def _synthetic(spec: DataSpec) -> DatasetSource:
    from leukmodels.data import synthetic

    args = {
        "n": spec.n,
        "classes": spec.classes,
        "size": spec.image_size,
        "seed": SYNTHETIC_SEED,
        "patients": spec.patients,
    }
    if spec.difficulty != "standard":  # standard keeps the fingerprint it always had
        args["difficulty"] = spec.difficulty

    def load() -> DatasetSource:
        data = synthetic.generate(**args)
        return DatasetSource(
            name="synthetic",
            fingerprint="",
            layout="built in",
            class_names=list(data.class_names),
            labels=np.asarray(data.labels, dtype=np.int64),
            images=data.images,
            patients=np.asarray(data.patients),
            masks=data.masks,
        )

    return DatasetSource(
        name="synthetic",
        fingerprint=short_hash(  # the generator's code is part of what the images are
            "synthetic", sorted(args.items()), Path(synthetic.__file__).read_bytes()
        ),
        layout="built in (no files)",
        loader=load,
    )


def resolve_dataset(spec: DataSpec) -> DatasetSource:
    """Resolve ``spec.dataset`` (synthetic, registry name, folder or .csv) into a source."""
    name = spec.dataset.strip()
    looks_like_path = (
        any(c in name for c in "/\\")
        or name.startswith(("~", "."))
        or name.lower().endswith(".csv")
    )
    if norm_name(name) == "synthetic" and not looks_like_path:
        return _synthetic(spec)
    registered = None if looks_like_path else registry_name(name)
    if registered == "mixture_leukemia":
        return _mixture(spec)
    if registered is not None:
        return _find_registered(DATASETS[registered], spec)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".csv":
        return read_manifest(path)
    if path.is_dir():
        if spec.subset is not None:
            raise UserError(f"data.subset ({spec.subset!r}) applies to registry datasets only")
        return scan_image_folder(path)
    raise DataError(
        f"dataset {name!r} is neither 'synthetic', a registry name ({', '.join(DATASETS)}), "
        f"an existing folder nor a .csv manifest (looked for the path {path.resolve()}). "
        f"A folder must be laid out as <folder>/<class>/<image>."
    )
