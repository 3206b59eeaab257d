"""Per-key usage counters kept in the database, one row a key and UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from qrsvc import clock
from qrsvc.db import insert
from qrsvc.extensions import db
from qrsvc.models import UsageDay


@dataclass(frozen=True, slots=True)
class Usage:
    requests_today: int
    codes_today: int
    codes_this_month: int


def count(key_id: int, *, requests: int = 0, codes: int = 0) -> None:
    """Add to today's counters in the current transaction (an atomic upsert, no read)."""
    statement = insert(UsageDay).values(key_id=key_id, day=clock.now().date(), requests=requests, codes=codes)
    statement = statement.on_conflict_do_update(
        index_elements=[UsageDay.key_id, UsageDay.day],
        set_={
            "requests": UsageDay.requests + statement.excluded.requests,
            "codes": UsageDay.codes + statement.excluded.codes,
        },
    )
    db.session.execute(statement)


def codes_this_month(key_id: int) -> int:
    first = clock.now().date().replace(day=1)
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(UsageDay.codes), 0)).where(
            UsageDay.key_id == key_id, UsageDay.day >= first
        )
    )
    return int(total or 0)


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


__all__ = ["Usage", "codes_this_month", "count", "usage_of"]
