"""Reading a store platform's JSON payload into the shop's fields, and storing what it describes.

A payload is what a platform sent, not what a client typed: a field it lacks or
cannot be used is a 422 naming the field (`line_items[1].quantity`), and the shop's
own 400s for what the platform sent become 422s too (the platform cannot fix a request).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from integrations.shop import catalog, orders
from integrations.shop.models import Product
from integrations.shop.webhooks.protocol import DeliveryStatus, Outcome
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError

__all__ = [
    "address",
    "currency",
    "missing",
    "modified_at",
    "object_at",
    "optional",
    "order_items",
    "place_order",
    "price",
    "save_product",
    "text",
]


def missing(field: str) -> ApiError:
    return ApiError(422, "missing_field", f"the payload has no usable {field}", field)


def text(payload: Mapping[str, Any], key: str, field: str | None = None) -> str:
    """A required text (a number is taken as its text); 422 `missing_field` without one."""
    value = payload.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise missing(field or key)
    return value.strip()


def optional(payload: Mapping[str, Any] | None, key: str) -> str | None:
    """A text if there is a usable one (a number is taken as its text), else None."""
    if not isinstance(payload, Mapping):
        return None
    value = payload.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def object_at(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object, or an empty one when it is absent or not an object."""
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def modified_at(payload: Mapping[str, Any], key: str) -> datetime:
    """The platform's last-modified time of the record; without an offset it is UTC (`…_gmt`)."""
    value = payload.get(key)
    if value is None or value == "":
        raise missing(key)
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApiError(422, "invalid_field", f"{key} is not an ISO 8601 time", key)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def price(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return catalog.normalize_price(value, field)
    except ApiError:
        raise ApiError(422, "invalid_field", f"{field} is not a price", field) from None


def currency(value: str | None) -> str | None:
    """A currency the shop knows how to store; anything else is dropped rather than refused."""
    if value is None:
        return None
    try:
        return catalog.normalize_currency(value)
    except ApiError:
        return None


def address(payload: Mapping[str, Any], mapping: Mapping[str, tuple[str, ...]]) -> dict[str, str] | None:
    """The shop's address fields from the platform's (`mapping`: ours → theirs, joined by spaces)."""
    found: dict[str, str] = {}
    for ours, theirs in mapping.items():
        parts = [optional(payload, key) for key in theirs]
        value = " ".join(part for part in parts if part)
        if value:
            found[ours] = value
    return found or None


def order_items(
    payload: Mapping[str, Any], fallback_id: tuple[str, ...], price_key: str
) -> tuple[orders.ItemFields, ...]:
    """`line_items` as order items; a line without a SKU is known by the first of `fallback_id`."""
    raw = payload.get("line_items")
    if not isinstance(raw, list) or not raw:
        raise missing("line_items")
    items = []
    for index, line in enumerate(raw):
        if not isinstance(line, Mapping):
            raise missing(f"line_items[{index}]")
        sku = optional(line, "sku")
        for key in fallback_id:  # no SKU: the platform's variant or product id (0 means none)
            candidate = optional(line, key)
            sku = sku or (candidate if candidate != "0" else None)
        if sku is None:
            raise missing(f"line_items[{index}].sku")
        quantity = line.get("quantity")
        if (
            not isinstance(quantity, int)
            or isinstance(quantity, bool)
            or not 1 <= quantity <= orders.MAX_QUANTITY
        ):
            raise missing(f"line_items[{index}].quantity")
        name = optional(line, "name") or optional(line, "title")
        items.append(
            orders.ItemFields(
                sku=sku[:64],
                quantity=quantity,
                unit_price=price(optional(line, price_key), f"line_items[{index}].{price_key}"),
                name=name[:200] if name else None,
            )
        )
    return tuple(items)


def place_order(owner: ApiKey, fields: orders.OrderFields, source: str) -> Outcome:
    """Place the order once: a later delivery of the same order (orders/updated, or another
    topic) is `exists` and changes nothing — the first one stands."""
    try:
        order = orders.place_order(owner, fields, source=source)
    except ApiError as exc:
        if exc.code == "duplicate_order":
            return Outcome(DeliveryStatus.EXISTS)
        if exc.status == 400:
            raise ApiError(422, "invalid_field", exc.message, exc.field) from None
        raise
    return Outcome(DeliveryStatus.CREATED, (order.id,))


def save_product(owner: ApiKey, fields: catalog.ProductFields, when: datetime) -> Product | None:
    """Save unless the stored product is as new or newer (None); the delivery's request commits."""
    try:
        return catalog.save_product_if_newer(owner, fields, when)
    except ApiError as exc:
        if exc.status == 400:
            raise ApiError(422, "invalid_field", exc.message, exc.field) from None
        raise
