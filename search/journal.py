"""The driver's writes, kept in order while the database is away.

Every write of the store callback (a trial's start, an epoch, a trial's end, the tell to
Optuna that follows it) goes through a :class:`Journal`. Normally each is written at
once. When the server is unreachable the write stays queued, in memory and in order;
training goes on, later writes queue behind it, and the queue is written as soon as the
server answers again (tried with exponential backoff on every Tune step). Past the retry
limit (:func:`search.store.retry.retry_limit_s`) the journal raises
:class:`~search.store.retry.DatabaseGone` and the study stops, to be resumed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from search.store.retry import (
    FIRST_DELAY_S,
    MAX_DELAY_S,
    DatabaseGone,
    gone_message,
    is_transient,
    retry_limit_s,
)
from search.store.url import mask_url

logger = logging.getLogger(__name__)


class Journal:
    """Ordered database writes that wait out a server restart (see the module doc)."""

    def __init__(self, url: str, study: str, limit_s: float | None = None) -> None:
        self.url = url
        self.study = study
        self.limit_s = retry_limit_s() if limit_s is None else limit_s
        self._ops: deque[tuple[str, Callable[[], object]]] = deque()
        self._down_since: float | None = None
        self._next_try = 0.0
        self._delay = FIRST_DELAY_S
        self._reason = ""
        self._most_kept = 0

    def __len__(self) -> int:
        return len(self._ops)

    def add(self, what: str, write: Callable[[], object]) -> None:
        """Queue ``write`` (a description says what it writes) and write what can be."""
        self._ops.append((what, write))
        self.flush()

    def flush(self) -> None:
        """Write the queue in order; stop at the first write the server is not there for."""
        if self._down_since is not None and time.monotonic() < self._next_try:
            self._check_limit()
            return
        while self._ops:
            what, write = self._ops[0]
            try:
                write()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._outage(what, exc)
                return
            self._ops.popleft()
        if self._down_since is not None:
            logger.warning(
                "database %s is back after %.0f s: the %d kept write(s) are written",
                mask_url(self.url), time.monotonic() - self._down_since, self._most_kept,
            )  # fmt: skip
            self._down_since, self._delay, self._most_kept = None, FIRST_DELAY_S, 0

    def drain(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Write everything queued, waiting for the server up to the limit."""
        self.flush()
        while self._ops:
            sleep(max(0.05, self._next_try - time.monotonic()))
            self.flush()

    def _outage(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._most_kept = max(self._most_kept, len(self._ops))
        self._reason = str(getattr(exc, "orig", None) or exc.__cause__ or exc)
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "database %s unreachable while writing %s; keeping the results in order "
                "until it is back (up to %.0f s)",
                mask_url(self.url), what, self.limit_s,
            )  # fmt: skip
        self._next_try = now + self._delay
        self._delay = min(self._delay * 2, MAX_DELAY_S)
        self._check_limit()

    def _check_limit(self) -> None:
        if self._down_since is None:
            return
        waited = time.monotonic() - self._down_since
        if waited > self.limit_s:
            raise DatabaseGone(
                gone_message(self.url, waited, self.study, self._reason)
                + f" ({len(self._ops)} result(s) not written; their trials will run again)"
            )
