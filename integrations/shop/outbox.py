"""The email outbox: confirmations wait here until the worker sends them, retried with backoff.

A message is queued in the order's transaction (`enqueue`); delivery is the worker's
job (`shop.outbox` in `qrsvc worker`, or `qrsvc outbox send` from cron) and may fail
without touching the order. The services here flush; `deliver` and `deliver_due` are the job's units
of work and commit once per message step: the claim before the send (so that no
other sender takes it while the slow SMTP conversation runs), the result after it.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from integrations.shop import emails
from integrations.shop.mail import AddressError, Recipient, UndeliverableError
from integrations.shop.models import Order, OutboxMessage
from qrsvc.extensions import db
from qrsvc.toolkit import now, unit_of_work

__all__ = [
    "DISABLED",
    "FAILED",
    "QUEUED",
    "SENDING",
    "SENT",
    "DrainResult",
    "claim",
    "cli",
    "deliver",
    "deliver_due",
    "due_messages",
    "enqueue",
    "run_job",
    "send_claimed",
]

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, DISABLED = "queued", "sending", "sent", "failed", "disabled"
#: A message claimed by a sender that died is offered again after this long.
CLAIM_LEASE = timedelta(minutes=10)


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


def _due(moment: datetime, ignore_backoff: bool) -> sa.ColumnElement[bool]:
    """Queued and due, or claimed by a sender that died; with `ignore_backoff`, every queued one."""
    due = sa.or_(
        sa.and_(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= moment),
        sa.and_(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < moment - CLAIM_LEASE),
    )
    return sa.or_(due, OutboxMessage.status == QUEUED) if ignore_backoff else due


def due_messages(limit: int = 100, *, ignore_backoff: bool = False) -> list[int]:
    """The ids of the messages due now, oldest first."""
    query = sa.select(OutboxMessage.id).where(_due(now(), ignore_backoff))
    return list(db.session.scalars(query.order_by(OutboxMessage.id).limit(limit)))


def claim(message_id: int, *, ignore_backoff: bool = False) -> OutboxMessage | None:
    """Take a due message for sending (None: not due, or another sender has it).

    One conditional UPDATE decides, so two senders (workers, a CLI run) never both
    take it; the caller commits the claim before it sends.
    """
    moment = now()
    claimed = db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id, _due(moment, ignore_backoff))
        .values(status=SENDING, claimed_at=moment, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return db.session.get(OutboxMessage, message_id, populate_existing=True)


def send_claimed(message: OutboxMessage) -> str:
    """Send a claimed message and record how it went; returns its new status. Never raises.

    A failure is queued again after a backoff, or `failed` when it cannot succeed
    (UndeliverableError) or has had its last attempt.
    """
    sender = emails.transport()
    if sender is None:
        raise RuntimeError("there is no mail transport: claim() only succeeds with one")
    values: dict[str, Any]
    try:
        sender.send(message.sender, [message.recipient], message.content)
    except (UndeliverableError, smtplib.SMTPException, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if (
            isinstance(exc, UndeliverableError)
            or message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]
        ):
            values = {"status": FAILED, "last_error": error, "next_attempt_at": None}
        else:
            retry = now() + _backoff(message.attempts)
            values = {"status": QUEUED, "last_error": error, "next_attempt_at": retry}
        log.warning(
            "email %s to order %s not sent (attempt %d): %s",
            message.id,
            message.order_id,
            message.attempts,
            error,
        )
    else:
        values = {"status": SENT, "sent_at": now(), "last_error": None, "next_attempt_at": None}
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == SENDING)
        .values(claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(message)
    status: str = values["status"]
    return status


def deliver(message_id: int, *, ignore_backoff: bool = False) -> str | None:
    """Send one message if it is due and record it; its new status (None: not ours to send).

    A unit of work of its own, committed twice: the claim before the send, the result after.
    """
    if emails.transport() is None:
        return None
    with unit_of_work():  # the claim is visible to every other sender before the slow send
        message = claim(message_id, ignore_backoff=ignore_backoff)
    if message is None:
        return None
    with unit_of_work():
        return send_claimed(message)


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    retrying: int
    failed: int


def deliver_due(limit: int = 100, *, ignore_backoff: bool = False) -> DrainResult:
    """Send every message that is due (or, with `ignore_backoff`, every queued one), one by one."""
    if emails.transport() is None:
        return DrainResult(0, 0, 0)
    with unit_of_work():  # end the read before the first claim: each message is its own unit of work
        ids = due_messages(limit, ignore_backoff=ignore_backoff)
    outcomes = [deliver(message_id, ignore_backoff=ignore_backoff) for message_id in ids]
    return DrainResult(outcomes.count(SENT), outcomes.count(QUEUED), outcomes.count(FAILED))


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
