"""WooCommerce: its webhook headers and ping, and its order and product payloads mapped to the
shop's records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from integrations.shop import catalog, orders
from integrations.shop.webhooks import payloads
from integrations.shop.webhooks.protocol import DeliveryStatus, Outcome, Platform
from qrsvc.models import ApiKey

__all__ = ["PLATFORM", "is_ping", "map_order", "map_products"]

_ADDRESS = {
    "name": ("first_name", "last_name"),
    "company": ("company",),
    "address1": ("address_1",),
    "address2": ("address_2",),
    "city": ("city",),
    "region": ("state",),
    "postal_code": ("postcode",),
    "country": ("country",),
}


def is_ping(body: bytes) -> bool:
    """WooCommerce checks a new webhook URL with an unsigned form post `webhook_id=N`."""
    name, _, value = body.partition(b"=")
    return name == b"webhook_id" and value.isdigit()


def map_order(owner: ApiKey, payload: Mapping[str, Any]) -> Outcome:
    """order.created (and .updated): the customer is the billing contact."""
    number = payloads.optional(payload, "number") or payloads.optional(payload, "id")
    if number is None:
        raise payloads.missing("number")
    billing = payloads.object_at(payload, "billing")
    email = payloads.optional(billing, "email")
    if email is None:
        raise payloads.missing("billing.email")
    name = " ".join(
        part
        for part in (payloads.optional(billing, "first_name"), payloads.optional(billing, "last_name"))
        if part
    )
    fields = orders.OrderFields(
        order_number=number,
        customer_name=(name or email)[:200],
        customer_email=email,
        items=payloads.order_items(payload, ("variation_id", "product_id", "id"), "price"),
        currency=payloads.currency(payloads.optional(payload, "currency")),
        tracking_url=None,
        shipping_address=payloads.address(payloads.object_at(payload, "shipping"), _ADDRESS),
    )
    return payloads.place_order(owner, fields, "woocommerce")


def map_products(owner: ApiKey, payload: Mapping[str, Any]) -> Outcome:
    """product.created (and .updated): one product at its permalink."""
    fields = catalog.ProductFields(
        sku=payloads.text(payload, "sku")[:64],
        name=payloads.text(payload, "name")[:200],
        url=payloads.text(payload, "permalink"),
        price=payloads.price(payloads.optional(payload, "price"), "price"),
        currency=payloads.currency(current_app.config["SHOP_CURRENCY"]),
    )
    # date_modified is the site's local time without an offset; the _gmt twin is UTC.
    product = payloads.save_product(owner, fields, payloads.modified_at(payload, "date_modified_gmt"))
    if product is None:
        return Outcome(DeliveryStatus.IGNORED_STALE)
    return Outcome(DeliveryStatus.SAVED, (product.sku,))


PLATFORM = Platform(
    name="woocommerce",
    signing_setting="WOOCOMMERCE_WEBHOOK_SECRET",
    signature_header="X-WC-Webhook-Signature",
    delivery_header="X-WC-Webhook-Delivery-ID",
    topic_header="X-WC-Webhook-Topic",
    mappers={"orders": map_order, "products": map_products},
)
