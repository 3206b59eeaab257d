"""SQLite files in WAL mode, set up safely by processes that start at the same moment."""

from __future__ import annotations

import sqlite3
import time

#: How long a connection waits for another to let go of a file it must turn to WAL.
WAL_TIMEOUT = 30.0


def ensure_wal(connection: sqlite3.Connection, timeout: float = WAL_TIMEOUT) -> None:
    """Put the file in WAL mode unless it already is (the mode is stored in the file).

    Switching needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting its busy timeout, while another connection holds it: two workers
    whose first requests meet on a new file would fail one of them. So: ask first (which
    waits like any read), and retry the switch until `timeout`.
    """
    deadline = time.monotonic() + timeout
    cursor = connection.cursor()
    try:
        while True:
            try:
                if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        cursor.close()


__all__ = ["ensure_wal"]
