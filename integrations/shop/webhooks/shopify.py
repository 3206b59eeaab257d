"""Shopify: its webhook headers, and its order and product payloads mapped to the shop's records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from integrations.shop import catalog, orders
from integrations.shop.webhooks import payloads
from integrations.shop.webhooks.protocol import DeliveryStatus, Outcome, Platform
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError

__all__ = ["PLATFORM", "map_order", "map_products"]

_ADDRESS = {
    "name": ("name",),
    "company": ("company",),
    "address1": ("address1",),
    "address2": ("address2",),
    "city": ("city",),
    "region": ("province",),
    "postal_code": ("zip",),
    "country": ("country",),
}


def map_order(owner: ApiKey, payload: Mapping[str, Any]) -> Outcome:
    """orders/create (and /updated, /paid…): the order number is Shopify's `name` ("#1001")."""
    number = (
        payloads.optional(payload, "name")
        or payloads.optional(payload, "order_number")
        or payloads.optional(payload, "id")
    )
    if number is None:
        raise payloads.missing("name")
    customer = payloads.object_at(payload, "customer")
    email = (
        payloads.optional(payload, "email")
        or payloads.optional(payload, "contact_email")
        or payloads.optional(customer, "email")
    )
    if email is None:
        raise payloads.missing("email")
    full_name = " ".join(
        part
        for part in (payloads.optional(customer, "first_name"), payloads.optional(customer, "last_name"))
        if part
    )
    shipping = payloads.object_at(payload, "shipping_address")
    name = (
        full_name
        or payloads.optional(payloads.object_at(payload, "billing_address"), "name")
        or payloads.optional(shipping, "name")
    )
    fields = orders.OrderFields(
        order_number=number,
        customer_name=(name or email)[:200],
        customer_email=email,
        items=payloads.order_items(payload, ("variant_id", "product_id", "id"), "price"),
        currency=payloads.currency(payloads.optional(payload, "currency")),
        tracking_url=payloads.optional(payload, "order_status_url"),
        shipping_address=payloads.address(shipping, _ADDRESS),
    )
    return payloads.place_order(owner, fields, "shopify")


def map_products(owner: ApiKey, payload: Mapping[str, Any]) -> Outcome:
    """Each variant with a SKU becomes a product at the configured storefront.

    Never at X-Shopify-Shop-Domain: the signature does not cover headers, so a captured
    body replayed with another domain would make printed shelf codes point there.
    """
    store = current_app.config["SHOPIFY_STORE_URL"]
    if not store:
        raise ApiError(
            503,
            "store_url_not_configured",
            "QRSVC_SHOPIFY_STORE_URL must be set: Shopify product URLs are built from it",
        )
    title = payloads.text(payload, "title")
    handle = payloads.text(payload, "handle")
    modified_at = payloads.modified_at(payload, "updated_at")
    variants = payload.get("variants")
    if not isinstance(variants, list) or not variants:
        raise payloads.missing("variants")
    records: list[str] = []
    ignored = 0
    single = len(variants) == 1
    for variant in variants:
        if not isinstance(variant, Mapping) or not payloads.optional(variant, "sku"):
            continue
        url = f"{store.rstrip('/')}/products/{handle}"
        variant_title = payloads.optional(variant, "title")
        name = title
        if not single:
            url += f"?variant={payloads.optional(variant, 'id')}"
            if variant_title and variant_title != "Default Title":
                name = f"{title} – {variant_title}"
        fields = catalog.ProductFields(
            sku=payloads.text(variant, "sku")[:64],
            name=name[:200],
            url=url,
            price=payloads.price(payloads.optional(variant, "price"), "variants[].price"),
            currency=payloads.currency(current_app.config["SHOP_CURRENCY"]),
        )
        product = payloads.save_product(owner, fields, modified_at)
        if product is None:
            ignored += 1
        else:
            records.append(product.sku)
    if not records and not ignored:
        raise payloads.missing("variants[].sku")
    return Outcome(DeliveryStatus.SAVED if records else DeliveryStatus.IGNORED_STALE, tuple(records))


PLATFORM = Platform(
    name="shopify",
    signing_setting="SHOPIFY_WEBHOOK_SECRET",
    signature_header="X-Shopify-Hmac-Sha256",
    delivery_header="X-Shopify-Webhook-Id",
    topic_header="X-Shopify-Topic",
    mappers={"orders": map_order, "products": map_products},
)
