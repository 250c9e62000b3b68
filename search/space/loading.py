"""Reading a space file: YAML -> checked sections -> :class:`~search.space.models.Space`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from leukmodels.config import DataSpec, TrialParams
from search.factors import Factor, SpecContext, did_you_mean, is_bundle, parse_factor
from search.names import name_problem
from search.space.models import (
    DATA_FACTORS,
    SECTIONS,
    AblationSpec,
    ReferenceSpec,
    SearchSpec,
    Space,
)
from search.space.profiles import apply_profile, read_profiles
from search.space.validation import (
    Errors,
    check_augment,
    check_factor,
    check_param,
    check_space,
)
from search.space_limits import check_names, check_space_limits
from search.yamlsrc import load_yaml


def load_space(path: str | Path, profile: str | None = None, text: str | None = None) -> Space:
    """Read, validate and return the space at ``path`` (or ``text``) with ``profile`` applied."""
    src = load_yaml(path, text)
    errors = Errors(src)
    _check_sections(src.data, errors)
    profiles = read_profiles(src.data, errors)
    raw = apply_profile(src.data, profiles, profile, errors)

    study = raw.get("study")
    if problem := name_problem(study, "study name"):
        errors.add(("study",), problem)
    check_names(raw, errors.add)
    search = parse_model(SearchSpec, raw.get("search") or {}, ("search",), errors)
    data, protocols = parse_data(raw.get("data") or {}, errors)
    factors = parse_factors(raw.get("space"), errors, protocols)
    errors.raise_if_any()
    ablation = (
        parse_model(AblationSpec, raw["ablation"], ("ablation",), errors)
        if raw.get("ablation")
        else None
    )
    reference = (
        parse_model(ReferenceSpec, raw["reference"], ("reference",), errors)
        if raw.get("reference")
        else None
    )
    errors.raise_if_any()

    space = Space(
        study=study.strip(),
        description=str(raw.get("description") or ""),
        path=src.path,
        text=src.text,
        profile=profile,
        data=data,
        protocols=protocols,
        search=search,
        factors=factors,
        ablation=ablation,
        reference=reference,
        profiles=profiles,
    )
    if not check_space_limits(space, errors.add):
        errors.raise_if_any()  # before anything enumerates a grid too large to build
    check_space(space, errors)
    errors.raise_if_any()
    return space


def _check_sections(raw: Any, errors: Errors) -> None:
    """The document is a mapping of known sections with ``study`` and ``space``."""
    if not isinstance(raw, dict):
        errors.add((), "a search space is a YAML mapping with sections " + ", ".join(SECTIONS))
        errors.raise_if_any()
    for key in raw:
        if key not in SECTIONS:
            errors.add(
                (key,),
                f"unknown section{did_you_mean(str(key), list(SECTIONS))}; sections: {', '.join(SECTIONS)}",
            )
    for required in ("study", "space"):
        if required not in raw:
            errors.add((), f"missing section '{required}'")
    errors.raise_if_any()


def parse_model(model: type[BaseModel], value: Any, loc: tuple, errors: Errors) -> Any:
    """``model(**value)``, or None after recording its problems at ``loc``."""
    if not isinstance(value, dict):
        errors.add(loc, f"expected a mapping, got {type(value).__name__}")
        return None
    try:
        return model(**value)
    except ValidationError as exc:
        errors.pydantic(loc, exc, model)
        return None


def parse_data(raw: Any, errors: Errors) -> tuple[DataSpec, dict[str, DataSpec]]:
    """The ``data`` section: the study's DataSpec and its named protocols (each an override)."""
    if not isinstance(raw, dict):
        errors.add(("data",), "expected a mapping")
        return DataSpec(), {}
    raw = dict(raw)
    raw_protocols = raw.pop("protocols", None) or {}
    base = parse_model(DataSpec, raw, ("data",), errors) or DataSpec()
    protocols: dict[str, DataSpec] = {}
    if not isinstance(raw_protocols, dict):
        errors.add(("data", "protocols"), "protocols map a name to data overrides")
        return base, {}
    for name, override in raw_protocols.items():
        if not isinstance(override, dict):
            errors.add(("data", "protocols", name), "expected a mapping of data keys")
            continue
        merged = _merge(raw, override)
        spec = parse_model(DataSpec, merged, ("data", "protocols", name), errors)
        if spec is not None:
            protocols[str(name)] = spec
    check_augment(base.augment, ("data", "augment"), errors)
    return base, protocols


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_factors(raw: Any, errors: Errors, protocols: dict[str, DataSpec]) -> dict[str, Factor]:
    """The ``space`` section: one factor per trial parameter (or bundle), in file order."""
    if not isinstance(raw, dict) or not raw:
        errors.add(("space",), "space must map parameter names to factors")
        return {}
    params = list(TrialParams.model_fields)
    valid = [*params, *DATA_FACTORS]
    defaults = TrialParams()

    def check(name: str, value: Any, loc: tuple) -> bool:
        return name in DATA_FACTORS or check_param(name, value, loc, errors)

    factors: dict[str, Factor] = {}
    above: set[str] = set()
    for name, spec in raw.items():
        loc = ("space", name)
        if not is_bundle(spec) and name not in valid:
            errors.add(
                loc,
                f"unknown parameter{did_you_mean(str(name), valid)}; valid: {', '.join(valid)} "
                "(or a bundle of them: {bundle: {level: {param: value}}})",
            )
            above.add(str(name))
            continue
        ctx = SpecContext(loc, getattr(defaults, str(name), None), errors, check, params, raw)
        factor = parse_factor(str(name), spec, ctx)
        if factor is not None:
            check_factor(factor, above, protocols, loc, errors)
            factors[str(name)] = factor
        above.add(str(name))
    return factors
