"""``leuksearch profile SPACE``: the complexity table of every architecture in a space.

One row per distinct architecture of the categorical grid (points that differ only in
training parameters share a row): parameters, FLOPs and MACs (torch's FLOP counter, one
image), size in MiB and batch-1 CPU latency. Paper 000's Table 11 falls out of it.
"""

from __future__ import annotations

import argparse
import json
import logging

from search.cli import emit_json
from search.space import load_space

logger = logging.getLogger(__name__)


def class_count(space) -> int:
    """Classes of the space's dataset: synthetic's setting, else the dataset's own folders
    when they are on this machine, else 2 (said on stderr)."""
    if space.data.dataset == "synthetic":
        return space.data.classes
    from leukmodels.data.registry import resolve_dataset
    from leukmodels.errors import DataError

    try:
        return len(resolve_dataset(space.data).class_names)
    except DataError:
        logger.warning(
            "dataset %s is not on this machine: profiling with 2 classes (--num-classes N to choose)",
            space.data.dataset,
        )
        return 2


def architectures(space) -> list:
    """Distinct architectures (TrialParams) of the space's grid, in grid order."""
    from leukmodels.arch import arch_key

    seen: dict[str, object] = {}
    for point in space.grid():
        params = space.trial_config(space.fill(point)).params
        key = json.dumps(arch_key(params), sort_keys=True, default=str)
        seen.setdefault(key, params)
    return list(seen.values())


def main(args: argparse.Namespace) -> int:
    from leukmodels.profile import profile

    space = load_space(args.space, args.profile)
    num_classes = args.num_classes or class_count(space)
    archs = architectures(space)
    logger.info(
        "profiling %d architecture(s) at %dpx, %d classes", len(archs), args.input_size, num_classes
    )
    rows = []
    for i, params in enumerate(archs, 1):
        row = profile(
            params, num_classes, input_size=args.input_size, latency_runs=args.latency_runs
        )
        row["num_classes"] = num_classes
        rows.append(row)
        logger.info(
            "[%d/%d] %s: %.3f M params, %.3f GFLOPs",
            i, len(archs), row["label"], row["params"] / 1e6, row["flops"] / 1e9,
        )  # fmt: skip
    if args.json:
        emit_json(rows)
        return 0
    base = {r["backbone"]: r for r in rows if not r["placement"]}
    print(
        f"{'architecture':<48} {'params (M)':>10} {'+params':>9} {'GFLOPs':>8} {'GMACs':>7} {'MiB':>7} {'ms/img':>7}"
    )
    for r in rows:
        b = base.get(r["backbone"])
        extra = f"{(r['params'] - b['params']) / 1e6:+.3f}" if b and r is not b else ""
        print(
            f"{r['label']:<48} {r['params'] / 1e6:>10.3f} {extra:>9} {r['flops'] / 1e9:>8.3f} "
            f"{r['macs'] / 1e9:>7.3f} {r['size_mb']:>7.2f} {r['latency_ms']:>7.2f}"
        )
    return 0
