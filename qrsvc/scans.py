"""Scans of dynamic codes: what one redirect records, and visitor hashes under daily salts.

No IP address is stored, logged or kept in memory past the request: a visitor is
`HMAC(day's salt, code id, address, user agent)`, so one person is one visitor per code
and UTC day, and cannot be followed from code to code. Each day has a random salt kept in
the database (all workers share it); `qrsvc worker` deletes past days' salts, after which
nobody, us included, can tell whose a past hash was. Unique visitors are therefore counted
per day: a person scanning on two days is two visitors.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from qrsvc import clock, jobs
from qrsvc.config import Setting, apply_settings
from qrsvc.db import insert
from qrsvc.extensions import db
from qrsvc.models import ScanSalt
from qrsvc.scan_writer import ScanWriter
from qrsvc.useragents import classify

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "qrsvc_scans"

SETTINGS = (
    Setting(
        "TRUSTED_COUNTRY_HEADER",
        None,
        doc="request header with the visitor's country set by your proxy (e.g. CF-IPCountry); "
        "default none: no country is recorded",
    ),
    Setting(
        "SCAN_FLUSH_SECONDS", 0.1, float, "how long scans wait in a worker before a batch insert; 0: none"
    ),
    Setting("SCAN_FLUSH_ROWS", 500, int, "waiting scans that start a batch insert at once"),
    Setting(
        "SCAN_MAX_PENDING",
        100_000,
        int,
        "scans a worker holds while the database is unreachable (then drops)",
    ),
)

_COUNTRY = re.compile(r"[A-Z][A-Z0-9]")
_HOST = re.compile(r"[a-z0-9.-]{1,255}")


class _State:
    """Per app: the scan writer (made on first use, in a worker) and the salt of the current day."""

    def __init__(self) -> None:
        self.writer: ScanWriter | None = None
        self.salt: tuple[date, bytes] | None = None
        self.lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Settings, the per-app state, and the job that deletes past days' salts."""
    apply_settings(app.config, SETTINGS)
    app.extensions[EXTENSION] = _State()
    jobs.register(app, "scans.purge_salts", purge_salts, app.config["CLEANUP_INTERVAL_SECONDS"])


def _state() -> _State:
    state: _State = current_app.extensions[EXTENSION]
    return state


def writer() -> ScanWriter:
    state = _state()
    if state.writer is None:
        with state.lock:
            if state.writer is None:
                config = current_app.config
                state.writer = ScanWriter(
                    db.engine,
                    config["SCAN_FLUSH_SECONDS"],
                    config["SCAN_FLUSH_ROWS"],
                    config["SCAN_MAX_PENDING"],
                )
    return state.writer


def flush() -> None:
    """Write this process's waiting scans, so counts read next include them."""
    state = _state()
    if state.writer is not None:
        state.writer.flush()


def close(app: Flask) -> None:
    """Write the app's waiting scans and stop its writer thread (tests, before they drop tables)."""
    state: _State = app.extensions[EXTENSION]
    if state.writer is not None:
        state.writer.close()


def _salt(day: date) -> bytes:
    """The day's salt: made by whichever worker needs it first, then read by all (and kept here)."""
    state = _state()
    cached = state.salt
    if cached is not None and cached[0] == day:
        return cached[1]
    table = ScanSalt.__table__
    with db.engine.begin() as connection:
        made = insert(table).values(day=day, salt=secrets.token_hex(32))
        connection.execute(made.on_conflict_do_nothing(index_elements=[table.c.day]))
        salt = bytes.fromhex(connection.scalar(sa.select(table.c.salt).where(table.c.day == day)) or "")
    state.salt = (day, salt)
    return salt


def visitor(salt: bytes, code_id: str, address: str, user_agent: str) -> str:
    """The keyed hash that stands for a visitor: 128 bits of HMAC-SHA256, hex."""
    message = "\n".join((code_id, address, user_agent)).encode("utf-8", "replace")
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]


def address_key(address: str | None) -> str:
    """What the redirect limit counts under: the address keyed with the day's salt, never the address.

    The limiter's storage (Redis, a SQLite file) then holds nothing a past day's salt, once
    deleted, could turn back into an address; the count starts afresh at midnight UTC.
    """
    digest = hmac.new(_salt(clock.now().date()), f"limit\n{address or ''}".encode(), hashlib.sha256)
    return f"visitor:{digest.hexdigest()[:32]}"


def referrer_host(referrer: str | None) -> str | None:
    """Only the name of an http(s) referrer's host: paths and queries can carry personal data,
    and an address for a host may be the visitor's own (a page on their network)."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer[:2048])
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not _HOST.fullmatch(host):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def country_of(value: str | None) -> str | None:
    """An ISO 3166 alpha-2 code from a trusted header (`XX`, unknown, is none)."""
    code = (value or "").strip().upper()
    return code if _COUNTRY.fullmatch(code) and code != "XX" else None


def record(
    code_id: str, address: str | None, user_agent: str | None, referrer: str | None, country: str | None
) -> None:
    """Record one scan now (written within SCAN_FLUSH_SECONDS); the address is hashed and forgotten."""
    now = clock.now()
    agent = classify(user_agent)
    writer().add(
        {
            "code_id": code_id,
            "scanned_at": now,
            "day": now.date(),
            "visitor": visitor(_salt(now.date()), code_id, address or "", user_agent or ""),
            "browser": agent.browser,
            "device": agent.device.value,
            "referrer": referrer_host(referrer),
            "country": country_of(country),
        }
    )


def purge_salts() -> str | None:
    """Delete the salts of past days: their visitor hashes can no longer be linked to anyone."""
    deleted = db.session.execute(sa.delete(ScanSalt).where(ScanSalt.day < clock.now().date()))
    count: int = deleted.rowcount  # type: ignore[attr-defined]
    return f"deleted {count} past scan salts" if count else None


__all__ = [
    "SETTINGS",
    "address_key",
    "close",
    "country_of",
    "flush",
    "init_app",
    "purge_salts",
    "record",
    "referrer_host",
    "visitor",
    "writer",
]
