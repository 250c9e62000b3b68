"""Rows to plain dicts: JSON-serialisable values, timestamps as ISO strings in UTC."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Row


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (SQLite hands back naive UTC ones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """A datetime as an ISO 8601 string in UTC, or None."""
    aware = as_utc(value)
    return None if aware is None else aware.isoformat()


def row_dict(row: Row[Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A row as a dict, datetimes as ISO strings, without the ``exclude`` columns."""
    skip = set(exclude)
    out: dict[str, Any] = {}
    for key, value in row._mapping.items():
        if key in skip:
            continue
        out[key] = iso(value) if isinstance(value, datetime) else value
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (back on after, if it was).

    Reading 100,000 trials creates millions of small acyclic objects, and each
    allocation burst triggers a collection that walks every object still alive: at
    100,000 trials that alone was ~4 s of a 13 s report collect (bench/store_scale.py).
    Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
