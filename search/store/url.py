"""Database URLs: one URL names the store, SQLite (embedded default) or PostgreSQL (psycopg 3).

``resolve_url`` turns what a user typed (``--db``, ``$LEUKSEARCH_DB``, a file path or
nothing) into the SQLAlchemy URL our engine uses; ``optuna_url`` gives the URL Optuna's
``RDBStorage`` needs for the same database; ``mask_url`` hides passwords for messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from leukmodels.errors import UserError

ENV_VAR = "LEUKSEARCH_DB"
DEFAULT_FILE = "leuksearch.db"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
ACCEPTED_FORMS = (
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (also postgres:// or postgresql+psycopg://), "
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, or a plain file path ending in "
    + ", ".join(SQLITE_SUFFIXES)
)
_PASSWORD_IN_URL = re.compile(r"([^\s:/@]+:)[^\s@]*@")  # user:password@


def mask_url(url: str | URL | None) -> str:
    """The URL with any password replaced by ``***``; never raises."""
    if url is None:
        return ""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


def _bad_url(url: str, why: str) -> UserError:
    return UserError(
        f"database URL {mask_url(url)!r} {why}; give --db or ${ENV_VAR} as one of: "
        f"{ACCEPTED_FORMS}."
    )


def _sqlite_file_url(path: str | os.PathLike[str]) -> str:
    absolute = Path(path).expanduser().absolute()
    return URL.create("sqlite", database=str(absolute)).render_as_string(hide_password=False)


def default_url() -> str:
    """The embedded default: ``leuksearch.db`` in the current working directory."""
    return _sqlite_file_url(Path.cwd() / DEFAULT_FILE)


def resolve_url(url: str | None) -> str:
    """Normalise a user-given database URL (None: ``$LEUKSEARCH_DB``, then the default).

    PostgreSQL URLs get the psycopg 3 driver; SQLite URLs and plain ``*.db`` paths become
    absolute ``sqlite:///`` URLs. Anything else raises :class:`UserError`.
    """
    if url is None or not str(url).strip():
        url = os.environ.get(ENV_VAR, "").strip() or None
    if url is None:
        return default_url()
    text = str(url).strip()
    if "://" not in text:
        if text.lower().endswith(SQLITE_SUFFIXES):
            return _sqlite_file_url(text)
        raise _bad_url(text, "is neither a URL nor a SQLite file path")
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise _bad_url(text, f"cannot be parsed ({exc})") from None
    scheme = parsed.drivername.lower()
    if scheme in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if scheme in _SQLITE_SCHEMES:
        if not parsed.database or parsed.database == ":memory:":
            raise _bad_url(text, "is an in-memory SQLite database, which would vanish on exit")
        return _sqlite_file_url(parsed.database)
    raise _bad_url(text, f"uses the unsupported scheme {parsed.drivername!r}")


def sqlite_path(url: str) -> Path | None:
    """The file behind a resolved SQLite URL, or None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def optuna_url(url: str | None) -> str:
    """The URL for ``optuna.storages.RDBStorage`` on the same database as our store.

    Optuna hands the URL to ``sqlalchemy.create_engine`` (so ``postgresql+psycopg`` is
    fine) after ``str.format`` (so literal braces are doubled here).
    """
    return resolve_url(url).replace("{", "{{").replace("}", "}}")
