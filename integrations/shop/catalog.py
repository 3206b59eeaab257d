"""Products: the one "record saved → code made" path, for the API, webhooks and Python callers alike."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from integrations.shop.labels.documents import ShelfLabel
from integrations.shop.labels.limits import MAX_LABELS, check_label_count
from integrations.shop.models import Product
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.toolkit import ApiError, NotFoundError, Page, QrOptions, make_code, now, paginate, savepoint

#: Product codes are printed (shelf labels, catalogues): the highest error correction survives wear.
PRODUCT_ERROR_CORRECTION = "H"
PRODUCT_CODE_SIZE = 512
_CURRENCY = re.compile(r"[A-Z]{3}")
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


@dataclass(frozen=True, slots=True)
class ProductFields:
    """A product as a caller describes it; `price` is decimal text such as "12.50"."""

    sku: str
    name: str
    url: str
    price: str | None = None
    currency: str | None = None


def normalize_price(value: object, field: str = "price") -> str:
    """A non-negative amount as decimal text with at least two places ("12.5" → "12.50")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(400, "invalid_parameter", f"{field} must be a number or decimal string", field)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiError(400, "invalid_parameter", f"{field} must be a number such as 12.50", field) from None
    if not amount.is_finite() or amount < 0:
        raise ApiError(400, "invalid_parameter", f"{field} must be a non-negative number", field)
    if amount >= 10**15:
        raise ApiError(400, "out_of_range", f"{field} must be below 10^15", field)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    text = format(amount, "f")
    if len(text) > 24:
        raise ApiError(400, "out_of_range", f"{field} has too many decimal places", field)
    return text


def normalize_currency(value: object, field: str = "currency") -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip().upper()):
        raise ApiError(400, "invalid_parameter", f"{field} must be a three-letter ISO 4217 code", field)
    return value.strip().upper()


def format_price(product: Product) -> str | None:
    """The price as printed on a shelf label: "€12.50", or "12.50 CHF" without a known symbol."""
    if product.price is None:
        return None
    if product.currency in _SYMBOLS:
        return f"{_SYMBOLS[product.currency]}{product.price}"
    return f"{product.price} {product.currency}" if product.currency else product.price


def _check(fields: ProductFields) -> None:
    for name, limit in (("sku", 64), ("name", 200)):
        value: str = getattr(fields, name)
        if not value.strip() or len(value) > limit or not value.isprintable():
            raise ApiError(
                400, "invalid_parameter", f"{name} must be 1 to {limit} printable characters", name
            )
    if not re.match(r"https?://[^\s/]+", fields.url):
        raise ApiError(400, "invalid_parameter", "url must be an absolute http(s) URL", "url")


def _make_code(owner: ApiKey, url: str) -> QrCode:
    """Store the product's code in the caller's transaction (committed with the product)."""
    options = QrOptions(
        data=url, format="png", size=PRODUCT_CODE_SIZE, error_correction=PRODUCT_ERROR_CORRECTION
    )
    return make_code(owner, options).code


def create_product(owner: ApiKey, fields: ProductFields) -> Product:
    """Add a product and its code (EC level H) to the caller's transaction.

    A SKU the owner already has is a 409 `duplicate_sku` and nothing of this product is
    stored; a savepoint undoes only this product, never what the caller has pending
    (a webhook stores every variant and its delivery receipt, then its request commits once).
    """
    return _insert(owner, fields)


def _insert(owner: ApiKey, fields: ProductFields, platform_modified_at: datetime | None = None) -> Product:
    _check(fields)
    try:
        # The unique constraint decides; the savepoint takes back this product and its code only.
        with savepoint():
            moment = now()
            product = Product(
                owner_id=owner.id,
                sku=fields.sku,
                name=fields.name,
                url=fields.url,
                price=fields.price,
                currency=fields.currency,
                qr_code=_make_code(owner, fields.url).id,
                created_at=moment,
                updated_at=moment,
                platform_modified_at=platform_modified_at,
            )
            db.session.add(product)
            db.session.flush()
    except IntegrityError:
        raise ApiError(
            409, "duplicate_sku", f"a product with SKU {fields.sku!r} already exists", "sku"
        ) from None
    return product


def update_product(owner: ApiKey, sku: str, changes: dict[str, str | None]) -> Product:
    """Change name, url, price or currency; a new `url` gets a new code (the old one stays stored)."""
    product = get_product(owner, sku)
    _apply(owner, product, changes)
    return product


def _apply(owner: ApiKey, product: Product, changes: dict[str, str | None]) -> None:
    merged = ProductFields(
        sku=product.sku,
        name=str(changes.get("name", product.name)),
        url=str(changes.get("url", product.url)),
        price=changes.get("price", product.price),
        currency=changes.get("currency", product.currency),
    )
    _check(merged)
    if merged.url != product.url or product.qr_code is None:
        product.qr_code = _make_code(owner, merged.url).id
        db.session.expire(product, ["code"])  # loaded again from the new id when read
    product.name, product.url = merged.name, merged.url
    product.price, product.currency = merged.price, merged.currency
    product.updated_at = now()


def save_product_if_newer(owner: ApiKey, fields: ProductFields, modified_at: datetime) -> Product | None:
    """Create or update by SKU from a store platform, unless the stored product is as new or newer.

    `modified_at` is the platform's own last-modified time of the product in the delivery.
    Returns None when the delivery is ignored: its time is not after the one stored
    (equal times cannot be ordered, so the first delivery for a time stands). One
    conditional UPDATE of `platform_modified_at` decides, so two deliveries racing on
    PostgreSQL are ordered by the row lock and the older one loses whichever commits
    first. The caller's unit of work commits.
    """
    existing = find_product(owner, fields.sku)
    if existing is None:
        try:
            return _insert(owner, fields, modified_at)
        except ApiError as exc:
            if exc.code != "duplicate_sku":
                raise
            # Created concurrently since we looked: that one is ordered by time like any other.
            existing = get_product(owner, fields.sku)
    newer = db.session.execute(
        sa.update(Product)
        .where(
            Product.id == existing.id,
            sa.or_(Product.platform_modified_at.is_(None), Product.platform_modified_at < modified_at),
        )
        .values(platform_modified_at=modified_at)
        .returning(Product.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if newer is None:
        return None
    db.session.refresh(existing)  # the row as it is now that this delivery holds it
    changes = {"name": fields.name, "url": fields.url, "price": fields.price, "currency": fields.currency}
    _apply(owner, existing, changes)
    return existing


def find_product(owner: ApiKey, sku: str) -> Product | None:
    product: Product | None = db.session.scalar(
        sa.select(Product).where(Product.owner_id == owner.id, Product.sku == sku)
    )
    return product


def get_product(owner: ApiKey, sku: str) -> Product:
    product = find_product(owner, sku)
    if product is None:
        raise NotFoundError(f"no product with SKU {sku!r}", field="sku")
    return product


def products_by_sku(owner: ApiKey, skus: list[str]) -> dict[str, Product]:
    """The owner's products for `skus`; the first unknown SKU is a 404 that names it."""
    found = {
        product.sku: product
        for product in db.session.scalars(
            sa.select(Product).where(Product.owner_id == owner.id, Product.sku.in_(set(skus)))
        )
    }
    for sku in skus:
        if sku not in found:
            raise ApiError(404, "unknown_sku", f"no product with SKU {sku!r}", field="skus")
    return found


def labels_for_products(
    owner: ApiKey, skus: Sequence[tuple[str, int]], max_labels: int | None = None
) -> list[ShelfLabel]:
    """Shelf labels for (SKU, copies) pairs, in order, with prices formatted for print.

    Raises 413 `too_many_labels` before loading anything when the copies add up to more
    than one PDF holds (`max_labels`, default `limits.MAX_LABELS`), and 404 `unknown_sku`
    for the first SKU the owner does not have.
    """
    total = sum(copies for _sku, copies in skus)
    check_label_count(total, MAX_LABELS if max_labels is None else max_labels)
    products = products_by_sku(owner, [sku for sku, _copies in skus])
    return [
        ShelfLabel(
            name=products[sku].name,
            sku=sku,
            price=format_price(products[sku]),
            qr_data=products[sku].url,
        )
        for sku, copies in skus
        for _copy in range(copies)
    ]


def list_products(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[Product]:
    """The owner's products in SKU order; `cursor` continues after the previous page."""
    return paginate(
        sa.select(Product).where(Product.owner_id == owner.id), [Product.sku], limit, cursor, descending=False
    )


__all__ = [
    "ProductFields",
    "create_product",
    "find_product",
    "format_price",
    "get_product",
    "labels_for_products",
    "list_products",
    "normalize_currency",
    "normalize_price",
    "products_by_sku",
    "save_product_if_newer",
    "update_product",
]
