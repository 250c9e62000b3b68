"""Stored size of a trial's per-image test predictions, packed vs plain JSON lists.

Every trial stores its test predictions (:class:`leukmodels.results.Predictions`: dataset
index, true and predicted class per test image) in ``ls_results.extra``. This measures
the bytes of that JSON, packed (``z64:`` base64 of zlib'd int32 deltas) against plain
lists, for test sets of the sizes the spaces meet (26 images: ALL-IDB2's 10 % test split;
C-NMC and ALL folds in the hundreds to thousands), and the time to pack and unpack.

Run from the repository root: ``python bench/predictions_size.py``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from leukmodels.results import Predictions

SIZES = (26, 326, 2132, 10661)
CLASSES = (2, 4)


def one(n: int, k: int, rng: np.random.Generator) -> dict[str, float]:
    """Bytes per image (packed and plain) and microseconds to pack + unpack, for n images."""
    index = np.sort(rng.choice(10 * n, n, replace=False))
    y = rng.integers(0, k, n)
    wrong = rng.random(n) < 0.1  # a 90 % accurate model
    pred = np.where(wrong, (y + rng.integers(1, k, n)) % k, y)
    p = Predictions(y_true=y.tolist(), y_pred=pred.tolist(), index=index.tolist(), test_set="h")
    start = time.perf_counter()
    for _ in range(20):
        packed = p.model_dump_json()
        back = Predictions.model_validate_json(packed)
    seconds = (time.perf_counter() - start) / 20
    assert back == p
    plain = json.dumps({"y_true": p.y_true, "y_pred": p.y_pred, "index": p.index})
    return {"packed": len(packed) / n, "plain": len(plain) / n, "us": 1e6 * seconds}


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        "| test images | classes | packed bytes/image | plain JSON bytes/image | pack+unpack ms |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in SIZES:
        for k in CLASSES:
            r = one(n, k, rng)
            print(f"| {n} | {k} | {r['packed']:.2f} | {r['plain']:.2f} | {r['us'] / 1000:.2f} |")


if __name__ == "__main__":
    main()
