"""Factors with levels, which form the grid: constant, choice, subset and bundle."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from search.conditions import Condition
from search.factors.base import Factor, SpecContext, did_you_mean, subset_label

if TYPE_CHECKING:
    from optuna.distributions import CategoricalDistribution


@dataclass(kw_only=True)
class Categorical(Factor):
    """A factor that takes one of a list of levels."""

    categorical: ClassVar[bool] = True
    levels: list[Any]  # decoded values, in the space file's order

    @property
    def searched(self) -> bool:
        return len(self.levels) > 1

    @property
    def encoded_levels(self) -> list[Any]:
        return [self.encode(v) for v in self.levels]

    def decode(self, encoded: Any) -> Any:
        for level in self.levels:
            if self.encode(level) == encoded:
                return level
        raise KeyError(f"{encoded!r} is not a level of {self.name}")

    def fill_value(self) -> Any:
        return self.levels[0]

    def distribution(self) -> CategoricalDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.encoded_levels)

    def suggest(self, trial: Any) -> Any:
        if not self.searched:
            return self.levels[0]
        return self.decode(trial.suggest_categorical(self.name, self.encoded_levels))

    def summary(self) -> str:
        labels = [self.level_label(v) for v in self.levels]
        more = f", ... ({len(labels)} levels)" if len(labels) > 8 else ""
        return ", ".join(labels[:8]) + more

    def describe_values(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "n_levels": len(self.levels)}


@dataclass(kw_only=True)
class Constant(Categorical):
    """A fixed value: a bare value, or ``{value: x}`` (which may carry ``when``)."""

    kind: ClassVar[str] = "constant"
    key: ClassVar[str] = "value"

    @property
    def searched(self) -> bool:
        return False

    @classmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Constant | None:
        if not ctx.check(name, body, ctx.loc):
            return None
        return cls(name=name, levels=[body], when=when, default=ctx.default)

    def summary(self) -> str:
        return f"= {self.level_label(self.levels[0])}"


@dataclass(kw_only=True)
class Choice(Categorical):
    """``{choice: [a, b, ...]}``: one of distinct levels."""

    kind: ClassVar[str] = "choice"
    key: ClassVar[str] = "choice"

    @classmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Choice | None:
        if not isinstance(body, list) or not body:
            ctx.error((cls.key,), "choice needs a non-empty list of levels")
            return None
        ok = all([ctx.check(name, v, ctx.loc + (cls.key, i)) for i, v in enumerate(body)])
        if len({json.dumps(v, sort_keys=True) for v in body}) != len(body):
            ctx.error((cls.key,), "choice levels must be distinct")
            return None
        return cls(name=name, levels=list(body), when=when, default=ctx.default) if ok else None


def subsets(sites: list[str], min_size: int = 1, max_size: int | None = None) -> list[list[str]]:
    """All subsets of ``sites`` with min_size <= size <= max_size, in a stable order."""
    top = len(sites) if max_size is None else min(max_size, len(sites))
    out: list[list[str]] = []
    for size in range(max(1, min_size), top + 1):
        out.extend(list(c) for c in itertools.combinations(sites, size))
    return out


@dataclass(kw_only=True)
class Subset(Categorical):
    """``{subset: [sites], min_size, max_size}``: the placement, any non-empty set of sites."""

    kind: ClassVar[str] = "subset"
    key: ClassVar[str] = "subset"
    options: ClassVar[frozenset[str]] = frozenset({"min_size", "max_size"})
    sites: list[str]

    @classmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Subset | None:
        if name != "placement":
            ctx.error((), "subset is for placement (a set of named sites)")
            return None
        if not isinstance(body, list) or not body or not all(isinstance(s, str) for s in body):
            ctx.error((cls.key,), "subset needs a list of site names like [stage1, stage2]")
            return None
        if not ctx.check(name, body, ctx.loc + (cls.key,)):
            return None
        sizes = {k: options.get(k) for k in ("min_size", "max_size")}
        for key, size in sizes.items():
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
                ctx.error((key,), f"{key} must be a whole number (got {size!r})")
                return None
        levels = subsets(body, sizes["min_size"] or 1, sizes["max_size"])
        if not levels:
            ctx.error((), "min_size/max_size leave no subset")
            return None
        return cls(name=name, levels=levels, sites=list(body), when=when, default=ctx.default)

    def parse_level(self, value: Any) -> Any:
        """Subsets may be written ``"stage2+stage1"`` or as a list in any order; they come back
        as the matching level (sites in the factor's order)."""
        sites = value.split("+") if isinstance(value, str) else list(value)
        for level in self.levels:
            if sorted(level) == sorted(sites):
                return level
        order = self.sites
        return sorted(sites, key=lambda s: order.index(s) if s in order else len(order))

    def encode(self, value: Any) -> Any:
        return subset_label(list(value))

    def canonical(self, value: Any) -> Any:
        return sorted(value) if isinstance(value, list) else super().canonical(value)

    def fill_value(self) -> Any:
        return list(self.sites)

    def describe_values(self) -> dict[str, Any]:
        levels = [self.level_label(v) for v in self.levels]
        return {"levels": levels, "n_levels": len(levels), "sites": self.sites}


@dataclass(kw_only=True)
class Bundle(Categorical):
    """``{bundle: {level: {param: value, ...}}}``: named settings of several parameters."""

    kind: ClassVar[str] = "bundle"
    key: ClassVar[str] = "bundle"
    bundles: dict[str, dict[str, Any]]  # level -> the parameters it sets

    @classmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Bundle | None:
        if name in ctx.params:
            ctx.error((), f"a bundle needs its own name, not the parameter name '{name}'")
            return None
        if not (
            isinstance(body, dict) and body and all(isinstance(v, dict) for v in body.values())
        ):
            ctx.error((cls.key,), "bundle maps level names to {parameter: value} mappings")
            return None
        ok = True
        for level, params in body.items():
            for key, value in params.items():
                ok = cls._check_param(key, value, ctx, (cls.key, level, key)) and ok
        if not ok:
            return None
        bundles = {str(k): dict(v) for k, v in body.items()}
        levels = list(bundles)
        return cls(name=name, levels=levels, bundles=bundles, when=when, default=levels[0])

    @staticmethod
    def _check_param(key: Any, value: Any, ctx: SpecContext, suffix: tuple) -> bool:
        if key not in ctx.params:
            ctx.error(suffix, f"unknown parameter{did_you_mean(str(key), list(ctx.params))}")
            return False
        if key in ctx.declared:
            ctx.error(suffix, f"'{key}' is also a factor of the space; set it in one place")
            return False
        return ctx.check(key, value, ctx.loc + suffix)

    def trial_params(self, value: Any) -> dict[str, Any]:
        return dict(self.bundles[value])

    def describe_values(self) -> dict[str, Any]:
        return {**super().describe_values(), "bundles": self.bundles}
