"""A factor's YAML spec -> the :class:`~search.factors.base.Factor` of its kind."""

from __future__ import annotations

from typing import Any

from search.conditions import ConditionError, parse_condition
from search.factors.base import Factor, SpecContext
from search.factors.categorical import Bundle, Choice, Constant, Subset
from search.factors.ranges import IntRange, LogUniformRange, UniformRange

# the kinds a ``{key: ...}`` spec selects, by key (a constant is a bare value or {value: x})
KIND_CLASSES: dict[str, type[Factor]] = {
    cls.key: cls for cls in (Choice, IntRange, UniformRange, LogUniformRange, Subset, Bundle)
}
KINDS = tuple(KIND_CLASSES)
RANGE_KINDS = tuple(k for k, cls in KIND_CLASSES.items() if not cls.categorical)


def is_bundle(spec: Any) -> bool:
    """True for a bundle's spec (whose name is free, not a parameter's)."""
    return isinstance(spec, dict) and Bundle.key in spec


def parse_factor(name: str, spec: Any, ctx: SpecContext) -> Factor | None:
    """The factor for ``name: spec`` under ``space:``, or None after reporting to ``ctx``.

    A bare value is a constant; a mapping holds ``value`` or exactly one kind's key, that
    kind's options and an optional ``when`` condition.
    """
    if not isinstance(spec, dict):
        return Constant.from_spec(name, spec, {}, None, ctx)
    spec = dict(spec)
    when = None
    if (when_src := spec.pop("when", None)) is not None:
        try:
            when = parse_condition(str(when_src))
        except ConditionError as exc:
            ctx.error(("when",), f"bad condition {when_src!r}: {exc}")
            return None
    keys = [k for k in spec if k in KIND_CLASSES]
    if len(keys) != 1 and not (not keys and Constant.key in spec):
        got = ", ".join(map(str, spec)) or "none"
        ctx.error((), f"a factor is a value or exactly one of {', '.join(KINDS)} (got keys {got})")
        return None
    cls = KIND_CLASSES[keys[0]] if keys else Constant
    body = spec.pop(cls.key)
    for key in spec:
        if key not in cls.options:
            valid = ", ".join(sorted(cls.options | {"when"}))
            ctx.error((key,), f"unknown option for {cls.key}; valid: {valid}")
            return None
    return cls.from_spec(name, body, spec, when, ctx)
