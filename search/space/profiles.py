"""Profiles: named sets of dotted-key overrides (``--profile smoke``) applied before validation."""

from __future__ import annotations

import copy
from typing import Any

from leukmodels.errors import UserError
from search.factors import did_you_mean
from search.space.models import SECTIONS
from search.space.validation import Errors


def set_dotted(raw: dict, dotted: str, value: Any) -> tuple:
    """Set ``raw[a][b][c] = value`` for ``"a.b.c"`` (making mappings on the way); the key path."""
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


def read_profiles(raw: dict, errors: Errors) -> dict[str, dict[str, Any]]:
    """The ``profiles`` section, checked to map names to {dotted.key: value}."""
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        errors.add(("profiles",), "profiles map a name to {dotted.key: value} overrides")
        errors.raise_if_any()
    return profiles


def apply_profile(
    raw: dict, profiles: dict[str, dict[str, Any]], profile: str | None, errors: Errors
) -> dict:
    """A copy of ``raw`` with ``profile``'s overrides set.

    Each overridden key path is recorded in ``errors.moved`` so a problem with its value
    points at the profile's line.
    """
    raw = copy.deepcopy(raw)
    if profile is None:
        return raw
    if profile not in profiles:
        avail = ", ".join(profiles) or "none defined"
        raise UserError(
            f"{errors.src.path}: no profile '{profile}'{did_you_mean(profile, list(profiles))}; profiles: {avail}"
        )
    for dotted, value in profiles[profile].items():
        try:
            loc = set_dotted(raw, str(dotted), value)
        except KeyError as exc:
            errors.add(("profiles", profile, dotted), str(exc.args[0]))
            continue
        errors.moved[loc] = ("profiles", profile, dotted)
    errors.raise_if_any()
    return raw
