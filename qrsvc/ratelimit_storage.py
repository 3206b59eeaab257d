"""A `limits` storage on a SQLite file: one moving window per key for every worker of an instance.

The default deployment runs several gunicorn workers; `memory://` would give each its own
counter (a 30/minute key got 60). This storage keeps flask-limiter's moving window in a
SQLite file in the instance folder instead: each acquisition is one `BEGIN IMMEDIATE`
transaction, so workers and their threads take turns and the count is exact. The state is
ephemeral (WAL, no fsync); several hosts need Redis (`QRSVC_RATELIMIT_STORAGE_URL`).

flask-limiter counts in `hit` and reads the window for its headers later, in
`after_request`; by then other requests may have counted, and two responses would show
the same `X-RateLimit-Remaining`. So both storages here read the window in the same atomic
step as the acquisition (the SQLite transaction; a Redis MULTI of limits' own two scripts),
keep it per thread, and answer it to the `get_moving_window` of that key that follows in the
same request: Remaining is the count at the request's own turn, one strictly decreasing
sequence under concurrency.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from limits.storage import MovingWindowSupport, RedisStorage, Storage

SCHEME = "qrsvc+sqlite"
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS window_entries (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS window_entries_key_at ON window_entries (key, at);
CREATE INDEX IF NOT EXISTS window_entries_expires ON window_entries (expires);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL);
"""


def storage_url(path: Path) -> str:
    """The URL of a SQLite file at `path` (the default storage)."""
    return f"{SCHEME}://{urllib.parse.quote(str(path.resolve()))}"


def limiter_storage_uri(url: str) -> str:
    """The URI flask-limiter gets for a configured storage URL: Redis goes through `ExactRedisStorage`."""
    scheme = urllib.parse.urlsplit(url).scheme
    return f"qrsvc+{url}" if scheme in _REDIS_SCHEMES else url


class _SeenWindow:
    """The window each thread's last acquisition saw, per key and expiry."""

    _local: threading.local

    def _remember(self, key: str, expiry: int, window: tuple[float, int]) -> None:
        self._local.seen = (os.getpid(), key, expiry, window)

    def _seen(self, key: str, expiry: int) -> tuple[float, int] | None:
        seen = getattr(self._local, "seen", None)
        if seen is not None and seen[:3] == (os.getpid(), key, expiry):
            window: tuple[float, int] = seen[3]
            return window
        return None


class ExactRedisStorage(_SeenWindow, RedisStorage):
    """limits' Redis storage, whose acquisition also reads the window it left, atomically."""

    STORAGE_SCHEME = [f"qrsvc+{scheme}" for scheme in _REDIS_SCHEMES]

    def __init__(self, uri: str, **options: Any) -> None:
        self._local = threading.local()
        super().__init__(uri.removeprefix("qrsvc+"), **options)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """limits' acquire script and its window script in one MULTI: nothing runs between them."""
        stored = self.prefixed_key(key)
        now = time.time()
        with self.storage.pipeline(transaction=True) as pipe:
            self.lua_acquire_moving_window([stored], [now, limit, expiry, amount], client=pipe)
            self.lua_moving_window([stored], [now - expiry, limit], client=pipe)
            acquired, window = pipe.execute()
        self._remember(key, expiry, (float(window[0]), int(window[1])) if window else (now, 0))
        return bool(acquired)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        seen = self._seen(key, expiry)
        if seen is not None:
            return seen
        window: tuple[float, int] = super().get_moving_window(key, limit, expiry)
        return window


class SQLiteStorage(_SeenWindow, Storage, MovingWindowSupport):
    """Moving windows (and fixed-window counters) in one SQLite file shared by processes."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        self.path = Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))
        self._local = threading.local()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        """One connection a thread and process (a forked worker never reuses its parent's)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "pid", None) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")  # counts may be lost with the machine, no more
            connection.executescript(_SCHEMA)
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def _transaction(self) -> sqlite3.Connection:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")  # the write lock first: no two workers count at once
        return connection

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Add `amount` entries to `key`'s window unless that would exceed `limit`."""
        if amount > limit:
            return False
        connection = self._transaction()
        try:
            now = time.time()
            connection.execute("DELETE FROM window_entries WHERE expires <= ?", (now,))
            oldest, count = connection.execute(
                "SELECT min(at), count(*) FROM window_entries WHERE key = ? AND at > ?", (key, now - expiry)
            ).fetchone()
            acquired = bool(count + amount <= limit)
            if acquired:
                connection.executemany(
                    "INSERT INTO window_entries (key, at, expires) VALUES (?, ?, ?)",
                    [(key, now, now + expiry)] * amount,
                )
                oldest, count = (now if oldest is None else oldest), count + amount
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        self._remember(key, expiry, (now if oldest is None else oldest, count))
        return acquired

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(oldest entry, entries) of the window; right after an acquisition, as that one saw it."""
        seen = self._seen(key, expiry)
        if seen is not None:
            return seen
        now = time.time()
        oldest, count = (
            self._connection()
            .execute(
                "SELECT min(at), count(*) FROM window_entries WHERE key = ? AND at > ?", (key, now - expiry)
            )
            .fetchone()
        )
        return (now if oldest is None else oldest), count

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        connection = self._transaction()
        try:
            now = time.time()
            connection.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now))
            (value,) = connection.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value RETURNING value",
                (key, amount, now + expiry),
            ).fetchone()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return int(value)

    def get(self, key: str) -> int:
        row = (
            self._connection()
            .execute("SELECT value FROM counters WHERE key = ? AND expires > ?", (key, time.time()))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._connection().execute("SELECT expires FROM counters WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        return bool(self._connection().execute("SELECT 1").fetchone() == (1,))

    def reset(self) -> int | None:
        connection = self._transaction()
        deleted = connection.execute("DELETE FROM window_entries").rowcount
        deleted += connection.execute("DELETE FROM counters").rowcount
        connection.execute("COMMIT")
        self._local.seen = None
        return int(deleted)

    def clear(self, key: str) -> None:
        connection = self._transaction()
        connection.execute("DELETE FROM window_entries WHERE key = ?", (key,))
        connection.execute("DELETE FROM counters WHERE key = ?", (key,))
        connection.execute("COMMIT")
        self._local.seen = None


__all__ = ["ExactRedisStorage", "SQLiteStorage", "limiter_storage_uri", "storage_url"]
