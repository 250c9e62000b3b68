"""The sections of a space file as models, and :class:`Space`, the validated whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leukmodels.config import EPOCH_METRICS, DataSpec, TrialConfig, TrialParams
from leukmodels.errors import UserError
from leukmodels.limits import MAX_EPOCHS, MAX_SEED
from search.factors import Factor, canonical_value
from search.space.validation import validation_messages
from search.space_limits import MAX_TRIALS

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
    """What one trial reserves."""

    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)


class CheckpointSpec(_Strict):
    """Which epochs' reports carry a checkpoint of the training state (a trial cut short
    goes on from its newest one). The last epoch always does (a crash in the test phase
    does not train again); before it, an epoch does when ``every_epochs`` divides it or
    ``every_s`` seconds have passed since the trial's start or its previous checkpoint."""

    every_epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    every_s: float | None = Field(
        60.0, ge=0, description="seconds of training at most lost when a trial is cut"
    )


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
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)

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


REFERENCE_FACTS = ("dataset", "protocol", "grouping", "pretrained", "image_size", "averaging")
"""What a reference number must match in a study to be compared with it."""


class ReferenceFacts(_Strict):
    """What a reference number was measured under (None: the paper does not say).

    ``inferred`` names the facts that are our inference rather than the paper's words;
    ``leakage`` says how the paper's protocol leaked test information into training.
    """

    dataset: str | None = None
    protocol: str | None = None
    grouping: Literal["patient", "image"] | None = None
    pretrained: bool | None = None
    image_size: int | None = Field(None, ge=1)
    averaging: Literal["macro", "weighted", "micro", "positive"] | None = None
    inferred: list[Literal[REFERENCE_FACTS]] = Field(default_factory=list)  # type: ignore[valid-type]
    leakage: str | None = None


class ReferenceSpec(_Strict):
    """What the paper reports, to set beside our numbers; ``facts`` hold what every row
    shares (a row's own keys override them)."""

    source: str
    scale: Literal["percent", "fraction"] = "percent"
    note: str = ""
    facts: ReferenceFacts = Field(default_factory=ReferenceFacts)
    rows: list[dict[str, Any]] = Field(default_factory=list)

    def row_facts(self, row: dict[str, Any]) -> ReferenceFacts:
        """The facts of one row: the shared ``facts`` with the row's own on top."""
        own = {k: row[k] for k in ReferenceFacts.model_fields if k in row}
        return ReferenceFacts.model_validate({**self.facts.model_dump(), **own})


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
        """The factors with levels (the grid's)."""
        return [f for f in self.factors.values() if f.categorical]

    @property
    def ranges(self) -> list[Factor]:
        """The numeric ranges."""
        return [f for f in self.factors.values() if not f.categorical]

    def context(self, point: dict[str, Any]) -> dict[str, Any]:
        """Values ``when`` conditions see: the point, with defaults for factors it does not set."""
        ctx = {name: f.default for name, f in self.factors.items()}
        ctx.update(point)
        return ctx

    def active(self, factor: Factor, values: dict[str, Any]) -> bool:
        """Whether ``factor`` is active given ``values`` (a :meth:`context`)."""
        return factor.when is None or factor.when(values)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the categorical factors, honouring ``when`` conditions.

        Inactive factors are left out of each point. Range factors are not part of the grid.
        """
        points: list[dict[str, Any]] = [{}]
        for f in self.categorical:
            nxt: list[dict[str, Any]] = []
            for point in points:
                if not self.active(f, self.context(point)):
                    nxt.append(point)
                    continue
                nxt.extend({**point, f.name: level} for level in f.levels)
            points = nxt
        return points

    @property
    def grid_size(self) -> int:
        """The number of grid points."""
        return len(self.grid())

    def fill(self, point: dict[str, Any]) -> dict[str, Any]:
        """Complete a partial point: every active factor gets a value, inactive ones are dropped.

        A missing value comes from the ablation baseline, else the factor's
        :meth:`~search.factors.Factor.fill_value` (first level, every site of a subset, the
        middle of a range: geometric for loguniform).
        """
        base = dict(self.ablation.baseline) if self.ablation else {}
        out: dict[str, Any] = {}
        for f in self.factors.values():
            if not self.active(f, self.context(out)):
                continue
            if f.name in point:
                out[f.name] = f.parse_level(point[f.name])
            elif f.name in base:
                out[f.name] = f.parse_level(base[f.name])
            else:
                out[f.name] = f.fill_value()
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
            canon[name] = f.canonical(value) if f is not None else canonical_value(value)
        return orjson.dumps(canon, default=str, option=orjson.OPT_SORT_KEYS).decode()

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
            if k not in DATA_FACTORS:
                f = self.factors.get(k)
                params.update(f.trial_params(v) if f is not None else {k: v})
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
