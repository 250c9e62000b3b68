"""Checks on a paper's reported numbers: values no real measurement can produce.

Cohen's kappa = (p_o - p_e) / (1 - p_e) is at most the observed agreement p_o (the
accuracy), since p_e lies in [0, 1); every metric lies within its scale's range (kappa and
MCC may be negative). A flagged value is listed under 'What is missing' in the report.
"""

from __future__ import annotations

import math
from typing import Any

from search.report.collect import BINARY_METRICS, EXTRA_METRICS, METRICS, SEG_METRICS

_SIGNED = ("kappa", "mcc")
"""Metrics whose range is [-top, top] rather than [0, top]."""


def _number(value: Any) -> float | None:
    """The value as a float, or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def impossible_values(rows: list[dict[str, Any]], scale: str) -> list[str]:
    """One sentence per impossible value in the reference ``rows`` on ``scale``
    ('percent': 0-100, 'fraction': 0-1)."""
    top = 100.0 if scale == "percent" else 1.0
    names = (*METRICS, *EXTRA_METRICS, *BINARY_METRICS, *SEG_METRICS)
    flags: list[str] = []
    for row in rows:
        where = f"{row.get('config', '?')}" + (
            f" on {row['dataset']}" if row.get("dataset") else ""
        )
        for name in names:
            value = _number(row.get(name))
            if value is None:
                continue
            low = -top if name in _SIGNED else 0.0
            if not low <= value <= top:
                flags.append(
                    f"The paper's {where}: {name} {value:g} is outside [{low:g}, {top:g}] "
                    f"on its {scale} scale."
                )
        kappa, accuracy = _number(row.get("kappa")), _number(row.get("accuracy"))
        if kappa is not None and accuracy is not None and kappa > accuracy:
            flags.append(
                f"The paper's {where}: kappa {kappa:g} > accuracy {accuracy:g} is impossible "
                "(kappa = (p_o - p_e)/(1 - p_e) cannot exceed the accuracy p_o); "
                "the value is listed but should not be trusted."
            )
    return flags
