"""Who may scan which event: gate keys scan every event, an organiser's key only its own."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import NotFoundError, now

from .models import Event, plausible_id

MANAGE_SCOPE = "tickets"
SCAN_SCOPE = "tickets:scan"


def is_gate_key(key: ApiKey) -> bool:
    """A gate device's key: `tickets:scan` granted by name, not through `*`.

    Every ordinary key has `*`; if that implied scanning, any organiser's key could burn
    (and read) another organiser's tickets. Gate keys are made by the instance's operator
    (`qrsvc keys create --scope tickets:scan`) and serve every event on it.
    """
    return SCAN_SCOPE in key.scopes


def may_scan(key: ApiKey, event: Event) -> bool:
    return is_gate_key(key) or event.owner_id == key.id


def get_event_for_scanner(key: ApiKey, event_id: str) -> Event:
    """An event a scanner may see: any event for a gate key, else only the owner's."""
    event: Event | None = db.session.get(Event, event_id) if plausible_id(event_id) else None
    if event is None or not may_scan(key, event):
        raise NotFoundError(f"no event {event_id!r}")
    return event


def gate_event(key: ApiKey, event_id: str | None) -> str | None:
    """The event a scan is logged under: the one the gate named, if this key may see it."""
    if event_id is None or is_gate_key(key):
        return event_id
    event = db.session.get(Event, event_id)
    return event_id if event is not None and event.owner_id == key.id else None


def scannable_events(key: ApiKey, limit: int) -> list[Event]:
    """Events whose tickets still scan, soonest first: every event for a gate key, else the key's own.

    Gate keys (`tickets:scan` by name, not through `*`) serve every event on the instance,
    as at the scan itself.
    """
    closed_before = now() - timedelta(seconds=current_app.config["TICKETS_EXPIRY_GRACE"])
    query = sa.select(Event).where(Event.ends_at > closed_before)
    if not is_gate_key(key):
        query = query.where(Event.owner_id == key.id)
    return list(db.session.scalars(query.order_by(Event.starts_at, Event.id).limit(limit)))


__all__ = [
    "MANAGE_SCOPE",
    "SCAN_SCOPE",
    "gate_event",
    "get_event_for_scanner",
    "is_gate_key",
    "may_scan",
    "scannable_events",
]
