"""Names that become file or folder names: studies, profiles, protocols, bundles.

A study's name is the folder of its Ray experiment under ``--storage-path``; a bundle's
name is part of a report table's file name. So a name is one plain path component:
:func:`check_name` refuses path separators, ``..``, control characters, a leading dot
or dash, and anything but letters, digits and ``._-``. Every place a name enters (the
command line, a space file, the runner before it builds a path) calls it.
"""

from __future__ import annotations

import re
from pathlib import Path

from leukmodels.errors import UserError

MAX_NAME_LENGTH = 100
ALLOWED = f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME_LENGTH} characters"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def name_problem(value: object, what: str = "name") -> str | None:
    """Why ``value`` is not a valid name (None when it is one)."""
    if not isinstance(value, str):
        return f"{what} must be a string (quote it), got {type(value).__name__} {value!r}"
    reason = _reason(value)
    if reason is None:
        return None
    shown = repr(value if len(value) <= 60 else value[:40] + "...")
    return f"{what} {shown} is not allowed: {reason}; use {ALLOWED}"


def _reason(value: str) -> str | None:
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is {len(value)} characters long"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it contains control characters"
    if "/" in value or "\\" in value:
        return "it contains a path separator"
    if ".." in value:
        return "it contains '..'"
    if value[0] in ".-":
        return f"it starts with '{value[0]}'"
    if _NAME.fullmatch(value) is None:
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
        return "it contains " + ", ".join(repr(c) for c in bad)
    return None


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a valid name, else a UserError saying why and what is allowed."""
    problem = name_problem(value, what)
    if problem is not None:
        raise UserError(problem)
    return value  # type: ignore[return-value]


def child_path(parent: str | Path, name: str, what: str = "study name") -> Path:
    """``parent / name`` (``parent`` made absolute) after checking ``name``: the result is
    always a direct child of ``parent``."""
    return Path(parent).expanduser().resolve() / check_name(name, what)
