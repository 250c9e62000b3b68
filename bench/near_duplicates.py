"""How well does the leakage guard's near-duplicate finder work, and what does it cost?

Originals: synthetic cells (``generate``, 2 classes, standard and hard difficulty).
Copies: each of the first ``--copies`` originals under each augmentation below. Measured:

- recall per augmentation: the share of copies linked to their original;
- false positives: pairs of *different* originals linked (over all n(n-1)/2 pairs);
- cost: signature per image (ms) and the all-pairs search per 1000 images (s).

Usage: python bench/near_duplicates.py [--n 1000] [--size 64] [--copies 200]
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from leukmodels.data.leakage import BITS, NEAR_BITS, near_pairs, signature
from leukmodels.data.synthetic import generate


def _affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    size = image.shape[1], image.shape[0]
    return cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)


def augmentations(size: int) -> dict[str, object]:
    """name -> function(image) of the copies a dataset ships."""

    def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]

    centre = (size / 2, size / 2)
    return {
        "flip": lambda im: im[:, ::-1],
        "rot90": lambda im: np.rot90(im),
        "rot180+flip": lambda im: np.rot90(im, 2)[::-1],
        "brightness +25": lambda im: np.clip(im.astype(int) + 25, 0, 255).astype(np.uint8),
        "contrast x1.2": lambda im: np.clip((im.astype(float) - 128) * 1.2 + 128, 0, 255).astype(
            np.uint8
        ),
        "jpeg q60": lambda im: jpeg(im, 60),
        "flip+bright+jpeg": lambda im: jpeg(
            np.clip(im[:, ::-1].astype(int) + 20, 0, 255).astype(np.uint8), 75
        ),
        "rotate 10 deg": lambda im: _affine(im, cv2.getRotationMatrix2D(centre, 10, 1.0)),
        "shift 5 %": lambda im: _affine(im, np.float32([[1, 0, size * 0.05], [0, 1, 0]])),
        "zoom 1.1": lambda im: _affine(im, cv2.getRotationMatrix2D(centre, 0, 1.1)),
    }


def measure(n: int, size: int, copies: int, difficulty: str) -> None:
    data = generate(n, classes=2, size=size, seed=7, patients=40, difficulty=difficulty)
    start = time.perf_counter()
    sigs = np.stack([signature(im) for im in data.images])
    per_image_ms = (time.perf_counter() - start) / n * 1000
    start = time.perf_counter()
    pairs = near_pairs(sigs)
    search_s = time.perf_counter() - start
    false = len(pairs)
    total = n * (n - 1) // 2
    print(
        f"{difficulty}, n={n}, {size} px: signature {per_image_ms:.2f} ms/image; all-pairs search "
        f"{search_s:.2f} s ({search_s * 1e6 / n**2:.2f} s per 1000^2 pairs); false positives "
        f"{false} of {total:,} pairs ({false / total:.2e}); threshold {NEAR_BITS}/{BITS} bits"
    )
    for name, augment in augmentations(size).items():
        copied = np.stack(
            [signature(np.ascontiguousarray(augment(im))) for im in data.images[:copies]]
        )
        bits = np.unpackbits(sigs[:copies], axis=2)[:, :, :BITS]
        plain = np.unpackbits(copied[:, 0], axis=1)[:, :BITS]
        distance = (bits != plain[:, None, :]).sum(2).min(1)
        recall = float((distance <= NEAR_BITS).mean())
        print(
            f"  {name:>18}: recall {recall:6.1%}  distance median {np.median(distance):5.1f} "
            f"max {distance.max():3d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--copies", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(2)
    for difficulty in ("standard", "hard"):
        measure(args.n, args.size, args.copies, difficulty)


if __name__ == "__main__":
    main()
