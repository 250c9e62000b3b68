"""Upper bounds on the numbers a trial may be given, so a typo cannot exhaust memory.

They sit far above anything the papers or the shipped spaces use; their purpose is to
turn ``image_size: 100000`` or ``n: 1e9`` into a clear error instead of an allocation
that takes the machine down. :mod:`leukmodels.config` puts them on its fields, so every
path (a space, ``trial --params``, a retrain) gets them.
"""

from __future__ import annotations

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
"""Input side in px: the decoder's working side is 1024 px (cell crops are far smaller),
and below 16 px the backbones' downsampling leaves nothing."""
MAX_BATCH_SIZE = 4096
MAX_BATCH_INPUT_BYTES = 1 << 30
"""batch_size x image_size^2 x 3 channels x 4 bytes (the float32 input batch alone; a
network's activations take tens of times more) must stay within 1 GiB."""
MAX_EPOCHS = 10_000
MAX_IMAGES = 1_000_000
"""data.n (synthetic) and data.limit."""
MAX_PATIENTS = 100_000
MAX_SYNTHETIC_BYTES = 8 << 30
"""Synthetic images are generated in memory: n x image_size^2 x 4 bytes (RGB + mask)
must stay within 8 GiB."""
MAX_FOLDS = 100
MAX_WORKERS = 64
MAX_SITES = 12
"""Distinct placement sites (no backbone has more than 7 stages; a subset factor has
2^sites - 1 levels)."""
MAX_KERNEL = 31
"""Spatial-attention convolution kernel side."""
MAX_DRDB = 8
"""DDRNet blocks in sequence (each holds 2 x len(drdb_dilations) residual paths)."""
MAX_DRDB_PATHS = 8
MAX_DILATION = 16
"""DRDB dilated paths and their dilation (at 224 px the DRDB maps are 56 px)."""
MAX_TASK_WIDTH = 1024
MAX_TASK_DEPTH = 8
"""mta_cnn task branches: channels and blocks (the transformer decoder's tokens are the
stride-32 map, so its cost stays small)."""
MAX_NOISE_LEVELS = 8
"""offline_noise: each level adds a copy of the training set; test_noise: one test pass each."""
MAX_SIGMA = 255.0
MAX_SEED = 2**31 - 1
"""Seeds are 0..2^31-1 (NumPy refuses negative seeds; a study adds the repeat index)."""


def gib(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 30):.3g} GiB"


def batch_input_problem(batch_size: int, image_size: int) -> str | None:
    """Why ``batch_size`` images of ``image_size`` px are too many (None when they fit)."""
    need = batch_size * image_size * image_size * 3 * 4
    if need <= MAX_BATCH_INPUT_BYTES:
        return None
    most = MAX_BATCH_INPUT_BYTES // (image_size * image_size * 12)
    return (
        f"batch_size {batch_size} at image_size {image_size} needs {gib(need)} for the input "
        f"batch alone (batch_size x image_size^2 x 3 x 4 bytes must be <= "
        f"{gib(MAX_BATCH_INPUT_BYTES)}); at {image_size} px use batch_size <= {most}"
    )


def synthetic_problem(n: int, image_size: int) -> str | None:
    """Why ``n`` synthetic images of ``image_size`` px are too many (None when they fit)."""
    need = n * image_size * image_size * 4
    if need <= MAX_SYNTHETIC_BYTES:
        return None
    most = MAX_SYNTHETIC_BYTES // (image_size * image_size * 4)
    return (
        f"synthetic n={n} at image_size {image_size} needs {gib(need)} in memory "
        f"(n x image_size^2 x 4 bytes must be <= {gib(MAX_SYNTHETIC_BYTES)}); "
        f"at {image_size} px use n <= {most}"
    )
