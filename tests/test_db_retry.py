"""Bounded retries and the ordered journal of writes (search.store.retry, search.journal)."""

from __future__ import annotations

import time

import optuna
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from search.journal import Journal
from search.store.retry import DatabaseGone, call_with_retry, is_transient

URL = "postgresql+psycopg://leuk:hunter2@db.example:5432/studies"


class Server:
    """A database that refuses connections while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.rows: list[int] = []

    def write(self, n: int) -> None:
        if self.down:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
        self.rows.append(n)


def test_transient_is_a_lost_connection_also_inside_optuna() -> None:
    refused = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    assert is_transient(refused)
    try:
        try:
            raise refused
        except OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("commit failed") from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(IntegrityError("INSERT", {}, ValueError("duplicate key")))
    assert not is_transient(ValueError("bad value"))


def test_call_with_retry_backs_off_then_succeeds_or_names_the_database() -> None:
    server, sleeps, calls = Server(), [], []
    server.down = True

    def write() -> str:
        calls.append(1)
        if len(calls) == 4:
            server.down = False
        server.write(len(calls))
        return "ok"

    assert call_with_retry(write, URL, what="a test", limit_s=60, sleep=sleeps.append) == "ok"
    assert sleeps == [0.25, 0.5, 1.0] and server.rows == [4]

    with pytest.raises(ValueError):  # not a connection problem: raised at once
        call_with_retry(lambda: int("x"), URL, what="a test", limit_s=60, sleep=sleeps.append)

    server.down = True
    with pytest.raises(DatabaseGone) as info:
        call_with_retry(lambda: server.write(0), URL, what="x", study="S", limit_s=0.2)
    message = str(info.value)
    assert "postgresql+psycopg://leuk:***@db.example:5432/studies" in message
    assert "hunter2" not in message and "leuksearch resume --study S" in message


def test_journal_keeps_writes_in_order_while_the_server_is_away() -> None:
    server = Server()
    journal = Journal(URL, "S", limit_s=30)
    journal.add("w1", lambda: server.write(1))
    server.down = True
    for n in (2, 3, 4):
        journal.add(f"w{n}", lambda n=n: server.write(n))
    assert server.rows == [1] and len(journal) == 3
    server.down = False
    journal.drain()
    assert server.rows == [1, 2, 3, 4] and len(journal) == 0

    server.down = True
    journal = Journal(URL, "S", limit_s=0.3)
    journal.add("w5", lambda: server.write(5))
    time.sleep(0.35)
    with pytest.raises(DatabaseGone, match=r"1 result\(s\) not written"):
        journal.drain()
    assert server.rows == [1, 2, 3, 4]
