"""Shared fixtures: real PostgreSQL databases (made and dropped per test)
and a store URL parametrized over SQLite and PostgreSQL.

The server comes from ``$LEUKSEARCH_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it is unreachable the PostgreSQL
tests are skipped, except in CI (``CI=true``), where they fail loudly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

PG_ENV = "LEUKSEARCH_TEST_PG"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _libpq_url(url: str) -> str:
    """A SQLAlchemy-style PostgreSQL URL as libpq/psycopg accepts it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The test server's admin URL, after checking it answers (skip or, in CI, fail)."""
    url = _libpq_url(os.environ.get(PG_ENV) or DEFAULT_PG)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        message = (
            f"PostgreSQL test server {make_url(url).render_as_string()} is unreachable "
            f"({' '.join(str(exc).split())}); set ${PG_ENV} to a server where the user may "
            "CREATE DATABASE."
        )
        if _in_ci():
            pytest.fail(f"PostgreSQL is required in CI: {message}", pytrace=False)
        pytest.skip(message)
    return url


@contextlib.contextmanager
def _temporary_database(admin_url: str) -> Iterator[str]:
    """CREATE a uniquely named database, yield its URL, DROP it (WITH FORCE) afterwards."""
    name = f"leuksearch_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def fresh_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with _temporary_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'leuksearch.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once as a SQLite file and once as a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("fresh_pg_url")
