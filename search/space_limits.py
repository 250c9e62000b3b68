"""Checks of a space that no single field can make: names that become paths, and sizes
that grow with the product of several settings (the grid, the study's trial count, the
input batch of every batch size at every image size).

:func:`check_names` runs on the raw document before it is validated, :func:`check_space_limits`
on the validated :class:`~search.space.Space` before anything enumerates its grid. Both
report through ``add(loc, message)`` so errors keep their file:line locations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from leukmodels import limits as lim
from leukmodels.config import TrialConfig, TrialParams
from leukmodels.errors import UserError
from search.factors import Bundle, Range
from search.names import name_problem

if TYPE_CHECKING:
    from search.space import Space

Add = Callable[[tuple, str], None]

MAX_GRID = 100_000
"""Combinations of the categorical factors (the product of their level counts)."""
MAX_TRIALS = 100_000
"""Trials a study may enqueue: (ablation points or grid points) x repeats x folds, plus
the exploration samples."""


def _names(mapping: Any) -> Iterable[Any]:
    return mapping if isinstance(mapping, dict) else ()


def check_names(raw: dict[str, Any], add: Add) -> None:
    """Profile, protocol and bundle names are names (a bundle's is a report file's)."""
    for name in _names(raw.get("profiles")):
        if problem := name_problem(name, "profile name"):
            add(("profiles", name), problem)
    data = raw.get("data")
    for name in _names(data.get("protocols") if isinstance(data, dict) else None):
        if problem := name_problem(name, "protocol name"):
            add(("data", "protocols", name), problem)
    space = raw.get("space")
    for name, spec in space.items() if isinstance(space, dict) else ():
        if isinstance(spec, dict) and "bundle" in spec and (p := name_problem(name, "bundle name")):
            add(("space", name), p)


def check_space_limits(space: Space, add: Add) -> bool:
    """Bounds on the grid, the trial count and the input batch; False if any is broken."""
    n_errors = 0

    def count(loc: tuple, message: str) -> None:
        nonlocal n_errors
        n_errors += 1
        add(loc, message)

    grid = math.prod(len(f.levels) for f in space.categorical)
    if grid > MAX_GRID:
        sizes = " x ".join(f"{len(f.levels)} ({f.name})" for f in space.categorical if f.searched)
        count(
            ("space",),
            f"the categorical factors make up to {grid:,} combinations ({sizes}); "
            f"at most {MAX_GRID:,}: search wide ranges with int/uniform factors instead",
        )
    else:
        _check_trials(space, grid, count)
    _check_batch(space, count)
    return n_errors == 0


def _check_trials(space: Space, grid: int, add: Add) -> None:
    s = space.search
    if s.algorithm == "grid":
        points = grid
    else:
        ab = space.ablation
        points = 0
        if ab is not None:
            levels = sum(len(space.factors[n].levels) for n in ab.factors if n in space.factors)
            points = 1 + levels + len(ab.configurations)
    specs = [space.data, *space.protocols.values()]
    folds = max(d.split.k if d.split.kind == "kfold" else 1 for d in specs)
    total = points * s.repeats * folds + s.num_samples
    if total > MAX_TRIALS:
        count = f"{points:,} points x {s.repeats} repeats x {folds} folds + {s.num_samples} samples"
        add(
            ("search",),
            f"the study would run up to {total:,} trials ({count}); at most {MAX_TRIALS:,}",
        )


def _batch_sizes(space: Space) -> list[tuple[tuple, int]]:
    """(location, batch size) for every batch size a trial of the space may get."""
    f = space.factors.get("batch_size")
    out: list[tuple[tuple, int]] = []
    if f is not None and f.categorical:
        out += [(("space", "batch_size"), v) for v in f.levels if isinstance(v, int)]
    elif isinstance(f, Range):
        out.append((("space", "batch_size"), int(f.high)))
    else:
        out.append((("space",), TrialParams().batch_size))
    for name, g in space.factors.items():
        for level, params in (g.bundles if isinstance(g, Bundle) else {}).items():
            if isinstance(params.get("batch_size"), int):
                out.append((("space", name, "bundle", level), params["batch_size"]))
    return out


def _check_batch(space: Space, add: Add) -> None:
    sizes = [(("data", "image_size"), space.data.image_size)]
    sizes += [(("data", "protocols", n), d.image_size) for n, d in space.protocols.items()]
    loc_px, px = max(sizes, key=lambda s: s[1])
    for loc, batch in _batch_sizes(space):
        if problem := lim.batch_input_problem(batch, px):
            where = "" if loc_px == ("data", "image_size") else f" ({'.'.join(loc_px)})"
            add(loc, problem + where)
            return


def checked_config(config: dict[str, Any], what: str) -> TrialConfig:
    """``config`` validated as a TrialConfig (every field bound included), or a UserError
    starting with ``what`` and listing each problem."""
    try:
        return TrialConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise UserError(f"{what}: {problems}") from None
