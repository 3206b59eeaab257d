"""Issuing tickets (signed, drawn as ordinary stored codes), revoking and reissuing them.

Services here add and flush; the request that called them commits, so a ticket, its
code, the quota it used and the revocation it replaces are stored together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app

from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.toolkit import ApiError, NotFoundError, QrOptions, Unset, make_codes, now

from . import tokens
from .events import get_event
from .inputs import TicketChanges, TicketSpec
from .models import Event, Ticket, new_record_id, plausible_id, updated_rows

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    """A ticket with the stored code that draws it (None once that code was deleted)."""

    ticket: Ticket
    code: QrCode | None


def qr_options(token: str) -> QrOptions:
    """How a ticket's code is drawn; EC level M or Q keeps a ~400-character token compact."""
    config = current_app.config
    return QrOptions(
        data=token, format="png", size=config["TICKETS_QR_SIZE"], error_correction=config["TICKETS_QR_EC"]
    )


def _validity(event: Event) -> tuple[datetime, datetime]:
    config = current_app.config
    not_before = event.starts_at - timedelta(seconds=config["TICKETS_VALID_BEFORE_START"])
    expires = event.ends_at + timedelta(seconds=config["TICKETS_EXPIRY_GRACE"])
    return not_before, expires


def issue_tickets(
    owner: ApiKey,
    event: Event,
    specs: Sequence[TicketSpec],
    *,
    replaces: Ticket | None = None,
) -> list[IssuedTicket]:
    """Sign a token per ticket, draw them all as ordinary stored codes, store all in one go.

    The codes are drawn in one batch (by the render pool's processes when there are
    many), and issuing takes a constant number of queries however many tickets. With
    `replaces`, the one new ticket supersedes that (unused) ticket: it is revoked by a
    conditional UPDATE, or nothing is issued (409).
    """
    signer = tokens.current_signer()
    not_before, expires = _validity(event)
    ids = [new_record_id("tkt_") for _spec in specs]
    signed = [
        tokens.issue_token(
            signer,
            ticket_id=ticket_id,
            event_id=event.id,
            seat=spec.seat,
            not_before=not_before,
            expires=expires,
        )
        for ticket_id, spec in zip(ids, specs, strict=True)
    ]
    if replaces is not None and not _revoke(replaces, replaced_by=ids[0], unused_only=True):
        db.session.refresh(replaces)
        if replaces.revoked_at is not None:
            raise ApiError(409, "ticket_revoked", "a revoked ticket cannot be reissued")
        raise ApiError(409, "ticket_used", "a ticket that has been used cannot be reissued")
    made = make_codes(owner, [qr_options(token) for token, _jti in signed])
    created_at = now()
    tickets = [
        Ticket(
            id=ticket_id,
            event_id=event.id,
            holder_name=spec.holder_name,
            holder_email=spec.holder_email,
            seat=spec.seat,
            tier=spec.tier,
            jti=jti,
            token=token,
            kid=signer.kid,
            qr_code_id=each.code.id,
            created_at=created_at,
            inside=False,
        )
        for ticket_id, spec, (token, jti), each in zip(ids, specs, signed, made, strict=True)
    ]
    db.session.add_all(tickets)
    db.session.flush()
    return [IssuedTicket(ticket, each.code) for ticket, each in zip(tickets, made, strict=True)]


def get_ticket(owner: ApiKey, ticket_id: str) -> Ticket:
    """The owner's ticket (through its event); another key's ticket is as absent as a missing one."""
    ticket: Ticket | None = db.session.get(Ticket, ticket_id) if plausible_id(ticket_id) else None
    if ticket is None:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    event = db.session.get(Event, ticket.event_id)
    if event is None or event.owner_id != owner.id:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    return ticket


def find_ticket(owner: ApiKey, ticket_id: str) -> IssuedTicket:
    """The owner's ticket with its code."""
    ticket = get_ticket(owner, ticket_id)
    code = db.session.get(QrCode, ticket.qr_code_id) if ticket.qr_code_id else None
    return IssuedTicket(ticket, code)


def state_of(ticket: Ticket) -> str:
    if ticket.revoked_at is not None:
        return "revoked"
    return "used" if ticket.used_at is not None else "valid"


def _revoke(ticket: Ticket, *, replaced_by: str | None = None, unused_only: bool = False) -> bool:
    """Revoke in one conditional UPDATE; bump the event's revocation version when it changed."""
    condition = [Ticket.id == ticket.id, Ticket.revoked_at.is_(None)]
    if unused_only:
        condition.append(Ticket.used_at.is_(None))
    revoked = sa.update(Ticket).where(*condition).values(revoked_at=now(), replaced_by=replaced_by)
    if not updated_rows(revoked):
        return False
    bumped = Event.revocation_version + 1
    updated_rows(sa.update(Event).where(Event.id == ticket.event_id).values(revocation_version=bumped))
    return True


def revoke_ticket(owner: ApiKey, ticket_id: str) -> IssuedTicket:
    """Revoke a ticket (idempotent): its token gets `revoked` at every gate from now on."""
    found = find_ticket(owner, ticket_id)
    _revoke(found.ticket)
    db.session.refresh(found.ticket)
    return found


def reissue_ticket(owner: ApiKey, ticket_id: str, changes: TicketChanges) -> IssuedTicket:
    """A new ticket (new id and token, optional seat/holder changes) replacing an unused one."""
    old = get_ticket(owner, ticket_id)
    event = get_event(owner, old.event_id)
    spec = TicketSpec(
        holder_name=_kept(changes.holder_name, old.holder_name),
        holder_email=_kept(changes.holder_email, old.holder_email),
        seat=_kept(changes.seat, old.seat),
        tier=_kept(changes.tier, old.tier),
    )
    (new,) = issue_tickets(owner, event, [spec], replaces=old)
    return new


def _kept(change: T | Unset, old: T) -> T:
    return old if isinstance(change, Unset) else change


def revocations(event: Event, since: datetime | None) -> tuple[int, list[Ticket]]:
    """(version, revoked tickets since `since`); the version changes whenever the list does."""
    query = sa.select(Ticket).where(Ticket.event_id == event.id, Ticket.revoked_at.is_not(None))
    if since is not None:
        query = query.where(Ticket.revoked_at > since)
    version = db.session.scalar(sa.select(Event.revocation_version).where(Event.id == event.id))
    return int(version or 0), list(db.session.scalars(query.order_by(Ticket.revoked_at, Ticket.id)))


__all__ = [
    "IssuedTicket",
    "find_ticket",
    "get_ticket",
    "issue_tickets",
    "qr_options",
    "reissue_ticket",
    "revocations",
    "revoke_ticket",
    "state_of",
]
