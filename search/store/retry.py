"""Database calls that outlive a server restart: bounded retries with exponential backoff.

A lost connection (the server restarting, a network blip) is *transient*: the call is
tried again after 0.25 s, 0.5 s, 1 s, ... (at most 4 s apart) until ``limit_s`` has passed
(``$LEUKSEARCH_DB_RETRY_S``, default 120 s), then :class:`DatabaseGone` says which database
(password masked) and how to resume. Every other error is raised at once. The store's
writes are idempotent and Optuna's tell skips finished trials, so a call that reached the
server before the connection broke is safe to repeat.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from leukmodels.errors import UserError
from search.store.url import mask_url

logger = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_ENV = "LEUKSEARCH_DB_RETRY_S"
DEFAULT_LIMIT_S = 120.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 4.0


class DatabaseGone(UserError):
    """The database stayed unreachable past the retry limit."""


def retry_limit_s() -> float:
    """How long a database may stay away before the study stops (``$LEUKSEARCH_DB_RETRY_S``)."""
    raw = os.environ.get(RETRY_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_LIMIT_S
    except ValueError:
        raise UserError(f"${RETRY_ENV}={raw!r} is not a number of seconds") from None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it, e.g. inside Optuna's storage) is a lost or
    refused connection rather than a problem with the statement."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (OperationalError, InterfaceError)):
            return True
        if isinstance(cur, DBAPIError) and cur.connection_invalidated:
            return True
        if type(cur).__module__.startswith("psycopg") and type(cur).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def gone_message(url: str, waited_s: float, study: str | None, reason: str = "") -> str:
    """What the user reads when the database stayed away."""
    why = f" ({' '.join(reason.split())[:200]})" if reason else ""
    then = f"; when it is back: leuksearch resume --study {study}" if study else ""
    return f"the database {mask_url(url)} was unreachable for {waited_s:.0f} s{why}; stopped{then}"


def call_with_retry(
    fn: Callable[[], T],
    url: str,
    *,
    what: str,
    study: str | None = None,
    limit_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on transient errors until ``limit_s`` has passed."""
    limit = retry_limit_s() if limit_s is None else limit_s
    start = time.monotonic()
    delay = FIRST_DELAY_S
    warned = False
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            waited = time.monotonic() - start
            if waited + delay > limit:
                raise DatabaseGone(gone_message(url, waited, study, str(exc))) from None
            if not warned:
                logger.warning(
                    "database %s unreachable while %s; retrying for up to %.0f s",
                    mask_url(url), what, limit,
                )  # fmt: skip
                warned = True
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if warned:
            logger.warning("database %s is back (%s)", mask_url(url), what)
        return result
