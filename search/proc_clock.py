"""When the current process started, on the ``time.time()`` scale (Linux /proc), for the
throughput bench's slot-time breakdown (search.trainable and bench/baseline_tune.py)."""

from __future__ import annotations

import os
from pathlib import Path


def process_start() -> float | None:
    """When this process started (``time.time()`` scale), from /proc; None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")
