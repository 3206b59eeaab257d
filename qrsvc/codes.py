"""Use cases for stored codes: make (render + store), find, list, delete.

The HTTP views, the batch endpoint and the integrations all come here, so a code
made anywhere is an ordinary stored code with the same rules: its options checked,
drawn through the render cache and pool (`qrsvc.images`), counted against the
owner's plan, and stored in the caller's transaction. Nothing here commits: the
request, CLI command or worker job that called owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from qrsvc import clock, usage
from qrsvc.config import Plan
from qrsvc.db import dialect_name, insert, per_dialect
from qrsvc.errors import ApiError, NotFoundError
from qrsvc.extensions import db
from qrsvc.images import (
    Image,
    ImageStream,
    Rendered,
    Rendering,
    image_etag,
    init_app,
    make_image,
    render_images,
)
from qrsvc.keys import plan_of
from qrsvc.models import ApiKey, QrCode
from qrsvc.options import QrOptions, build_options, check_options
from qrsvc.pagination import Page, paginate


@dataclass(frozen=True, slots=True)
class MadeCode:
    """A stored code and the image it was drawn as (for an email or a PDF made in the same request)."""

    code: QrCode
    image: Image


def new_code_id() -> str:
    """`qr_` and 128 random bits: public image URLs rely on ids being unguessable."""
    return "qr_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _content_hash(options: QrOptions) -> str:
    canonical = json.dumps({"data": options.data, "options": options.stored()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reserve_quota(owner: ApiKey, plan: Plan, count: int) -> None:
    """Count `count` codes against the plan's month, or refuse with 429 (decided in SQL)."""
    if not usage.reserve_codes(owner.id, count, plan.codes_per_month):
        raise _quota_exceeded(owner, plan)


def _quota_exceeded(owner: ApiKey, plan: Plan) -> ApiError:
    used = usage.codes_this_month(owner.id)
    today = clock.now()
    next_month = (today.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    return ApiError(
        429,
        "quota_exceeded",
        f"plan {plan.name!r} allows {plan.codes_per_month} codes a month and "
        f"{used} have been made; the quota renews on {next_month.date().isoformat()}",
        headers={"Retry-After": str(int((next_month - today).total_seconds()) + 1)},
    )


@per_dialect
def _insert_codes() -> Any:
    # On the Table, not the class: Core executemany skips the ORM's bulk-insert machinery.
    table = QrCode.__table__
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.owner_id, table.c.content_hash])
        .returning(table.c.content_hash)
    )


_COLUMNS = ("id", "owner_id", "content_hash", "data", "options", "version", "created_at")


@per_dialect
def _store_one_statement() -> Any:
    """PostgreSQL, one code: reserve it, count it and insert its record in one statement.

    The quota's conditional upsert decides as in `usage.reserve_codes`; the day's count and
    the record are written only when it took (`usage.counter_ctes`). The row answers the
    month's total (no row: refused) and the inserted hash (NULL: an identical record exists).
    """
    reserved, counted = usage.counter_ctes()
    table = QrCode.__table__
    record = sa.select(*(sa.bindparam(name, type_=table.c[name].type) for name in _COLUMNS)).where(
        sa.exists(sa.select(reserved.c.codes))
    )
    inserted = (
        insert(table)
        .from_select(list(_COLUMNS), record)
        .on_conflict_do_nothing(index_elements=[table.c.owner_id, table.c.content_hash])
        .returning(table.c.content_hash)
        .cte("inserted")
    )
    return sa.select(reserved.c.codes, sa.select(inserted.c.content_hash).scalar_subquery()).add_cte(counted)


def _row(owner: ApiKey, content_hash: str, image: Image, data: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_code_id(),
        "owner_id": owner.id,
        "content_hash": content_hash,
        "data": data,
        "options": image.options.stored(),
        "version": image.symbol.version,
        "created_at": now,
    }


def _find_stored(owner: ApiKey, hashes: set[str]) -> dict[str, QrCode]:
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id, QrCode.content_hash.in_(hashes))
    return {code.content_hash: code for code in db.session.scalars(query)}


def _store_one(owner: ApiKey, image: Image, data: str) -> QrCode:
    """`store_images` of one image on PostgreSQL: one round trip where there were three."""
    plan = plan_of(owner)
    if plan.codes_per_month < 1:
        raise _quota_exceeded(owner, plan)
    content_hash = _content_hash(image.options)
    row = _row(owner, content_hash, image, data, clock.now())
    params = usage.counter_params(owner.id, 1, plan.codes_per_month) | row
    result = db.session.execute(_store_one_statement(), params).first()
    if result is None:
        raise _quota_exceeded(owner, plan)
    usage.counted(params)
    if result[1] is None:
        return _find_stored(owner, {content_hash})[content_hash]
    return QrCode(**row)


def store_images(
    owner: ApiKey, images: Sequence[Image], *, keep: Sequence[str] | None = None
) -> list[QrCode]:
    """Store one record per image (identical ones share one) and count them, in the caller's transaction.

    The quota is reserved once for the lot (decided in SQL, so concurrent requests cannot
    overshoot it) against the owner's plan; a 429 `quota_exceeded` stores nothing. `keep`
    is the `data` each record keeps when that is not what its image encodes (a dynamic
    code keeps its target).
    """
    if not images:
        return []
    if len(images) == 1 and dialect_name() == "postgresql":
        return [_store_one(owner, images[0], keep[0] if keep else images[0].options.data)]
    _reserve_quota(owner, plan_of(owner), len(images))
    now = clock.now()
    hashes = [_content_hash(image.options) for image in images]
    rows = {
        content_hash: _row(owner, content_hash, image, data, now)
        for content_hash, image, data in zip(
            hashes, images, keep or [image.options.data for image in images], strict=True
        )
    }
    # One statement, many parameter sets: SQLAlchemy batches them ("insertmanyvalues").
    inserted = set(db.session.scalars(_insert_codes(), list(rows.values())))
    found = {content_hash: QrCode(**rows[content_hash]) for content_hash in inserted}
    existing = set(rows) - inserted
    if existing:
        found.update(_find_stored(owner, existing))
    usage.count(owner.id, codes=len(images))
    return [found[content_hash] for content_hash in hashes]


def make_codes(
    owner: ApiKey, options: Sequence[QrOptions], *, keep: Sequence[str] | None = None
) -> list[MadeCode]:
    """Check, draw and store many codes for `owner`, in order; all or none (`keep`: see `store_images`).

    Drawn through the render cache and, for many, the render pool's processes; the quota
    is reserved once for the lot; the records are written in the caller's transaction
    (never committed here). The first code that cannot be drawn (422 `data_too_long`,
    `low_contrast`, ...) or a 429 `quota_exceeded` is raised and nothing is stored.
    """
    for each in options:
        check_options(each)
    images: list[Image] = []
    for result in render_images(options).results:
        if isinstance(result, ApiError):
            raise result
        images.append(result)
    stored = store_images(owner, images, keep=keep)
    return [MadeCode(code, image) for code, image in zip(stored, images, strict=True)]


def make_code(owner: ApiKey, options: QrOptions) -> MadeCode:
    """Check, draw and store one code for `owner` in the caller's transaction (see `make_codes`)."""
    (made,) = make_codes(owner, [options])
    return made


def get_code(owner: ApiKey, code_id: str) -> QrCode:
    """The owner's code; someone else's is as absent as a missing one."""
    code = db.session.get(QrCode, code_id)
    if code is None or code.owner_id != owner.id:
        raise NotFoundError(f"no code {code_id!r}")
    return code


def find_codes(owner: ApiKey, code_ids: Sequence[str]) -> list[QrCode]:
    """The owner's codes among `code_ids` (missing or foreign ones are left out)."""
    if not code_ids:
        return []
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id, QrCode.id.in_(set(code_ids)))
    return list(db.session.scalars(query))


def find_public_code(code_id: str) -> QrCode:
    code = db.session.get(QrCode, code_id)
    if code is None:
        raise NotFoundError(f"no code {code_id!r}")
    return code


def stored_options(code: QrCode, changes: Mapping[str, object] | None = None) -> QrOptions:
    """A stored code's options, with allowed display changes (format, size, colours) applied."""
    base = QrOptions.from_stored(code.encoded, code.options)
    return build_options(changes or {}, base=base)


def list_codes(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[QrCode]:
    """The owner's codes, newest first; `cursor` continues after the last page's final item."""
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id)
    return paginate(query, (QrCode.created_at, QrCode.id), limit, cursor)


def image_of(code: QrCode, fmt: str | None = None) -> Image:
    """A stored code drawn again (from the render cache when it can), in its own format or `fmt`."""
    return make_image(stored_options(code, {"format": fmt} if fmt else None))


def images_of(stored: Sequence[QrCode], fmt: str | None = None, engine: str | None = None) -> ImageStream:
    """The images of stored codes (as `fmt`, else as stored), in order, through the render cache
    and pool a slice at a time: what an export writes out one by one."""
    changes = {"format": fmt} if fmt else None
    chosen: str = engine or current_app.config["ENGINE"]
    return ImageStream([stored_options(code, changes) for code in stored], chosen)


def delete_code(owner: ApiKey, code_id: str) -> None:
    """Delete the owner's code (in the caller's transaction); its image URL answers 404 from then on."""
    db.session.delete(get_code(owner, code_id))


__all__ = [
    "Image",
    "ImageStream",
    "MadeCode",
    "Page",
    "Rendered",
    "Rendering",
    "delete_code",
    "find_codes",
    "find_public_code",
    "get_code",
    "image_etag",
    "image_of",
    "images_of",
    "init_app",
    "list_codes",
    "make_code",
    "make_codes",
    "make_image",
    "new_code_id",
    "render_images",
    "store_images",
    "stored_options",
]
