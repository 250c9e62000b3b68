"""Numeric ranges, which Optuna samples and the grid leaves out: int, uniform, loguniform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from search.conditions import Condition
from search.factors.base import Factor, SpecContext

if TYPE_CHECKING:
    from optuna.distributions import FloatDistribution, IntDistribution


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(kw_only=True)
class Range(Factor):
    """``{<kind>: [low, high]}``: a value between two bounds."""

    categorical: ClassVar[bool] = False
    low: float
    high: float

    @classmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Range | None:
        loc = (cls.key,)
        if not (isinstance(body, list) and len(body) == 2 and all(map(_is_number, body))):
            ctx.error(loc, f"{cls.key} needs [low, high] numbers")
            return None
        low, high = body
        problem = cls.bounds_problem(low, high)
        if problem:
            ctx.error(loc, problem)
            return None
        if not cls.check_options(options, ctx):
            return None
        if not all(ctx.check(name, v, ctx.loc + loc + (i,)) for i, v in enumerate(body)):
            return None
        return cls(name=name, low=low, high=high, when=when, default=ctx.default, **options)

    @classmethod
    def bounds_problem(cls, low: float, high: float) -> str | None:
        """What is wrong with the bounds, if anything."""
        return None if low < high else f"low ({low}) must be below high ({high})"

    @classmethod
    def check_options(cls, options: dict[str, Any], ctx: SpecContext) -> bool:
        """Check the kind's options (reported to ``ctx``)."""
        return True

    @property
    def levels(self) -> list[Any]:
        return []

    @property
    def searched(self) -> bool:
        return True

    def fill_value(self) -> Any:
        return (self.low + self.high) / 2

    def distribution(self) -> FloatDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=False)

    def suggest(self, trial: Any) -> Any:
        d = self.distribution()
        return trial.suggest_float(self.name, d.low, d.high, log=d.log)

    def summary(self) -> str:
        return f"{self.kind} [{self.low:g}, {self.high:g}]"

    def describe_values(self) -> dict[str, Any]:
        return {"range": [self.low, self.high]}


@dataclass(kw_only=True)
class UniformRange(Range):
    """``{uniform: [low, high]}``: a float, sampled uniformly."""

    kind: ClassVar[str] = "uniform"
    key: ClassVar[str] = "uniform"


@dataclass(kw_only=True)
class LogUniformRange(Range):
    """``{loguniform: [low, high]}``: a positive float, sampled uniformly in log space."""

    kind: ClassVar[str] = "loguniform"
    key: ClassVar[str] = "loguniform"

    @classmethod
    def bounds_problem(cls, low: float, high: float) -> str | None:
        return super().bounds_problem(low, high) or (
            "loguniform bounds must be > 0" if low <= 0 else None
        )

    def fill_value(self) -> Any:
        return (self.low * self.high) ** 0.5

    def distribution(self) -> FloatDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)


@dataclass(kw_only=True)
class IntRange(Range):
    """``{int: [low, high], step: s}``: a whole number, low and high included."""

    kind: ClassVar[str] = "int"
    key: ClassVar[str] = "int"
    options: ClassVar[frozenset[str]] = frozenset({"step"})
    step: int | None = None

    @classmethod
    def bounds_problem(cls, low: float, high: float) -> str | None:
        return super().bounds_problem(low, high) or (
            None
            if isinstance(low, int) and isinstance(high, int)
            else "int bounds must be integers"
        )

    @classmethod
    def check_options(cls, options: dict[str, Any], ctx: SpecContext) -> bool:
        step = options.get("step")
        if step is None or (isinstance(step, int) and not isinstance(step, bool) and step >= 1):
            return True
        ctx.error(("step",), f"step must be a whole number >= 1 (got {step!r})")
        return False

    def fill_value(self) -> Any:
        return int(round((self.low + self.high) / 2))

    def distribution(self) -> IntDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))

    def suggest(self, trial: Any) -> Any:
        d = self.distribution()
        return trial.suggest_int(self.name, d.low, d.high, step=d.step)

    def describe_values(self) -> dict[str, Any]:
        out = super().describe_values()
        if self.step is not None:
            out["step"] = self.step
        return out
