"""Factors of a search space: what one key under ``space:`` may take.

Kinds (one class each): a constant (a bare value, or ``{value: x}``), ``{choice: [...]}``,
``{int: [lo, hi]}`` (optional ``step``), ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``,
``{subset: [sites]}`` (any non-empty subset, optionally bounded by ``min_size`` /
``max_size``) and ``{bundle: {level: {param: value, ...}}}`` (named settings that move
several parameters together, e.g. the two optimiser settings a paper states; its name is
free). Any factor may carry ``when: "<condition>"``; when the condition is false the factor
is inactive and the trial uses the parameter's default.

Categorical factors (constant, choice, subset, bundle) form the grid; levels that are not
plain scalars (lists, subsets) are encoded as strings for Optuna and decoded back.
"""

from search.factors.base import (
    Factor,
    Problems,
    SpecContext,
    canonical_value,
    did_you_mean,
    subset_label,
)
from search.factors.categorical import Bundle, Categorical, Choice, Constant, Subset, subsets
from search.factors.parse import KIND_CLASSES, KINDS, RANGE_KINDS, is_bundle, parse_factor
from search.factors.ranges import IntRange, LogUniformRange, Range, UniformRange

__all__ = [
    "KINDS",
    "KIND_CLASSES",
    "RANGE_KINDS",
    "Bundle",
    "Categorical",
    "Choice",
    "Constant",
    "Factor",
    "IntRange",
    "LogUniformRange",
    "Problems",
    "Range",
    "SpecContext",
    "Subset",
    "UniformRange",
    "canonical_value",
    "did_you_mean",
    "is_bundle",
    "parse_factor",
    "subset_label",
    "subsets",
]
