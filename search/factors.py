"""Factors of a search space: what one key under ``space:`` may take.

Kinds: a constant (a bare value), ``{choice: [...]}``, ``{int: [lo, hi]}`` (optional
``step``), ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``, ``{subset: [sites]}``
(any non-empty subset, optionally bounded by ``min_size`` / ``max_size``) and
``{bundle: {level: {param: value, ...}}}`` (named settings that move several parameters
together, e.g. the two optimiser settings a paper states; its name is free). Any factor
may carry ``when: "<condition>"``; when the condition is false the factor is inactive
and the trial uses the parameter's default.

Categorical factors (constant, choice, subset) form the grid; levels that are not plain
scalars (lists, subsets) are encoded as strings for Optuna and decoded back.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from search.conditions import Condition

KINDS = ("choice", "int", "uniform", "loguniform", "subset", "bundle")
RANGE_KINDS = ("int", "uniform", "loguniform")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def subset_label(sites: list[str]) -> str:
    """'stage1+stage3' for ['stage1', 'stage3']."""
    return "+".join(sites)


@dataclass
class Factor:
    """One searchable (or fixed) parameter of a space."""

    name: str
    kind: str  # constant | choice | int | uniform | loguniform | subset
    levels: list[Any] = field(default_factory=list)  # categorical levels (decoded values)
    low: float | None = None
    high: float | None = None
    step: float | None = None
    when: Condition | None = None
    sites: list[str] | None = None
    default: Any = None  # the value when the factor is inactive
    bundles: dict[str, dict[str, Any]] | None = None  # bundle: level -> parameters

    @property
    def categorical(self) -> bool:
        return self.kind in ("constant", "choice", "subset", "bundle")

    @property
    def searched(self) -> bool:
        """True when the factor has more than one possible value."""
        return not (self.kind == "constant" or (self.categorical and len(self.levels) == 1))

    def parse_level(self, value: Any) -> Any:
        """A level as a space file or a user writes it -> the factor's own value.

        Subsets may be written ``"stage2+stage1"`` or as a list in any order; they come back
        as the matching level (sites in the factor's order). Other values pass through.
        """
        if self.kind != "subset":
            return value
        sites = value.split("+") if isinstance(value, str) else list(value)
        for level in self.levels:
            if sorted(level) == sorted(sites):
                return level
        order = self.sites or []
        return sorted(sites, key=lambda s: order.index(s) if s in order else len(order))

    def encode(self, value: Any) -> Any:
        """Optuna-safe representation of a categorical level."""
        if self.kind == "subset":
            return subset_label(list(value))
        return value if _is_scalar(value) else json.dumps(value, sort_keys=True)

    def decode(self, encoded: Any) -> Any:
        """Inverse of :meth:`encode` (ranges pass through)."""
        if not self.categorical:
            return encoded
        for level in self.levels:
            if self.encode(level) == encoded:
                return level
        raise KeyError(f"{encoded!r} is not a level of {self.name}")

    @property
    def encoded_levels(self) -> list[Any]:
        return [self.encode(v) for v in self.levels]

    def level_label(self, value: Any) -> str:
        """A short human label for a value of this factor."""
        if self.kind == "subset" or isinstance(value, list):
            return subset_label([str(v) for v in value]) if value else "[]"
        return str(value)

    def describe(self) -> dict[str, Any]:
        """JSON description for ``leuksearch describe``."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.categorical:
            out["levels"] = [
                self.level_label(v) if self.kind == "subset" else v for v in self.levels
            ]
            out["n_levels"] = len(self.levels)
        else:
            out["range"] = [self.low, self.high]
            if self.step is not None:
                out["step"] = self.step
        if self.sites is not None:
            out["sites"] = self.sites
        if self.bundles is not None:
            out["bundles"] = self.bundles
        if self.when is not None:
            out["when"] = self.when.source
            out["default_when_inactive"] = self.default
        return out


def subsets(sites: list[str], min_size: int = 1, max_size: int | None = None) -> list[list[str]]:
    """All subsets of ``sites`` with min_size <= size <= max_size, in a stable order."""
    top = len(sites) if max_size is None else min(max_size, len(sites))
    out: list[list[str]] = []
    for size in range(max(1, min_size), top + 1):
        out.extend(list(c) for c in itertools.combinations(sites, size))
    return out
