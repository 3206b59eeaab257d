"""Ticketing use cases: events, issuing, revoking, scanning exactly once, offline uploads, stats.

Every redemption is one conditional UPDATE whose row count decides the winner, so
two gates (threads, gunicorn workers, hosts) scanning one ticket in the same
instant get exactly one `admitted`, on SQLite and PostgreSQL alike. Scans carrying
a (device, nonce) pair are idempotent: the scan log's unique index (per calling key
and event) keeps the first answer, and a retry with the same token gets that answer
back without redeeming again; the same pair with another token is `nonce_reused`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from qrsvc import clock, codes
from qrsvc.config import Plan
from qrsvc.errors import ApiError, NotFoundError
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.options import QrOptions

from . import tokens
from .models import Event, Scan, Ticket, scan_event_scope

#: Every result a decided scan can have; stable API codes.
RESULTS = (
    "admitted",
    "already_used",
    "revoked",
    "invalid_signature",
    "malformed",
    "expired",
    "not_yet_valid",
    "wrong_event",
    "unknown_ticket",
    # direction "exit" only:
    "exited",
    "not_inside",
    # offline uploads only:
    "invalid_time",
    "refused_locally",
    "nonce_reused",
)
SCAN_SCOPE = "tickets:scan"
MANAGE_SCOPE = "tickets"


def _new_id(prefix: str) -> str:
    return prefix + base64.b32encode(secrets.token_bytes(10)).decode().lower()


# ---------------------------------------------------------------- events


def create_event(
    owner: ApiKey,
    *,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    venue: str | None = None,
    allow_reentry: bool = False,
) -> Event:
    if ends_at <= starts_at:
        raise ApiError(422, "invalid_time_range", "ends_at must be later than starts_at", field="ends_at")
    event = Event(
        id=_new_id("evt_"),
        owner_id=owner.id,
        name=name,
        venue=venue,
        starts_at=starts_at,
        ends_at=ends_at,
        allow_reentry=allow_reentry,
        revocation_version=0,
        created_at=clock.now(),
    )
    db.session.add(event)
    db.session.commit()
    return event


def _plausible_id(record_id: str) -> bool:
    """An id we could have made: short and printable (a NUL would be a 500 on PostgreSQL)."""
    return len(record_id) <= 40 and record_id.isprintable()


def get_event(owner: ApiKey, event_id: str) -> Event:
    """The owner's event; another key's event is as absent as a missing one."""
    event: Event | None = db.session.get(Event, event_id) if _plausible_id(event_id) else None
    if event is None or event.owner_id != owner.id:
        raise NotFoundError(f"no event {event_id!r}")
    return event


def get_event_for_scanner(key: ApiKey, event_id: str) -> Event:
    """An event a scanner may see: any event for a gate key, else only the owner's."""
    event: Event | None = db.session.get(Event, event_id) if _plausible_id(event_id) else None
    if event is None or not _may_scan(key, event):
        raise NotFoundError(f"no event {event_id!r}")
    return event


# ---------------------------------------------------------------- tickets


@dataclass(frozen=True, slots=True)
class TicketSpec:
    holder_name: str
    holder_email: str | None = None
    seat: str | None = None
    tier: str | None = None


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
    plan: Plan,
    event: Event,
    specs: Sequence[TicketSpec],
    *,
    replaces: Ticket | None = None,
) -> list[Ticket]:
    """Sign a token per ticket, draw each as an ordinary stored code, store all in one go.

    With `replaces`, the one new ticket supersedes that (unused) ticket in the same
    transaction: it is revoked by a conditional UPDATE, or nothing is issued (409).
    """
    signer = tokens.current_signer()
    not_before, expires = _validity(event)
    engine = current_app.config["ENGINE"]
    now = clock.now()
    tickets: list[Ticket] = []
    images: list[codes.Image] = []
    for spec in specs:
        ticket_id = _new_id("tkt_")
        token, jti = tokens.issue_token(
            signer,
            ticket_id=ticket_id,
            event_id=event.id,
            seat=spec.seat,
            not_before=not_before,
            expires=expires,
        )
        images.append(codes.make_image(qr_options(token), engine))
        tickets.append(
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
                created_at=now,
                inside=False,
            )
        )
    if replaces is not None and not _revoke(replaces, replaced_by=tickets[0].id, unused_only=True):
        db.session.rollback()
        db.session.refresh(replaces)
        if replaces.revoked_at is not None:
            raise ApiError(409, "ticket_revoked", "a revoked ticket cannot be reissued")
        raise ApiError(409, "ticket_used", "a ticket that has been used cannot be reissued")
    db.session.add_all(tickets)
    # store_codes checks the quota first and commits codes and tickets together.
    stored = codes.store_codes(owner, plan, images)
    for ticket, code in zip(tickets, stored, strict=True):
        ticket.qr_code_id = code.id
    db.session.commit()
    return tickets


def get_ticket(owner: ApiKey, ticket_id: str) -> Ticket:
    ticket: Ticket | None = db.session.get(Ticket, ticket_id) if _plausible_id(ticket_id) else None
    if ticket is None:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    event = db.session.get(Event, ticket.event_id)
    if event is None or event.owner_id != owner.id:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    return ticket


def ticket_code(ticket: Ticket) -> QrCode | None:
    return db.session.get(QrCode, ticket.qr_code_id) if ticket.qr_code_id else None


def ticket_scans(ticket: Ticket, limit: int = 100) -> list[Scan]:
    query = sa.select(Scan).where(Scan.ticket_id == ticket.id).order_by(Scan.id).limit(limit)
    return list(db.session.scalars(query))


def state_of(ticket: Ticket) -> str:
    if ticket.revoked_at is not None:
        return "revoked"
    return "used" if ticket.used_at is not None else "valid"


def _revoke(ticket: Ticket, *, replaced_by: str | None = None, unused_only: bool = False) -> bool:
    """Revoke in one conditional UPDATE; bump the event's revocation version when it changed."""
    condition = [Ticket.id == ticket.id, Ticket.revoked_at.is_(None)]
    if unused_only:
        condition.append(Ticket.used_at.is_(None))
    result = db.session.execute(
        sa.update(Ticket)
        .where(*condition)
        .values(revoked_at=clock.now(), replaced_by=replaced_by)
        .execution_options(synchronize_session=False)
    )
    changed = bool(cast(sa.CursorResult[Any], result).rowcount)
    if changed:
        db.session.execute(
            sa.update(Event)
            .where(Event.id == ticket.event_id)
            .values(revocation_version=Event.revocation_version + 1)
            .execution_options(synchronize_session=False)
        )
    return changed


def revoke_ticket(owner: ApiKey, ticket_id: str) -> Ticket:
    """Revoke a ticket (idempotent): its token gets `revoked` at every gate from now on."""
    ticket = get_ticket(owner, ticket_id)
    _revoke(ticket)
    db.session.commit()
    db.session.refresh(ticket)
    return ticket


def reissue_ticket(owner: ApiKey, plan: Plan, ticket_id: str, changes: dict[str, str | None]) -> Ticket:
    """A new ticket (new id and token, optional seat/holder changes) replacing an unused one."""
    old = get_ticket(owner, ticket_id)
    event = get_event(owner, old.event_id)
    spec = TicketSpec(
        holder_name=changes.get("holder_name") or old.holder_name,
        holder_email=changes.get("holder_email", old.holder_email),
        seat=changes.get("seat", old.seat),
        tier=changes.get("tier", old.tier),
    )
    (new,) = issue_tickets(owner, plan, event, [spec], replaces=old)
    return new


def revocations(event: Event, since: datetime | None) -> tuple[int, list[Ticket]]:
    """(version, revoked tickets since `since`); the version changes whenever the list does."""
    query = sa.select(Ticket).where(Ticket.event_id == event.id, Ticket.revoked_at.is_not(None))
    if since is not None:
        query = query.where(Ticket.revoked_at > since)
    version = db.session.scalar(sa.select(Event.revocation_version).where(Event.id == event.id))
    return int(version or 0), list(db.session.scalars(query.order_by(Ticket.revoked_at, Ticket.id)))


# ---------------------------------------------------------------- scanning


@dataclass(frozen=True, slots=True)
class ScanRequest:
    token: str
    gate: str | None = None
    device: str | None = None
    nonce: str | None = None
    direction: str = "entry"
    event_id: str | None = None
    scanned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OfflineScan:
    token: str
    scanned_at: datetime
    device: str
    nonce: str
    gate: str | None = None
    admitted_locally: bool = True


@dataclass(slots=True)
class _Decision:
    result: str
    event_id: str | None = None
    ticket: Ticket | None = None
    conflict: bool = False
    #: The ticket's event lets a ticket enter again after an exit.
    reentry: bool = False

    @property
    def admit(self) -> bool:
        return self.result in ("admitted", "exited")


def token_hash(token: str) -> str:
    """What the scan log keeps of a token: enough to tell a retry from a reused nonce."""
    return hashlib.sha256(token.encode()).hexdigest()


def _find_scan(key: ApiKey, event_id: str | None, device: str | None, nonce: str | None) -> Scan | None:
    """This key's earlier scan with this (device, nonce) at this event; never another key's."""
    if not device or not nonce:
        return None
    query = sa.select(Scan).where(
        Scan.key_id == key.id,
        scan_event_scope() == (event_id or ""),
        Scan.device == device,
        Scan.nonce == nonce,
    )
    return cast("Scan | None", db.session.scalar(query))


def _is_retry(existing: Scan, digest: str, direction: str) -> bool:
    """The same scan sent again: same token and direction (rows without a hash never match)."""
    return (
        existing.token_hash is not None and existing.token_hash == digest and existing.direction == direction
    )


def _nonce_reused(nonce: str | None) -> ApiError:
    return ApiError(
        409, "nonce_reused", f"this device already sent nonce {nonce!r} with another scan", field="nonce"
    )


def _is_gate_key(key: ApiKey) -> bool:
    """A gate device's key: `tickets:scan` granted by name, not through `*`.

    Every ordinary key has `*`; if that implied scanning, any organiser's key could burn
    (and read) another organiser's tickets. Gate keys are made by the instance's operator
    (`qrsvc keys create --scope tickets:scan`) and serve every event on it.
    """
    return SCAN_SCOPE in key.scopes


def _may_scan(key: ApiKey, event: Event) -> bool:
    return _is_gate_key(key) or event.owner_id == key.id


def _gate_event(key: ApiKey, event_id: str | None) -> str | None:
    """The event a scan is logged under: the one the gate named, if this key may see it."""
    if event_id is None or _is_gate_key(key):
        return event_id
    event = db.session.get(Event, event_id)
    return event_id if event is not None and event.owner_id == key.id else None


def _identify(key: ApiKey, token: str, event_id: str | None, at: datetime | None) -> _Decision:
    """Verify the token and find its ticket (reads only; the decision's write comes after)."""
    try:
        claims = tokens.verify_token(token, at=at)
    except tokens.TokenError as exc:
        return _Decision(exc.result, event_id=_gate_event(key, event_id))
    ticket = db.session.get(Ticket, claims.ticket_id)
    if ticket is None or ticket.event_id != claims.event_id:
        return _Decision("unknown_ticket", event_id=_gate_event(key, event_id))
    event = db.session.get(Event, ticket.event_id)
    if event is None or not _may_scan(key, event):
        # An organiser's own gate met another organiser's ticket: a decision, but nothing about it.
        gate_event = _gate_event(key, event_id)
        if gate_event is not None:
            return _Decision("wrong_event", event_id=gate_event)
        raise ApiError(
            403, "insufficient_scope", f"scanning needs the {SCAN_SCOPE!r} scope or the event owner's key"
        )
    if event_id is not None and event_id != ticket.event_id:
        return _Decision("wrong_event", event_id=event_id, ticket=ticket)
    if ticket.jti != claims.jti:
        return _Decision("revoked", event_id=ticket.event_id, ticket=ticket)
    return _Decision("pending", event_id=ticket.event_id, ticket=ticket, reentry=event.allow_reentry)


def _rowcount(statement: Any) -> int:
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    return int(cast(sa.CursorResult[Any], result).rowcount)


def _enter(ticket: Ticket, gate: str | None, reentry: bool) -> str:
    """Redeem with one conditional UPDATE; the row count says who won."""
    live = (Ticket.id == ticket.id, Ticket.revoked_at.is_(None))
    first = sa.update(Ticket).where(*live, Ticket.used_at.is_(None))
    if _rowcount(first.values(used_at=clock.now(), first_gate=gate, inside=True)):
        return "admitted"
    if reentry:
        again = sa.update(Ticket).where(*live, Ticket.used_at.is_not(None), Ticket.inside.is_(False))
        if _rowcount(again.values(inside=True)):
            return "admitted"
    db.session.refresh(ticket)
    return "revoked" if ticket.revoked_at is not None else "already_used"


def _leave(ticket: Ticket) -> str:
    left = sa.update(Ticket).where(Ticket.id == ticket.id, Ticket.inside.is_(True)).values(inside=False)
    return "exited" if _rowcount(left) else "not_inside"


def _record(
    key: ApiKey,
    decision: _Decision,
    *,
    direction: str,
    gate: str | None,
    device: str | None,
    nonce: str | None,
    digest: str,
    client_time: datetime | None,
    offline: bool = False,
) -> Scan:
    """Append the scan and commit with the redemption; a lost nonce race returns the winner's row.

    The caller checks that row with `_is_retry`: the racer may have sent another token.
    """
    ticket = decision.ticket
    if ticket is not None:
        db.session.refresh(ticket)
    scan = Scan(
        event_id=decision.event_id,
        ticket_id=ticket.id if ticket is not None else None,
        key_id=key.id,
        result=decision.result,
        admit=decision.admit,
        direction=direction,
        gate=gate,
        device=device,
        nonce=nonce,
        token_hash=digest,
        server_time=clock.now(),
        client_time=client_time,
        offline=offline,
        conflict=decision.conflict,
        first_used_at=ticket.used_at if ticket is not None else None,
        first_gate=ticket.first_gate if ticket is not None else None,
    )
    db.session.add(scan)
    try:
        db.session.commit()
    except IntegrityError:
        # The same (device, nonce) was recorded by a concurrent request: that answer stands,
        # and rolling back undid whatever this attempt changed.
        db.session.rollback()
        existing = _find_scan(key, decision.event_id, device, nonce)
        if existing is None:
            raise
        return existing
    return scan


def scan_ticket(key: ApiKey, request: ScanRequest) -> Scan:
    """Decide one online scan and log it.

    A retry (same key, event, device, nonce and token) gets the first answer back; the
    same (device, nonce) with another token is a 409 `nonce_reused`, never an admission.
    """
    digest = token_hash(request.token)
    decision = _identify(key, request.token, request.event_id, None)
    existing = _find_scan(key, decision.event_id, request.device, request.nonce)
    if existing is not None:
        if _is_retry(existing, digest, request.direction):
            return existing
        raise _nonce_reused(request.nonce)
    if decision.result == "pending" and decision.ticket is not None:
        if request.direction == "exit":
            decision.result = _leave(decision.ticket)
        else:
            decision.result = _enter(decision.ticket, request.gate, decision.reentry)
    scan = _record(
        key,
        decision,
        direction=request.direction,
        gate=request.gate,
        device=request.device,
        nonce=request.nonce,
        digest=digest,
        client_time=request.scanned_at,
    )
    if not _is_retry(scan, digest, request.direction):
        raise _nonce_reused(request.nonce)
    return scan


def _redeem_offline(decision: _Decision, ticket: Ticket, item: OfflineScan) -> None:
    """The earliest `scanned_at` wins: a later recorded redemption is replaced by an earlier one."""
    at = item.scanned_at
    earliest = (
        sa.update(Ticket)
        .where(
            Ticket.id == ticket.id,
            sa.or_(Ticket.revoked_at.is_(None), Ticket.revoked_at > at),
            sa.or_(Ticket.used_at.is_(None), Ticket.used_at > at),
        )
        .values(used_at=at, first_gate=item.gate, inside=True)
    )
    if _rowcount(earliest):
        decision.result = "admitted"
        # Someone else was admitted on this ticket later: both got in (possible pass-back).
        other = sa.select(sa.func.count(Scan.id)).where(
            Scan.ticket_id == ticket.id, Scan.result == "admitted"
        )
        decision.conflict = bool(db.session.scalar(other))
        return
    db.session.refresh(ticket)
    if ticket.revoked_at is not None and ticket.revoked_at <= at:
        decision.result = "revoked"
    elif decision.reentry:
        decision.result = "admitted"  # a later entry at a re-entry event is allowed
        return
    else:
        decision.result = "already_used"
    decision.conflict = item.admitted_locally


def _refused_locally(ticket: Ticket, at: datetime) -> str:
    """What a scan the scanner did not let in says, as of `at`, without redeeming anything."""
    db.session.refresh(ticket)
    if ticket.revoked_at is not None and ticket.revoked_at <= at:
        return "revoked"
    if ticket.used_at is not None and ticket.used_at <= at:
        return "already_used"
    return "refused_locally"


def _nonce_reused_row(item: OfflineScan) -> Scan:
    """The answer to an upload row that reuses a nonce: not stored (the first scan holds it)."""
    return Scan(
        result="nonce_reused",
        admit=False,
        direction="entry",
        gate=item.gate,
        device=item.device,
        nonce=item.nonce,
        server_time=clock.now(),
        client_time=item.scanned_at,
        offline=True,
        conflict=False,
    )


def upload_scans(key: ApiKey, items: Sequence[OfflineScan]) -> list[Scan]:
    """Record scans an offline scanner decided itself; answers in input order.

    Items are applied in `scanned_at` order, each in its own transaction, so the
    earliest scan of a ticket wins however the uploads interleave. Later entries of a
    used ticket that the scanner let in are recorded with `conflict` set. A scan is
    judged at its `scanned_at`, which must lie between the token's issue time and now
    (each with a little clock skew; else `invalid_time`); rows the scanner did not let
    in (`admitted_locally: false`) are logged and never redeem.
    """
    answers: dict[int, Scan] = {}
    for index in sorted(range(len(items)), key=lambda i: items[i].scanned_at):
        item = items[index]
        digest = token_hash(item.token)
        decision = _identify(key, item.token, None, item.scanned_at)
        existing = _find_scan(key, decision.event_id, item.device, item.nonce)
        if existing is not None:
            answers[index] = existing if _is_retry(existing, digest, "entry") else _nonce_reused_row(item)
            continue
        if decision.result == "pending" and decision.ticket is not None:
            if item.admitted_locally:
                _redeem_offline(decision, decision.ticket, item)
            else:
                decision.result = _refused_locally(decision.ticket, item.scanned_at)
        elif item.admitted_locally:
            decision.conflict = True
        scan = _record(
            key,
            decision,
            direction="entry",
            gate=item.gate,
            device=item.device,
            nonce=item.nonce,
            digest=digest,
            client_time=item.scanned_at,
            offline=True,
        )
        answers[index] = scan if _is_retry(scan, digest, "entry") else _nonce_reused_row(item)
    return [answers[i] for i in range(len(items))]


def scan_ticket_of(scan: Scan) -> Ticket | None:
    return db.session.get(Ticket, scan.ticket_id) if scan.ticket_id else None


@dataclass(frozen=True, slots=True)
class ScanPage:
    items: list[Scan]
    next_cursor: str | None


def list_scans(event: Event, limit: int, cursor: str | None) -> ScanPage:
    """The event's scan log, oldest first; `cursor` is the last id of the previous page."""
    query = sa.select(Scan).where(Scan.event_id == event.id)
    if cursor:
        try:
            after = int(cursor)
        except ValueError:
            after = -1
        if not 0 <= after < 2**63:  # beyond a BIGINT the database itself would fail
            raise ApiError(400, "invalid_parameter", "cursor is not one this API returned", "cursor")
        query = query.where(Scan.id > after)
    rows = list(db.session.scalars(query.order_by(Scan.id).limit(limit + 1)))
    items = rows[:limit]
    return ScanPage(items, str(items[-1].id) if len(rows) > limit and items else None)


def event_stats(event: Event) -> dict[str, Any]:
    """Issued, admitted (unique tickets), inside (entries − exits), revoked, failures by reason."""
    tickets = sa.select(
        sa.func.count(Ticket.id),
        sa.func.count(Ticket.used_at),
        sa.func.count(Ticket.revoked_at),
    ).where(Ticket.event_id == event.id)
    issued, admitted, revoked = db.session.execute(tickets).one()
    by_result = dict(
        db.session.execute(
            sa.select(Scan.result, sa.func.count(Scan.id))
            .where(Scan.event_id == event.id)
            .group_by(Scan.result)
        ).all()
    )
    entries = db.session.scalar(
        sa.select(sa.func.count(Scan.id)).where(
            Scan.event_id == event.id, Scan.direction == "entry", Scan.result == "admitted"
        )
    )
    conflicts = db.session.scalar(
        sa.select(sa.func.count(Scan.id)).where(Scan.event_id == event.id, Scan.conflict.is_(True))
    )
    exits = by_result.get("exited", 0)
    return {
        "event_id": event.id,
        "issued": issued,
        "admitted": admitted,
        "inside": (entries or 0) - exits,
        "revoked": revoked,
        "scans": sum(by_result.values()),
        "entries": entries or 0,
        "exits": exits,
        "conflicts": conflicts or 0,
        "failed": {r: n for r, n in sorted(by_result.items()) if r not in ("admitted", "exited")},
    }


__all__ = [
    "MANAGE_SCOPE",
    "RESULTS",
    "SCAN_SCOPE",
    "OfflineScan",
    "ScanPage",
    "ScanRequest",
    "TicketSpec",
    "create_event",
    "event_stats",
    "get_event",
    "get_event_for_scanner",
    "get_ticket",
    "issue_tickets",
    "list_scans",
    "qr_options",
    "reissue_ticket",
    "revocations",
    "revoke_ticket",
    "scan_ticket",
    "scan_ticket_of",
    "state_of",
    "ticket_code",
    "ticket_scans",
    "token_hash",
    "upload_scans",
]
