"""The :class:`Factor` interface every kind implements, and what parsing a spec needs."""

from __future__ import annotations

import difflib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from search.conditions import Condition

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


def is_scalar(value: Any) -> bool:
    """True for values Optuna can store as a categorical choice as they are."""
    return value is None or isinstance(value, (bool, int, float, str))


def subset_label(sites: list[str]) -> str:
    """'stage1+stage3' for ['stage1', 'stage3']."""
    return "+".join(sites)


def did_you_mean(name: str, valid: list[str]) -> str:
    """ " (did you mean 'x'?)" for the closest valid name, or ""."""
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def canonical_value(value: Any) -> Any:
    """A value as :meth:`~search.space.Space.point_key` compares it (floats to 12 digits)."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


class Problems(Protocol):
    """Where parsing reports a problem: a key path and a message."""

    def add(self, loc: tuple, message: str) -> None: ...


@dataclass
class SpecContext:
    """What parsing one factor's YAML spec needs from the space being loaded."""

    loc: tuple  # the factor's key path, ("space", name)
    default: Any  # the parameter's value when the factor is inactive
    problems: Problems
    check: Callable[[str, Any, tuple], bool]  # is this a valid value of the parameter?
    params: Collection[str]  # the trial parameters (what a bundle may set)
    declared: Collection[str]  # every name under ``space:`` (a bundle must not set one)

    def error(self, suffix: tuple, message: str) -> None:
        """Report a problem at the factor's location plus ``suffix``."""
        self.problems.add(self.loc + suffix, message)


@dataclass(kw_only=True)
class Factor(ABC):
    """One searchable (or fixed) parameter of a space; subclasses are the kinds."""

    kind: ClassVar[str]  # the kind's name in ``describe --json`` and reports
    key: ClassVar[str]  # the YAML key that selects the kind: {choice: [...]}
    options: ClassVar[frozenset[str]] = frozenset()  # other keys the spec may carry
    categorical: ClassVar[bool]  # has levels and is part of the grid

    name: str
    when: Condition | None = None
    default: Any = None  # the value when the factor is inactive

    if TYPE_CHECKING:
        levels: list[Any]  # the grid levels (decoded values); a range has none

    @classmethod
    @abstractmethod
    def from_spec(
        cls, name: str, body: Any, options: dict[str, Any], when: Condition | None, ctx: SpecContext
    ) -> Factor | None:
        """The factor for ``{key: body, **options}``, or None after reporting to ``ctx``."""

    @property
    @abstractmethod
    def searched(self) -> bool:
        """True when the factor has more than one possible value."""

    @abstractmethod
    def fill_value(self) -> Any:
        """The value a point gets when neither it nor the ablation baseline sets one."""

    @abstractmethod
    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of the factor (categoricals by their encoded levels)."""

    @abstractmethod
    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for a value (decoded); a fixed factor asks nothing."""

    @abstractmethod
    def summary(self) -> str:
        """One line for ``leuksearch describe``: the levels or the range."""

    @abstractmethod
    def describe_values(self) -> dict[str, Any]:
        """The kind's own keys of :meth:`describe`."""

    def parse_level(self, value: Any) -> Any:
        """A level as a space file or a user writes it -> the factor's own value."""
        return value

    def encode(self, value: Any) -> Any:
        """Optuna-safe representation of a value."""
        return value if is_scalar(value) else json.dumps(value, sort_keys=True)

    def decode(self, encoded: Any) -> Any:
        """Inverse of :meth:`encode`."""
        return encoded

    def canonical(self, value: Any) -> Any:
        """The value as point keys compare it."""
        return canonical_value(value)

    def level_label(self, value: Any) -> str:
        """A short human label for a value of this factor."""
        if isinstance(value, list):
            return subset_label([str(v) for v in value]) if value else "[]"
        return str(value)

    def trial_params(self, value: Any) -> dict[str, Any]:
        """The trial parameters a value of this factor sets."""
        return {self.name: value}

    def describe(self) -> dict[str, Any]:
        """JSON description for ``leuksearch describe``."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, **self.describe_values()}
        if self.when is not None:
            out["when"] = self.when.source
            out["default_when_inactive"] = self.default
        return out
