"""`Idempotency-Key`: a retried request gets the first response instead of doing the work twice.

The first request with a key inserts a claim row; the unique (owner, key)
constraint makes that a lock held in the database, so two concurrent requests
with one key, on any workers, cannot both do the work. The loser waits for the
winner's stored response and returns it. Responses are kept for 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from qrsvc import clock
from qrsvc.db import insert
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.models import ApiKey, IdempotencyRecord

HEADER = "Idempotency-Key"
KEPT_FOR = timedelta(hours=24)
#: A claim still unfinished after this long belongs to a worker that died; it may be taken over.
ABANDONED_AFTER = timedelta(minutes=10)
#: How long a duplicate waits for the first request to finish before answering 409
#: (below gunicorn's 30-second worker timeout; a 1000-item batch takes about a second).
WAIT_SECONDS = 20.0
_POLL_SECONDS = 0.05
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


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


def _record(owner: ApiKey, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(IdempotencyRecord.owner_id == owner.id, IdempotencyRecord.key == key)


def claim(owner: ApiKey, key: str, request_fingerprint: str) -> StoredResponse | None:
    """None when this request now owns `key` (it must `finish` or `release` it); else the stored response.

    422 `idempotency_key_reused` when the key came with a different request;
    409 `idempotency_key_in_use` when the first request is still running after WAIT_SECONDS.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        now = clock.now()
        db.session.execute(
            sa.delete(IdempotencyRecord).where(
                sa.or_(
                    IdempotencyRecord.created_at < now - KEPT_FOR,
                    sa.and_(
                        _record(owner, key),
                        IdempotencyRecord.status.is_(None),
                        IdempotencyRecord.created_at < now - ABANDONED_AFTER,
                    ),
                )
            )
        )
        # RETURNING rather than rowcount, which the ORM's insert path leaves at -1 on PostgreSQL.
        claimed = (
            db.session.execute(
                insert(IdempotencyRecord)
                .values(owner_id=owner.id, key=key, fingerprint=request_fingerprint, created_at=now)
                .on_conflict_do_nothing(index_elements=[IdempotencyRecord.owner_id, IdempotencyRecord.key])
                .returning(IdempotencyRecord.id)
            ).first()
            is not None
        )
        db.session.commit()
        if claimed:
            return None
        row = db.session.execute(
            sa.select(
                IdempotencyRecord.fingerprint,
                IdempotencyRecord.status,
                IdempotencyRecord.content_type,
                IdempotencyRecord.body,
            ).where(_record(owner, key))
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
            return StoredResponse(row.status, row.content_type or "application/octet-stream", row.body or b"")
        if time.monotonic() >= deadline:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                f"a request with this {HEADER} is still being processed; retry in a moment",
                field=HEADER,
                headers={"Retry-After": "1"},
            )
        time.sleep(_POLL_SECONDS)


def finish(owner: ApiKey, key: str, response: StoredResponse) -> None:
    """Keep the response of the request that claimed `key`, for its retries."""
    db.session.execute(
        sa.update(IdempotencyRecord)
        .where(_record(owner, key), IdempotencyRecord.status.is_(None))
        .values(status=response.status, content_type=response.content_type, body=response.body)
    )
    db.session.commit()


def release(owner: ApiKey, key: str) -> None:
    """Give up a claim whose request failed, so that a retry does the work afresh."""
    db.session.rollback()
    db.session.execute(
        sa.delete(IdempotencyRecord).where(_record(owner, key), IdempotencyRecord.status.is_(None))
    )
    db.session.commit()


__all__ = ["HEADER", "KEPT_FOR", "StoredResponse", "check_key", "claim", "fingerprint", "finish", "release"]
