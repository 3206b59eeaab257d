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

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from limits.storage import MovingWindowSupport, RedisStorage, Storage
from redis.exceptions import NoScriptError

from qrsvc.sqlite_wal import ensure_wal

SCHEME = "qrsvc+sqlite"
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")

#: Bumped when the tables change: a file of another version is emptied and remade (its state is ephemeral).
_SCHEMA_VERSION = 2
_SCHEMA = """
DROP TABLE IF EXISTS window_entries;
DROP TABLE IF EXISTS counters;
CREATE TABLE IF NOT EXISTS window_entries (
    key TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, expires REAL NOT NULL, PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS window_entries_key_at ON window_entries (key, at, seq);
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
        """limits' acquire script and its window script in one MULTI: nothing runs between them.

        By their SHA1s, in one round trip: a pipeline of redis-py `Script`s first asks
        `SCRIPT EXISTS` on every execution, a second round trip a request. A server that lost
        them (restarted, `SCRIPT FLUSH`) answers NOSCRIPT for a script that did not run; it is
        loaded and run again, so nothing is counted twice.
        """
        stored = self.prefixed_key(key)
        now = time.time()
        acquire, read = self.lua_acquire_moving_window, self.lua_moving_window
        with self.storage.pipeline(transaction=True) as pipe:
            pipe.evalsha(acquire.sha, 1, stored, now, limit, expiry, amount)
            pipe.evalsha(read.sha, 1, stored, now - expiry, limit)
            acquired, window = pipe.execute(raise_on_error=False)
        if isinstance(acquired, NoScriptError):  # nothing was counted: both again, loaded, in one MULTI
            with self.storage.pipeline(transaction=True) as pipe:
                acquire([stored], [now, limit, expiry, amount], client=pipe)
                read([stored], [now - expiry, limit], client=pipe)
                acquired, window = pipe.execute()
        elif isinstance(window, NoScriptError):  # the acquisition ran: only the (read-only) window again
            window = read([stored], [now - expiry, limit])
        for answer in (acquired, window):
            if isinstance(answer, Exception):
                raise answer
        self._remember(key, expiry, (float(window[0]), int(window[1])) if window else (now, 0))
        return bool(acquired)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        seen = self._seen(key, expiry)
        if seen is not None:
            return seen
        window: tuple[float, int] = super().get_moving_window(key, limit, expiry)
        return window


class _ThreadState:
    """A thread's connection to the file and its descriptor of the lock file, closed with it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        self.lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        self.connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.connection.execute("PRAGMA synchronous=OFF")  # counts may be lost with the machine, no more
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            ensure_wal(self.connection)
            if self.connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                self.connection.executescript(f"{_SCHEMA}PRAGMA user_version = {_SCHEMA_VERSION};")
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

    def __del__(
        self, _getpid: Callable[[], int] = os.getpid, _close: Callable[[int], None] = os.close
    ) -> None:
        # The functions are bound at definition: at interpreter exit `os` may already be gone.
        if self.pid == _getpid():  # never close a parent's connection in a forked child
            if (connection := vars(self).get("connection")) is not None:  # None: __init__ failed first
                connection.close()
            _close(self.lock)


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

    def _state(self) -> _ThreadState:
        """One connection and lock file a thread and process; a forked worker never reuses its parent's."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None or state.pid != os.getpid():
            state = self._local.state = _ThreadState(self.path)
        return state

    def _connection(self) -> sqlite3.Connection:
        return self._state().connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction, behind an exclusive `flock` on the lock file.

        Waiters then sleep in the kernel and wake the moment the lock is free; SQLite's own busy
        handler would poll in steps of 1 to 100 ms, a long tail under concurrent requests.
        """
        state = self._state()
        connection = state.connection
        fcntl.flock(state.lock, fcntl.LOCK_EX)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            fcntl.flock(state.lock, fcntl.LOCK_UN)

    @staticmethod
    def _window(
        connection: sqlite3.Connection, key: str, since: float
    ) -> tuple[float | None, int, int, float]:
        """(oldest, count) of `key`'s entries after `since`, and its newest (seq, at).

        A key's entries are numbered in the order they are made and their times never go back,
        so the window is a run of numbers: two index probes count it, however many it holds.
        """
        newest = connection.execute(
            "SELECT seq, at FROM window_entries WHERE key = ? ORDER BY seq DESC LIMIT 1", (key,)
        ).fetchone()
        first = connection.execute(
            "SELECT seq, at FROM window_entries WHERE key = ? AND at > ? ORDER BY at, seq LIMIT 1",
            (key, since),
        ).fetchone()
        if newest is None:
            return None, 0, 0, 0.0
        if first is None:
            return None, 0, newest[0], newest[1]
        return first[1], newest[0] - first[0] + 1, newest[0], newest[1]

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Add `amount` entries to `key`'s window unless that would exceed `limit`."""
        if amount > limit:
            return False
        with self._transaction() as connection:
            now = time.time()
            connection.execute("DELETE FROM window_entries WHERE expires <= ?", (now,))
            oldest, count, last, last_at = self._window(connection, key, now - expiry)
            now = max(now, last_at)  # a clock stepping back must not break the numbering's order
            acquired = count + amount <= limit
            if acquired:
                connection.executemany(
                    "INSERT INTO window_entries (key, seq, at, expires) VALUES (?, ?, ?, ?)",
                    [(key, last + i, now, now + expiry) for i in range(1, amount + 1)],
                )
                oldest, count = (now if oldest is None else oldest), count + amount
        self._remember(key, expiry, (now if oldest is None else oldest, count))
        return acquired

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(oldest entry, entries) of the window; right after an acquisition, as that one saw it."""
        seen = self._seen(key, expiry)
        if seen is not None:
            return seen
        now = time.time()
        oldest, count, _last, _at = self._window(self._connection(), key, now - expiry)
        return (now if oldest is None else oldest), count

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self._transaction() as connection:
            now = time.time()
            connection.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now))
            (value,) = connection.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value RETURNING value",
                (key, amount, now + expiry),
            ).fetchone()
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
        with self._transaction() as connection:
            deleted = connection.execute("DELETE FROM window_entries").rowcount
            deleted += connection.execute("DELETE FROM counters").rowcount
        self._local.seen = None
        return int(deleted)

    def clear(self, key: str) -> None:
        with self._transaction() as connection:
            connection.execute("DELETE FROM window_entries WHERE key = ?", (key,))
            connection.execute("DELETE FROM counters WHERE key = ?", (key,))
        self._local.seen = None


__all__ = ["ExactRedisStorage", "SQLiteStorage", "limiter_storage_uri", "storage_url"]
