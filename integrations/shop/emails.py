"""Order confirmation emails: rendering, the outbox, and delivery over SMTP behind a small interface.

The message is rendered once, when the order is placed, and stored in the outbox in
the order's transaction; delivery happens after the commit and may fail without
touching the order. `qrsvc outbox send` retries what is due, with exponential backoff.
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
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
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


class Transport(Protocol):
    """Where messages go; SMTP in production. `send` raises on failure."""

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
            client.sendmail(sender, list(recipients), content)


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


def compose_confirmation(order: Order, png: bytes) -> EmailMessage:
    """multipart/alternative: text/plain, then HTML — in multipart/related with the PNG as `cid:`.

    Gmail and Outlook for Windows drop `data:` images, so the code travels as a MIME part
    unless QRSVC_EMAIL_IMAGES=data-uri asks for the inline form.
    """
    config = current_app.config
    message = EmailMessage()
    message["Subject"] = f"Order {order.order_number} confirmed"
    message["From"] = config["EMAIL_FROM"]
    message["To"] = formataddr((order.customer_name, order.customer_email))
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


def enqueue(order: Order, message: EmailMessage) -> OutboxMessage:
    """Add the message to the session: it commits (or rolls back) with the order."""
    now = clock.now()
    configured = transport() is not None
    outbox = OutboxMessage(
        order_id=order.id,
        sender=current_app.config["EMAIL_FROM"],
        recipient=order.customer_email,
        content=message.as_bytes(policy=email.policy.SMTP),  # CRLF, as sent on the wire
        status=QUEUED if configured else DISABLED,
        attempts=0,
        next_attempt_at=now if configured else None,
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
    except (smtplib.SMTPException, OSError, ValueError) as exc:  # ValueError: unencodable address
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
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
    "DrainResult",
    "SmtpTransport",
    "Transport",
    "compose_confirmation",
    "data_uri",
    "deliver",
    "deliver_due",
    "enqueue",
    "render_preview",
]
