"""The email outbox: confirmations wait here until the worker sends them, retried with backoff.

A message is queued in the order's transaction (`enqueue`); delivery is the worker's
job (`shop.outbox` in `qrsvc worker`, or `qrsvc outbox send` from cron) and may fail
without touching the order.

Several senders may run at once (PostgreSQL: any number of `qrsvc worker`s; SQLite: one,
though two by accident still never send a message twice while its lease holds). A sender
claims a batch of due messages in one short transaction — on PostgreSQL with `SELECT …
FOR UPDATE SKIP LOCKED`, so concurrent senders take disjoint batches without waiting on
each other — marking them `sending` with `claimed_at` and one more attempt. It then
sends them one by one: each claim is renewed just before its send and the result recorded
just after it, both conditional on the claim still being this sender's (`attempts`
unchanged), each in its own transaction. A message left `sending` by a sender that died is
offered again once its claim is older than the lease (QRSVC_OUTBOX_LEASE_SECONDS), which
must be well above the time one SMTP conversation can take (QRSVC_SMTP_TIMEOUT is per
network operation; a conversation has about ten): init_app refuses a lease under
`LEASE_TIMEOUTS` × the timeout.

Exactly once to the mail server cannot be promised: a sender that dies after the server
accepted the message (250 after DATA) and before the result is committed leaves it
`sending`, and after the lease it is sent again (so does one whose result fails to save, the
database restarting or locked: a claim whose send was tried is never handed back). The bytes
are the same, and so is their `Message-ID` (made once, at enqueue, from the order id), so the
duplicate is identifiable.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from integrations.shop import emails
from integrations.shop.mail import AddressError, Recipient, UndeliverableError
from integrations.shop.models import Order, OutboxMessage
from qrsvc.extensions import db
from qrsvc.toolkit import after_commit, job_stop_requested, metrics_counter, metrics_gauge, now, unit_of_work

__all__ = [
    "DISABLED",
    "FAILED",
    "LEASE_TIMEOUTS",
    "QUEUED",
    "SENDING",
    "SENT",
    "STATUSES",
    "Claim",
    "DrainResult",
    "Outgoing",
    "claim",
    "claim_due",
    "cli",
    "deliver",
    "deliver_due",
    "due_messages",
    "enqueue",
    "init_app",
    "queue_depth",
    "release",
    "run_job",
    "send_claimed",
]

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, DISABLED = "queued", "sending", "sent", "failed", "disabled"
STATUSES = (QUEUED, SENDING, SENT, FAILED, DISABLED)
#: The lease must be at least this many SMTP timeouts (a conversation is about ten operations).
LEASE_TIMEOUTS = 10
#: Delivery results counted in `qrsvc_shop_outbox_deliveries_total`: sent, retry (queued again
#: after a failure), failed (given up), lost (the claim had passed to another sender before the
#: send or before its result was recorded), released (claimed, then handed back unsent at stop).
RESULTS = ("sent", "retry", "failed", "lost", "released")


def init_app(app: Flask) -> None:
    """Check the lease against the SMTP timeout; the delivery counter and the queue-depth gauge."""
    lease, timeout = app.config["OUTBOX_LEASE_SECONDS"], app.config["SMTP_TIMEOUT"]
    if lease < LEASE_TIMEOUTS * timeout:
        raise ValueError(
            f"QRSVC_OUTBOX_LEASE_SECONDS ({lease:g}) must be at least {LEASE_TIMEOUTS} × "
            f"QRSVC_SMTP_TIMEOUT ({timeout:g}): a message still being sent would be sent again"
        )
    if app.config["OUTBOX_BATCH_SIZE"] < 1:
        raise ValueError("QRSVC_OUTBOX_BATCH_SIZE must be at least 1")
    app.extensions["shop_outbox_deliveries"] = metrics_counter(
        "qrsvc_shop_outbox_deliveries",
        "Outbox delivery attempts by result (sent, retry, failed, lost, released).",
        ("result",),
        app=app,
    )
    metrics_gauge(
        app,
        "qrsvc_shop_outbox_messages",
        "Outbox messages by status, counted at scrape time.",
        ("status",),
        queue_depth,
    )


def _count(result: str) -> None:
    counter = current_app.extensions.get("shop_outbox_deliveries")
    if counter is not None:
        counter.labels(result).inc()


def queue_depth() -> dict[tuple[str, ...], float]:
    """Messages by status (every status, 0 when none): the `/metrics` gauge."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = db.session.execute(sa.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status))
    for status, count in rows:
        counts[status] = count
    return {(status,): float(count) for status, count in counts.items()}


def enqueue(order: Order, png: bytes, recipient: Recipient | AddressError) -> OutboxMessage:
    """Compose the confirmation and add it to the session: it commits (or rolls back) with the order.

    Nothing is sent here (the worker sends). `recipient` is `parse_recipient`'s answer for
    the customer's address; an AddressError (a store's webhook may carry anything) stores
    the email as `failed` with the reason, and the order stands.
    """
    queued_at = order.created_at
    configured = emails.transport() is not None
    mailbox, problem = (
        (None, f"the customer's email address is not usable: {recipient}")
        if isinstance(recipient, AddressError)
        else (recipient, None)
    )
    message = emails.compose_confirmation(order, png, mailbox)
    # CRLF, as sent on the wire; 7-bit unless the mailbox name needs UTF-8 headers (RFC 6532).
    policy = email.policy.SMTPUTF8 if mailbox is not None and mailbox.smtputf8 else email.policy.SMTP
    status = FAILED if problem else QUEUED if configured else DISABLED
    outbox = OutboxMessage(
        order_id=order.id,
        sender=current_app.config["EMAIL_FROM"],
        recipient=mailbox.address if mailbox else order.customer_email,
        content=message.as_bytes(policy=policy),
        status=status,
        attempts=0,
        last_error=problem,
        next_attempt_at=queued_at if status == QUEUED else None,
        created_at=queued_at,
    )
    order.email = outbox
    return outbox


def _backoff(attempts: int) -> timedelta:
    base = float(current_app.config["OUTBOX_BACKOFF_SECONDS"])
    return timedelta(seconds=min(base * 2 ** (attempts - 1), 24 * 3600))


def _lease() -> timedelta:
    return timedelta(seconds=float(current_app.config["OUTBOX_LEASE_SECONDS"]))


def _due(moment: datetime, ignore_backoff: bool) -> sa.ColumnElement[bool]:
    """Queued and due, or claimed by a sender whose lease ran out; with `ignore_backoff`, every queued one."""
    due = sa.or_(
        sa.and_(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= moment),
        sa.and_(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < moment - _lease()),
    )
    return sa.or_(due, OutboxMessage.status == QUEUED) if ignore_backoff else due


def due_messages(limit: int = 100, *, ignore_backoff: bool = False) -> list[int]:
    """The ids of the messages due now, oldest first."""
    query = sa.select(OutboxMessage.id).where(_due(now(), ignore_backoff))
    return list(db.session.scalars(query.order_by(OutboxMessage.id).limit(limit)))


@dataclass(frozen=True, slots=True, order=True)
class Claim:
    """A message this sender claimed: it is ours while its `attempts` is still this number."""

    id: int
    attempts: int


def _yours(found: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(
        OutboxMessage.id == found.id,
        OutboxMessage.status == SENDING,
        OutboxMessage.attempts == found.attempts,
    )


def _take(where: sa.ColumnElement[bool], moment: datetime) -> list[Claim]:
    taken = db.session.execute(
        sa.update(OutboxMessage)
        .where(where)
        .values(status=SENDING, claimed_at=moment, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id, OutboxMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    return sorted(Claim(message_id, attempts) for message_id, attempts in taken)


def claim_due(limit: int, *, ignore_backoff: bool = False, skip: Sequence[int] = ()) -> list[Claim]:
    """Claim up to `limit` due messages, oldest first; the caller commits before it sends.

    PostgreSQL: `FOR UPDATE SKIP LOCKED` passes over rows another sender is claiming at this
    moment, so concurrent senders take disjoint batches without waiting. SQLite has no row
    locks (the clause is left out): there the conditional UPDATE decides, and a message
    another sender took in between is simply not in the answer. `skip`: ids this run has
    already tried (with `ignore_backoff` a retry would otherwise be due again at once).
    """
    moment = now()
    due = _due(moment, ignore_backoff)
    if skip:
        due = sa.and_(due, OutboxMessage.id.not_in(skip))
    ids = list(
        db.session.scalars(
            sa.select(OutboxMessage.id)
            .where(due)
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    return _take(sa.and_(OutboxMessage.id.in_(ids), due), moment)


def claim(message_id: int, *, ignore_backoff: bool = False) -> OutboxMessage | None:
    """Take one due message for sending (None: not due, or another sender has it).

    One conditional UPDATE decides, so two senders (workers, a CLI run) never both
    take it; the caller commits the claim before it sends.
    """
    moment = now()
    taken = _take(sa.and_(OutboxMessage.id == message_id, _due(moment, ignore_backoff)), moment)
    if not taken:
        return None
    return db.session.get(OutboxMessage, message_id, populate_existing=True)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a send needs, read while the claim is taken: no transaction stays open during the send."""

    id: int
    order_id: str
    attempts: int
    sender: str
    recipient: str
    content: bytes

    @classmethod
    def of(cls, message: OutboxMessage) -> Outgoing:
        return cls(
            message.id, message.order_id, message.attempts, message.sender, message.recipient, message.content
        )


def _renew(found: Claim) -> Outgoing | None:
    """Start this claim's lease again just before its send; None if another sender has it now."""
    renewed = db.session.execute(
        sa.update(OutboxMessage)
        .where(_yours(found))
        .values(claimed_at=now())
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = db.session.get(OutboxMessage, found.id, populate_existing=True)
    return None if message is None else Outgoing.of(message)


def release(claims: Sequence[Claim]) -> int:
    """Hand claimed, unsent messages back (queued, the attempt not counted); how many were."""
    released = 0
    for found in claims:
        done = db.session.execute(
            sa.update(OutboxMessage)
            .where(_yours(found))
            .values(status=QUEUED, claimed_at=None, attempts=found.attempts - 1)
            .execution_options(synchronize_session=False)
        )
        released += done.rowcount  # type: ignore[attr-defined]
    return released


def _send(outgoing: Outgoing) -> tuple[dict[str, Any], str]:
    """Talk to the mail server (no database here); the values to record, and the result's name.

    A failure is queued again after a backoff, or `failed` when it cannot succeed
    (UndeliverableError) or has had its last attempt.
    """
    sender = emails.transport()
    if sender is None:
        raise RuntimeError("there is no mail transport: claim() only succeeds with one")
    values: dict[str, Any]
    try:
        sender.send(outgoing.sender, [outgoing.recipient], outgoing.content)
    except (UndeliverableError, smtplib.SMTPException, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if (
            isinstance(exc, UndeliverableError)
            or outgoing.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]
        ):
            values, result = {"status": FAILED, "last_error": error, "next_attempt_at": None}, "failed"
        else:
            retry = now() + _backoff(outgoing.attempts)
            values, result = {"status": QUEUED, "last_error": error, "next_attempt_at": retry}, "retry"
        log.warning(
            "email %s to order %s not sent (attempt %d): %s",
            outgoing.id,
            outgoing.order_id,
            outgoing.attempts,
            error,
            extra={"fields": {"email_id": outgoing.id, "outcome": result, "attempt": outgoing.attempts}},
        )
        return values, result
    return {"status": SENT, "sent_at": now(), "last_error": None, "next_attempt_at": None}, "sent"


def _record(outgoing: Outgoing, values: dict[str, Any], result: str) -> str:
    """Record a send's result if the claim is still ours; the message's status (`sending`: it was not)."""
    recorded = db.session.execute(
        sa.update(OutboxMessage)
        .where(_yours(Claim(outgoing.id, outgoing.attempts)))
        .values(claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        log.warning(
            "email %s: the lease ran out during the send and another sender took it; result %s not recorded",
            outgoing.id,
            result,
            extra={"fields": {"email_id": outgoing.id, "outcome": "lost"}},
        )
        _count("lost")
        return SENDING
    after_commit(lambda: _count(result))  # a result that is rolled back is not counted
    status: str = values["status"]
    return status


def send_claimed(message: OutboxMessage | Outgoing) -> str:
    """Send a claimed message and record how it went, in the caller's unit of work; its new status.

    Never raises for a failed send (see `_send`). The record is conditional on the claim
    still being ours: a sender whose lease ran out and was taken over records nothing
    (the answer is then `sending`, and the result is counted as `lost`). A recorded result is
    counted when the unit of work commits, not if it rolls back.
    """
    outgoing = message if isinstance(message, Outgoing) else Outgoing.of(message)
    status = _record(outgoing, *_send(outgoing))
    if isinstance(message, OutboxMessage) and message in db.session:
        db.session.expire(message)
    return status


def _send_and_record(outgoing: Outgoing) -> str:
    values, result = _send(outgoing)  # no transaction open while the mail server takes its time
    with unit_of_work():
        return _record(outgoing, values, result)


def deliver(message_id: int, *, ignore_backoff: bool = False) -> str | None:
    """Send one message if it is due and record it; its new status (None: not ours to send).

    Two units of work: the claim, committed before the send; the result, after it.
    """
    if emails.transport() is None:
        return None
    with unit_of_work():  # the claim is visible to every other sender before the slow send
        message = claim(message_id, ignore_backoff=ignore_backoff)
        outgoing = None if message is None else Outgoing.of(message)
    if outgoing is None:
        return None
    return _send_and_record(outgoing)


def _deliver_claimed(found: Claim) -> str | None:
    with unit_of_work():
        outgoing = _renew(found)
    if outgoing is None:
        _count("lost")
        return None
    return _send_and_record(outgoing)


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    retrying: int
    failed: int


def deliver_due(
    limit: int = 100, *, ignore_backoff: bool = False, stop: Callable[[], bool] = job_stop_requested
) -> DrainResult:
    """Send what is due (or, with `ignore_backoff`, every queued one), batch by batch, up to `limit`.

    Each batch is claimed in one transaction, then sent one by one. When `stop()` says so
    (the worker got SIGTERM), the send in progress finishes and the rest of the batch is
    handed back at once rather than left to its lease.
    """
    if emails.transport() is None:
        return DrainResult(0, 0, 0)
    batch = int(current_app.config["OUTBOX_BATCH_SIZE"])
    outcomes: list[str | None] = []
    tried: list[int] = []
    while len(outcomes) < limit and not stop():
        with unit_of_work():
            claims = claim_due(min(batch, limit - len(outcomes)), ignore_backoff=ignore_backoff, skip=tried)
        if not claims:
            break
        pending = list(claims)
        try:
            while pending and not stop():
                # Out of `pending` before the send: a claim whose send was tried is never handed
                # back (its result may fail to save after the server took it); its lease decides.
                found = pending.pop(0)
                tried.append(found.id)
                outcomes.append(_deliver_claimed(found))
        finally:
            if pending:
                _hand_back(pending)
    return DrainResult(outcomes.count(SENT), outcomes.count(QUEUED), outcomes.count(FAILED))


def _hand_back(pending: Sequence[Claim]) -> None:
    """Release what a stopped or failing run claimed but did not send (best effort: else the lease)."""
    try:
        with unit_of_work():
            released = release(pending)
    except Exception:
        log.exception(
            "could not release %d claimed emails; they are offered again after the lease", len(pending)
        )
        return
    for _ in range(released):
        _count("released")


def run_job() -> str | None:
    """The worker's `shop.outbox` job: send what is due; a line for the log when anything was tried."""
    result = deliver_due()
    if not (result.sent or result.retrying or result.failed):
        return None
    return f"sent {result.sent}, retrying later {result.retrying}, failed {result.failed}"


cli = AppGroup("outbox", help="The shop's email outbox.")


@cli.command("send")
@click.option("--limit", default=100, show_default=True, help="Most messages to try in this run.")
@click.option("--all", "everything", is_flag=True, help="Retry queued messages now, ignoring backoff.")
def send_command(limit: int, everything: bool) -> None:
    """Send every confirmation email that is due (cron this, e.g. every minute)."""
    if emails.transport() is None:
        raise click.ClickException("QRSVC_SMTP_URL is not set: there is nowhere to send email")
    result = deliver_due(limit, ignore_backoff=everything)
    click.echo(f"sent {result.sent}, retrying later {result.retrying}, failed {result.failed}")
