"""Scan counts of dynamic codes: per code, as a series over a bounded range, and for many codes at once.

Counts read the database; `scans.flush()` first puts this worker's waiting scans there
(other workers' arrive within `SCAN_FLUSH_SECONDS`). Call it before the request writes
anything: SQLite has one writer, and the flush is a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from qrsvc import clock, fields, scans
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.models import Scan


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    unique: int
    last_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "unique": self.unique,
            "last_at": clock.isoformat(self.last_at) if self.last_at else None,
        }


def counts(code_id: str) -> Counts:
    """Every scan of a code: how many, by how many visitors, and the last one's time."""
    query = sa.select(
        sa.func.count(), sa.func.count(sa.distinct(Scan.visitor)), sa.func.max(Scan.scanned_at)
    ).where(Scan.code_id == code_id)
    total, unique, last_at = db.session.execute(query).one()
    return Counts(int(total), int(unique), last_at)


#: The longest time range one series may cover, and the range when none is given.
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


_moment = fields.iso_datetime()


def parse_bound(name: str, value: object, from_query: bool) -> date | datetime:
    """A day (`2027-01-31`) or an ISO 8601 time with its zone: a `fields.Parser` (described below)."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    return _moment(name, value, from_query)


fields.described(
    parse_bound,
    {"type": "string", "description": "A day (2027-01-31) or an ISO 8601 time with its zone."},
)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def window(start: date | datetime | None, end: date | datetime | None) -> Window:
    """[start, end) as asked; a day as `to` includes that day; by default the 30 days to the end of today."""
    if end is None:
        end = clock.now().date()
    if not isinstance(end, datetime):
        end = _midnight(end + timedelta(days=1))
    if start is None:
        start = end - timedelta(days=DEFAULT_RANGE_DAYS)
    elif not isinstance(start, datetime):
        start = _midnight(start)
    if start >= end:
        raise ApiError(400, "invalid_parameter", "from must be before to", "from")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise ApiError(
            400,
            "out_of_range",
            f"from and to may be at most {MAX_RANGE_DAYS} days apart; ask in parts",
            "from",
        )
    return Window(start, end)


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end) touches."""
    last = (end - timedelta(microseconds=1)).date()
    return [date.fromordinal(n) for n in range(start.date().toordinal(), last.toordinal() + 1)]


def _day_rows(start: datetime, end: datetime, found: Mapping[Any, tuple[int, int]]) -> list[dict[str, Any]]:
    """One row a day of [start, end), zeros where nothing was found."""
    rows = []
    for day in _days(start, end):
        total, unique = found.get(day, (0, 0))
        rows.append({"day": day.isoformat(), "total": total, "unique": unique})
    return rows


#: `group` values of the scans series, and the column each groups by.
GROUPS = {
    "day": Scan.day,
    "device": Scan.device,
    "referrer": Scan.referrer,
    "browser": Scan.browser,
    "country": Scan.country,
}


def series(code_id: str, start: datetime, end: datetime, group: str) -> list[dict[str, Any]]:
    """Scans in [start, end) per `group` value: days in order (every day, zeros too), others by count."""
    column = GROUPS[group]
    total, unique = sa.func.count(), sa.func.count(sa.distinct(Scan.visitor))
    query = (
        sa.select(column, total, unique)
        .where(Scan.code_id == code_id, Scan.scanned_at >= start, Scan.scanned_at < end)
        .group_by(column)
    )
    found = {value: (int(t), int(u)) for value, t, u in db.session.execute(query)}
    if group == "day":
        return _day_rows(start, end, found)
    ordered = sorted(found.items(), key=lambda item: (-item[1][0], str(item[0])))
    return [{group: value, "total": t, "unique": u} for value, (t, u) in ordered]


@dataclass(frozen=True, slots=True)
class ScanStats:
    """Scans of a set of codes (a campaign): all together, per code, and per day."""

    total: int
    unique: int
    #: Every code asked about, scanned or not.
    per_code: dict[str, Counts]
    #: Every UTC day of the range: {"day", "total", "unique"}.
    per_day: list[dict[str, Any]]


_CHUNK = 500


def scan_stats(
    code_ids: Sequence[str], start: datetime | None = None, end: datetime | None = None
) -> ScanStats:
    """Counts for many codes in a few queries, within [start, end) (default: the last 30 days).

    This worker's waiting scans are written first (`scans.flush`): call it before the
    request writes anything. `unique` is distinct visitors over all the codes; since a
    visitor hash is per code, one person scanning two codes is two visitors (that is what
    keeps codes unlinkable).
    """
    scans.flush()
    span = window(start, end)
    ids = list(dict.fromkeys(code_ids))
    in_range = (Scan.scanned_at >= span.start, Scan.scanned_at < span.end)
    total_of, unique_of = sa.func.count(), sa.func.count(sa.distinct(Scan.visitor))
    per_code = {code_id: Counts(0, 0, None) for code_id in ids}
    per_day: dict[date, tuple[int, int]] = {}
    total = unique = 0
    for first in range(0, len(ids), _CHUNK):
        chunk = ids[first : first + _CHUNK]
        among = Scan.code_id.in_(chunk)
        query = sa.select(Scan.code_id, total_of, unique_of, sa.func.max(Scan.scanned_at))
        for code_id, t, u, last in db.session.execute(query.where(among, *in_range).group_by(Scan.code_id)):
            per_code[code_id] = Counts(int(t), int(u), last)
        days = sa.select(Scan.day, total_of, unique_of).where(among, *in_range).group_by(Scan.day)
        for day, t, u in db.session.execute(days):
            previous = per_day.get(day, (0, 0))
            per_day[day] = (previous[0] + int(t), previous[1] + int(u))
        t, u = db.session.execute(sa.select(total_of, unique_of).where(among, *in_range)).one()
        total, unique = total + int(t), unique + int(u)  # visitors never span codes, so chunks add up
    return ScanStats(
        total,
        unique,
        per_code,
        _day_rows(span.start, span.end, per_day),
    )


__all__ = [
    "DEFAULT_RANGE_DAYS",
    "GROUPS",
    "MAX_RANGE_DAYS",
    "Counts",
    "ScanStats",
    "Window",
    "counts",
    "parse_bound",
    "scan_stats",
    "series",
    "window",
]
