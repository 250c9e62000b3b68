"""Rows to plain dicts: JSON-serialisable values, timestamps as ISO strings in UTC."""

from __future__ import annotations

from collections.abc import Iterable
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
