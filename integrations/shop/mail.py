"""Sending email: customer addresses checked as mail servers check them, and SMTP behind a small interface.

Customer addresses may be internationalised (RFC 6530): the domain travels in its
IDNA ASCII form (`xn--…`), and a non-ASCII mailbox name needs a server that offers
SMTPUTF8 (RFC 6531) — one that does not makes the email `failed`, never the order.
No Flask and no database here.
"""

from __future__ import annotations

import functools
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

__all__ = [
    "AddressError",
    "Recipient",
    "SmtpTransport",
    "Transport",
    "UndeliverableError",
    "parse_recipient",
]

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
