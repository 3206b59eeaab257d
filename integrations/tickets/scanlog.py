"""The append-only scan log: rows appended exactly once per (device, nonce), retries found, pages read.

A (device, nonce) pair is unique per calling key and event; the unique index, not a
read before the write, decides which of two racing requests logs it. Each row appended
counts once in `qrsvc_ticket_scans` when its transaction commits; a retry finds the row
and counts nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import Page, after_commit, paginate, savepoint

from .models import Event, Scan, Ticket, scan_event_scope


def token_hash(token: str) -> str:
    """What the scan log keeps of a token: enough to tell a retry from a reused nonce."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Sent:
    """How a scan reached us: what the log keeps besides the decision."""

    direction: str
    gate: str | None
    device: str | None
    nonce: str | None
    digest: str
    client_time: datetime | None
    offline: bool = False


def find_scan(key: ApiKey, event_id: str | None, sent: Sent) -> Scan | None:
    """This key's earlier scan with this (device, nonce) at this event; never another key's."""
    if not sent.device or not sent.nonce:
        return None
    query = sa.select(Scan).where(
        Scan.key_id == key.id,
        scan_event_scope() == (event_id or ""),
        Scan.device == sent.device,
        Scan.nonce == sent.nonce,
    )
    scan: Scan | None = db.session.scalar(query)
    return scan


def is_retry(existing: Scan, sent: Sent) -> bool:
    """The same scan sent again: same token and direction (rows without a hash never match)."""
    return (
        existing.token_hash is not None
        and existing.token_hash == sent.digest
        and existing.direction == sent.direction
    )


def append(key: ApiKey, event_id: str | None, sent: Sent, decide: Callable[[], Scan]) -> Scan:
    """Run `decide` (the redemption's UPDATE, then the row) in a savepoint and log the row.

    When a concurrent request logged the same (device, nonce) first, the savepoint undoes
    this attempt's writes and the winner's row is returned: the caller checks it with
    `is_retry`, as the racer may have sent another token.
    """
    try:
        with savepoint():
            scan = decide()
            db.session.add(scan)
            db.session.flush()
    except IntegrityError:
        existing = find_scan(key, event_id, sent)
        if existing is None:
            raise
        return existing
    _count(scan)
    return scan


def _count(scan: Scan) -> None:
    """One more scan in `qrsvc_ticket_scans`, once the request commits it (a rollback counts none)."""
    scans = current_app.extensions["tickets_scans"]
    after_commit(scans.labels(str(scan.result), "offline" if scan.offline else "online").inc)


def list_scans(event: Event, limit: int, cursor: str | None) -> Page[Scan]:
    """The event's scan log, oldest first, a page after `cursor` (the previous page's `next_cursor`)."""
    query = sa.select(Scan).where(Scan.event_id == event.id)
    return paginate(query, [Scan.id], limit, cursor, descending=False)


def ticket_scans(ticket: Ticket, limit: int = 100) -> list[Scan]:
    """A ticket's first `limit` scans, oldest first."""
    query = sa.select(Scan).where(Scan.ticket_id == ticket.id).order_by(Scan.id).limit(limit)
    return list(db.session.scalars(query))


__all__ = ["Sent", "append", "find_scan", "is_retry", "list_scans", "ticket_scans", "token_hash"]
