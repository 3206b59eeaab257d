"""Orders: save the order, its code (EC level M) and its confirmation email in one transaction."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, replace

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from integrations.shop import mail, outbox
from integrations.shop.labels.documents import PackingLabel
from integrations.shop.models import Order, OrderItem, Product
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import (
    ApiError,
    NotFoundError,
    Page,
    QrOptions,
    check_options,
    image_of,
    make_code,
    make_image,
    now,
    paginate,
    savepoint,
)

#: Order codes are shown on screens and in emails: EC level M keeps them small.
ORDER_ERROR_CORRECTION = "M"
MAX_QUANTITY = 100_000
ADDRESS_FIELDS = ("name", "company", "address1", "address2", "city", "region", "postal_code", "country")


@dataclass(frozen=True, slots=True)
class ItemFields:
    sku: str
    quantity: int
    unit_price: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class OrderFields:
    """An order as a caller describes it (API body or a mapped webhook payload)."""

    order_number: str
    customer_name: str
    customer_email: str
    items: tuple[ItemFields, ...]
    currency: str | None = None
    tracking_url: str | None = None
    shipping_address: dict[str, str] | None = None


def new_order_id() -> str:
    """`ord_` and 128 random bits."""
    return "ord_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def qr_text(order: Order | OrderFields) -> str:
    """What the order's code encodes: the tracking URL, or the order number when there is none."""
    return order.tracking_url or order.order_number


def address_lines(address: dict[str, str] | None) -> tuple[str, ...]:
    """An address as printed on a label: name, company, street lines, "postal_code city", region, country."""
    if not address:
        return ()
    get = address.get
    town = " ".join(part for part in (get("postal_code"), get("city")) if part)
    lines = (
        get("name"),
        get("company"),
        get("address1"),
        get("address2"),
        town,
        get("region"),
        get("country"),
    )
    return tuple(line for line in lines if line)


def _printable(text: str, limit: int) -> str:
    return "".join(char if char.isprintable() else "\ufffd" for char in text)[:limit]


def _made_printable(fields: OrderFields) -> OrderFields:
    """A store's paid order keeps its free text, made printable: refusing it would lose the order.

    The name falls back to the (printable) address when the platform sent none.
    """
    name = _printable(fields.customer_name, 200).strip() or _printable(fields.customer_email, 200).strip()
    address = {key: _printable(value, 200) for key, value in (fields.shipping_address or {}).items()}
    return replace(
        fields, customer_name=name or "customer", shipping_address=address or fields.shipping_address
    )


def _check(fields: OrderFields, source: str) -> tuple[OrderFields, mail.Recipient | mail.AddressError]:
    """Refuse what cannot be stored; returns the fields to store and the customer's mailbox.

    The customer's email address is checked as mail servers will check it. Through the API
    a bad one is a 400 (the caller can fix it); an order from a store's webhook has been paid
    for, so it is stored with its address made printable, and its email is `failed`.
    """
    if source != "api":
        fields = _made_printable(fields)
    for name, value, limit in (
        ("order_number", fields.order_number, 64),
        ("customer.name", fields.customer_name, 200),
    ):
        if not value.strip() or len(value) > limit or not value.isprintable():
            raise ApiError(
                400, "invalid_parameter", f"{name} must be 1 to {limit} printable characters", name
            )
    recipient: mail.Recipient | mail.AddressError
    try:
        recipient = mail.parse_recipient(fields.customer_email)
    except mail.AddressError as exc:
        if source == "api":
            raise ApiError(
                400, "invalid_parameter", f"customer.email is not an email address: {exc}", "customer.email"
            ) from None
        fields = replace(fields, customer_email=_printable(fields.customer_email, 320))
        recipient = exc
    if not fields.items:
        raise ApiError(400, "invalid_parameter", "an order needs at least one item", "items")
    for index, item in enumerate(fields.items):
        if not item.sku.strip() or len(item.sku) > 64 or not item.sku.isprintable():
            raise ApiError(
                400, "invalid_parameter", "sku must be 1 to 64 printable characters", f"items[{index}].sku"
            )
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise ApiError(
                400,
                "out_of_range",
                f"quantity must be between 1 and {MAX_QUANTITY}",
                f"items[{index}].quantity",
            )
    for name, value in (fields.shipping_address or {}).items():
        if len(value) > 200 or not value.isprintable():
            raise ApiError(
                400,
                "invalid_parameter",
                "address lines are at most 200 printable characters",
                f"shipping_address.{name}",
            )
    if fields.tracking_url is not None and not re.match(r"https?://[^\s/]+", fields.tracking_url):
        raise ApiError(
            400, "invalid_parameter", "tracking_url must be an absolute http(s) URL", "tracking_url"
        )
    return fields, recipient


def order_code_options(text: str) -> QrOptions:
    options = QrOptions(
        data=text,
        format="png",
        size=current_app.config["SHOP_ORDER_CODE_SIZE"],
        error_correction=ORDER_ERROR_CORRECTION,
    )
    check_options(options)
    return options


def place_order(owner: ApiKey, fields: OrderFields, source: str = "api") -> Order:
    """Store the order with its items, its code and its queued confirmation email.

    One transaction holds the code, the order and the outbox row (and anything the caller
    left pending, such as a webhook receipt). A duplicate `order_number` is a 409
    `duplicate_order` decided by the unique constraint; a savepoint takes back this order
    and its code, and what the caller has pending stays.
    No mail server is contacted here: the worker delivers the email later, so a slow or
    failing server can neither slow down nor lose an order. `source` is `api` or the store
    platform whose webhook sent the order (see `_check` for what that changes).
    """
    fields, recipient = _check(fields, source)
    names = _catalog_names(owner, [item.sku for item in fields.items])
    try:
        # The unique constraint decides; the savepoint takes back this order and its code only,
        # never what the caller has pending (a webhook's receipt).
        with savepoint():
            made = make_code(owner, order_code_options(qr_text(fields)))
            order = Order(
                id=new_order_id(),
                owner_id=owner.id,
                order_number=fields.order_number,
                customer_name=fields.customer_name,
                customer_email=fields.customer_email,
                currency=fields.currency,
                tracking_url=fields.tracking_url,
                shipping_address=fields.shipping_address,
                source=source,
                qr_code=made.code.id,
                created_at=now(),
                items=[
                    OrderItem(
                        position=position,
                        sku=item.sku,
                        name=item.name or names.get(item.sku),
                        quantity=item.quantity,
                        unit_price=item.unit_price,
                    )
                    for position, item in enumerate(fields.items)
                ],
            )
            db.session.add(order)
            db.session.flush()
    except IntegrityError:
        raise ApiError(
            409,
            "duplicate_order",
            f"order {fields.order_number!r} already exists; nothing was changed",
            "order_number",
        ) from None
    outbox.enqueue(order, made.image.content, recipient)
    db.session.flush()
    return order


def _catalog_names(owner: ApiKey, skus: list[str]) -> dict[str, str]:
    rows = db.session.execute(
        sa.select(Product.sku, Product.name).where(Product.owner_id == owner.id, Product.sku.in_(set(skus)))
    )
    return {sku: name for sku, name in rows}


def get_order(owner: ApiKey, order_id: str) -> Order:
    order = db.session.get(Order, order_id)
    if order is None or order.owner_id != owner.id:
        raise NotFoundError(f"no order {order_id!r}")
    return order


def order_png(order: Order) -> bytes:
    """The order's code as PNG, drawn from its stored record (or its text, if the code was deleted)."""
    if order.code is not None:
        return image_of(order.code, "png").content
    return make_image(order_code_options(qr_text(order))).content


def packing_label_for(order: Order) -> PackingLabel:
    """The order as its packing label prints it: the customer's name when there is no address."""
    return PackingLabel(
        order_number=order.order_number,
        ship_to=address_lines(order.shipping_address) or (order.customer_name,),
        item_count=sum(item.quantity for item in order.items),
        qr_data=qr_text(order),
    )


def list_orders(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[Order]:
    """The owner's orders, newest first; `cursor` continues after the previous page."""
    query = sa.select(Order).where(Order.owner_id == owner.id)
    return paginate(query, [Order.created_at, Order.id], limit, cursor)


__all__ = [
    "ADDRESS_FIELDS",
    "MAX_QUANTITY",
    "ItemFields",
    "OrderFields",
    "address_lines",
    "get_order",
    "list_orders",
    "order_png",
    "packing_label_for",
    "place_order",
    "qr_text",
]
