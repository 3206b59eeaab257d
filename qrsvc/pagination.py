"""One keyset paginator: pages that stay stable while rows are added, with an opaque cursor.

A page is the rows after the previous page's last row in a fixed order (newest
first by default), found with a `WHERE` on the ordering columns rather than an
`OFFSET`, so a page costs the same at the end of a long list as at its start and
rows added meanwhile neither repeat nor vanish. The cursor is the last row's key,
URL-safe: `base64("2026-01-01T10:00:00+00:00|qr_abc")` for (created_at, id).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import QueryableAttribute

from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.fields import integer, text

T = TypeVar("T")
_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def _page_size_max() -> int:
    most: int = current_app.config["PAGE_SIZE_MAX"]
    return most


@dataclass(frozen=True, slots=True, kw_only=True)
class PageQuery:
    """`?limit=&cursor=` of a list endpoint: 1 to `QRSVC_PAGE_SIZE_MAX` records (20 unless asked)."""

    limit: Annotated[int, integer(1, _page_size_max)] = 20
    cursor: Annotated[str | None, text()] = None


def _invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_parameter", "cursor is not one this API returned", "cursor")


def _encode(values: Sequence[object]) -> str:
    parts = [value.isoformat() if isinstance(value, datetime) else str(value) for value in values]
    raw = _SEPARATOR.join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, keys: Sequence[QueryableAttribute[Any]]) -> list[object]:
    """The key values a cursor holds, each of its column's type, or the 400 of a cursor we never gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None
    # Only the last key may hold the separator (an id or a SKU); times and numbers never do.
    parts = raw.split(_SEPARATOR, len(keys) - 1)
    if len(parts) != len(keys):
        raise _invalid_cursor()
    return [_value(part, key) for part, key in zip(parts, keys, strict=True)]


def _column_type(key: QueryableAttribute[Any]) -> sa.types.TypeEngine[Any]:
    column_type: sa.types.TypeEngine[Any] = key.type
    while isinstance(column_type, sa.types.TypeDecorator):  # UTCDateTime → DateTime
        column_type = column_type.impl_instance
    return column_type


def _integer_bound(column_type: sa.types.TypeEngine[Any]) -> int:
    """The magnitude an integer column holds (PostgreSQL's INTEGER is 32 bits)."""
    if isinstance(column_type, sa.BigInteger):
        return 2**63
    if isinstance(column_type, sa.SmallInteger):
        return 2**15
    return 2**31


def _value(text: str, key: QueryableAttribute[Any]) -> object:
    column_type = _column_type(key)
    kind = column_type.python_type
    try:
        if kind is datetime:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError("naive")
            return moment
        if kind is int:
            number = int(text, 10)
            bound = _integer_bound(column_type)
            if not -bound <= number < bound:  # beyond the column's range the database itself would fail
                raise ValueError("out of range")
            return number
    except ValueError:
        raise _invalid_cursor() from None
    if "\x00" in text:  # PostgreSQL refuses NUL in text: ours never hold one
        raise _invalid_cursor()
    return text


def _after(keys: Sequence[QueryableAttribute[Any]], values: Sequence[object], descending: bool) -> Any:
    """Rows past `values` in the order of `keys`: k1 < v1 OR (k1 = v1 AND k2 < v2) … (> when ascending)."""
    key, value = keys[0], values[0]
    beyond = key < value if descending else key > value
    if len(keys) == 1:
        return beyond
    return sa.or_(beyond, sa.and_(key == value, _after(keys[1:], values[1:], descending)))


def paginate(
    query: sa.Select[T],
    keys: Sequence[QueryableAttribute[Any]],
    limit: int,
    cursor: str | None = None,
    *,
    descending: bool = True,
) -> Page[T]:
    """One page of `query`'s rows ordered by `keys` (together unique: end with the id), `limit` long.

    `cursor` is a previous page's `next_cursor`; anything else is a 400 `invalid_parameter`
    naming `cursor`. One query of `limit + 1` rows tells whether another page follows.
    """
    if not keys:
        raise ValueError("paginate needs at least one ordering key")
    if cursor:
        query = query.where(_after(keys, _decode(cursor, keys), descending))
    order = [key.desc() if descending else key.asc() for key in keys]
    rows = list(db.session.scalars(query.order_by(*order).limit(limit + 1)))
    items = rows[:limit]
    if len(rows) > limit and items:
        return Page(items, _encode([getattr(items[-1], key.key) for key in keys]))
    return Page(items, None)


__all__ = ["Page", "PageQuery", "paginate"]
