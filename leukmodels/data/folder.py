"""Datasets on disk that are not in the registry: an ImageFolder or a CSV manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from leukmodels.data.source import (
    IMAGE_EXTENSIONS,
    DatasetSource,
    files_fingerprint,
    is_ignored,
    is_image,
)
from leukmodels.errors import DataError

_EXTS = "/".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
IMAGEFOLDER_LAYOUT = (
    f"<folder>/<class>/<image>.{{{_EXTS}}}: one subfolder per class (at least two), images "
    "anywhere inside a class folder; folders starting with '.' or '_' are ignored"
)
MANIFEST_LAYOUT = (
    "a CSV file with a header row and columns path,label (optional: patient, split, mask); "
    "paths relative to the CSV file; split is train/val/test or a fold name"
)
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def list_images(folder: Path, _above: frozenset[Path] = frozenset()) -> list[Path]:
    """Image files under `folder`, recursively, sorted; skips '.'/'_' folders and '.' files.

    (File names may start with '_': the Kaggle blood-cell images are named ``_0_1169.jpeg``.)
    Symbolic links are followed, but a folder link that leads back into its own parents
    (a loop) and an image link that leads nowhere are refused with their paths.
    """
    here = folder.resolve()
    above = _above | {here}
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and not entry.exists():
            if entry.suffix.lower() in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{entry} is a symbolic link that leads nowhere (broken, or a loop); "
                    "fix or remove it"
                )
            continue
        if entry.is_dir():
            if is_ignored(entry.name):
                continue
            if entry.resolve() in above:
                raise DataError(
                    f"{entry} is a symbolic link loop (it leads back to {entry.resolve()}, "
                    "which contains it); remove the link"
                )
            found.extend(list_images(entry, above))
        elif is_image(entry) and not entry.name.startswith("."):
            found.append(entry)
    return found


def scan_image_folder(root: Path, name: str | None = None) -> DatasetSource:
    """Resolve an ImageFolder (one subfolder per class) into a source; classes sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected {IMAGEFOLDER_LAYOUT}")
    class_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not is_ignored(d.name)]
    loose = [p for p in root.iterdir() if is_image(p)]
    if not class_dirs:
        what = f"{len(loose)} images but no class subfolders" if loose else "nothing usable"
        raise DataError(f"{root} holds {what}; expected {IMAGEFOLDER_LAYOUT}")
    paths: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        images = list_images(class_dir, frozenset({root.resolve()}))
        if not images:
            empty.append(class_dir.name)
        paths.extend(images)
        labels.extend([label] * len(images))
    if empty:
        raise DataError(
            f"class folder(s) {empty} in {root} hold no images (extensions {_EXTS}); add "
            f"images, remove the folder, or rename it to start with '_'. Expected {IMAGEFOLDER_LAYOUT}"
        )
    if len(class_dirs) < 2:
        raise DataError(
            f"{root} has only one class folder ({class_dirs[0].name!r}); a classifier needs at "
            f"least two. Expected {IMAGEFOLDER_LAYOUT}"
        )
    class_names = [d.name for d in class_dirs]
    label_array = np.asarray(labels, dtype=np.int64)
    return DatasetSource(
        name=name or root.name,
        fingerprint=files_fingerprint("imagefolder", root, paths, label_array, class_names),
        layout=IMAGEFOLDER_LAYOUT,
        root=root,
        class_names=class_names,
        labels=label_array,
        paths=paths,
    )


def _class_order(values: list[str]) -> list[str]:
    """Sorted class names; numerically when every label is an integer."""
    unique = set(values)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def _absent(path: Path) -> str:
    """A missing file as a message names it (links that lead nowhere say so)."""
    if path.is_symlink():
        return f"{path} (a symbolic link that leads nowhere: broken, or a loop)"
    return f"{path} (a folder)" if path.is_dir() else str(path)


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The manifest's columns and rows (names lower-cased, values stripped), checked for
    UTF-8, CSV syntax, the path and label columns and at least one row."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            rows = [
                {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                for row in reader
            ]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"manifest {csv_path} is not UTF-8 text (byte {exc.start}); expected {MANIFEST_LAYOUT}"
        ) from None
    except csv.Error as exc:
        raise DataError(f"manifest {csv_path} is not valid CSV ({exc})") from None
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DataError(
            f"manifest {csv_path} lacks column(s) {missing} (found {columns}); expected {MANIFEST_LAYOUT}"
        )
    if not rows:
        raise DataError(f"manifest {csv_path} has no rows; expected {MANIFEST_LAYOUT}")
    return columns, rows


def _manifest_files(
    csv_path: Path, columns: list[str], rows: list[dict[str, str]]
) -> tuple[list[Path], list[Path | None] | None]:
    """Image paths and mask paths (None without masks), relative ones taken from the CSV's
    folder; a DataError lists every file that is missing."""
    base = csv_path.parent

    def resolve(value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

    paths = [resolve(r["path"]) for r in rows]
    absent = [_absent(p) for p in paths if not p.is_file()]
    mask_paths: list[Path | None] | None = None
    if "mask" in columns:
        mask_paths = [resolve(r["mask"]) if r.get("mask") else None for r in rows]
        absent += [_absent(p) for p in mask_paths if p is not None and not p.is_file()]
        if all(p is None for p in mask_paths):
            mask_paths = None
    if absent:
        shown = "; ".join(absent[:20]) + (
            f"; and {len(absent) - 20} more" if len(absent) > 20 else ""
        )
        raise DataError(f"manifest {csv_path} names {len(absent)} missing file(s): {shown}")
    return paths, mask_paths


def _manifest_labels(csv_path: Path, rows: list[dict[str, str]]) -> tuple[list[str], np.ndarray]:
    """Class names (see :func:`_class_order`) and each row's label index; at least two classes."""
    label_text = [r["label"] for r in rows]
    if any(not v for v in label_text):
        raise DataError(f"manifest {csv_path} has rows with an empty label")
    class_names = _class_order(label_text)
    if len(class_names) < 2:
        raise DataError(
            f"manifest {csv_path} has only one class ({class_names}); need at least two"
        )
    index = {c: i for i, c in enumerate(class_names)}
    return class_names, np.asarray([index[v] for v in label_text], dtype=np.int64)


def _manifest_groups(
    csv_path: Path, columns: list[str], rows: list[dict[str, str]], paths: list[Path]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Patients (an image without one is its own group) and the predefined split, or None."""
    patients = None
    if "patient" in columns:
        values = [r.get("patient", "") for r in rows]
        if any(values):  # an image without a patient is its own group
            patients = np.asarray([v or f"<image {p}>" for v, p in zip(values, paths, strict=True)])
    predefined = None
    if "split" in columns:
        values = [r.get("split", "") for r in rows]
        if any(values):
            if not all(values):
                raise DataError(f"manifest {csv_path}: the split column is empty in some rows only")
            predefined = np.asarray([_SPLIT_ALIASES.get(v.lower(), v) for v in values])
    return patients, predefined


def read_manifest(csv_path: Path) -> DatasetSource:
    """Resolve a CSV manifest (path,label[,patient,split,mask]) into a source."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"manifest {csv_path} does not exist; expected {MANIFEST_LAYOUT}")
    columns, rows = _read_rows(csv_path)
    paths, mask_paths = _manifest_files(csv_path, columns, rows)
    class_names, labels = _manifest_labels(csv_path, rows)
    patients, predefined = _manifest_groups(csv_path, columns, rows, paths)
    base = csv_path.parent
    return DatasetSource(
        name=csv_path.stem,
        fingerprint=files_fingerprint(
            "manifest", base, paths, labels, class_names, patients, predefined, mask_paths
        ),
        layout=MANIFEST_LAYOUT,
        root=base,
        class_names=class_names,
        labels=labels,
        paths=paths,
        patients=patients,
        predefined=predefined,
        mask_paths=mask_paths,
    )
