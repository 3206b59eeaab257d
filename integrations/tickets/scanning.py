"""Gate scans: each scan decided exactly once, online or uploaded later by an offline scanner.

Every redemption is one conditional UPDATE whose row count decides the winner, so
two gates (threads, gunicorn workers, hosts) scanning one ticket in the same
instant get exactly one `admitted`, on SQLite and PostgreSQL alike. Scans carrying
a (device, nonce) pair are idempotent: the scan log's unique index (per calling key
and event) keeps the first answer, and a retry with the same token gets that answer
back without redeeming again; the same pair with another token is `nonce_reused`.
The caller's unit of work commits; a scan that loses a nonce race undoes only its own
part (a savepoint) and answers with the winner's row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError, now

from . import scanlog, tokens
from .gates import SCAN_SCOPE, gate_event, may_scan
from .inputs import OfflineScan, ScanRequest
from .models import Event, Scan, ScanResult, Ticket, updated_rows
from .scanlog import Sent

#: Who is inside: the one rule the entry and exit decisions and the event's stats all read.
INSIDE: Final = Ticket.inside.is_(True)
_OUTSIDE: Final = sa.not_(INSIDE)


@dataclass(frozen=True, slots=True)
class ScanDecision:
    """One scan as decided: the result a gate switches on, and what the log keeps with it."""

    result: ScanResult
    event_id: str | None = None
    ticket: Ticket | None = None
    #: The scanner let someone in whom the server would not have (or who got in twice).
    conflict: bool = False

    @property
    def admit(self) -> bool:
        return self.result.admits


@dataclass(frozen=True, slots=True)
class _Admissible:
    """A genuine, current ticket this key may scan: the write that follows decides the result."""

    ticket: Ticket
    reentry: bool

    @property
    def event_id(self) -> str:
        return self.ticket.event_id


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """A logged scan and the ticket it names: all a gate's answer shows."""

    scan: Scan
    ticket: Ticket | None


def _identify(
    key: ApiKey, token: str, event_id: str | None, at: datetime | None
) -> ScanDecision | _Admissible:
    """Verify the token and find its ticket (reads only; the decision's write comes after)."""
    try:
        claims = tokens.verify_token(token, at=at)
    except tokens.TokenError as exc:
        return ScanDecision(exc.result, event_id=gate_event(key, event_id))
    ticket = db.session.get(Ticket, claims.ticket_id)
    if ticket is None or ticket.event_id != claims.event_id:
        return ScanDecision(ScanResult.UNKNOWN_TICKET, event_id=gate_event(key, event_id))
    event = db.session.get(Event, ticket.event_id)
    if event is None or not may_scan(key, event):
        # An organiser's own gate met another organiser's ticket: a decision, but nothing about it.
        logged_under = gate_event(key, event_id)
        if logged_under is not None:
            return ScanDecision(ScanResult.WRONG_EVENT, event_id=logged_under)
        raise ApiError(
            403, "insufficient_scope", f"scanning needs the {SCAN_SCOPE!r} scope or the event owner's key"
        )
    if event_id is not None and event_id != ticket.event_id:
        return ScanDecision(ScanResult.WRONG_EVENT, event_id=event_id, ticket=ticket)
    if ticket.jti != claims.jti:
        return ScanDecision(ScanResult.REVOKED, event_id=ticket.event_id, ticket=ticket)
    return _Admissible(ticket, reentry=event.allow_reentry)


def _enter(ticket: Ticket, gate: str | None, reentry: bool) -> ScanResult:
    """Redeem with one conditional UPDATE; the row count says who won."""
    live = (Ticket.id == ticket.id, Ticket.revoked_at.is_(None))
    first = sa.update(Ticket).where(*live, Ticket.used_at.is_(None))
    if updated_rows(first.values(used_at=now(), first_gate=gate, inside=True)):
        return ScanResult.ADMITTED
    if reentry:
        again = sa.update(Ticket).where(*live, Ticket.used_at.is_not(None), _OUTSIDE)
        if updated_rows(again.values(inside=True)):
            return ScanResult.ADMITTED
    db.session.refresh(ticket)
    return ScanResult.REVOKED if ticket.revoked_at is not None else ScanResult.ALREADY_USED


def _leave(ticket: Ticket) -> ScanResult:
    left = sa.update(Ticket).where(Ticket.id == ticket.id, INSIDE).values(inside=False)
    return ScanResult.EXITED if updated_rows(left) else ScanResult.NOT_INSIDE


def _online(found: _Admissible, request: ScanRequest) -> ScanDecision:
    if request.direction == "exit":
        result = _leave(found.ticket)
    else:
        result = _enter(found.ticket, request.gate, found.reentry)
    return ScanDecision(result, event_id=found.event_id, ticket=found.ticket)


def _offline(found: _Admissible, item: OfflineScan) -> ScanDecision:
    """The earliest `scanned_at` wins: a later recorded redemption is replaced by an earlier one.

    A row the scanner did not let in never redeems: it says what the ticket was at `scanned_at`.
    """
    ticket, at = found.ticket, item.scanned_at
    if not item.admitted_locally:
        return ScanDecision(_refused_locally(ticket, at), event_id=found.event_id, ticket=ticket)
    earliest = (
        sa.update(Ticket)
        .where(
            Ticket.id == ticket.id,
            sa.or_(Ticket.revoked_at.is_(None), Ticket.revoked_at > at),
            sa.or_(Ticket.used_at.is_(None), Ticket.used_at > at),
        )
        .values(used_at=at, first_gate=item.gate, inside=True)
    )
    if updated_rows(earliest):
        # Someone else was admitted on this ticket later: both got in (possible pass-back).
        other = sa.select(sa.func.count(Scan.id)).where(
            Scan.ticket_id == ticket.id, Scan.result == ScanResult.ADMITTED
        )
        conflict = bool(db.session.scalar(other))
        return ScanDecision(ScanResult.ADMITTED, event_id=found.event_id, ticket=ticket, conflict=conflict)
    db.session.refresh(ticket)
    if ticket.revoked_at is not None and ticket.revoked_at <= at:
        result = ScanResult.REVOKED
    elif found.reentry:  # a later entry at a re-entry event is allowed
        return ScanDecision(ScanResult.ADMITTED, event_id=found.event_id, ticket=ticket)
    else:
        result = ScanResult.ALREADY_USED
    return ScanDecision(result, event_id=found.event_id, ticket=ticket, conflict=True)


def _refused_locally(ticket: Ticket, at: datetime) -> ScanResult:
    """What a scan the scanner did not let in says, as of `at`, without redeeming anything."""
    db.session.refresh(ticket)
    if ticket.revoked_at is not None and ticket.revoked_at <= at:
        return ScanResult.REVOKED
    if ticket.used_at is not None and ticket.used_at <= at:
        return ScanResult.ALREADY_USED
    return ScanResult.REFUSED_LOCALLY


def _log_row(key: ApiKey, decision: ScanDecision, sent: Sent) -> Scan:
    ticket = decision.ticket
    if ticket is not None:
        db.session.refresh(ticket)  # the decision's UPDATE ran in SQL
    return Scan(
        event_id=decision.event_id,
        ticket_id=ticket.id if ticket is not None else None,
        key_id=key.id,
        result=decision.result,
        admit=decision.admit,
        direction=sent.direction,
        gate=sent.gate,
        device=sent.device,
        nonce=sent.nonce,
        token_hash=sent.digest,
        server_time=now(),
        client_time=sent.client_time,
        offline=sent.offline,
        conflict=decision.conflict,
        first_used_at=ticket.used_at if ticket is not None else None,
        first_gate=ticket.first_gate if ticket is not None else None,
    )


def _outcome(scan: Scan) -> ScanOutcome:
    """The scan with its ticket as it is now (reloaded: a racing request may have just used it)."""
    ticket = db.session.get(Ticket, scan.ticket_id, populate_existing=True) if scan.ticket_id else None
    return ScanOutcome(scan, ticket)


def _nonce_reused(nonce: str | None) -> ApiError:
    return ApiError(
        409, "nonce_reused", f"this device already sent nonce {nonce!r} with another scan", field="nonce"
    )


def _nonce_reused_row(item: OfflineScan) -> Scan:
    """The answer to an upload row that reuses a nonce: not stored (the first scan holds it)."""
    return Scan(
        result=ScanResult.NONCE_REUSED,
        admit=False,
        direction="entry",
        gate=item.gate,
        device=item.device,
        nonce=item.nonce,
        server_time=now(),
        client_time=item.scanned_at,
        offline=True,
        conflict=False,
    )


def scan_ticket(key: ApiKey, request: ScanRequest) -> ScanOutcome:
    """Decide one online scan and log it (flushed; the request commits).

    A retry (same key, event, device, nonce and token) gets the first answer back; the
    same (device, nonce) with another token is a 409 `nonce_reused`, never an admission.
    """
    sent = Sent(
        request.direction,
        request.gate,
        request.device,
        request.nonce,
        scanlog.token_hash(request.token),
        request.scanned_at,
    )
    found = _identify(key, request.token, request.event_id, None)
    scan = scanlog.find_scan(key, found.event_id, sent)
    if scan is None:

        def decide() -> Scan:
            decision = _online(found, request) if isinstance(found, _Admissible) else found
            return _log_row(key, decision, sent)

        scan = scanlog.append(key, found.event_id, sent, decide)
    if not scanlog.is_retry(scan, sent):
        raise _nonce_reused(request.nonce)
    return _outcome(scan)


def _lock_tickets(items: Sequence[OfflineScan]) -> None:
    """Lock the uploaded tickets' rows in id order, so concurrent uploads cannot deadlock."""
    ids = sorted({ticket_id for item in items if (ticket_id := tokens.ticket_id_of(item.token))})
    if ids:
        locking = sa.select(Ticket.id).where(Ticket.id.in_(ids)).order_by(Ticket.id).with_for_update()
        db.session.execute(locking)


def _upload_one(key: ApiKey, item: OfflineScan) -> ScanOutcome:
    sent = Sent(
        "entry", item.gate, item.device, item.nonce, scanlog.token_hash(item.token), item.scanned_at, True
    )
    found = _identify(key, item.token, None, item.scanned_at)
    if isinstance(found, ScanDecision) and item.admitted_locally:
        found = dataclasses.replace(found, conflict=True)
    scan = scanlog.find_scan(key, found.event_id, sent)
    if scan is None:

        def decide() -> Scan:
            decision = _offline(found, item) if isinstance(found, _Admissible) else found
            return _log_row(key, decision, sent)

        scan = scanlog.append(key, found.event_id, sent, decide)
    if not scanlog.is_retry(scan, sent):
        return ScanOutcome(_nonce_reused_row(item), None)
    return _outcome(scan)


def upload_scans(key: ApiKey, items: Sequence[OfflineScan]) -> list[ScanOutcome]:
    """Record scans an offline scanner decided itself; answers in input order.

    Items are applied in `scanned_at` order, so the earliest scan of a ticket wins however
    the uploads interleave. Later entries of a used ticket that the scanner let in are
    recorded with `conflict` set. A scan is judged at its `scanned_at`, which must lie
    between the token's issue time and now (each with a little clock skew; else
    `invalid_time`); rows the scanner did not let in (`admitted_locally: false`) are
    logged and never redeem.
    """
    _lock_tickets(items)
    answers: dict[int, ScanOutcome] = {}
    for index in sorted(range(len(items)), key=lambda i: items[i].scanned_at):
        answers[index] = _upload_one(key, items[index])
    return [answers[i] for i in range(len(items))]


__all__ = [
    "INSIDE",
    "ScanDecision",
    "ScanOutcome",
    "scan_ticket",
    "upload_scans",
]
