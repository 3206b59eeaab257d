"""`Idempotency-Key`: a retried request gets the first outcome instead of doing the work twice.

The first request with a key inserts a claim row; the unique (owner, key)
constraint makes that a lock held in the database, so two concurrent requests
with one key, on any workers, cannot both do the work. The claim is a lease: its
owner renews `expires_at` while it works, and a request that finds the lease run
out (the owner's worker was killed) takes the claim over with one conditional
UPDATE. The work and the finished record commit in one transaction, so a worker
that dies leaves neither codes nor a quota charge behind. A duplicate waits for
the winner's record and replays it. Records are kept for 24 hours.

This is the one service that commits on its own, and only the lease: a claim must be
visible to a concurrent request (on any worker) the moment it is taken, before the
work starts, and a released claim the moment the work has failed; so `claim` and
`release` commit their own steps (`release` first rolls back the failed work, which
the request would roll back anyway), and `Claim.renew` writes on its own connection.
The work and `finish` stay in the request's transaction, committed by the view.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from qrsvc import clock
from qrsvc.db import insert
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.models import ApiKey, IdempotencyRecord

HEADER = "Idempotency-Key"
KEPT_FOR = timedelta(hours=24)
#: A claim not renewed for this long belongs to a request that is gone; a retry may take it over.
LEASE = timedelta(seconds=6)
#: Renew when a third of the lease has passed (a worker stalled longer loses its claim).
_RENEW_EVERY = LEASE.total_seconds() / 3
#: How long a duplicate waits for the first request to finish before answering 409
#: (below gunicorn's 30-second worker timeout; a 1000-item batch takes about a second).
WAIT_SECONDS = 20.0
_POLL_SECONDS = 0.05
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class Stored:
    """The finished outcome of the first request with a key: what its replays are made from."""

    items: list[Any]
    created_at: datetime


@dataclass(slots=True)
class Claim:
    """This request owns `key` until `finish` or `release`; `renew` keeps the lease alive."""

    owner_id: int
    key: str
    token: str
    created_at: datetime
    _renewed: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        """Extend the lease if a third of it has passed; cheap enough to call once an item.

        On its own connection, outside the request's transaction: the work is not
        committed early, and on SQLite no write lock is held while rendering.
        """
        if time.monotonic() - self._renewed < _RENEW_EVERY:
            return
        with db.engine.begin() as connection:
            connection.execute(
                sa.update(IdempotencyRecord)
                .where(_mine(self), IdempotencyRecord.status.is_(None))
                .values(expires_at=clock.now() + LEASE)
            )
        self._renewed = time.monotonic()


def check_key(value: str) -> str:
    """A key is 1–255 visible ASCII characters (a UUID is the usual choice)."""
    if not _KEY.fullmatch(value):
        raise ApiError(
            400,
            "invalid_parameter",
            f"{HEADER} must be 1 to 255 visible ASCII characters, such as a UUID",
            field=HEADER,
        )
    return value


def fingerprint(*parts: object) -> str:
    """What the request asked for, canonically: the same key with another request is refused."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in one item is that item's error, not the whole batch's.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _record(owner_id: int, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(IdempotencyRecord.owner_id == owner_id, IdempotencyRecord.key == key)


def _mine(claim: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(_record(claim.owner_id, claim.key), IdempotencyRecord.claimed_by == claim.token)


def claim(owner: ApiKey, key: str, request_fingerprint: str) -> Claim | Stored:
    """A `Claim` when this request now owns `key` (to `finish` or `release`); else the `Stored` outcome.

    422 `idempotency_key_reused` when the key came with a different request;
    409 `idempotency_key_in_use` when the first request is still running after WAIT_SECONDS.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        now = clock.now()
        token = secrets.token_hex(16)
        db.session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - KEPT_FOR))
        # RETURNING rather than rowcount, which the ORM's insert path leaves at -1 on PostgreSQL.
        claimed = db.session.execute(
            insert(IdempotencyRecord)
            .values(
                owner_id=owner.id,
                key=key,
                fingerprint=request_fingerprint,
                created_at=now,
                claimed_by=token,
                expires_at=now + LEASE,
            )
            .on_conflict_do_nothing(index_elements=[IdempotencyRecord.owner_id, IdempotencyRecord.key])
            .returning(IdempotencyRecord.id)
        ).first()
        if claimed is None:
            # The owner's lease ran out (its worker died): take the claim over, decided in SQL.
            claimed = db.session.execute(
                sa.update(IdempotencyRecord)
                .where(
                    _record(owner.id, key),
                    IdempotencyRecord.fingerprint == request_fingerprint,
                    IdempotencyRecord.status.is_(None),
                    IdempotencyRecord.expires_at < now,
                )
                .values(claimed_by=token, expires_at=now + LEASE, created_at=now)
                .returning(IdempotencyRecord.id)
            ).first()
        db.session.commit()
        if claimed is not None:
            return Claim(owner.id, key, token, now)
        row = db.session.execute(
            sa.select(
                IdempotencyRecord.fingerprint,
                IdempotencyRecord.status,
                IdempotencyRecord.items,
                IdempotencyRecord.created_at,
            ).where(_record(owner.id, key))
        ).first()
        db.session.commit()  # end the read so the next look sees the other request's commit
        if row is None:
            continue  # expired or released between our insert and our look: try again
        if row.fingerprint != request_fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"this {HEADER} was sent with a different request in the last 24 hours; "
                "use a new key for a new request",
                field=HEADER,
            )
        if row.status is not None:
            return Stored(list(row.items or []), row.created_at)
        if time.monotonic() >= deadline:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                f"a request with this {HEADER} is still being processed; retry in a moment",
                field=HEADER,
                headers={"Retry-After": "1"},
            )
        time.sleep(_POLL_SECONDS)


def finish(claim: Claim, items: list[Any]) -> None:
    """Record the outcome in the caller's transaction, which also holds the work; the caller commits.

    409 when the claim was lost (this request stalled past its lease and a retry took
    over): the caller rolls back, so the work is not done twice.
    """
    done = db.session.execute(
        sa.update(IdempotencyRecord)
        .where(_mine(claim), IdempotencyRecord.status.is_(None))
        .values(status=200, items=items, claimed_by=None, expires_at=None)
        .returning(IdempotencyRecord.id)
    ).first()
    if done is None:
        raise ApiError(
            409,
            "idempotency_key_in_use",
            f"another request with this {HEADER} took over; retry to get its result",
            field=HEADER,
            headers={"Retry-After": "1"},
        )


def release(claim: Claim) -> None:
    """Give up a claim whose request failed (and undo its work), so that a retry does it afresh."""
    db.session.rollback()
    db.session.execute(sa.delete(IdempotencyRecord).where(_mine(claim), IdempotencyRecord.status.is_(None)))
    db.session.commit()


__all__ = [
    "HEADER",
    "KEPT_FOR",
    "LEASE",
    "Claim",
    "Stored",
    "check_key",
    "claim",
    "fingerprint",
    "finish",
    "release",
]
