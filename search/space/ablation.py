"""The ablation set of a space: the baseline, one factor at a time, the named configurations."""

from __future__ import annotations

from typing import Any

from search.space.models import Space


def iter_ablation_points(space: Space) -> list[tuple[str, str, dict[str, Any]]]:
    """(factor, level label, point) for the baseline, every one-factor-at-a-time variant and
    every named configuration; points that are the same after completion appear once."""
    if space.ablation is None:
        return []
    base = space.baseline()
    out = [("baseline", "baseline", base)]
    seen = {space.point_key(base)}
    candidates = [
        (name, space.factors[name].level_label(level), space.fill({**base, name: level}))
        for name in space.ablation.factors
        for level in space.factors[name].levels
    ]
    candidates += [("configuration", cname, point) for cname, point in space.configurations()]
    for factor, label, point in candidates:
        key = space.point_key(point)
        if key not in seen:
            seen.add(key)
            out.append((factor, label, point))
    return out
