"""The backbone registry: ``@register_backbone(name)``, lookup, and plugin loading.

Plugins are imported the first time the registry is asked for a backbone (never at
import time, so that a plugin may import any leukmodels module): the modules named in
``$LEUKSEARCH_PLUGINS`` (comma-separated), and the entry points of the group
``leuksearch.backbones``. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from leukmodels.backbones.base import BackboneAdapter
from leukmodels.errors import UserError

PLUGINS_ENV = "LEUKSEARCH_PLUGINS"
ENTRY_POINT_GROUP = "leuksearch.backbones"

A = TypeVar("A", bound=type[BackboneAdapter])

_REGISTRY: dict[str, BackboneAdapter] = {}
_imported: set[str] = set()
_entry_points_loaded = False
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check(name: str, cls: type) -> None:
    if not (isinstance(cls, type) and issubclass(cls, BackboneAdapter)):
        raise TypeError(f"register_backbone({name!r}) decorates a BackboneAdapter subclass")
    if not _NAME.fullmatch(name):
        raise ValueError(f"backbone name {name!r}: use letters, digits, '_', '.' or '-'")
    if cls.num_stages < 1 or cls.feature_width < 1:
        raise ValueError(f"backbone {name!r}: set num_stages and feature_width (>= 1)")
    bad = [s for s in cls.native_se_stages if not 1 <= s <= cls.num_stages]
    if bad:
        raise ValueError(f"backbone {name!r}: native_se_stages {bad} outside 1..{cls.num_stages}")
    old = _REGISTRY.get(name)
    if old is not None and _where(type(old)) != _where(cls):
        raise ValueError(f"backbone {name!r} is already registered by {_where(type(old))}")


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_backbone(name: str) -> Callable[[A], A]:
    """Class decorator: register a :class:`BackboneAdapter` subclass under ``name``.

    Registering a name again from the same class (a re-imported module) replaces it; from
    another class is a ``ValueError``.
    """

    def wrap(cls: A) -> A:
        _check(name, cls)
        adapter = cls()
        adapter.name = name
        _REGISTRY[name] = adapter
        return cls

    return wrap


def plugin_modules() -> list[str]:
    """The module names in ``$LEUKSEARCH_PLUGINS``."""
    return [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]


def plugin_env() -> dict[str, str]:
    """``{LEUKSEARCH_PLUGINS: ...}`` when set: what a remote worker's environment needs."""
    value = os.environ.get(PLUGINS_ENV, "").strip()
    return {PLUGINS_ENV: value} if value else {}


def _load_entry_point(ep: EntryPoint) -> None:
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin is the user's to fix
        raise UserError(
            f"backbone plugin entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}) "
            f"failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    registered = {type(a) for a in _REGISTRY.values()}
    if isinstance(obj, type) and issubclass(obj, BackboneAdapter) and obj not in registered:
        register_backbone(ep.name)(obj)


def _import_plugin(module: str) -> None:
    _imported.add(module)  # before importing: a plugin may look names up while it loads
    try:
        importlib.import_module(module)
    except Exception as exc:
        _imported.discard(module)
        raise UserError(
            f"{PLUGINS_ENV} names module {module!r}, which could not be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def load_plugins() -> None:
    """Import the backbone plugins not imported yet (entry points once per process)."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(ep)
    for module in plugin_modules():
        if module not in _imported:
            _import_plugin(module)


def backbone_names() -> list[str]:
    """Every registered backbone name, built-ins first, in registration order."""
    load_plugins()
    return list(_REGISTRY)


def get_backbone(name: str) -> BackboneAdapter:
    """The adapter registered as ``name``; a :class:`UserError` listing the names if none."""
    load_plugins()
    adapter = _REGISTRY.get(name)
    if adapter is None:
        raise UserError(unknown_backbone_message(name))
    return adapter


def unknown_backbone_message(name: object) -> str:
    """``backbone 'x' is unknown[; did you mean 'y'?]; use one of [...]``."""
    names = list(_REGISTRY)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"backbone {name!r} is unknown{hint}; use one of {names}"
