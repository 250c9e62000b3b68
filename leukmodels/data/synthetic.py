"""Synthetic blood-smear single-cell images: the built-in dataset.

Each image is a bright-field smear seen through a microscope: plasma background (a slight
colour gradient and low-frequency unevenness), several red cells (pale pink discs with a
central pallor, overlapping one another, some cut by the border) and one stained white
cell in front: pale blue/lilac cytoplasm around a purple nucleus. Colours follow
Beer-Lambert absorption, ``rgb = light * exp(-sum(density * stain_od))``, so overlaps
darken the way stained cells do.

What depends on the class is the white cell's morphology (see :data:`MORPHOLOGIES`):

=============  =========  ==========  ======================  ===========  =========  ========
class          nucleus r  N:C radius  chromatin               nucleoli     outline    vacuoles
=============  =========  ==========  ======================  ===========  =========  ========
normal,        0.17-0.23  0.72-0.82   condensed: dark clumps  none         round      none
benign                                on a paler ground
all            0.18-0.24  0.80-0.90   fine, smooth            2-3, pale    40 % cleft none
early_pre_b    0.17-0.23  0.84-0.92   fine, smooth            0-1, small   round      none
pre_b          0.18-0.24  0.76-0.86   fine, smooth            1-2          cleft      none
pro_b          0.19-0.25  0.72-0.82   open, lacy (reticular)  2-3, large   lobulated  2-4
=============  =========  ==========  ======================  ===========  =========  ========

(nucleus radius as a fraction of the image side, before the patient's magnification and
the per-image scale, 0.75-1.29 together). The two-class set is ``["normal", "all"]``
(mature lymphocyte vs lymphoblast); the four-class set follows the Taleqani ALL data,
``["benign", "early_pre_b", "pre_b", "pro_b"]`` (benign = hematogone-like). Nucleoli are
pale round spots in a darker ring, placed apart and away from a cleft.

Colour and size alone do not give the class away: sizes overlap, stains vary per
patient, and each nucleus's texture is rescaled (per RGB channel, by Newton's method) so
that it lets through exactly as much light as a flat nucleus of the same stain. An 8x8
thumbnail, which averages light, then sees the same purple whatever the chromatin; the
cue is texture and shape, which a CNN sees at 64 px.

Every "patient" has one class (a patient is ALL or healthy) and one stain: a hue
rotation, saturation and intensity change of all stains plus a light tint and a
magnification, shared by all of that patient's images, the way smears from one slide
look alike. Position, rotation and scale of the white cell, blur and sensor noise vary
per image. Output is a function of the arguments alone: the same arguments give the
same bytes (for given numpy and OpenCV versions).

:func:`write_imagefolder` lays a set out on disk as ``out/<class>/<patient>_<index>.png``
with nucleus masks (0 = background, 255 = nucleus, 8-bit PNG) under
``out/_masks/<class>/`` and ``out/manifest.csv`` (``path,label,patient,mask``; relative
paths, ``label`` is the class name). Image-folder loaders ignore folders whose names
start with ``_`` or ``.``, so the masks never count as a class.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from leukmodels.errors import UserError

__all__ = [
    "CLASS_NAMES",
    "IMAGE_FORMATS",
    "DIFFICULTIES",
    "HARD_MORPHOLOGIES",
    "MORPHOLOGIES",
    "Morphology",
    "SyntheticSet",
    "generate",
    "write_imagefolder",
]

CLASS_NAMES: dict[int, list[str]] = {
    2: ["normal", "all"],
    4: ["benign", "early_pre_b", "pre_b", "pro_b"],
}
IMAGE_FORMATS = ("png", "jpg", "jpeg", "bmp", "tif", "tiff")
MIN_SIZE, MAX_SIZE = 16, 1024

Range = tuple[float, float]


@dataclass(frozen=True)
class Morphology:
    """Ranges (uniformly sampled per image) that describe one class's white cell."""

    nucleus_radius: Range  # nucleus radius as a fraction of the image side
    nc_ratio: Range  # nucleus radius / cell radius
    lobes: Range  # amplitude of the nucleus outline's 2nd-4th harmonics
    cleft_prob: float  # chance of a notch (cleft) in the nucleus
    cleft_depth: Range  # notch depth as a fraction of the nucleus radius
    clump: Range  # contrast of coarse chromatin blotches
    grain: Range  # contrast of fine chromatin grain
    reticular: Range  # contrast of a mid-scale open (lacy) chromatin net
    nucleoli: tuple[int, int]  # count, inclusive
    nucleolus_radius: Range  # fraction of the nucleus radius
    vacuoles: tuple[int, int]  # count of clear cytoplasmic vacuoles, inclusive
    nucleus_aspect: Range = (1.0, 1.12)  # long / short axis of the nucleus
    keep_area: bool = False  # widen an elongated nucleus so its area stays that of a disc
    nucleus_bend: Range = (0.0, 0.0)  # half-angle (radians) of the arc the long axis follows


_MATURE = Morphology(
    nucleus_radius=(0.17, 0.23),
    nc_ratio=(0.72, 0.82),
    lobes=(0.01, 0.04),
    cleft_prob=0.0,
    cleft_depth=(0.0, 0.0),
    clump=(1.0, 1.2),
    grain=(0.05, 0.10),
    reticular=(0.0, 0.0),
    nucleoli=(0, 0),
    nucleolus_radius=(0.0, 0.0),
    vacuoles=(0, 0),
)
_BLAST = Morphology(
    nucleus_radius=(0.18, 0.24),
    nc_ratio=(0.80, 0.90),
    lobes=(0.02, 0.07),
    cleft_prob=0.4,
    cleft_depth=(0.25, 0.45),
    clump=(0.0, 0.06),
    grain=(0.04, 0.08),
    reticular=(0.0, 0.0),
    nucleoli=(2, 3),
    nucleolus_radius=(0.21, 0.28),
    vacuoles=(0, 0),
)
MORPHOLOGIES: dict[str, Morphology] = {
    "normal": _MATURE,
    "all": _BLAST,
    "benign": _MATURE,
    "early_pre_b": Morphology(
        nucleus_radius=(0.17, 0.23),
        nc_ratio=(0.84, 0.92),
        lobes=(0.01, 0.03),
        cleft_prob=0.0,
        cleft_depth=(0.0, 0.0),
        clump=(0.0, 0.06),
        grain=(0.06, 0.12),
        reticular=(0.0, 0.0),
        nucleoli=(0, 1),
        nucleolus_radius=(0.10, 0.14),
        vacuoles=(0, 0),
    ),
    "pre_b": Morphology(
        nucleus_radius=(0.18, 0.24),
        nc_ratio=(0.76, 0.86),
        lobes=(0.02, 0.06),
        cleft_prob=1.0,
        cleft_depth=(0.40, 0.60),
        clump=(0.0, 0.06),
        grain=(0.06, 0.12),
        reticular=(0.0, 0.0),
        nucleoli=(1, 2),
        nucleolus_radius=(0.15, 0.20),
        vacuoles=(0, 0),
    ),
    "pro_b": Morphology(
        nucleus_radius=(0.19, 0.25),
        nc_ratio=(0.72, 0.82),
        lobes=(0.06, 0.12),
        cleft_prob=0.0,
        cleft_depth=(0.0, 0.0),
        clump=(0.0, 0.06),
        grain=(0.06, 0.12),
        reticular=(0.25, 0.40),
        nucleoli=(2, 3),
        nucleolus_radius=(0.20, 0.27),
        vacuoles=(2, 4),
    ),
}

_HARD_TEXTURE = Morphology(
    keep_area=True,
    nucleus_radius=(0.17, 0.24),
    nc_ratio=(0.55, 0.62),
    lobes=(0.01, 0.04),
    cleft_prob=0.0,
    cleft_depth=(0.0, 0.0),
    clump=(0.0, 1.2),
    grain=(0.04, 0.10),
    reticular=(0.0, 0.0),
    nucleoli=(0, 3),
    nucleolus_radius=(0.15, 0.28),
    vacuoles=(0, 0),
)
_HARD_ROD = replace(_HARD_TEXTURE, nucleus_aspect=(2.2, 2.6))
HARD_MORPHOLOGIES: dict[str, Morphology] = {
    "normal": _HARD_ROD,
    "all": replace(_HARD_ROD, nucleus_bend=(1.4, 1.8)),
    "benign": _HARD_TEXTURE,
    "early_pre_b": replace(_HARD_TEXTURE, nucleus_aspect=(1.6, 1.9)),
    "pre_b": replace(_HARD_TEXTURE, cleft_prob=1.0, cleft_depth=(0.45, 0.60)),
    "pro_b": replace(_HARD_TEXTURE, lobes=(0.10, 0.16)),
}
"""``difficulty="hard"``: every class has the same nucleus area, N:C ratio, chromatin
texture, nucleoli and vacuoles (drawn from one range); only the nucleus outline tells
them apart. Two classes: the same long, thin nucleus (long/short axis 2.2-2.6), straight
(a rod) or bent into an arc (kidney / band shape) of the same area, thickness and ends,
so local statistics (grey histogram, LBP, GLCM) see almost no class, while the shape at
the scale of the whole nucleus differs. Four classes: round, elongated, cleft, lobulated.
``bench/synthetic_hardness.py`` measures both."""
DIFFICULTIES = {"standard": MORPHOLOGIES, "hard": HARD_MORPHOLOGIES}


@dataclass
class SyntheticSet:
    """Generated images with their labels, patients and nucleus masks."""

    images: np.ndarray  # uint8 (N, H, W, 3) RGB
    labels: np.ndarray  # int64 (N,), indices into class_names
    patients: np.ndarray  # str (N,), e.g. "p017"; each patient has a single class
    masks: np.ndarray  # uint8 (N, H, W), 1 = nucleus
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


# --- stains: optical density per unit density, from the RGB of a density-1 layer -------
def _od(rgb: tuple[int, int, int]) -> np.ndarray:
    return -np.log(np.asarray(rgb, dtype=np.float64) / 255.0)


_STAINS = np.stack(
    [
        _od((118, 62, 150)),  # nucleus: purple
        _od((188, 190, 226)),  # cytoplasm: pale blue/lilac
        _od((226, 168, 172)),  # red cell: pale pink
        _od((240, 232, 234)),  # plasma
    ]
)  # (4, 3)
_NUC, _CYT, _RBC, _PLASMA = range(4)
_MAX_RBC = 10
_MAX_NUCLEOLI = 3  # placed 120 degrees apart
_MAX_VACUOLES = 4
_LOBE_HARMONICS = (2, 3, 4)


def _check(n: int, classes: int, size: int, patients: int) -> None:
    if classes not in CLASS_NAMES:
        raise UserError(
            f"synthetic data has 2 or 4 classes, not {classes!r} "
            f"(2: {CLASS_NAMES[2]}, 4: {CLASS_NAMES[4]})"
        )
    if n < 1:
        raise UserError(f"synthetic data needs at least one image (n={n})")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"synthetic image size must be {MIN_SIZE}..{MAX_SIZE} px, not {size}")
    if patients < classes:
        raise UserError(
            f"synthetic data needs at least one patient per class: "
            f"patients={patients} < classes={classes}"
        )


def _assign(
    n: int, classes: int, patients: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels and patient indices, one class per patient, in shuffled order."""
    patient_class = rng.permutation(np.arange(patients) % classes)
    labels, owners = [], []
    for c in range(classes):
        n_c = n // classes + (c < n % classes)
        mine = rng.permutation(np.flatnonzero(patient_class == c))
        labels.append(np.full(n_c, c))
        owners.append(mine[np.arange(n_c) % len(mine)])
    order = rng.permutation(n)
    return np.concatenate(labels)[order].astype(np.int64), np.concatenate(owners)[order]


def _hue_rotation(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (P, 3, 3) about the grey axis: a hue shift in OD space."""
    k = np.full(3, 1 / np.sqrt(3))
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return c * np.eye(3) + s * kx + (1 - c) * np.outer(k, k)


def _patient_stains(patients: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-patient stain ODs (P, 4, 3), light (P, 3) and magnification (P,)."""
    rot = _hue_rotation(rng.uniform(-0.30, 0.30, patients))
    od = np.einsum("pij,sj->psi", rot, _STAINS)
    grey = od.mean(axis=2, keepdims=True)
    saturation = rng.uniform(0.70, 1.30, (patients, 1, 1))
    od = np.clip(grey + saturation * (od - grey), 0.01, None)
    od *= rng.uniform(0.75, 1.25, (patients, 1, 1))  # stain intensity
    od[:, _NUC] *= rng.uniform(0.85, 1.15, (patients, 1))  # nuclear stain separately
    light = rng.uniform(0.90, 1.04, (patients, 1)) * rng.uniform(0.96, 1.04, (patients, 3))
    return {"od": od, "light": light, "mag": rng.uniform(0.85, 1.15, patients)}


def _uniform(
    rng: np.random.Generator, ranges: np.ndarray, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """Per-image uniform draws between ranges[:, 0] and ranges[:, 1] (extra trailing dims)."""
    lo, hi = ranges[:, 0], ranges[:, 1]
    u = rng.random((len(ranges), *shape))
    return lo.reshape(-1, *[1] * len(shape)) + u * (hi - lo).reshape(-1, *[1] * len(shape))


def _field(morph: list[Morphology], field: str) -> np.ndarray:
    """One Morphology field per image, float64 (n, k): a range's bounds, or a scalar."""
    return np.array([getattr(m, field) for m in morph], dtype=np.float64).reshape(len(morph), -1)


def _count(rng: np.random.Generator, morph: list[Morphology], field: str, most: int) -> np.ndarray:
    """(n, most) flags: the first k of `most` objects are on, k drawn from the field's range."""
    lo_hi = _field(morph, field).astype(np.int64)
    k = rng.integers(lo_hi[:, 0], lo_hi[:, 1] + 1)
    return np.arange(most)[None, :] < k[:, None]


def _sample(
    labels: np.ndarray,
    owners: np.ndarray,
    names: list[str],
    stains: dict[str, np.ndarray],
    rng: np.random.Generator,
    morphologies: dict[str, Morphology] = MORPHOLOGIES,
) -> dict[str, np.ndarray]:
    """All per-image geometry and colour parameters, in units of the image side.

    The draws happen in a fixed order (the helpers below, one after the other), so a seed
    always gives the same parameters.
    """
    n = len(labels)
    morph = [morphologies[names[c]] for c in labels]
    mag = stains["mag"][owners] * rng.uniform(0.88, 1.12, n)
    p: dict[str, np.ndarray] = {}
    p["od"] = stains["od"][owners] * rng.uniform(0.95, 1.05, (n, 1, 1))
    p["light"] = stains["light"][owners] * rng.uniform(0.97, 1.03, (n, 1))
    _sample_white_cell(p, morph, mag, rng)
    _sample_nucleus_outline(p, morph, rng)
    _sample_chromatin(p, morph, rng)
    _fit_nucleoli(p, _field(morph, "keep_area")[:, 0] > 0)
    _sample_cytoplasm(p, morph, rng)
    _sample_red_cells(p, mag, rng)
    # background and imaging
    p["grad_x"], p["grad_y"] = rng.normal(0, 0.04, (2, n))
    p["blur"] = rng.uniform(0.25, 0.55, n)
    p["noise"] = rng.uniform(1.5, 5.0, n)
    return p


def _sample_white_cell(
    p: dict[str, np.ndarray], morph: list[Morphology], mag: np.ndarray, rng: np.random.Generator
) -> None:
    """The white cell's size, place, orientation and outline, and its nucleus's place."""
    n = len(morph)
    nc = _uniform(rng, _field(morph, "nc_ratio"))
    p["nuc_r"] = _uniform(rng, _field(morph, "nucleus_radius")) * mag
    p["cell_r"] = p["nuc_r"] / nc
    p["cell_x"], p["cell_y"] = 0.5 + rng.uniform(-0.12, 0.12, (2, n))
    p["cell_angle"] = rng.uniform(0, 2 * np.pi, n)
    p["cell_aspect"] = rng.uniform(1.0, 1.15, n)
    p["cell_lobes"] = rng.normal(0, 0.02, (n, len(_LOBE_HARMONICS), 2))
    shift = (p["cell_r"] - p["nuc_r"]) * rng.uniform(0.0, 0.8, n)
    theta = rng.uniform(0, 2 * np.pi, n)
    p["nuc_x"] = p["cell_x"] + shift * np.cos(theta)
    p["nuc_y"] = p["cell_y"] + shift * np.sin(theta)
    p["nuc_angle"] = rng.uniform(0, 2 * np.pi, n)
    p["nuc_aspect"] = _uniform(rng, _field(morph, "nucleus_aspect"))
    bend = _field(morph, "nucleus_bend")
    p["nuc_bend"] = _uniform(rng, bend) if bend.any() else np.zeros(n)  # standard: no draw
    _keep_area(p, _field(morph, "keep_area")[:, 0] > 0)


def _sample_nucleus_outline(
    p: dict[str, np.ndarray], morph: list[Morphology], rng: np.random.Generator
) -> None:
    """The nucleus outline: harmonic lobes and an optional cleft."""
    n = len(morph)
    lobes = _uniform(rng, _field(morph, "lobes"))
    phase = rng.uniform(0, 2 * np.pi, (n, len(_LOBE_HARMONICS)))
    weight = rng.uniform(0.3, 1.0, (n, len(_LOBE_HARMONICS)))
    p["nuc_lobes"] = (lobes[:, None] * weight)[..., None] * np.stack(
        [np.cos(phase), np.sin(phase)], -1
    )
    cleft = rng.random(n) < _field(morph, "cleft_prob")[:, 0]
    p["cleft_depth"] = _uniform(rng, _field(morph, "cleft_depth")) * cleft
    p["cleft_dir"] = rng.uniform(0, 2 * np.pi, n)
    p["cleft_kappa"] = rng.uniform(12, 30, n)


def _sample_chromatin(
    p: dict[str, np.ndarray], morph: list[Morphology], rng: np.random.Generator
) -> None:
    """Chromatin: mean density (texture is rescaled to it), texture contrasts, nucleoli."""
    n = len(morph)
    p["nuc_density"] = rng.uniform(0.8, 1.2, n)
    p["clump"] = _uniform(rng, _field(morph, "clump"))
    p["grain"] = _uniform(rng, _field(morph, "grain"))
    p["reticular"] = _uniform(rng, _field(morph, "reticular"))
    # nucleoli, in nucleus-radius units relative to its centre
    p["nucleoli_on"] = _count(rng, morph, "nucleoli", _MAX_NUCLEOLI)
    p["nucleoli_r"] = _uniform(rng, _field(morph, "nucleolus_radius"), (_MAX_NUCLEOLI,))
    # spread 120 degrees apart and facing away from the cleft, so each one shows
    rad = rng.uniform(0.3, 0.5, (n, _MAX_NUCLEOLI))
    away = p["nuc_angle"] + p["cleft_dir"] + np.pi + rng.uniform(-0.5, 0.5, n)
    ang = away[:, None] + 2 * np.pi / 3 * np.array([0, 1, -1]) + rng.normal(0, 0.2, (n, 3))
    p["nucleoli_xy"] = rad[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)


def _sample_cytoplasm(
    p: dict[str, np.ndarray], morph: list[Morphology], rng: np.random.Generator
) -> None:
    """Cytoplasm vacuoles (in cell-radius units relative to the cell centre) and density."""
    n = len(morph)
    p["vacuoles_on"] = _count(rng, morph, "vacuoles", _MAX_VACUOLES)
    rad = rng.uniform(0.55, 0.9, (n, _MAX_VACUOLES))
    ang = rng.uniform(0, 2 * np.pi, (n, _MAX_VACUOLES))
    p["vacuoles_xy"] = rad[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)
    p["vacuoles_r"] = rng.uniform(0.07, 0.11, (n, _MAX_VACUOLES))
    p["cyt_density"] = rng.uniform(0.8, 1.2, n)


def _sample_red_cells(p: dict[str, np.ndarray], mag: np.ndarray, rng: np.random.Generator) -> None:
    """Red cells around the white cell, some cut by the border."""
    n = len(mag)
    p["rbc_on"] = np.arange(_MAX_RBC)[None, :] < rng.integers(4, _MAX_RBC + 1, n)[:, None]
    p["rbc_r"] = (0.12 * mag)[:, None] * rng.uniform(0.90, 1.10, (n, _MAX_RBC))
    dist = p["cell_r"][:, None] * rng.uniform(0.6, 1.2, (n, _MAX_RBC)) + p["rbc_r"] * rng.uniform(
        0.6, 2.6, (n, _MAX_RBC)
    )
    ang = rng.uniform(0, 2 * np.pi, (n, _MAX_RBC))
    p["rbc_x"] = p["cell_x"][:, None] + dist * np.cos(ang)
    p["rbc_y"] = p["cell_y"][:, None] + dist * np.sin(ang)
    p["rbc_aspect"] = rng.uniform(1.0, 1.15, (n, _MAX_RBC))
    p["rbc_angle"] = rng.uniform(0, 2 * np.pi, (n, _MAX_RBC))
    p["rbc_pallor"] = rng.uniform(0.45, 0.7, (n, _MAX_RBC))
    p["rbc_density"] = rng.uniform(0.8, 1.1, (n, _MAX_RBC))


def _keep_area(p: dict[str, np.ndarray], keep: np.ndarray) -> None:
    """Where `keep`: widen an elongated nucleus to the area of a disc of its radius, and
    move it towards the cell's centre until it fits inside the cell."""
    if not keep.any():
        return
    p["nuc_r"] = np.where(keep, p["nuc_r"] * np.sqrt(p["nuc_aspect"]), p["nuc_r"])
    dx, dy = p["nuc_x"] - p["cell_x"], p["nuc_y"] - p["cell_y"]
    room = np.maximum(0.92 * p["cell_r"] - p["nuc_r"], 0.0)
    scale = np.where(keep, np.minimum(1.0, room / np.maximum(np.hypot(dx, dy), 1e-9)), 1.0)
    p["nuc_x"], p["nuc_y"] = p["cell_x"] + dx * scale, p["cell_y"] + dy * scale


def _fit_nucleoli(p: dict[str, np.ndarray], keep: np.ndarray) -> None:
    """Where `keep`: nucleoli the size they have in a disc of the same area, placed in the
    elongated nucleus's own frame (squeezed along its short axis), so that they neither
    grow with the elongation nor stick out of the nucleus (no texture cue to the class)."""
    if not keep.any():
        return
    aspect, angle = p["nuc_aspect"][:, None], p["nuc_angle"][:, None]
    c, s = np.cos(angle), np.sin(angle)
    x, y = p["nucleoli_xy"][..., 0], p["nucleoli_xy"][..., 1]
    along, across = c * x + s * y, (c * y - s * x) / aspect
    along, across = _bend_points(along, across, p["nuc_bend"][:, None])
    fitted = np.stack([c * along - s * across, s * along + c * across], -1)
    p["nucleoli_xy"] = np.where(keep[:, None, None], fitted, p["nucleoli_xy"])
    p["nucleoli_r"] = np.where(keep[:, None], p["nucleoli_r"] / np.sqrt(aspect), p["nucleoli_r"])


# --- rendering ---------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, b: int, size: int, cells: int) -> np.ndarray:
    """(b, size, size) float32 noise with features about size/cells px, unit std per image."""
    cells = max(2, min(cells, size))
    grid = rng.standard_normal((cells, cells, b), dtype=np.float32)
    out = np.empty((b, size, size), np.float32)
    for i in range(0, b, 128):  # OpenCV takes at most 128 channels
        part = cv2.resize(grid[..., i : i + 128], (size, size), interpolation=cv2.INTER_CUBIC)
        out[i : i + 128] = np.moveaxis(part.reshape(size, size, -1), -1, 0)
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-6
    return out


def _col(a: np.ndarray, dims: int = 2) -> np.ndarray:
    """Per-image (or per-object) values as float32 with `dims` trailing axes for broadcasting."""
    return np.asarray(a, dtype=np.float32).reshape(np.shape(a) + (1,) * dims)


def _frame(
    x: np.ndarray,
    y: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    angle: np.ndarray,
    aspect: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) in a frame centred at (cx, cy), rotated and stretched along v.

    `x` is a row (1, W) and `y` a column (H, 1) of pixel centres, so the per-object parts
    stay small and only the final sums are full-size arrays.
    """
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = c * dx + s * dy
    v = (aspect * c) * dy - (aspect * s) * dx
    return u, v


def _bend(
    u: np.ndarray, v: np.ndarray, aspect: np.ndarray, phi: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frame coordinates (u, v) of :func:`_frame` for a nucleus bent into an arc.

    The long axis (length 2 `radius` px) follows a circular arc of half-angle `phi`
    (radians) whose centroid is the nucleus centre; u is the arc length along it, v the
    (stretched) distance from it, so a disc in (u, v) becomes a banana of the same area
    and thickness. Where phi = 0, (u, v) are returned unchanged.
    """
    bent = phi > 0
    p = np.where(bent, phi, 1.0)
    k = p / radius  # curvature, 1/px
    w = v / aspect - np.sin(p) / (p * k)  # from the centre of curvature
    along = np.arctan2(u, -w) / k
    across = (1 / k - np.hypot(u, w)) * aspect
    return np.where(bent, along, u), np.where(bent, across, v)


def _bend_points(
    along: np.ndarray, across: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points (along, across) of a straight nucleus frame, in long-radius units, moved onto
    the arc of :func:`_bend` (the inverse of its mapping); unchanged where phi = 0."""
    bent = phi > 0
    p = np.where(bent, phi, 1.0)
    theta, dist = along * p, 1 / p - across
    x, y = dist * np.sin(theta), np.sin(p) / p**2 - dist * np.cos(theta)
    return np.where(bent, x, along), np.where(bent, y, across)


def _outline(u: np.ndarray, v: np.ndarray, rho: np.ndarray, lobes: np.ndarray) -> np.ndarray:
    """Radius factor 1 + sum_k a_k cos(k t) + b_k sin(k t), harmonics 2..4, lobes (b, 3, 2)."""
    inv = 1.0 / np.maximum(rho, 1e-3)
    c1, s1 = u * inv, v * inv
    c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
    c3, s3 = c2 * c1 - s2 * s1, s2 * c1 + c2 * s1
    c4, s4 = c2 * c2 - s2 * s2, 2 * c2 * s2
    lobes = _col(lobes)
    r = 1 + lobes[:, 0, 0] * c2 + lobes[:, 0, 1] * s2
    r += lobes[:, 1, 0] * c3 + lobes[:, 1, 1] * s3
    r += lobes[:, 2, 0] * c4 + lobes[:, 2, 1] * s4
    return r


def _disc(rho: np.ndarray, radius: np.ndarray, edge: float | np.ndarray = 1.0) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a disc of `radius` px, edge about `edge` px wide."""
    a = (radius - rho) / edge + 0.5
    return np.minimum(np.maximum(a, 0.0, out=a), 1.0, out=a)


def _red_cells(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Summed red-cell density (b, H, W): discs with a central pallor and a darker rim.

    Each cell is drawn in a small window around its centre and added into the canvas,
    which costs about a tenth of drawing every cell over the whole image.
    """
    s, on = float(size), p["rbc_on"]
    b, k = len(on), max(1, int(on.sum(axis=1).max()))  # drawn cells come first
    r = p["rbc_r"][:, :k] * s
    half = int(np.ceil(r.max() + 1.5))
    w = 2 * half + 1
    cx, cy = p["rbc_x"][:, :k] * s, p["rbc_y"][:, :k] * s
    # window corners; a window wholly outside the image is parked in the margin
    x0 = np.clip(np.floor(cx).astype(np.int64) - half, -w, size)
    y0 = np.clip(np.floor(cy).astype(np.int64) - half, -w, size)
    px = x0[..., None] + np.arange(w)  # (b, k, w)
    py = y0[..., None] + np.arange(w)
    x = (px + 0.5).astype(np.float32)[:, :, None, :]
    y = (py + 0.5).astype(np.float32)[:, :, :, None]
    u, v = _frame(
        x, y, _col(cx), _col(cy), _col(p["rbc_angle"][:, :k]), _col(p["rbc_aspect"][:, :k])
    )
    rho = np.sqrt(u * u + v * v)
    t = rho / _col(r)
    shade = 1 - _col(p["rbc_pallor"][:, :k]) * np.exp(-4.0 * t * t)
    shade += 0.25 * np.exp(-(((t - 0.85) / 0.12) ** 2))
    dens = _disc(rho, _col(r)) * shade * _col(p["rbc_density"][:, :k] * on[:, :k])
    side = size + 2 * w  # canvas with a margin of one window on each side
    flat = (np.arange(b)[:, None, None, None] * side + py[..., :, None] + w) * side
    flat = flat + px[..., None, :] + w
    canvas = np.bincount(flat.ravel(), weights=dens.ravel(), minlength=b * side * side)
    canvas = canvas.reshape(b, side, side)[:, w : w + size, w : w + size]
    return canvas.astype(np.float32)


def _spots(
    x: np.ndarray,
    y: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    scale: np.ndarray,
    xy: np.ndarray,
    r: np.ndarray,
    on: np.ndarray,
    grow: float = 1.0,
) -> np.ndarray:
    """Union (max) of soft round spots at cx + xy * scale, radius r * scale * grow, (b, H, W)."""
    out = np.zeros((len(cx), y.shape[0], x.shape[1]), np.float32)
    for k in range(xy.shape[1]):
        if not on[:, k].any():
            continue
        rad = _col(r[:, k]) * scale * grow
        d = np.hypot(x - (cx + _col(xy[:, k, 0]) * scale), y - (cy + _col(xy[:, k, 1]) * scale))
        np.maximum(out, _disc(d, rad, np.maximum(1.0, 0.3 * rad)) * _col(on[:, k]), out=out)
    return out


def _flat_equivalent(
    texture: np.ndarray, weight: np.ndarray, od: np.ndarray, steps: int = 4
) -> np.ndarray:
    """Factors a (b, 3) with mean(exp(-od * a * texture)) = exp(-od) over `weight`.

    `texture` and `weight` are (b, H, W), `od` (b, 3) per RGB channel. A textured
    nucleus then lets through as much light, channel by channel, as a flat one of the
    same stain, so a thumbnail (which averages light) cannot tell clumped from smooth.
    Only pixels with weight > 0 take part; sums per image are bincounts.
    """
    b = len(od)
    inside = weight > 0
    image = np.nonzero(inside)[0]
    t, w = texture[inside][:, None], weight[inside][:, None]

    def per_image(v: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(image, v[:, c], minlength=b) for c in range(3)], 1)

    total = np.bincount(image, w[:, 0], minlength=b)[:, None] + 1e-6
    target = np.exp(-od.astype(np.float64))
    a = np.ones_like(od)
    for _ in range(steps):  # Newton's method; the mean is convex and decreasing in a
        light = np.exp(-(od * a)[image] * t) * w
        value = per_image(light) / total - target
        slope = -per_image(light * t) * od / total
        a = a - value / np.minimum(slope, -1e-9)
    return a


def _render(
    p: dict[str, np.ndarray], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Images (b, H, W, 3) uint8 and nucleus masks (b, H, W) uint8 for one chunk.

    The random draws happen in a fixed order: chromatin, plasma, then sensor noise.
    """
    s = float(size)
    centres = np.arange(size, dtype=np.float32) + 0.5
    x, y = centres[None, :], centres[:, None]
    cell, nucleus = _white_cell(p, x, y, s)
    fine, chrom = _chromatin(p, x, y, s, rng)
    # cytoplasm: faint grain and clear vacuoles
    on, xy, r = p["vacuoles_on"], p["vacuoles_xy"], p["vacuoles_r"]
    cx, cy = _col(p["cell_x"]) * s, _col(p["cell_y"]) * s
    vacuoles = _spots(x, y, cx, cy, _col(p["cell_r"]) * s, xy, r, on)
    cytoplasm = _col(p["cyt_density"]) * (1 + 0.06 * fine[:, ::-1]) * (1 - 0.8 * vacuoles)
    # background: plasma with a gradient and low-frequency unevenness
    plasma = 1 + _col(p["grad_x"]) * (x / s - 0.5) * 4 + _col(p["grad_y"]) * (y / s - 0.5) * 4
    plasma = plasma + 0.15 * _smooth_noise(rng, len(p["cell_r"]), size, 4)
    absorb = _absorbance(p, size, cell, nucleus, chrom, cytoplasm, plasma)
    return _imaging(p, absorb, s, rng), (nucleus >= 0.5).astype(np.uint8)


def _white_cell(
    p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (b, H, W) of the white cell's body and of its nucleus.

    The nucleus outline has lobes and an optional cleft (a notch pointing at the centre).
    """
    f = lambda key: _col(p[key])  # noqa: E731  per-image scalar -> (b, 1, 1)
    cx, cy = f("cell_x") * s, f("cell_y") * s
    u, v = _frame(x, y, cx, cy, f("cell_angle"), f("cell_aspect"))
    rho = np.sqrt(u * u + v * v)
    cell = _disc(rho, f("cell_r") * s * _outline(u, v, rho, p["cell_lobes"]))
    nx, ny, nuc_r = f("nuc_x") * s, f("nuc_y") * s, f("nuc_r") * s
    u, v = _frame(x, y, nx, ny, f("nuc_angle"), f("nuc_aspect"))
    if p["nuc_bend"].any():
        u, v = _bend(u, v, f("nuc_aspect"), f("nuc_bend"), nuc_r)
    rho = np.sqrt(u * u + v * v)
    shape = _outline(u, v, rho, p["nuc_lobes"])
    towards = (u * _col(np.cos(p["cleft_dir"])) + v * _col(np.sin(p["cleft_dir"]))) / np.maximum(
        rho, 1e-3
    )
    shape -= f("cleft_depth") * np.exp(f("cleft_kappa") * (towards - 1))
    nucleus = _disc(rho, nuc_r * shape) * np.clip(cell, 0.5, 1.0)
    return cell, nucleus


def _chromatin(
    p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fine grain noise (b, H, W) and the chromatin density factor (b, H, W).

    Chromatin is dark blotches (clumped), lace (reticular) and grain (fine); nucleoli are
    pale round spots, each in a darker ring of chromatin.
    """
    f = lambda key: _col(p[key])  # noqa: E731  per-image scalar -> (b, 1, 1)
    b, size = len(p["cell_r"]), x.shape[1]
    fine = _smooth_noise(rng, b, size, 40)
    blotches = np.maximum(np.tanh(2.5 * _smooth_noise(rng, b, size, 16) - 0.2), 0.0)
    chrom = 1 + 2 * f("clump") * blotches + f("grain") * fine
    chrom += f("reticular") * (np.abs(_smooth_noise(rng, b, size, 28)) - 0.8)
    np.maximum(chrom, 0.05, out=chrom)
    nx, ny, nuc_r = f("nuc_x") * s, f("nuc_y") * s, f("nuc_r") * s
    on, xy, r = p["nucleoli_on"], p["nucleoli_xy"], p["nucleoli_r"]
    spots = _spots(x, y, nx, ny, nuc_r, xy, r, on)
    rings = _spots(x, y, nx, ny, nuc_r, xy, r, on, grow=1.5) - spots
    chrom *= (1 - 0.75 * spots) * (1 + 0.4 * rings)
    return fine, chrom


def _absorbance(
    p: dict[str, np.ndarray],
    size: int,
    cell: np.ndarray,
    nucleus: np.ndarray,
    chrom: np.ndarray,
    cytoplasm: np.ndarray,
    plasma: np.ndarray,
) -> np.ndarray:
    """Beer-Lambert optical density (b, H, W, 3); the white cell lies on top of the red cells."""
    rbc = _red_cells(p, size)
    rbc *= 1 - 0.9 * cell
    od = p["od"].astype(np.float32)[:, None, None]  # (b, 1, 1, layer, rgb)
    absorb = (cell * (1 - nucleus) * cytoplasm)[..., None] * od[..., _CYT, :]
    absorb += rbc[..., None] * od[..., _RBC, :]
    absorb += plasma[..., None] * od[..., _PLASMA, :]
    nuc_od = (p["od"][:, _NUC] * p["nuc_density"][:, None]).astype(np.float32)  # (b, 3)
    nuc_od = (nuc_od * _flat_equivalent(chrom, nucleus, nuc_od)).astype(np.float32)
    absorb += (nucleus * chrom)[..., None] * nuc_od[:, None, None]
    return absorb


def _imaging(
    p: dict[str, np.ndarray], absorb: np.ndarray, s: float, rng: np.random.Generator
) -> np.ndarray:
    """Light through `absorb` (consumed), then optical blur and sensor noise: uint8 RGB."""
    img = np.exp(-absorb, out=absorb)
    img *= (p["light"].astype(np.float32) * 255.0)[:, None, None, :]
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= _col(p["noise"], 3)
    out = np.empty(img.shape, np.uint8)
    for i, sigma in enumerate(p["blur"] * s / 64.0):
        blurred = cv2.GaussianBlur(img[i], (0, 0), float(sigma))
        blurred += noise[i]
        np.clip(blurred, 0, 255, out=blurred)
        out[i] = np.rint(blurred)
    return out


def _chunk(size: int) -> int:
    """Images rendered at once: about half a million pixels, at most 128 (OpenCV channels)."""
    return max(1, min(128, (1 << 19) // (size * size)))


def generate(
    n: int,
    classes: int = 2,
    size: int = 64,
    seed: int = 0,
    patients: int = 40,
    difficulty: str = "standard",
) -> SyntheticSet:
    """Generate `n` balanced single-cell smear images of `size` px with nucleus masks.

    `classes` is 2 (``normal``, ``all``) or 4 (``benign``, ``early_pre_b``, ``pre_b``,
    ``pro_b``); `patients` are spread evenly over the classes, each with one class and
    one stain. `difficulty` picks the class morphologies: ``standard``
    (:data:`MORPHOLOGIES`: texture and shape) or ``hard`` (:data:`HARD_MORPHOLOGIES`:
    shape only). Deterministic: the same arguments give identical arrays.
    """
    n, classes, size, patients = int(n), int(classes), int(size), int(patients)
    _check(n, classes, size, patients)
    if difficulty not in DIFFICULTIES:
        raise UserError(
            f"synthetic difficulty must be one of {list(DIFFICULTIES)}, not {difficulty!r}"
        )
    names = list(CLASS_NAMES[classes])
    root = np.random.SeedSequence([int(seed), n, classes, size, patients])
    param_seq, *chunk_seqs = root.spawn(1 + -(-n // _chunk(size)))
    rng = np.random.default_rng(param_seq)
    labels, owners = _assign(n, classes, patients, rng)
    stains = _patient_stains(patients, rng)
    params = _sample(labels, owners, names, stains, rng, DIFFICULTIES[difficulty])

    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    step = _chunk(size)
    for j, start in enumerate(range(0, n, step)):
        part = {k: v[start : start + step] for k, v in params.items()}
        stop = start + len(part["cell_r"])
        images[start:stop], masks[start:stop] = _render(
            part, size, np.random.default_rng(chunk_seqs[j])
        )
    width = max(3, len(str(patients - 1)))
    ids = np.array([f"p{i:0{width}d}" for i in range(patients)])
    return SyntheticSet(images, labels, ids[owners], masks, names)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    ok, buf = cv2.imencode(f".{fmt}", image)
    if not ok:  # pragma: no cover - OpenCV failure, not user input
        raise RuntimeError(f"OpenCV could not encode a .{fmt} image")
    return buf.tobytes()


def write_imagefolder(
    out: Path,
    n: int,
    classes: int = 2,
    size: int = 64,
    seed: int = 0,
    patients: int = 40,
    fmt: str = "png",
    difficulty: str = "standard",
) -> Path:
    """Write a generated set as an image folder under `out` and return `out`.

    Layout: ``<class>/<patient>_<index>.<fmt>``, masks as 8-bit PNG (255 = nucleus) at
    ``_masks/<class>/<patient>_<index>.png``, and ``manifest.csv`` with columns
    ``path,label,patient,mask`` (paths relative to `out`, label = class name). Loaders
    skip folders starting with ``_`` or ``.``. `out` must be missing or empty; the set is
    written to a temporary sibling and moved into place, so a reader never sees half of it.
    """
    out = Path(out)
    fmt = fmt.lower().lstrip(".")
    if fmt not in IMAGE_FORMATS:
        raise UserError(f"unknown image format {fmt!r}; choose one of {list(IMAGE_FORMATS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; choose a new folder")
    data = generate(
        n, classes=classes, size=size, seed=seed, patients=patients, difficulty=difficulty
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = []
        width = len(str(n - 1))
        for i, (image, mask, label, patient) in enumerate(
            zip(data.images, data.masks, data.labels, data.patients, strict=True)
        ):
            name = data.class_names[label]
            stem = f"{patient}_{i:0{width}d}"
            path, mask_path = f"{name}/{stem}.{fmt}", f"_masks/{name}/{stem}.png"
            for rel, blob in (
                (path, _encode(image[..., ::-1], fmt)),
                (mask_path, _encode(mask * np.uint8(255), "png")),
            ):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(blob)
            rows.append((path, name, str(patient), mask_path))
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "patient", "mask"])
            writer.writerows(rows)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
