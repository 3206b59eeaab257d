"""Per-key usage counters kept in the database: a row a key and UTC day, and a row a month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from qrsvc import clock
from qrsvc.db import insert, per_dialect
from qrsvc.extensions import db
from qrsvc.models import UsageDay, UsageMonth

if TYPE_CHECKING:
    from flask import Flask


@dataclass(frozen=True, slots=True)
class Usage:
    requests_today: int
    codes_today: int
    codes_this_month: int


_PENDING = "qrsvc.usage.pending_requests"
#: Pending requests a `count` wrote in the open transaction: pending again if it rolls back.
_TAKEN = "qrsvc.usage.taken_requests"


def count_request_later(key_id: int) -> None:
    """Note a request to be counted by the next `count` in this session, or by `flush`.

    A view that stores codes then writes requests and codes in one upsert and one commit.
    """
    pending: dict[int, int] = db.session.info.setdefault(_PENDING, {})
    pending[key_id] = pending.get(key_id, 0) + 1


def has_pending() -> bool:
    """Whether requests wait to be counted (no `count` took them up, or its transaction rolled back)."""
    return bool(db.session.info.get(_PENDING))


def flush() -> None:
    """Write the requests no `count` took up (read-only views, errors) in the session; the caller commits."""
    pending: dict[int, int] | None = db.session.info.pop(_PENDING, None)
    for key_id, requests in (pending or {}).items():
        _upsert(key_id, requests, 0)
        _take(key_id, requests)


def count(key_id: int, *, requests: int = 0, codes: int = 0) -> None:
    """Add to today's counters in the current transaction (an atomic upsert, no read)."""
    taken = db.session.info.get(_PENDING, {}).pop(key_id, 0)
    _upsert(key_id, requests + taken, codes)
    _take(key_id, taken)


def _take(key_id: int, requests: int) -> None:
    if requests:
        taken: dict[int, int] = db.session.info.setdefault(_TAKEN, {})
        taken[key_id] = taken.get(key_id, 0) + requests


def _restore_taken(session: Session) -> None:
    """A rollback undid the upsert that counted pending requests: they wait to be counted again."""
    taken: dict[int, int] | None = session.info.pop(_TAKEN, None)
    if taken:
        pending: dict[int, int] = session.info.setdefault(_PENDING, {})
        for key_id, requests in taken.items():
            pending[key_id] = pending.get(key_id, 0) + requests


def _forget_taken(session: Session) -> None:
    session.info.pop(_TAKEN, None)


def init_app(app: Flask) -> None:
    """Keep request counts across rollbacks: a failed request is still a request (listeners set once)."""
    if not sa.event.contains(Session, "after_rollback", _restore_taken):
        sa.event.listen(Session, "after_rollback", _restore_taken)
        sa.event.listen(Session, "after_commit", _forget_taken)


@per_dialect
def _upsert_statement() -> Any:
    table = UsageDay.__table__  # Core, not the ORM's bulk path: this runs on every request
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.key_id, table.c.day],
        set_={
            "requests": table.c.requests + statement.excluded.requests,
            "codes": table.c.codes + statement.excluded.codes,
        },
    )


def _upsert(key_id: int, requests: int, codes: int) -> None:
    params = {"key_id": key_id, "day": clock.now().date(), "requests": requests, "codes": codes}
    db.session.execute(_upsert_statement(), params)


@per_dialect
def _reserve_statement() -> Any:
    table = UsageMonth.__table__
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.key_id, table.c.month],
        set_={"codes": table.c.codes + statement.excluded.codes},
        where=table.c.codes + statement.excluded.codes <= sa.bindparam("quota"),
    ).returning(table.c.codes)


def reserve_codes(key_id: int, count: int, quota: int) -> bool:
    """Add `count` to this month's codes if the total stays within `quota`.

    One conditional upsert decides it, so concurrent requests cannot overshoot the quota
    between a read and a write. Runs in the caller's transaction: a rollback returns them.
    """
    if count > quota:
        return False
    params = {"key_id": key_id, "month": _this_month(), "codes": count, "quota": quota}
    return db.session.execute(_reserve_statement(), params).first() is not None


def counter_ctes() -> tuple[Any, Any]:
    """PostgreSQL: `reserve_codes` and `count` as two CTEs, the day's counted only if the month took.

    For one statement that reserves, counts and writes what was reserved for (see
    `qrsvc.codes`): each statement is a round trip. `reserved` returns the month's new
    total and no row when the quota refused; then `counted` inserts nothing. Parameters:
    `counter_params`. (SQLite has no INSERT in a WITH.)
    """
    months, days = UsageMonth.__table__, UsageDay.__table__
    key_id, codes = sa.bindparam("key_id", type_=sa.Integer), sa.bindparam("codes", type_=sa.Integer)
    month = postgresql.insert(months).values(
        key_id=key_id, month=sa.bindparam("month", type_=sa.Date), codes=codes
    )
    reserved = (
        month.on_conflict_do_update(
            index_elements=[months.c.key_id, months.c.month],
            set_={"codes": months.c.codes + month.excluded.codes},
            where=months.c.codes + month.excluded.codes <= sa.bindparam("quota", type_=sa.Integer),
        )
        .returning(months.c.codes)
        .cte("reserved")
    )
    today = sa.select(
        key_id, sa.bindparam("day", type_=sa.Date), sa.bindparam("requests", type_=sa.Integer), codes
    ).where(sa.exists(sa.select(reserved.c.codes)))
    day = postgresql.insert(days).from_select(["key_id", "day", "requests", "codes"], today)
    counted = day.on_conflict_do_update(
        index_elements=[days.c.key_id, days.c.day],
        set_={
            "requests": days.c.requests + day.excluded.requests,
            "codes": days.c.codes + day.excluded.codes,
        },
    ).cte("counted")
    return reserved, counted


def counter_params(key_id: int, codes: int, quota: int) -> dict[str, Any]:
    """The parameters of `counter_ctes`; the requests waiting to be counted ride along (see `counted`)."""
    pending: dict[int, int] = db.session.info.get(_PENDING, {})
    today = clock.now().date()
    return {
        "key_id": key_id,
        "month": today.replace(day=1),
        "codes": codes,
        "quota": quota,
        "day": today,
        "requests": pending.get(key_id, 0),
    }


def counted(params: dict[str, Any]) -> None:
    """The statement with `counter_ctes` ran and its reservation took: its requests are counted."""
    key_id = params["key_id"]
    _take(key_id, db.session.info.get(_PENDING, {}).pop(key_id, 0))


def _this_month() -> date:
    return clock.now().date().replace(day=1)


_MONTH_TOTAL = sa.select(UsageMonth.codes).where(
    UsageMonth.key_id == sa.bindparam("key_id"), UsageMonth.month == sa.bindparam("month")
)


def codes_this_month(key_id: int) -> int:
    return int(db.session.scalar(_MONTH_TOTAL, {"key_id": key_id, "month": _this_month()}) or 0)


def usage_of(key_id: int) -> Usage:
    today: date = clock.now().date()
    row = db.session.execute(
        sa.select(UsageDay.requests, UsageDay.codes).where(UsageDay.key_id == key_id, UsageDay.day == today)
    ).first()
    return Usage(
        requests_today=row.requests if row else 0,
        codes_today=row.codes if row else 0,
        codes_this_month=codes_this_month(key_id),
    )


__all__ = [
    "Usage",
    "codes_this_month",
    "count",
    "count_request_later",
    "counted",
    "counter_ctes",
    "counter_params",
    "flush",
    "has_pending",
    "init_app",
    "reserve_codes",
    "usage_of",
]
