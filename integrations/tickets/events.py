"""Events: create and read them (owner only), and count what happened at their gates."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError, NotFoundError, now

from .inputs import NewEvent
from .models import Event, Scan, ScanResult, Ticket, new_record_id, plausible_id
from .scanning import INSIDE


def create_event(owner: ApiKey, new: NewEvent) -> Event:
    """A new event owned by `owner`; added and flushed, committed by the caller."""
    if new.ends_at <= new.starts_at:
        raise ApiError(422, "invalid_time_range", "ends_at must be later than starts_at", field="ends_at")
    event = Event(
        id=new_record_id("evt_"),
        owner_id=owner.id,
        name=new.name,
        venue=new.venue,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        allow_reentry=new.allow_reentry,
        revocation_version=0,
        created_at=now(),
    )
    db.session.add(event)
    db.session.flush()
    return event


def get_event(owner: ApiKey, event_id: str) -> Event:
    """The owner's event; another key's event is as absent as a missing one."""
    event: Event | None = db.session.get(Event, event_id) if plausible_id(event_id) else None
    if event is None or event.owner_id != owner.id:
        raise NotFoundError(f"no event {event_id!r}")
    return event


@dataclass(frozen=True, slots=True)
class EventStats:
    """Tickets issued, admitted (at least once), inside now and revoked; scans by outcome."""

    event_id: str
    issued: int
    admitted: int
    inside: int
    revoked: int
    scans: int
    entries: int
    exits: int
    conflicts: int
    failed: dict[str, int] = field(default_factory=dict)


def event_stats(event: Event) -> EventStats:
    """The event's counters; `inside` is the tickets the entry and exit rules hold inside."""
    tickets = sa.select(
        sa.func.count(Ticket.id),
        sa.func.count(Ticket.used_at),
        sa.func.count(Ticket.id).filter(INSIDE),
        sa.func.count(Ticket.revoked_at),
    ).where(Ticket.event_id == event.id)
    issued, admitted, inside, revoked = db.session.execute(tickets).one()
    scans = sa.select(
        Scan.result,
        sa.func.count(Scan.id),
        sa.func.count(Scan.id).filter(Scan.direction == "entry", Scan.result == ScanResult.ADMITTED),
        sa.func.count(Scan.id).filter(Scan.conflict.is_(True)),
    ).where(Scan.event_id == event.id)
    rows = db.session.execute(scans.group_by(Scan.result)).all()
    by_result = {result: count for result, count, _entries, _conflicts in rows}
    return EventStats(
        event_id=event.id,
        issued=issued,
        admitted=admitted,
        inside=inside,
        revoked=revoked,
        scans=sum(by_result.values()),
        entries=sum(entries for *_, entries, _conflicts in rows),
        exits=by_result.get(ScanResult.EXITED, 0),
        conflicts=sum(conflicts for *_, conflicts in rows),
        failed={
            result: count for result, count in sorted(by_result.items()) if not ScanResult(result).admits
        },
    )


__all__ = ["EventStats", "create_event", "event_stats", "get_event"]
