"""What a /v1/shop request may carry, as frozen dataclasses parsed by the toolkit's fields.

Each field says how it is read; a field without a default is required; unknown fields
are 400s naming their full path (`items[2].sku`). The views turn these into the
services' own values (`orders.OrderFields`, `catalog.ProductFields`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from flask import current_app

from integrations.shop import catalog, orders, printing
from qrsvc.toolkit import (
    UNSET,
    Unset,
    integer,
    invalid,
    list_of,
    nested,
    nullable,
    number,
    parse_object,
    text,
)

__all__ = [
    "AddressIn",
    "CustomerIn",
    "ItemIn",
    "OrderIn",
    "PackingLabelQuery",
    "PageQuery",
    "ProductChangesIn",
    "ProductIn",
    "ShelfLabelsIn",
    "ShelfLabelsQuery",
    "SkuCopiesIn",
]

_text = text()
#: Parsing bound for `copies`; the real bound is the label limits, checked as a 413 on the total.
_MAX_COPIES = 1_000_000
_MAX_ORDER_LINES = 1000


def _price(path: str, value: object, from_query: bool) -> str:
    return catalog.normalize_price(value, path)


def _currency(path: str, value: object, from_query: bool) -> str:
    return catalog.normalize_currency(value, path)


def _not_null_text(path: str, value: object, from_query: bool) -> str:
    """A text that a PATCH may leave out but not clear."""
    if value is None:
        raise invalid(path, f"{path} cannot be null")
    return _text(path, value, from_query)


def _page_size_max() -> int:
    size: int = current_app.config["PAGE_SIZE_MAX"]
    return size


@dataclass(frozen=True, slots=True, kw_only=True)
class PageQuery:
    """`?limit=&cursor=` of a list, newest or first page when no cursor is given."""

    limit: Annotated[int, integer(1, _page_size_max)] = 20
    cursor: Annotated[str | None, _text] = None


# -- products ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductIn:
    sku: Annotated[str, _text]
    name: Annotated[str, _text]
    url: Annotated[str, _text]
    price: Annotated[str | None, nullable(_price)] = None
    currency: Annotated[str | None, nullable(_currency)] = None

    def to_fields(self) -> catalog.ProductFields:
        return catalog.ProductFields(self.sku, self.name, self.url, self.price, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductChangesIn:
    """A PATCH: only the fields given change; `null` clears price or currency."""

    name: Annotated[str | Unset, _not_null_text] = UNSET
    url: Annotated[str | Unset, _not_null_text] = UNSET
    price: Annotated[str | None | Unset, nullable(_price)] = UNSET
    currency: Annotated[str | None | Unset, nullable(_currency)] = UNSET


# -- orders ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerIn:
    name: Annotated[str, _text]
    email: Annotated[str, _text]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemIn:
    sku: Annotated[str, _text]
    quantity: Annotated[int, integer(1, orders.MAX_QUANTITY)]
    unit_price: Annotated[str | None, nullable(_price)] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressIn:
    """`orders.ADDRESS_FIELDS`; lines that are only spaces are left out."""

    name: Annotated[str | None, _text] = None
    company: Annotated[str | None, _text] = None
    address1: Annotated[str | None, _text] = None
    address2: Annotated[str | None, _text] = None
    city: Annotated[str | None, _text] = None
    region: Annotated[str | None, _text] = None
    postal_code: Annotated[str | None, _text] = None
    country: Annotated[str | None, _text] = None

    def lines(self) -> dict[str, str]:
        given = {name: getattr(self, name) for name in orders.ADDRESS_FIELDS}
        return {name: value for name, value in given.items() if value is not None and value.strip()}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIn:
    order_number: Annotated[str, _text]
    customer: CustomerIn
    items: Annotated[tuple[ItemIn, ...], list_of(nested(ItemIn), min_length=1, max_length=_MAX_ORDER_LINES)]
    currency: Annotated[str | None, nullable(_currency)] = None
    tracking_url: Annotated[str | None, nullable(_text)] = None
    shipping_address: Annotated[AddressIn | None, nullable(nested(AddressIn))] = None

    def to_fields(self) -> orders.OrderFields:
        return orders.OrderFields(
            order_number=self.order_number,
            customer_name=self.customer.name,
            customer_email=self.customer.email,
            items=tuple(orders.ItemFields(item.sku, item.quantity, item.unit_price) for item in self.items),
            currency=self.currency,
            tracking_url=self.tracking_url,
            shipping_address=None if self.shipping_address is None else self.shipping_address.lines(),
        )


# -- labels ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SkuCopiesIn:
    sku: Annotated[str, _text]
    copies: Annotated[int, integer(1, _MAX_COPIES)] = 1


def _sku_copies(path: str, value: object, from_query: bool) -> SkuCopiesIn:
    """A `skus` entry: `"SKU"`, or `{"sku": "SKU", "copies": 3}`."""
    if isinstance(value, str):
        return SkuCopiesIn(sku=_text(path, value, from_query))
    return parse_object(SkuCopiesIn, value, path)


@dataclass(frozen=True, slots=True, kw_only=True)
class _SheetOptions:
    """How shelf labels are printed; the layout and the ranges are checked by `labels.limits`."""

    layout: Annotated[str, _text] = "avery-5160"
    start_at: Annotated[int, integer(1, 1000)] = 1
    offset_x_mm: Annotated[float, number()] = 0.0
    offset_y_mm: Annotated[float, number()] = 0.0
    dpi: Annotated[int | None, integer(100, 1200)] = None

    def sheet_options(self) -> printing.SheetOptions:
        return printing.SheetOptions(self.layout, self.start_at, self.offset_x_mm, self.offset_y_mm, self.dpi)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShelfLabelsIn(_SheetOptions):
    """`POST /labels`: the copies of each SKU go inside its `skus` entry."""

    skus: Annotated[tuple[SkuCopiesIn, ...], list_of(_sku_copies, min_length=1)]

    def sku_copies(self) -> list[tuple[str, int]]:
        return [(entry.sku, entry.copies) for entry in self.skus]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShelfLabelsQuery(_SheetOptions):
    """`GET /labels.pdf?sku=A&sku=B&copies=2`: repeat a SKU, or give `copies` of each."""

    sku: Annotated[tuple[str, ...], list_of(_text, min_length=1)]
    copies: Annotated[int, integer(1, _MAX_COPIES)] = 1

    def sku_copies(self) -> list[tuple[str, int]]:
        return [(sku, self.copies) for sku in self.sku]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackingLabelQuery:
    dpi: Annotated[int, integer(100, 1200)] = 203
