"""``leuksearch synth OUT``: write the built-in synthetic smear dataset as an ImageFolder."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from search.cli import emit_json

logger = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    from leukmodels.data.synthetic import write_imagefolder
    from leukmodels.errors import UserError
    from leukmodels.limits import synthetic_problem

    if problem := synthetic_problem(args.n, args.size):
        raise UserError(problem)
    t = time.perf_counter()
    out = write_imagefolder(
        Path(args.out),
        n=args.n,
        classes=args.classes,
        size=args.size,
        seed=args.seed,
        patients=args.patients,
        fmt=args.format,
        difficulty=args.difficulty,
    )
    seconds = time.perf_counter() - t
    logger.info(
        "wrote %d images (%d classes, %dpx) to %s in %.1fs",
        args.n, args.classes, args.size, out, seconds,
    )  # fmt: skip
    if args.json:
        emit_json(
            {
                "out": str(out),
                "n": args.n,
                "classes": args.classes,
                "size": args.size,
                "difficulty": args.difficulty,
                "seconds": seconds,
            }
        )
    return 0
