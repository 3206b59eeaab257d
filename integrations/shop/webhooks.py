"""Shopify and WooCommerce webhooks: verify the signature, de-duplicate the delivery, map the payload.

Both platforms sign the raw body with HMAC-SHA256 and send it base64-encoded; the
signature is the credential (no API key). Records belong to the key configured in
QRSVC_SHOP_OWNER_KEY.

A signature proves who wrote a body, not when: a captured delivery stays valid
forever. So a delivery's receipt (its id and the SHA-256 of its body, both unique)
is recorded in the same transaction as the record it made — the same body under a
new delivery id is a duplicate — and a product delivery is applied only when the
platform's own last-modified time in it (Shopify `updated_at`, WooCommerce
`date_modified_gmt`) is after the one stored, so an old body cannot roll a product
back. An ignored delivery still answers 200 (the platform stops retrying) and
leaves a receipt saying `ignored_stale`. Orders are insert-only: a later delivery
of an existing order changes nothing (`exists`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import current_app

from integrations.shop import catalog, orders
from integrations.shop.models import Product, WebhookDelivery
from qrsvc import clock
from qrsvc.db import insert
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.models import ApiKey


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    secret_setting: str
    signature_header: str
    delivery_header: str
    topic_header: str


PLATFORMS = {
    "shopify": Platform(
        "shopify",
        "SHOPIFY_WEBHOOK_SECRET",
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Topic",
    ),
    "woocommerce": Platform(
        "woocommerce",
        "WOOCOMMERCE_WEBHOOK_SECRET",
        "X-WC-Webhook-Signature",
        "X-WC-Webhook-Delivery-ID",
        "X-WC-Webhook-Topic",
    ),
}
TOPICS = ("orders", "products")


class DeliveryStatus(StrEnum):
    """What a delivery did, as the response's `status` and the receipt's `outcome` say."""

    CREATED = "created"  # an order was made
    SAVED = "saved"  # products were created or updated
    EXISTS = "exists"  # the order was already there; nothing changed
    DUPLICATE_DELIVERY = "duplicate_delivery"  # this delivery id or this exact body was seen before
    IGNORED_STALE = "ignored_stale"  # not newer than what is stored; nothing changed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery did and the records it made or changed."""

    status: DeliveryStatus
    records: tuple[str, ...] = ()


def sign(secret: str, body: bytes) -> str:
    """The signature both platforms send: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(platform: Platform, body: bytes, headers: Mapping[str, str]) -> None:
    """401 unless the header carries the body's signature under the configured secret.

    `headers` has lower-case names.
    """
    secret = current_app.config[platform.secret_setting]
    given = headers.get(platform.signature_header.lower(), "")
    if not secret:
        raise ApiError(
            401, "webhook_not_configured", f"QRSVC_{platform.secret_setting} is not set on this server"
        )
    if not given:
        raise ApiError(401, "missing_signature", f"the {platform.signature_header} header is required")
    if not hmac.compare_digest(sign(secret, body).encode(), given.strip().encode()):
        raise ApiError(401, "invalid_signature", f"{platform.signature_header} does not match the body")


def shop_owner() -> ApiKey:
    prefix = current_app.config["SHOP_OWNER_KEY"]
    key: ApiKey | None = None
    if prefix:
        key = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)))
    if key is None:
        raise ApiError(
            503,
            "shop_owner_not_configured",
            "QRSVC_SHOP_OWNER_KEY must name the prefix of a live API key to own webhook records",
        )
    return key


def is_woocommerce_ping(body: bytes) -> bool:
    """WooCommerce checks a new webhook URL with an unsigned form post `webhook_id=N`."""
    name, _, value = body.partition(b"=")
    return name == b"webhook_id" and value.isdigit()


def receive(platform: Platform, topic: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
    """Verify, de-duplicate and store one delivery (the view has already checked `topic`).

    Order of checks: signature (401), delivery id (400), JSON (400), owner (503), replay of
    the delivery id or of the body (200 `duplicate_delivery`), payload mapping (422), age
    (200 `ignored_stale`). Everything a delivery stores commits in one transaction with its
    receipt, or nothing does: a product with a bad third variant leaves no first variant
    behind, and the corrected retry under the same delivery id is not taken for a replay.
    """
    headers = {name.lower(): value for name, value in headers.items()}  # HTTP names are case-blind
    verify(platform, body, headers)
    delivery_id = headers.get(platform.delivery_header.lower(), "").strip()
    if not delivery_id or len(delivery_id) > 128:
        raise ApiError(
            400,
            "missing_header",
            f"the {platform.delivery_header} header is required",
            platform.delivery_header,
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", "The JSON body must be an object.")
    owner = shop_owner()
    recorded = db.session.execute(
        insert(WebhookDelivery)
        .values(
            platform=platform.name,
            delivery_id=delivery_id,
            topic=headers.get(platform.topic_header.lower(), topic)[:64],
            received_at=clock.now(),
            body_sha256=hashlib.sha256(body).hexdigest(),
        )
        # Either unique constraint: the same delivery id, or the same signed body under a new one.
        .on_conflict_do_nothing()
        .returning(WebhookDelivery.id)
    ).scalar_one_or_none()
    if recorded is None:  # the delivery is already recorded: a replay
        db.session.rollback()
        return Outcome(DeliveryStatus.DUPLICATE_DELIVERY)
    try:
        outcome = MAPPERS[platform.name, topic](owner, payload, headers)
    except Exception:
        db.session.rollback()  # all or nothing, the receipt too: a fixed payload may be sent again
        raise
    db.session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id == recorded)
        .values(outcome=outcome.status.value, record=outcome.records[0][:64] if outcome.records else None)
    )
    db.session.commit()  # the records and the receipt together (an order has committed them already)
    return outcome


# -- field access -----------------------------------------------------------------------------------


def _missing(field: str) -> ApiError:
    return ApiError(422, "missing_field", f"the payload has no usable {field}", field)


def _text(payload: Mapping[str, Any], key: str, field: str | None = None) -> str:
    value = payload.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _missing(field or key)
    return value.strip()


def _optional(payload: Mapping[str, Any] | None, key: str) -> str | None:
    if not isinstance(payload, Mapping):
        return None
    value = payload.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def _modified_at(payload: Mapping[str, Any], key: str) -> datetime:
    """The platform's last-modified time of the record; without an offset it is UTC (`…_gmt`)."""
    value = payload.get(key)
    if value is None or value == "":
        raise _missing(key)
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApiError(422, "invalid_field", f"{key} is not an ISO 8601 time", key)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _price(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return catalog.normalize_price(value, field)
    except ApiError:
        raise ApiError(422, "invalid_field", f"{field} is not a price", field) from None


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return catalog.normalize_currency(value)
    except ApiError:
        return None


def _address(payload: Mapping[str, Any], mapping: Mapping[str, tuple[str, ...]]) -> dict[str, str] | None:
    address: dict[str, str] = {}
    for ours, theirs in mapping.items():
        parts = [_optional(payload, key) for key in theirs]
        value = " ".join(part for part in parts if part)
        if value:
            address[ours] = value
    return address or None


def _items(
    payload: Mapping[str, Any], fallback_id: tuple[str, ...], price_key: str
) -> tuple[orders.ItemFields, ...]:
    raw = payload.get("line_items")
    if not isinstance(raw, list) or not raw:
        raise _missing("line_items")
    items = []
    for index, line in enumerate(raw):
        if not isinstance(line, Mapping):
            raise _missing(f"line_items[{index}]")
        sku = _optional(line, "sku")
        for key in fallback_id:  # no SKU: the platform's variant or product id (0 means none)
            candidate = _optional(line, key)
            sku = sku or (candidate if candidate != "0" else None)
        if sku is None:
            raise _missing(f"line_items[{index}].sku")
        quantity = line.get("quantity")
        if (
            not isinstance(quantity, int)
            or isinstance(quantity, bool)
            or not 1 <= quantity <= orders.MAX_QUANTITY
        ):
            raise _missing(f"line_items[{index}].quantity")
        name = _optional(line, "name") or _optional(line, "title")
        items.append(
            orders.ItemFields(
                sku=sku[:64],
                quantity=quantity,
                unit_price=_price(_optional(line, price_key), f"line_items[{index}].{price_key}"),
                name=name[:200] if name else None,
            )
        )
    return tuple(items)


def _place(owner: ApiKey, fields: orders.OrderFields, source: str) -> Outcome:
    try:
        order = orders.place_order(owner, fields, source=source)
    except ApiError as exc:
        if exc.code == "duplicate_order":
            # orders/updated, or the same order sent to two topics: the first one stands.
            return Outcome(DeliveryStatus.EXISTS)
        if exc.status == 400:
            raise ApiError(422, "invalid_field", exc.message, exc.field) from None
        raise
    return Outcome(DeliveryStatus.CREATED, (order.id,))


# -- Shopify ----------------------------------------------------------------------------------------

_SHOPIFY_ADDRESS = {
    "name": ("name",),
    "company": ("company",),
    "address1": ("address1",),
    "address2": ("address2",),
    "city": ("city",),
    "region": ("province",),
    "postal_code": ("zip",),
    "country": ("country",),
}


def _shopify_order(owner: ApiKey, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Outcome:
    number = _optional(payload, "name") or _optional(payload, "order_number") or _optional(payload, "id")
    if number is None:
        raise _missing("name")
    customer = _object(payload, "customer")
    email = _optional(payload, "email") or _optional(payload, "contact_email") or _optional(customer, "email")
    if email is None:
        raise _missing("email")
    full_name = " ".join(
        p for p in (_optional(customer, "first_name"), _optional(customer, "last_name")) if p
    )
    shipping = _object(payload, "shipping_address")
    name = full_name or _optional(_object(payload, "billing_address"), "name") or _optional(shipping, "name")
    fields = orders.OrderFields(
        order_number=number,
        customer_name=(name or email)[:200],
        customer_email=email,
        items=_items(payload, ("variant_id", "product_id", "id"), "price"),
        currency=_currency(_optional(payload, "currency")),
        tracking_url=_optional(payload, "order_status_url"),
        shipping_address=_address(shipping, _SHOPIFY_ADDRESS),
    )
    return _place(owner, fields, "shopify")


def _shopify_products(owner: ApiKey, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Outcome:
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
    title = _text(payload, "title")
    handle = _text(payload, "handle")
    modified_at = _modified_at(payload, "updated_at")
    variants = payload.get("variants")
    if not isinstance(variants, list) or not variants:
        raise _missing("variants")
    records: list[str] = []
    ignored = 0
    single = len(variants) == 1
    for variant in variants:
        if not isinstance(variant, Mapping) or not _optional(variant, "sku"):
            continue
        url = f"{store.rstrip('/')}/products/{handle}"
        variant_title = _optional(variant, "title")
        name = title
        if not single:
            url += f"?variant={_optional(variant, 'id')}"
            if variant_title and variant_title != "Default Title":
                name = f"{title} – {variant_title}"
        fields = catalog.ProductFields(
            sku=_text(variant, "sku")[:64],
            name=name[:200],
            url=url,
            price=_price(_optional(variant, "price"), "variants[].price"),
            currency=_currency(current_app.config["SHOP_CURRENCY"]),
        )
        product = _save_product(owner, fields, modified_at)
        if product is None:
            ignored += 1
        else:
            records.append(product.sku)
    if not records and not ignored:
        raise _missing("variants[].sku")
    return Outcome(DeliveryStatus.SAVED if records else DeliveryStatus.IGNORED_STALE, tuple(records))


# -- WooCommerce ------------------------------------------------------------------------------------

_WOO_ADDRESS = {
    "name": ("first_name", "last_name"),
    "company": ("company",),
    "address1": ("address_1",),
    "address2": ("address_2",),
    "city": ("city",),
    "region": ("state",),
    "postal_code": ("postcode",),
    "country": ("country",),
}


def _woocommerce_order(owner: ApiKey, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Outcome:
    number = _optional(payload, "number") or _optional(payload, "id")
    if number is None:
        raise _missing("number")
    billing = _object(payload, "billing")
    email = _optional(billing, "email")
    if email is None:
        raise _missing("billing.email")
    name = " ".join(p for p in (_optional(billing, "first_name"), _optional(billing, "last_name")) if p)
    fields = orders.OrderFields(
        order_number=number,
        customer_name=(name or email)[:200],
        customer_email=email,
        items=_items(payload, ("variation_id", "product_id", "id"), "price"),
        currency=_currency(_optional(payload, "currency")),
        tracking_url=None,
        shipping_address=_address(_object(payload, "shipping"), _WOO_ADDRESS),
    )
    return _place(owner, fields, "woocommerce")


def _woocommerce_products(owner: ApiKey, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Outcome:
    fields = catalog.ProductFields(
        sku=_text(payload, "sku")[:64],
        name=_text(payload, "name")[:200],
        url=_text(payload, "permalink"),
        price=_price(_optional(payload, "price"), "price"),
        currency=_currency(current_app.config["SHOP_CURRENCY"]),
    )
    # date_modified is the site's local time without an offset; the _gmt twin is UTC.
    product = _save_product(owner, fields, _modified_at(payload, "date_modified_gmt"))
    if product is None:
        return Outcome(DeliveryStatus.IGNORED_STALE)
    return Outcome(DeliveryStatus.SAVED, (product.sku,))


def _save_product(owner: ApiKey, fields: catalog.ProductFields, modified_at: datetime) -> Product | None:
    """Save unless stale (None); `receive` commits."""
    try:
        return catalog.save_product_if_newer(owner, fields, modified_at)
    except ApiError as exc:
        if exc.status == 400:
            raise ApiError(422, "invalid_field", exc.message, exc.field) from None
        raise


Mapper = Callable[[ApiKey, Mapping[str, Any], Mapping[str, str]], Outcome]
MAPPERS: dict[tuple[str, str], Mapper] = {
    ("shopify", "orders"): _shopify_order,
    ("shopify", "products"): _shopify_products,
    ("woocommerce", "orders"): _woocommerce_order,
    ("woocommerce", "products"): _woocommerce_products,
}

__all__ = [
    "PLATFORMS",
    "TOPICS",
    "DeliveryStatus",
    "Outcome",
    "is_woocommerce_ping",
    "receive",
    "shop_owner",
    "sign",
    "verify",
]
