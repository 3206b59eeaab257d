"""Scan rows written behind the redirect: buffered in the process, inserted by a thread in batches.

A redirect must not wait for a disk: it appends its row to a list and returns. A thread
inserts what has gathered every `SCAN_FLUSH_SECONDS` (or at once when `SCAN_FLUSH_ROWS`
are waiting) in one transaction of its own. A clean exit (gunicorn's worker on SIGTERM,
any `sys.exit`) writes what is left: `atexit` runs `close`. With `SCAN_FLUSH_SECONDS=0`
each redirect writes its own row before it answers (the bench's baseline).

A batch that cannot be written (the database is down) stays and is tried again on the
next tick; past `SCAN_MAX_PENDING` rows the oldest are dropped, and the log says how many.
Scans of a code deleted meanwhile are dropped (their foreign key would fail the batch).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from qrsvc.models import DynamicCode, Scan

log = logging.getLogger(__name__)

#: The flushing thread ends after this long with nothing to write (and starts again when needed).
IDLE_SECONDS = 5.0


class ScanWriter:
    """The process's scan buffer for one database engine."""

    def __init__(self, engine: sa.Engine, interval: float, batch_rows: int, max_pending: int) -> None:
        self.engine = engine
        self.interval = interval
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _pending and the thread's start
        self._write_lock = threading.Lock()  # one batch written at a time, in order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closing = False
        self._exit_registered = False

    def add(self, row: dict[str, Any]) -> None:
        """Keep one scan row (written synchronously when the interval is 0)."""
        if self.interval <= 0 or self._closing:
            self._write([row])
            return
        with self._lock:
            self._pending.append(row)
            dropped = len(self._pending) - self.max_pending
            if dropped > 0:
                del self._pending[:dropped]
                log.warning("scan buffer full: dropped the %d oldest unwritten scans", dropped)
            if len(self._pending) >= self.batch_rows:
                self._wake.set()
            self._ensure_thread()

    def flush(self) -> int:
        """Write every waiting row now; returns how many were written (the rest stay on failure)."""
        with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return 0
            try:
                return self._write(rows)
            except Exception:
                with self._lock:
                    self._pending[:0] = rows  # first in, first written on the next try
                raise

    def close(self) -> None:
        """Stop the thread and write what is left (the `atexit` hook; safe to call twice).

        A scan added after this is written at once, in the request.
        """
        self._closing = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self.flush()
        except Exception:
            log.exception("could not write %d scans at exit", len(self._pending))
        if self._exit_registered:
            atexit.unregister(self.close)
            self._exit_registered = False

    def _ensure_thread(self) -> None:
        # A forked process (a gunicorn worker) has the list but not the thread: start its own.
        alive = self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()
        if alive or self._closing:
            return
        if not self._exit_registered:
            atexit.register(self.close)
            self._exit_registered = True
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="qrsvc-scan-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        idle = 0.0
        while not self._closing:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                written = self.flush()
            except Exception:
                log.exception("could not write scans; trying again in %.1f s", self.interval)
                written = 1  # not idle: rows are waiting
            idle = 0.0 if written else idle + self.interval
            with self._lock:
                if idle >= IDLE_SECONDS and not self._pending:
                    self._thread = None
                    return

    def _write(self, rows: Sequence[dict[str, Any]]) -> int:
        codes = {row["code_id"] for row in rows}
        with self.engine.begin() as connection:
            known = set(
                connection.scalars(
                    sa.select(DynamicCode.__table__.c.code_id).where(
                        DynamicCode.__table__.c.code_id.in_(codes)
                    )
                )
            )
            kept = [row for row in rows if row["code_id"] in known]
            if kept:
                connection.execute(sa.insert(Scan.__table__), kept)
        return len(kept)


__all__ = ["IDLE_SECONDS", "ScanWriter"]
