"""Order confirmation emails: the message as the customer gets it, and its browser preview.

The message is rendered once, when the order is placed, and kept in the outbox
(`outbox`) in the order's transaction; the request never talks to a mail server.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from flask import Flask, current_app, render_template

from integrations.shop.mail import Recipient, SmtpTransport, Transport
from integrations.shop.models import Order
from qrsvc.toolkit import data_uri

__all__ = ["IMAGE_MODES", "compose_confirmation", "init_app", "render_preview", "transport"]

IMAGE_MODES = ("cid", "data-uri")


def init_app(app: Flask) -> None:
    """Build the transport from configuration (no connection is opened here)."""
    url = app.config["SMTP_URL"]
    transport = SmtpTransport.from_url(url, app.config["SMTP_TIMEOUT"]) if url else None
    app.extensions["shop_mail_transport"] = transport
    if app.config["EMAIL_IMAGES"] not in IMAGE_MODES:
        raise ValueError(f"QRSVC_EMAIL_IMAGES must be one of {', '.join(IMAGE_MODES)}")


def transport() -> Transport | None:
    """Where the outbox sends; None when QRSVC_SMTP_URL is not set (emails are kept, `disabled`)."""
    configured: Transport | None = current_app.extensions.get("shop_mail_transport")
    return configured


def _context(order: Order, qr_src: str) -> dict[str, Any]:
    return {
        "order": order,
        "shop_name": current_app.config["SHOP_NAME"],
        "qr_src": qr_src,
        "qr_alt": f"QR code for order {order.order_number}",
        "qr_size": current_app.config["SHOP_ORDER_CODE_SIZE"],
        "item_count": sum(item.quantity for item in order.items),
    }


def render_preview(order: Order, png: bytes) -> str:
    """The confirmation as a browser shows it: the code inline as a `data:` URI."""
    return render_template("shop/confirmation.html", **_context(order, data_uri(png, "image/png")))


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
