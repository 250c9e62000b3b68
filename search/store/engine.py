"""SQLAlchemy engines for the store: SQLite tuned for several writers, PostgreSQL via psycopg 3.

SQLite connections get WAL, a busy timeout and foreign keys, and SQLAlchemy (not the
``sqlite3`` module) emits ``BEGIN`` so that DDL is transactional and writes can take
the write lock up front (``BEGIN IMMEDIATE``, see :func:`begin_write`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from leukmodels.errors import UserError
from search.store.url import mask_url, sqlite_path

SQLITE_BUSY_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 10
_BEGIN_OPTION = "leuksearch_sqlite_begin"

json_dumps = functools.partial(json.dumps, allow_nan=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (_sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_BEGIN_OPTION) == "immediate"
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite_engine(engine: Engine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def has_store_hooks(engine: Engine) -> bool:
    """Whether a SQLite engine was made by :func:`create_store_engine` (always true otherwise)."""
    return not is_sqlite_engine(engine) or event.contains(engine, "begin", _sqlite_on_begin)


def create_store_engine(url: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S) -> Engine:
    """An engine for a resolved URL (see ``search.store.url.resolve_url``); connects lazily."""
    path = sqlite_path(url)
    if path is not None:
        if not path.parent.is_dir():
            raise UserError(
                f"cannot create the SQLite database {str(path)!r}: the folder "
                f"{str(path.parent)!r} does not exist; create it or give another --db path."
            )
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(
        url,
        connect_args={"connect_timeout": int(connect_timeout)},
        pool_pre_ping=True,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,  # several times json.loads' speed on big reads
    )


def describe_db_error(url: str, exc: BaseException) -> str:
    """The driver's reason for a database error as one line, with the password masked."""
    reason = str(getattr(exc, "orig", None) or exc)
    password = make_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    return " ".join(reason.split()) or type(exc).__name__


def check_connection(engine: Engine) -> None:
    """Connect once and read the database; a failure is a :class:`UserError` naming the URL."""
    url = engine.url.render_as_string(hide_password=False)
    probe = "SELECT count(*) FROM sqlite_master" if is_sqlite_engine(engine) else "SELECT 1"
    try:
        with engine.connect() as conn:
            conn.execute(text(probe))
    except DBAPIError as exc:
        raise UserError(
            f"cannot open the leuksearch database {mask_url(url)}: "
            f"{describe_db_error(url, exc)}. Check the --db URL (or $LEUKSEARCH_DB), that the "
            "server is running and reachable, and the user, password and database name."
        ) from None


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at once.

    ``BEGIN IMMEDIATE`` waits (busy timeout) for other writers instead of failing
    later when a read-then-write transaction tries to upgrade its lock.
    """
    with engine.connect() as conn:
        if is_sqlite_engine(engine):
            conn.execution_options(**{_BEGIN_OPTION: "immediate"})
        with conn.begin():
            yield conn
