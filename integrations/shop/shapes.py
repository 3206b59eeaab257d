"""The shop's records as the /v1/shop API shows them (JSON fields as the shop's issue fixes them)."""

from __future__ import annotations

from typing import Any

from integrations.shop.models import Order, OutboxMessage, Product
from qrsvc.models import QrCode
from qrsvc.toolkit import image_url, isoformat, public_url

__all__ = ["order_json", "product_json"]


def _code_json(code: QrCode | None) -> dict[str, Any] | None:
    """The stored code a record carries (None once the code is deleted)."""
    if code is None:
        return None
    return {"id": code.id, "data": code.data, "image_url": image_url(code)}


def product_json(product: Product) -> dict[str, Any]:
    """A product with its code."""
    return {
        "sku": product.sku,
        "name": product.name,
        "url": product.url,
        "price": product.price,
        "currency": product.currency,
        "qr_code": _code_json(product.code),
        "created_at": isoformat(product.created_at),
        "updated_at": isoformat(product.updated_at),
    }


def _email_json(message: OutboxMessage | None) -> dict[str, Any] | None:
    """Where the confirmation email is: queued, sent, failed (and why), or disabled."""
    if message is None:
        return None
    return {
        "status": message.status,
        "to": message.recipient,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "next_attempt_at": isoformat(message.next_attempt_at) if message.next_attempt_at else None,
        "sent_at": isoformat(message.sent_at) if message.sent_at else None,
    }


def order_json(order: Order) -> dict[str, Any]:
    """An order with its items, its code, its email's state and the links to its documents."""
    base = f"/v1/shop/orders/{order.id}"
    return {
        "id": order.id,
        "order_number": order.order_number,
        "customer": {"name": order.customer_name, "email": order.customer_email},
        "items": [
            {"sku": i.sku, "name": i.name, "quantity": i.quantity, "unit_price": i.unit_price}
            for i in order.items
        ],
        "item_count": sum(item.quantity for item in order.items),
        "currency": order.currency,
        "tracking_url": order.tracking_url,
        "shipping_address": order.shipping_address,
        "source": order.source,
        "created_at": isoformat(order.created_at),
        "qr_code": _code_json(order.code),
        "email": _email_json(order.email),
        "links": {
            "confirmation_html": public_url(f"{base}/confirmation.html"),
            "confirmation_eml": public_url(f"{base}/confirmation.eml"),
            "label_pdf": public_url(f"{base}/label.pdf"),
        },
    }
