"""WAL set-up of the service's SQLite files when another process holds the new file."""

from __future__ import annotations

import functools
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from qrsvc.db import _sqlite_pragmas, engine_options
from qrsvc.sqlite_wal import ensure_wal


def _held(path, seconds: float | None) -> tuple[sqlite3.Connection, threading.Timer | None]:
    """A connection holding the write lock of a new (rollback-journal) file, released after `seconds`."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    release = None if seconds is None else threading.Timer(seconds, lambda: other.execute("COMMIT"))
    if release is not None:
        release.start()
    return other, release


def test_the_database_engine_waits_to_turn_a_new_file_to_wal(tmp_path) -> None:
    """The app's own connections (not only `db upgrade`) may be the first on a file."""
    path = tmp_path / "qrsvc.sqlite3"
    other, release = _held(path, 0.3)
    engine = sa.create_engine(f"sqlite:///{path}", **engine_options(f"sqlite:///{path}"))
    sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, "NORMAL"))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        assert release is not None
        release.join()
        other.close()
        engine.dispose()


def test_a_file_held_beyond_the_timeout_fails_with_the_lock_error(tmp_path) -> None:
    path = tmp_path / "held.sqlite3"
    other, _ = _held(path, None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ensure_wal(sqlite3.connect(path, isolation_level=None), timeout=0.2)
    finally:
        other.close()


def test_a_file_already_in_wal_is_left_as_it_is(tmp_path) -> None:
    path = tmp_path / "wal.sqlite3"
    first = sqlite3.connect(path, isolation_level=None)
    ensure_wal(first)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO t VALUES (1)")  # a writer at work does not stop a new connection's set-up
    second = sqlite3.connect(path, isolation_level=None)
    ensure_wal(second, timeout=0.2)
    first.execute("COMMIT")
    assert second.execute("SELECT count(*) FROM t").fetchone() == (1,)
