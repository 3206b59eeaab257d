"""The JSON shapes of ticketing: events, tickets, scans and gate answers, exactly as clients read them.

Shapes take what the services returned and never query: a list of N tickets is shaped
without another trip to the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qrsvc.toolkit import image_url, images_base, isoformat, public_url

from .events import EventStats
from .issuance import IssuedTicket, state_of
from .models import Event, Scan, ScanResult, Ticket
from .scanning import ScanOutcome


def _time(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "venue": event.venue,
        "starts_at": isoformat(event.starts_at),
        "ends_at": isoformat(event.ends_at),
        "allow_reentry": event.allow_reentry,
        "created_at": isoformat(event.created_at),
    }


def stats_json(stats: EventStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


def revocations_json(
    event: Event, version: int, since: datetime | None, revoked: list[Ticket]
) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "version": version,
        "since": _time(since),
        "revoked": [{"ticket_id": t.id, "revoked_at": _time(t.revoked_at)} for t in revoked],
    }


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """What a gate may show about a ticket."""
    return {
        "id": ticket.id,
        "event_id": ticket.event_id,
        "holder_name": ticket.holder_name,
        "seat": ticket.seat,
        "tier": ticket.tier,
        "state": state_of(ticket),
    }


def ticket_json(issued: IssuedTicket, *, images: str | None = None) -> dict[str, Any]:
    """A ticket as its owner sees it; `images` is the image URLs' base, worked out once for a list."""
    ticket, code = issued.ticket, issued.code
    return {
        **ticket_summary(ticket),
        "holder_email": ticket.holder_email,
        "token": ticket.token,
        "qr": {"id": code.id, "image_url": image_url(code, base=images)} if code is not None else None,
        "pdf_url": public_url(f"/v1/tickets/{ticket.id}/pdf"),
        "created_at": isoformat(ticket.created_at),
        "used_at": _time(ticket.used_at),
        "first_gate": ticket.first_gate,
        "revoked_at": _time(ticket.revoked_at),
        "replaced_by": ticket.replaced_by,
    }


def tickets_json(issued: Sequence[IssuedTicket]) -> dict[str, Any]:
    images = images_base()
    return {"tickets": [ticket_json(each, images=images) for each in issued]}


def scan_json(scan: Scan) -> dict[str, Any]:
    return {
        "id": scan.id,
        "ticket_id": scan.ticket_id,
        "result": scan.result,
        "admit": scan.admit,
        "direction": scan.direction,
        "gate": scan.gate,
        "device": scan.device,
        "server_time": isoformat(scan.server_time),
        "client_time": _time(scan.client_time),
        "offline": scan.offline,
        "conflict": scan.conflict,
    }


def scan_answer(outcome: ScanOutcome) -> dict[str, Any]:
    """What a gate needs to decide: admit or not, why, and whose ticket it is."""
    scan = outcome.scan
    body: dict[str, Any] = {"admit": scan.admit, "result": scan.result}
    if outcome.ticket is not None:
        body["ticket"] = ticket_summary(outcome.ticket)
    if scan.first_used_at is not None:
        body["first_used_at"] = isoformat(scan.first_used_at)
        body["first_gate"] = scan.first_gate
    return body


def upload_json(outcomes: list[ScanOutcome]) -> dict[str, Any]:
    """An offline upload's answers, in input order, with the batch's counts."""
    scans = [outcome.scan for outcome in outcomes]
    results = [
        {"index": i, "nonce": outcome.scan.nonce, **scan_answer(outcome), "conflict": outcome.scan.conflict}
        for i, outcome in enumerate(outcomes)
    ]
    return {
        "count": len(results),
        "admitted": sum(1 for s in scans if s.result == ScanResult.ADMITTED),
        "conflicts": sum(1 for s in scans if s.conflict),
        "results": results,
    }


__all__ = [
    "event_json",
    "revocations_json",
    "scan_answer",
    "scan_json",
    "stats_json",
    "ticket_json",
    "ticket_summary",
    "tickets_json",
    "upload_json",
]
