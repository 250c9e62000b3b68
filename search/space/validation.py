"""Checks of a space, and the error list that names file, line and key of each problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from leukmodels.config import DataSpec, TrialParams
from leukmodels.errors import UserError
from search.factors import Factor, did_you_mean
from search.yamlsrc import YamlSource

if TYPE_CHECKING:
    from search.space.models import Space


def validation_messages(exc: ValidationError) -> list[tuple[tuple, str]]:
    """(location, message) per pydantic error, in our words: the value given is quoted and
    an unknown key says so."""
    out = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        out.append((tuple(err["loc"]), msg))
    return out


def known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys of the (nested) model at ``loc`` inside ``model``; [] where there is none."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        sub = field.annotation if field is not None else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return []
        model = sub
    return list(model.model_fields)


class Errors:
    """Collects error lines with file:line locations."""

    def __init__(self, src: YamlSource):
        self.src = src
        self.moved: dict[tuple, tuple] = {}  # loc overridden by a profile -> its profile key
        self.items: list[str] = []

    def add(self, loc: tuple, message: str) -> None:
        """Record ``message`` about the key at ``loc``."""
        key = ".".join(str(p) for p in loc) or "(top level)"
        self.items.append(f"{self.where(loc)}: {key}: {message}")

    def where(self, loc: tuple) -> str:
        """'file:line' of ``loc``, or of the profile key that set it."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.moved:
                return f"{self.src.where(self.moved[loc[:n]])} (profile override)"
        return self.src.where(loc)

    def pydantic(self, prefix: tuple, exc: ValidationError, model: type[BaseModel]) -> None:
        """Record the errors of validating ``model`` at ``prefix``; unknown keys list the valid."""
        for loc, msg in validation_messages(exc):
            if msg == "unknown key" and (keys := known_keys(model, loc[:-1])):
                msg += f"; valid keys: {', '.join(keys)}"
            self.add(prefix + loc, msg)

    def raise_if_any(self) -> None:
        """Raise one UserError listing (up to 20 of) the problems, if there are any."""
        if self.items:
            n = len(self.items)
            head = f"invalid search space {self.src.path} ({n} problem{'s' if n > 1 else ''}):"
            raise UserError("\n".join([head, *("  " + i for i in self.items[:20])]))


def check_param(name: str, value: Any, loc: tuple, errors: Errors) -> bool:
    """True when ``value`` is valid for trial parameter ``name``; else the reasons are recorded."""
    try:
        TrialParams(**{name: value})
    except ValidationError as exc:
        for _, msg in validation_messages(exc):
            errors.add(loc, msg)
        return False
    return True


def check_augment(value: Any, loc: tuple, errors: Errors) -> None:
    """Record a problem with a data ``augment`` pipeline."""
    from leukmodels.data.augment import validate_augment

    try:
        validate_augment(value)
    except UserError as exc:
        errors.add(loc, str(exc))


def check_factor(
    factor: Factor, above: set[str], protocols: dict[str, DataSpec], loc: tuple, errors: Errors
) -> None:
    """Checks of one factor against the space: protocol levels, names in its condition."""
    if factor.name == "protocol":
        if not factor.categorical:
            errors.add(loc, "protocol takes names of data.protocols (a value or a choice)")
        for level in factor.levels:
            if level not in protocols:
                errors.add(
                    loc,
                    f"protocol '{level}' is not defined under data.protocols; defined: {', '.join(protocols) or 'none'}",
                )
    if factor.when is not None:
        unknown = sorted(factor.when.names - above)
        if unknown:
            errors.add(
                loc + ("when",),
                f"condition names {', '.join(unknown)}, which is not a factor declared above it",
            )


def check_space(space: Space, errors: Errors) -> None:
    """Checks that need the whole space: grid algorithm, placement sites, ablation, reference."""
    if space.search.algorithm == "grid" and space.ranges:
        names = ", ".join(f.name for f in space.ranges)
        errors.add(
            ("search", "algorithm"),
            f"grid search needs categorical factors only; {names} {'is a range' if len(space.ranges) == 1 else 'are ranges'}: give choice levels or use tpe/random",
        )
    _check_sites(space, errors)
    if space.ablation is not None:
        _check_ablation(space, errors)
        _check_reference(space, errors)


def _check_ablation(space: Space, errors: Errors) -> None:
    ab = space.ablation
    assert ab is not None
    for name in ab.factors:
        f = space.factors.get(name)
        if f is None:
            errors.add(
                ("ablation", "factors"),
                f"'{name}' is not a factor of the space{did_you_mean(name, list(space.factors))}",
            )
        elif not f.categorical:
            errors.add(
                ("ablation", "factors"),
                f"'{name}' is a range; ablation factors need levels (choice or subset)",
            )
    for name, value in {
        **ab.baseline,
        **{k: v for c in ab.configurations.values() for k, v in c.items()},
    }.items():
        f = space.factors.get(name)
        if f is None:
            errors.add(
                ("ablation",),
                f"'{name}' is not a factor of the space{did_you_mean(name, list(space.factors))}",
            )
            continue
        if f.categorical and f.parse_level(value) not in f.levels:
            levels = ", ".join(f.level_label(v) for v in f.levels)
            errors.add(
                ("ablation",), f"{name}: {value!r} is not a level of the factor; levels: {levels}"
            )


def _check_reference(space: Space, errors: Errors) -> None:
    if space.reference is None or space.ablation is None:
        return
    known = set(space.ablation.configurations)
    for i, row in enumerate(space.reference.rows):
        try:
            space.reference.row_facts(row)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            errors.add(("reference", "rows", i), f"{where}: {first['msg']}")
        cfg = row.get("config")
        if cfg is None:
            errors.add(("reference", "rows", i), "each reference row names its 'config'")
        elif known and cfg not in known:
            errors.add(
                ("reference", "rows", i),
                f"config '{cfg}' is not under ablation.configurations{did_you_mean(str(cfg), sorted(known))}",
            )


def _check_sites(space: Space, errors: Errors) -> None:
    f = space.factors.get("placement")
    if f is None:
        return
    from leukmodels.sites import sites

    bf = space.factors.get("backbone")
    backbones = bf.levels if bf and bf.categorical else [TrialParams().backbone]
    wanted = sorted({s for level in f.levels if isinstance(level, list) for s in level})
    for bb in backbones:
        have = sites(bb)
        missing = [s for s in wanted if s not in have]
        if missing:
            errors.add(
                ("space", "placement"),
                f"{', '.join(missing)} not a site of {bb}; its sites: {', '.join(have)}",
            )
