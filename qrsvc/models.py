"""The core's tables: API keys, stored codes, usage counters, and dynamic codes with their scans."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qrsvc.extensions import db


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite returns naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use qrsvc.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ApiKey(db.Model):  # type: ignore[name-defined,misc]
    """An API key: only the SHA-256 of the secret is kept; `prefix` finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(100))
    plan: Mapped[str] = mapped_column(sa.String(32))
    scopes: Mapped[list[str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


class QrCode(db.Model):  # type: ignore[name-defined,misc]
    """A generated code: what was encoded, how it was drawn, and whose it is."""

    __tablename__ = "qr_codes"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "content_hash", name="uq_qr_codes_owner_content"),
        sa.Index("ix_qr_codes_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[str] = mapped_column(sa.Text)
    options: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    version: Mapped[int] = mapped_column(sa.SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Loaded with the code (one LEFT JOIN): images of a dynamic code draw its short URL.
    dynamic: Mapped[DynamicCode | None] = relationship(lazy="joined", viewonly=True)

    @property
    def encoded(self) -> str:
        """What the symbol holds: a dynamic code's short URL, else `data`."""
        return self.dynamic.short_url if self.dynamic is not None else self.data


class UsageDay(db.Model):  # type: ignore[name-defined,misc]
    """Requests and codes a key used on one UTC day; months are sums of days."""

    __tablename__ = "usage_days"

    key_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    requests: Mapped[int] = mapped_column(sa.Integer, default=0)
    codes: Mapped[int] = mapped_column(sa.Integer, default=0)


class IdempotencyRecord(db.Model):  # type: ignore[name-defined,misc]
    """A request sent with an `Idempotency-Key`, and once done its outcome, kept for replays.

    The unique (owner, key) pair is the lock: of two concurrent requests with one
    key only one inserts the row and does the work; `status` is NULL until then,
    and the claim is `claimed_by` a request whose lease runs to `expires_at`.
    `items` holds each item's code id or error, never image bytes: replays re-render.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "key", name="uq_idempotency_records_owner_key"),
        sa.Index("ix_idempotency_records_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[int | None] = mapped_column(sa.SmallInteger, default=None)
    items: Mapped[list[Any] | None] = mapped_column(sa.JSON, default=None)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class UsageMonth(db.Model):  # type: ignore[name-defined,misc]
    """Codes a key made in one UTC calendar month; the quota is decided on this row, in SQL."""

    __tablename__ = "usage_months"

    key_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    codes: Mapped[int] = mapped_column(sa.Integer, default=0)


class DynamicCode(db.Model):  # type: ignore[name-defined,misc]
    """The short URL a dynamic code prints; its target is the code's `data`, which may change.

    `short_code` is stored upper-case and is unique: `/r/<CODE>` finds the row with one
    index probe, whatever case a phone sends it in.
    """

    __tablename__ = "dynamic_codes"

    code_id: Mapped[str] = mapped_column(sa.ForeignKey("qr_codes.id", ondelete="CASCADE"), primary_key=True)
    short_code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    short_url: Mapped[str] = mapped_column(sa.Text)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Scan(db.Model):  # type: ignore[name-defined,misc]
    """One redirect through a dynamic code. Never an IP address: `visitor` is a keyed hash
    of address and user agent under the day's salt, unlinkable once the salt is deleted."""

    __tablename__ = "scans"
    __table_args__ = (sa.Index("ix_scans_code_scanned", "code_id", "scanned_at"),)

    # SQLite numbers rows itself only for an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    code_id: Mapped[str] = mapped_column(sa.ForeignKey("dynamic_codes.code_id", ondelete="CASCADE"))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The UTC day of `scanned_at`, for per-day series on every backend.
    day: Mapped[date] = mapped_column(sa.Date)
    visitor: Mapped[str] = mapped_column(sa.String(32))
    browser: Mapped[str] = mapped_column(sa.String(32))
    device: Mapped[str] = mapped_column(sa.String(16))
    referrer: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    country: Mapped[str | None] = mapped_column(sa.String(2), default=None)


class ScanSalt(db.Model):  # type: ignore[name-defined,misc]
    """The random key of one UTC day's visitor hashes; `qrsvc worker` deletes past days' salts."""

    __tablename__ = "scan_salts"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    salt: Mapped[str] = mapped_column(sa.String(64))


__all__ = [
    "ApiKey",
    "DynamicCode",
    "IdempotencyRecord",
    "QrCode",
    "Scan",
    "ScanSalt",
    "UTCDateTime",
    "UsageDay",
    "UsageMonth",
]
