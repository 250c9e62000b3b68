"""Search spaces: a YAML file -> a validated :class:`Space`.

Sections: ``study``, ``description``, ``data`` (a :class:`~leukmodels.config.DataSpec`
plus optional named ``protocols``), ``search`` (:class:`SearchSpec`), ``ablation``
(baseline, factors and named configurations), ``space`` (the factors, see
:mod:`search.factors`), ``profiles`` (dotted-key overrides, ``--profile smoke``) and
``reference`` (the paper's numbers). Every error names the file, the line and the key.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leukmodels.config import EPOCH_METRICS, DataSpec, TrialConfig, TrialParams
from leukmodels.errors import UserError
from leukmodels.limits import MAX_EPOCHS, MAX_SEED
from search.conditions import ConditionError, parse_condition
from search.factors import KINDS, Factor, subsets
from search.names import name_problem
from search.space_limits import MAX_TRIALS, check_names, check_space
from search.yamlsrc import YamlSource, load_yaml

SECTIONS = ("study", "description", "data", "search", "ablation", "space", "profiles", "reference")
DATA_FACTORS = ("protocol",)  # factors that choose the data protocol instead of a parameter


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SchedulerSpec(_Strict):
    """Early stopping across trials: ASHA, or none (every trial runs to max_epochs)."""

    kind: Literal["asha", "none"] = "none"
    max_epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS, description="caps params.epochs")
    grace_epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    reduction_factor: float = Field(3.0, gt=1.0)


class ResourceSpec(_Strict):
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)


class SearchSpec(_Strict):
    """How the search runs."""

    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    num_samples: int = Field(
        16, ge=0, le=MAX_TRIALS, description="exploration trials after the ablation set"
    )
    metric: str = "val_f1"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    max_concurrent: int | None = Field(None, ge=1, le=10_000)
    repeats: int = Field(1, ge=1, le=100, description="seeds per ablation configuration")
    resplit: bool = Field(
        False, description="each repeat also draws a new split (split seed = the repeat's seed)"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED - 100)
    max_failures: int = Field(
        1, ge=0, le=100, description="retries of a failed trial (Ray FailureConfig)"
    )
    time_budget_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _metric(self) -> SearchSpec:
        if self.metric not in EPOCH_METRICS:
            raise ValueError(
                f"metric '{self.metric}' is not reported per epoch; valid: {', '.join(EPOCH_METRICS)}"
            )
        return self


class AblationSpec(_Strict):
    """The tables a study must produce: a baseline and the factors varied one at a time."""

    baseline: dict[str, Any] = Field(default_factory=dict)
    factors: list[str] = Field(default_factory=list)
    configurations: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named configurations for the paper-style table"
    )


class ReferenceSpec(_Strict):
    """What the paper reports, to set beside our numbers."""

    source: str
    scale: Literal["percent", "fraction"] = "percent"
    note: str = ""
    rows: list[dict[str, Any]] = Field(default_factory=list)


@dataclass
class Space:
    """A validated search space (with a profile applied, if any)."""

    study: str
    description: str
    path: Path
    text: str
    profile: str | None
    data: DataSpec
    protocols: dict[str, DataSpec]
    search: SearchSpec
    factors: dict[str, Factor]
    ablation: AblationSpec | None
    reference: ReferenceSpec | None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Identity of the space text and profile (a study resumes only on the same hash)."""
        h = hashlib.sha256(self.text.encode())
        h.update(f"\nprofile={self.profile}".encode())
        return h.hexdigest()[:16]

    @property
    def categorical(self) -> list[Factor]:
        return [f for f in self.factors.values() if f.categorical]

    @property
    def ranges(self) -> list[Factor]:
        return [f for f in self.factors.values() if not f.categorical]

    def active(self, factor: Factor, values: dict[str, Any]) -> bool:
        return factor.when is None or factor.when(values)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the categorical factors, honouring ``when`` conditions.

        Inactive factors are left out of each point. Range factors are not part of the grid.
        """
        points: list[dict[str, Any]] = [{}]
        for f in self.categorical:
            nxt: list[dict[str, Any]] = []
            for point in points:
                ctx = self._context(point)
                if not self.active(f, ctx):
                    nxt.append(point)
                    continue
                nxt.extend({**point, f.name: level} for level in f.levels)
            points = nxt
        return points

    def _context(self, point: dict[str, Any]) -> dict[str, Any]:
        """Values conditions see: the point, with defaults for factors not set."""
        ctx = {name: f.default for name, f in self.factors.items()}
        ctx.update(point)
        return ctx

    @property
    def grid_size(self) -> int:
        return len(self.grid())

    def fill(self, point: dict[str, Any]) -> dict[str, Any]:
        """Complete a partial point: every active factor gets a value, inactive ones are dropped.

        A missing value comes from the ablation baseline, else the first choice level, the
        full set of a subset, or the middle of a range (geometric for loguniform).
        """
        base = dict(self.ablation.baseline) if self.ablation else {}
        out: dict[str, Any] = {}
        for f in self.factors.values():
            if not self.active(f, self._context(out)):
                continue
            if f.name in point:
                out[f.name] = f.parse_level(point[f.name])
            elif f.name in base:
                out[f.name] = f.parse_level(base[f.name])
            elif f.kind == "subset":
                out[f.name] = list(f.sites or [])
            elif f.categorical:
                out[f.name] = f.levels[0]
            elif f.kind == "int":
                out[f.name] = int(round((f.low + f.high) / 2))
            elif f.kind == "loguniform":
                out[f.name] = (f.low * f.high) ** 0.5
            else:
                out[f.name] = (f.low + f.high) / 2
        return out

    def baseline(self) -> dict[str, Any]:
        """The ablation baseline, completed by :meth:`fill`."""
        return self.fill({})

    def configurations(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, completed point) of every named configuration of the ablation section."""
        if self.ablation is None:
            return []
        base = self.baseline()
        return [
            (
                name,
                self.fill({**base, **{k: self.factors[k].parse_level(v) for k, v in cfg.items()}}),
            )
            for name, cfg in self.ablation.configurations.items()
        ]

    def point_key(self, point: dict[str, Any]) -> str:
        """A canonical string for a point: subsets sorted, floats to 12 significant digits.

        Two points with the same key train the same configuration; trials, ablation levels
        and named configurations are matched by it (never by labels).
        """
        canon: dict[str, Any] = {}
        for name, value in point.items():
            f = self.factors.get(name)
            if f is not None and f.kind == "subset" and isinstance(value, list):
                value = sorted(value)
            elif isinstance(value, float):
                value = float(f"{value:.12g}")
            canon[name] = value
        return json.dumps(canon, sort_keys=True, default=str)

    def trial_config(
        self,
        point: dict[str, Any],
        *,
        seed: int | None = None,
        fold: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> TrialConfig:
        """The :class:`TrialConfig` for one point of the space.

        Bundles are expanded, the protocol chosen, the epoch budget applied, and the
        command line's data ``overrides`` (DataSpec fields) set; the monitored metric is
        the search's. Bad parameter values raise a UserError naming them.
        """
        params: dict[str, Any] = {}
        for k, v in point.items():
            f = self.factors.get(k)
            if f is not None and f.kind == "bundle":
                params.update(f.bundles[v])
            elif k not in DATA_FACTORS:
                params[k] = v
        data = self.protocols[point["protocol"]] if "protocol" in point else self.data
        data = data.model_copy(deep=True, update=overrides or {})
        if fold is not None:
            data.split.fold = fold
        max_epochs = self.search.scheduler.max_epochs
        try:
            tp = TrialParams(**params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in validation_messages(exc)
            )
            raise UserError(f"bad trial parameters: {problems}") from None
        if max_epochs is not None and tp.epochs > max_epochs:
            tp.epochs = max_epochs
        if seed is not None:
            tp.seed = seed
            if self.search.resplit:
                data.split.seed = seed
        try:
            return TrialConfig(
                data=data, params=tp, monitor=self.search.metric, monitor_mode=self.search.mode
            )
        except ValidationError as exc:
            problems = "; ".join(msg for _, msg in validation_messages(exc))
            raise UserError(f"bad trial configuration: {problems}") from None

    def describe(self) -> dict[str, Any]:
        """Machine-readable summary for ``leuksearch describe --json``."""
        return {
            "study": self.study,
            "description": self.description,
            "file": str(self.path),
            "profile": self.profile,
            "hash": self.hash,
            "data": self.data.model_dump(mode="json"),
            "protocols": sorted(self.protocols),
            "search": self.search.model_dump(mode="json"),
            "factors": [f.describe() for f in self.factors.values()],
            "searched": [f.name for f in self.factors.values() if f.searched],
            "conditions": {f.name: f.when.source for f in self.factors.values() if f.when},
            "grid_size": self.grid_size,
            "ablation": self.ablation.model_dump(mode="json") if self.ablation else None,
            "reference": self.reference.model_dump(mode="json") if self.reference else None,
            "profiles": sorted(self.profiles),
        }


# ----------------------------------------------------------------------------- loading


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


class _Errors:
    """Collects error lines with file:line locations."""

    def __init__(self, src: YamlSource, moved: dict[tuple, tuple]):
        self.src = src
        self.moved = moved  # loc overridden by a profile -> loc of the profile key
        self.items: list[str] = []

    def add(self, loc: tuple, message: str) -> None:
        key = ".".join(str(p) for p in loc) or "(top level)"
        where = self._where(loc)
        self.items.append(f"{where}: {key}: {message}")

    def _where(self, loc: tuple) -> str:
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.moved:
                return f"{self.src.where(self.moved[loc[:n]])} (profile override)"
        return self.src.where(loc)

    def pydantic(self, prefix: tuple, exc: ValidationError) -> None:
        for loc, msg in validation_messages(exc):
            if msg == "unknown key" and (keys := _known_keys(prefix + loc[:-1])):
                msg += f"; valid keys: {', '.join(keys)}"
            self.add(prefix + loc, msg)

    def raise_if_any(self) -> None:
        if self.items:
            head = f"invalid search space {self.src.path} ({len(self.items)} problem{'s' if len(self.items) > 1 else ''}):"
            raise UserError("\n".join([head, *("  " + i for i in self.items[:20])]))


def _known_keys(loc: tuple) -> list[str]:
    models = {
        ("search",): SearchSpec,
        ("search", "scheduler"): SchedulerSpec,
        ("search", "resources"): ResourceSpec,
        ("data",): DataSpec,
        ("data", "split"): type(DataSpec().split),
        ("ablation",): AblationSpec,
        ("reference",): ReferenceSpec,
    }
    model = models.get(tuple(p for p in loc if isinstance(p, str) and p != "protocols"))
    return list(model.model_fields) if model else []


def _set_dotted(raw: dict, dotted: str, value: Any) -> tuple:
    parts = dotted.split(".")
    if parts[0] not in SECTIONS:
        raise KeyError(f"'{parts[0]}' is not a section; sections: {', '.join(SECTIONS)}")
    node = raw
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)
    return tuple(parts)


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_space(path: str | Path, profile: str | None = None, text: str | None = None) -> Space:
    """Read, validate and return the space at ``path`` (or ``text``) with ``profile`` applied."""
    src = load_yaml(path, text)
    raw = src.data
    moved: dict[tuple, tuple] = {}
    errors = _Errors(src, moved)
    if not isinstance(raw, dict):
        errors.add((), "a search space is a YAML mapping with sections " + ", ".join(SECTIONS))
        errors.raise_if_any()
    for key in raw:
        if key not in SECTIONS:
            errors.add(
                (key,),
                f"unknown section{_suggest(str(key), list(SECTIONS))}; sections: {', '.join(SECTIONS)}",
            )
    for required in ("study", "space"):
        if required not in raw:
            errors.add((), f"missing section '{required}'")
    errors.raise_if_any()

    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        errors.add(("profiles",), "profiles map a name to {dotted.key: value} overrides")
        errors.raise_if_any()
    raw = copy.deepcopy(raw)
    if profile is not None:
        if profile not in profiles:
            avail = ", ".join(profiles) or "none defined"
            raise UserError(
                f"{src.path}: no profile '{profile}'{_suggest(profile, list(profiles))}; profiles: {avail}"
            )
        for dotted, value in profiles[profile].items():
            try:
                loc = _set_dotted(raw, str(dotted), value)
            except KeyError as exc:
                errors.add(("profiles", profile, dotted), str(exc.args[0]))
                continue
            moved[loc] = ("profiles", profile, dotted)
        errors.raise_if_any()

    study = raw.get("study")
    if problem := name_problem(study, "study name"):
        errors.add(("study",), problem)
    check_names(raw, errors.add)

    search = _model(SearchSpec, raw.get("search") or {}, ("search",), errors)
    data, protocols = _data(raw.get("data") or {}, errors)
    factors = _factors(raw.get("space"), errors, protocols)
    errors.raise_if_any()
    ablation = (
        _model(AblationSpec, raw["ablation"], ("ablation",), errors)
        if raw.get("ablation")
        else None
    )
    reference = (
        _model(ReferenceSpec, raw["reference"], ("reference",), errors)
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
    check_space(space, errors.add)  # before anything enumerates the grid
    _check_cross(space, errors)
    errors.raise_if_any()
    return space


def _model(model: type[BaseModel], value: Any, loc: tuple, errors: _Errors) -> Any:
    if not isinstance(value, dict):
        errors.add(loc, f"expected a mapping, got {type(value).__name__}")
        return None
    try:
        return model(**value)
    except ValidationError as exc:
        errors.pydantic(loc, exc)
        return None


def _data(raw: Any, errors: _Errors) -> tuple[DataSpec, dict[str, DataSpec]]:
    if not isinstance(raw, dict):
        errors.add(("data",), "expected a mapping")
        return DataSpec(), {}
    raw = dict(raw)
    raw_protocols = raw.pop("protocols", None) or {}
    base = _model(DataSpec, raw, ("data",), errors) or DataSpec()
    protocols: dict[str, DataSpec] = {}
    if not isinstance(raw_protocols, dict):
        errors.add(("data", "protocols"), "protocols map a name to data overrides")
        return base, {}
    for name, override in raw_protocols.items():
        if not isinstance(override, dict):
            errors.add(("data", "protocols", name), "expected a mapping of data keys")
            continue
        merged = _merge(raw, override)
        spec = _model(DataSpec, merged, ("data", "protocols", name), errors)
        if spec is not None:
            protocols[str(name)] = spec
    _validate_augment(base.augment, ("data", "augment"), errors)
    return base, protocols


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate_augment(value: Any, loc: tuple, errors: _Errors) -> None:
    from leukmodels.data.augment import validate_augment

    try:
        validate_augment(value)
    except UserError as exc:
        errors.add(loc, str(exc))


def _check_value(name: str, value: Any, loc: tuple, errors: _Errors) -> bool:
    try:
        TrialParams(**{name: value})
    except ValidationError as exc:
        for _, msg in validation_messages(exc):
            errors.add(loc, msg)
        return False
    return True


def _factors(raw: Any, errors: _Errors, protocols: dict[str, DataSpec]) -> dict[str, Factor]:
    if not isinstance(raw, dict) or not raw:
        errors.add(("space",), "space must map parameter names to factors")
        return {}
    valid = [*TrialParams.model_fields, *DATA_FACTORS]
    defaults = TrialParams()
    factors: dict[str, Factor] = {}
    declared: set[str] = set()
    for name, spec in raw.items():
        loc = ("space", name)
        declared.add(str(name))
        if isinstance(spec, dict) and "bundle" in spec:
            factor = _bundle(str(name), spec, loc, errors, valid, raw)
        elif name not in valid:
            errors.add(
                loc,
                f"unknown parameter{_suggest(str(name), valid)}; valid: {', '.join(valid)} "
                "(or a bundle of them: {bundle: {level: {param: value}}})",
            )
            continue
        else:
            factor = _factor(str(name), spec, loc, errors, getattr(defaults, name, None))
        if factor is None:
            continue
        if name == "protocol":
            for level in factor.levels:
                if level not in protocols:
                    errors.add(
                        loc,
                        f"protocol '{level}' is not defined under data.protocols; defined: {', '.join(protocols) or 'none'}",
                    )
        if factor.when is not None:
            unknown = sorted(factor.when.names - (declared - {name}))
            if unknown:
                errors.add(
                    loc + ("when",),
                    f"condition names {', '.join(unknown)}, which is not a factor declared above it",
                )
        factors[str(name)] = factor
    return factors


def _bundle(
    name: str, spec: dict, loc: tuple, errors: _Errors, valid: list[str], raw: dict
) -> Factor | None:
    """A bundle factor: named levels, each a mapping of parameters set together."""
    extra = sorted(set(spec) - {"bundle", "when"})
    if extra:
        errors.add(loc, f"a bundle takes only 'bundle' and 'when' (got {', '.join(extra)})")
        return None
    body = spec["bundle"]
    if name in valid:
        errors.add(loc, f"a bundle needs its own name, not the parameter name '{name}'")
        return None
    if (
        not isinstance(body, dict)
        or not body
        or not all(isinstance(v, dict) for v in body.values())
    ):
        errors.add(loc + ("bundle",), "bundle maps level names to {parameter: value} mappings")
        return None
    ok = True
    for level, params in body.items():
        for key, value in params.items():
            where = loc + ("bundle", level, key)
            if key not in TrialParams.model_fields:
                errors.add(
                    where, f"unknown parameter{_suggest(str(key), list(TrialParams.model_fields))}"
                )
                ok = False
            elif key in raw:
                errors.add(where, f"'{key}' is also a factor of the space; set it in one place")
                ok = False
            else:
                ok = _check_value(key, value, where, errors) and ok
    when = None
    if spec.get("when") is not None:
        try:
            when = parse_condition(str(spec["when"]))
        except ConditionError as exc:
            errors.add(loc + ("when",), f"bad condition {spec['when']!r}: {exc}")
            return None
    if not ok:
        return None
    levels = [str(k) for k in body]
    bundles = {str(k): dict(v) for k, v in body.items()}
    return Factor(name, "bundle", levels, when=when, default=levels[0], bundles=bundles)


def _factor(name: str, spec: Any, loc: tuple, errors: _Errors, default: Any) -> Factor | None:
    if not isinstance(spec, dict):
        check = name in DATA_FACTORS or _check_value(name, spec, loc, errors)
        return Factor(name, "constant", [spec], default=default) if check else None
    spec = dict(spec)
    when_src = spec.pop("when", None)
    when = None
    if when_src is not None:
        try:
            when = parse_condition(str(when_src))
        except ConditionError as exc:
            errors.add(loc + ("when",), f"bad condition {when_src!r}: {exc}")
            return None
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1 and not (not kinds and "value" in spec):
        errors.add(
            loc,
            f"a factor is a value or exactly one of {', '.join(KINDS)} (got keys {', '.join(map(str, spec)) or 'none'})",
        )
        return None
    if not kinds:
        value = spec.pop("value")
        ok = name in DATA_FACTORS or _check_value(name, value, loc, errors)
        return Factor(name, "constant", [value], when=when, default=default) if ok else None
    kind = kinds[0]
    body = spec.pop(kind)
    extra = {"int": {"step"}, "subset": {"min_size", "max_size"}}.get(kind, set())
    for key in spec:
        if key not in extra:
            errors.add(
                loc + (key,),
                f"unknown option for {kind}; valid: {', '.join(sorted(extra | {'when'}))}",
            )
            return None
    if kind == "choice":
        if not isinstance(body, list) or not body:
            errors.add(loc + (kind,), "choice needs a non-empty list of levels")
            return None
        ok = name in DATA_FACTORS or all(
            [_check_value(name, v, loc + (kind, i), errors) for i, v in enumerate(body)]
        )
        if len({json.dumps(v, sort_keys=True) for v in body}) != len(body):
            errors.add(loc + (kind,), "choice levels must be distinct")
            return None
        return Factor(name, "choice", list(body), when=when, default=default) if ok else None
    if kind == "subset":
        if name != "placement":
            errors.add(loc, "subset is for placement (a set of named sites)")
            return None
        if not isinstance(body, list) or not body or not all(isinstance(s, str) for s in body):
            errors.add(loc + (kind,), "subset needs a list of site names like [stage1, stage2]")
            return None
        if not _check_value(name, body, loc + (kind,), errors):
            return None
        levels = subsets(body, spec.get("min_size", 1), spec.get("max_size"))
        if not levels:
            errors.add(loc, "min_size/max_size leave no subset")
            return None
        return Factor(name, "subset", levels, when=when, sites=list(body), default=default)
    # ranges
    if not (
        isinstance(body, list)
        and len(body) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in body)
    ):
        errors.add(loc + (kind,), f"{kind} needs [low, high] numbers")
        return None
    low, high = body
    if not low < high:
        errors.add(loc + (kind,), f"low ({low}) must be below high ({high})")
        return None
    if kind == "loguniform" and low <= 0:
        errors.add(loc + (kind,), "loguniform bounds must be > 0")
        return None
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        errors.add(loc + (kind,), "int bounds must be integers")
        return None
    if not (
        _check_value(name, low, loc + (kind, 0), errors)
        and _check_value(name, high, loc + (kind, 1), errors)
    ):
        return None
    return Factor(
        name, kind, [], low=low, high=high, step=spec.get("step"), when=when, default=default
    )


def _check_cross(space: Space, errors: _Errors) -> None:
    """Checks that need the whole space: grid algorithm, ablation, placement sites."""
    if space.search.algorithm == "grid" and space.ranges:
        names = ", ".join(f.name for f in space.ranges)
        errors.add(
            ("search", "algorithm"),
            f"grid search needs categorical factors only; {names} {'is a range' if len(space.ranges) == 1 else 'are ranges'}: give choice levels or use tpe/random",
        )
    _check_sites(space, errors)
    ab = space.ablation
    if ab is None:
        return
    for name in ab.factors:
        f = space.factors.get(name)
        if f is None:
            errors.add(
                ("ablation", "factors"),
                f"'{name}' is not a factor of the space{_suggest(name, list(space.factors))}",
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
                f"'{name}' is not a factor of the space{_suggest(name, list(space.factors))}",
            )
            continue
        if f.categorical and f.parse_level(value) not in f.levels:
            levels = ", ".join(f.level_label(v) for v in f.levels)
            errors.add(
                ("ablation",), f"{name}: {value!r} is not a level of the factor; levels: {levels}"
            )
    if space.reference:
        known = set(ab.configurations)
        for i, row in enumerate(space.reference.rows):
            cfg = row.get("config")
            if cfg is None:
                errors.add(("reference", "rows", i), "each reference row names its 'config'")
            elif known and cfg not in known:
                errors.add(
                    ("reference", "rows", i),
                    f"config '{cfg}' is not under ablation.configurations{_suggest(str(cfg), sorted(known))}",
                )


def _check_sites(space: Space, errors: _Errors) -> None:
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
