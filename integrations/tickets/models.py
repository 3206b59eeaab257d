"""Ticketing tables: events, tickets, signing keys and the append-only scan log, and their ids."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qrsvc.extensions import db
from qrsvc.models import UTCDateTime


def new_record_id(prefix: str) -> str:
    """`evt_…`, `tkt_…`: 80 random bits, so ids cannot be guessed or enumerated."""
    return prefix + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def plausible_id(record_id: str) -> bool:
    """An id we could have made: short and printable (a NUL would be a 500 on PostgreSQL)."""
    return len(record_id) <= 40 and record_id.isprintable()


def updated_rows(statement: sa.Update) -> int:
    """How many rows a conditional UPDATE changed: the count *is* the decision (no read first)."""
    db.session.flush()
    return db.session.connection().execute(statement).rowcount


class ScanResult(StrEnum):
    """Every answer a decided scan can have: stable API codes that gates switch on (`Scan.result`)."""

    ADMITTED = "admitted"
    ALREADY_USED = "already_used"
    REVOKED = "revoked"
    INVALID_SIGNATURE = "invalid_signature"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_EVENT = "wrong_event"
    UNKNOWN_TICKET = "unknown_ticket"
    # direction "exit" only:
    EXITED = "exited"
    NOT_INSIDE = "not_inside"
    # offline uploads only:
    INVALID_TIME = "invalid_time"
    REFUSED_LOCALLY = "refused_locally"
    NONCE_REUSED = "nonce_reused"

    @property
    def admits(self) -> bool:
        """Whether the gate lets the holder pass (in, or out)."""
        return self in (ScanResult.ADMITTED, ScanResult.EXITED)


class Event(db.Model):  # type: ignore[name-defined,misc]
    """An event owned by the API key that created it; other keys never see it."""

    __tablename__ = "ticket_events"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    venue: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    allow_reentry: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: Bumped in the same statement-level write as every revocation, for offline scanners.
    revocation_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Ticket(db.Model):  # type: ignore[name-defined,misc]
    """One admission. `used_at` is set once, by a conditional UPDATE, never read-then-write."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("ticket_events.id", ondelete="CASCADE"), index=True)
    holder_name: Mapped[str] = mapped_column(sa.String(200))
    holder_email: Mapped[str | None] = mapped_column(sa.String(254), default=None)
    seat: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    tier: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    jti: Mapped[str] = mapped_column(sa.String(32), unique=True)
    token: Mapped[str] = mapped_column(sa.Text)
    kid: Mapped[str] = mapped_column(sa.String(64))
    qr_code_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("qr_codes.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    first_gate: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    #: Whether the holder is in the venue: set by every admitted entry, cleared by an exit.
    #: Entry and exit rules and the event's `inside` count all read this one column.
    inside: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    replaced_by: Mapped[str | None] = mapped_column(sa.String(40), default=None)


class SigningKey(db.Model):  # type: ignore[name-defined,misc]
    """A ticket-signing key pair; `generation` is unique so racing creators agree on one key."""

    __tablename__ = "ticket_signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(sa.Integer, unique=True)
    alg: Mapped[str] = mapped_column(sa.String(16))
    #: PKCS#8 PEM; NULL for a key whose private half lives in the key file.
    private_pem: Mapped[str | None] = mapped_column(sa.Text, default=None)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Scan(db.Model):  # type: ignore[name-defined,misc]
    """One scan as decided, successful or not. Rows are only ever inserted.

    A (device, nonce) pair is unique per calling key and event (see `uq_ticket_scans_scope`
    below), so one key's retry can never be answered with another key's or event's scan.
    """

    __tablename__ = "ticket_scans"
    __table_args__ = (
        sa.Index("ix_ticket_scans_event_id", "event_id", "id"),
        sa.Index("ix_ticket_scans_ticket_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    ticket_id: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    key_id: Mapped[int | None] = mapped_column(sa.Integer, default=None)
    result: Mapped[str] = mapped_column(sa.String(24))
    admit: Mapped[bool] = mapped_column(sa.Boolean)
    direction: Mapped[str] = mapped_column(sa.String(8))
    gate: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    device: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    nonce: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    #: SHA-256 (hex) of the scanned token: a retry must carry the same token.
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    #: When the server decided (online) or received (offline upload) the scan.
    server_time: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The scanner's own clock, when it sent one (`scanned_at`).
    client_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    offline: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    conflict: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    first_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    first_gate: Mapped[str | None] = mapped_column(sa.String(64), default=None)


def scan_event_scope() -> sa.ColumnElement[str]:
    """A scan's event in the retry scope: scans naming no event share "" (NULLs never collide)."""
    return sa.func.coalesce(Scan.event_id, "")


sa.Index("uq_ticket_scans_scope", Scan.key_id, scan_event_scope(), Scan.device, Scan.nonce, unique=True)

__all__ = [
    "Event",
    "Scan",
    "ScanResult",
    "SigningKey",
    "Ticket",
    "new_record_id",
    "plausible_id",
    "scan_event_scope",
    "updated_rows",
]
