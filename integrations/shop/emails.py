"""Order confirmation emails: rendering, the outbox, and delivery over SMTP behind a small interface.

The message is rendered once, when the order is placed, and stored in the outbox in
the order's transaction; the request never talks to a mail server. Delivery is the
worker's job (`qrsvc worker`, or `qrsvc outbox send` from cron), retried with
exponential backoff, and may fail without touching the order.

Customer addresses may be internationalised (RFC 6530): the domain travels in its
IDNA ASCII form (`xn--…`), and a non-ASCII mailbox name needs a server that offers
SMTPUTF8 (RFC 6531) — one that does not makes the email `failed`, never the order.
"""

from __future__ import annotations

import base64
import email.policy
import functools
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app, render_template

from integrations.shop.models import Order, OutboxMessage
from qrsvc import clock
from qrsvc.extensions import db

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, DISABLED = "queued", "sending", "sent", "failed", "disabled"
#: A message claimed by a sender that died is offered again after this long.
CLAIM_LEASE = timedelta(minutes=10)
IMAGE_MODES = ("cid", "data-uri")
_YES, _NO = ("1", "true", "yes"), ("0", "false", "no")


class AddressError(ValueError):
    """A customer email address that no mail server could be given (the reason is the message)."""


class UndeliverableError(Exception):
    """A delivery that no retry can make succeed: the message is marked `failed` at once."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """A mailbox as the wire needs it: `address` has the domain in IDNA ASCII form.

    `smtputf8` says the mailbox name itself is not ASCII (`ü@example.com`): such a
    message is only deliverable through a server that offers SMTPUTF8.
    """

    local_part: str
    domain: str
    smtputf8: bool

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


def parse_recipient(address: str) -> Recipient:
    """Check an address as mail servers will (RFC 5321/6531 syntax and lengths, IDNA 2008 domain).

    Refuses what could smuggle headers or recipients (CR/LF, commas, display names,
    quoted local parts) and special-use domains (`localhost`, `.test`…); raises AddressError.
    """
    try:
        valid = validate_email(address, check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)[:300]) from None
    return Recipient(valid.local_part, valid.ascii_domain, valid.smtputf8)


class Transport(Protocol):
    """Where messages go; SMTP in production. `send` raises on failure (UndeliverableError: for good)."""

    def send(self, sender: str, recipients: Sequence[str], content: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    """`smtp://user:pass@host:port[?starttls=0|1]` or `smtps://…` (TLS from the first byte).

    With credentials in an `smtp://` URL, STARTTLS is on unless the URL says `starttls=0`
    (the password then crosses the network in clear: only for a relay on loopback). A
    server that does not offer STARTTLS fails the attempt; there is no fallback to plain.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "none"  # none | starttls | ssl
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 10.0) -> SmtpTransport:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("QRSVC_SMTP_URL must look like smtp://user:pass@host:port or smtps://…")
        asked = parse_qs(parts.query).get("starttls", [None])[0]
        if asked is None:
            starttls = parts.username is not None  # never send a password in clear unless told to
        elif asked.lower() in _YES or asked.lower() in _NO:
            starttls = asked.lower() in _YES
        else:
            raise ValueError("QRSVC_SMTP_URL: starttls must be 1 or 0")
        security = "ssl" if parts.scheme == "smtps" else "starttls" if starttls else "none"
        return cls(
            host=parts.hostname,
            port=parts.port or {"ssl": 465, "starttls": 587, "none": 25}[security],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            security=security,
            timeout=timeout,
        )

    def describe(self) -> str:
        """For logs: never the password."""
        return f"smtp {self.host}:{self.port} ({self.security}{', auth' if self.username else ''})"

    def send(self, sender: str, recipients: Sequence[str], content: bytes) -> None:
        """Every call has `timeout` per network operation: a silent server cannot hold it for long.

        A non-ASCII address (the sender's or a recipient's mailbox name) is sent with the
        SMTPUTF8 and BODY=8BITMIME parameters; a server without SMTPUTF8 is UndeliverableError.
        """
        envelope = (parseaddr(sender)[1], *recipients)  # From: may carry a display name
        needs_utf8 = [address for address in envelope if not address.isascii()]
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=_tls_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                # Raises SMTPNotSupportedError when the server does not offer it: no plain login.
                client.starttls(context=_tls_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.ehlo_or_helo_if_needed()
            if needs_utf8 and not client.has_extn("smtputf8"):
                raise UndeliverableError(
                    f"the mail server does not offer SMTPUTF8, which the address {needs_utf8[0]} needs "
                    "(a mailbox name that is not ASCII); the message was not sent"
                )
            options = ["SMTPUTF8", "BODY=8BITMIME"] if needs_utf8 else []
            client.sendmail(sender, list(recipients), content, mail_options=options)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Verifying TLS context, made once: loading the CA store costs tens of milliseconds."""
    return ssl.create_default_context()


def init_app(app: Flask) -> None:
    """Build the transport from configuration (no connection is opened here)."""
    url = app.config["SMTP_URL"]
    transport = SmtpTransport.from_url(url, app.config["SMTP_TIMEOUT"]) if url else None
    app.extensions["shop_mail_transport"] = transport
    if app.config["EMAIL_IMAGES"] not in IMAGE_MODES:
        raise ValueError(f"QRSVC_EMAIL_IMAGES must be one of {', '.join(IMAGE_MODES)}")


def transport() -> Transport | None:
    configured: Transport | None = current_app.extensions.get("shop_mail_transport")
    return configured


# -- rendering ---------------------------------------------------------------------------------------


def _context(order: Order, qr_src: str) -> dict[str, Any]:
    return {
        "order": order,
        "shop_name": current_app.config["SHOP_NAME"],
        "qr_src": qr_src,
        "qr_alt": f"QR code for order {order.order_number}",
        "qr_size": current_app.config["SHOP_ORDER_CODE_SIZE"],
        "item_count": sum(item.quantity for item in order.items),
    }


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def render_preview(order: Order, png: bytes) -> str:
    """The confirmation as a browser shows it: the code inline as a `data:` URI."""
    return render_template("shop/confirmation.html", **_context(order, data_uri(png)))


def compose_confirmation(order: Order, png: bytes, recipient: Recipient | None) -> EmailMessage:
    """multipart/alternative: text/plain, then HTML — in multipart/related with the PNG as `cid:`.

    Gmail and Outlook for Windows drop `data:` images, so the code travels as a MIME part
    unless QRSVC_EMAIL_IMAGES=data-uri asks for the inline form. Without a usable
    `recipient` the message has no To: (it is kept for the record, never sent).
    """
    config = current_app.config
    message = EmailMessage()
    message["Subject"] = f"Order {order.order_number} confirmed"
    message["From"] = config["EMAIL_FROM"]
    if recipient is not None:
        # username/domain rather than addr_spec: the latter refuses a non-ASCII mailbox name.
        message["To"] = Address(order.customer_name, recipient.local_part, recipient.domain)
    message["Date"] = format_datetime(order.created_at)
    domain = config["EMAIL_FROM"].rpartition("@")[2].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(idstring=order.id, domain=domain)
    # Quoted-printable keeps every part 7-bit: no reliance on the server's 8BITMIME.
    message.set_content(
        render_template("shop/confirmation.txt", **_context(order, "")), cte="quoted-printable"
    )
    if config["EMAIL_IMAGES"] == "data-uri":
        message.add_alternative(render_preview(order, png), subtype="html")
        return message
    cid = make_msgid(idstring="qr", domain=domain)
    html = render_template("shop/confirmation.html", **_context(order, "cid:" + cid[1:-1]))
    message.add_alternative(html, subtype="html")
    (html_part,) = (part for part in message.iter_parts() if part.get_content_type() == "text/html")
    html_part.add_related(
        png, "image", "png", cid=cid, filename=f"order-{order.id}.png", disposition="inline"
    )
    return message


# -- outbox ------------------------------------------------------------------------------------------


def enqueue(order: Order, png: bytes, recipient: Recipient | AddressError) -> OutboxMessage:
    """Compose the confirmation and add it to the session: it commits (or rolls back) with the order.

    Nothing is sent here (the worker sends). `recipient` is `parse_recipient`'s answer for
    the customer's address; an AddressError (a store's webhook may carry anything) stores
    the email as `failed` with the reason, and the order stands.
    """
    now = order.created_at
    configured = transport() is not None
    mailbox, problem = (
        (None, f"the customer's email address is not usable: {recipient}")
        if isinstance(recipient, AddressError)
        else (recipient, None)
    )
    message = compose_confirmation(order, png, mailbox)
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
        next_attempt_at=now if status == QUEUED else None,
        created_at=now,
    )
    order.email = outbox
    return outbox


def _backoff(attempts: int) -> timedelta:
    base = float(current_app.config["OUTBOX_BACKOFF_SECONDS"])
    return timedelta(seconds=min(base * 2 ** (attempts - 1), 24 * 3600))


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= now),
        sa.and_(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < now - CLAIM_LEASE),
    )


def deliver(message_id: int, *, ignore_backoff: bool = False) -> str | None:
    """Try to send one outbox message if it is due; returns its new status (None: not ours to send).

    The row is claimed with a conditional UPDATE first, so two senders (workers, a CLI run)
    never send the same message twice. A failure is recorded, never raised.
    """
    sender = transport()
    if sender is None:
        return None
    now = clock.now()
    due = _claimable(now)
    if ignore_backoff:
        due = sa.or_(due, OutboxMessage.status == QUEUED)
    claimed = db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id, due)
        .values(status=SENDING, claimed_at=now, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = db.session.get(OutboxMessage, message_id, populate_existing=True)
    assert message is not None  # noqa: S101 (claimed above)
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
            retry = clock.now() + _backoff(message.attempts)
            values = {"status": QUEUED, "last_error": error, "next_attempt_at": retry}
        log.warning(
            "email %s to order %s not sent (attempt %d): %s",
            message.id,
            message.order_id,
            message.attempts,
            error,
        )
    else:
        values = {"status": SENT, "sent_at": clock.now(), "last_error": None, "next_attempt_at": None}
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == SENDING)
        .values(claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.expire(message)
    status: str = values["status"]
    return status


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    retrying: int
    failed: int


def deliver_due(limit: int = 100, *, ignore_backoff: bool = False) -> DrainResult:
    """Send every message that is due (or, with `ignore_backoff`, every queued one)."""
    if transport() is None:
        return DrainResult(0, 0, 0)
    now = clock.now()
    due = _claimable(now)
    if ignore_backoff:
        due = sa.or_(due, OutboxMessage.status == QUEUED)
    ids = list(
        db.session.scalars(sa.select(OutboxMessage.id).where(due).order_by(OutboxMessage.id).limit(limit))
    )
    db.session.commit()
    outcomes = [deliver(message_id, ignore_backoff=ignore_backoff) for message_id in ids]
    return DrainResult(outcomes.count(SENT), outcomes.count(QUEUED), outcomes.count(FAILED))


__all__ = [
    "AddressError",
    "DrainResult",
    "Recipient",
    "SmtpTransport",
    "Transport",
    "UndeliverableError",
    "compose_confirmation",
    "data_uri",
    "deliver",
    "deliver_due",
    "enqueue",
    "parse_recipient",
    "render_preview",
]
