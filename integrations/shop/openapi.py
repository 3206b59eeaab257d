"""The shop's endpoints as the OpenAPI description shows them (`qrsvc.toolkit.register_operations`)."""

from __future__ import annotations

from typing import Any

from qrsvc.toolkit import HTML, PDF, Operation, json_content, ref

from .schemas import (
    OrderIn,
    PackingLabelQuery,
    PageQuery,
    ProductChangesIn,
    ProductIn,
    ShelfLabelsIn,
    ShelfLabelsQuery,
)

_OBJECT: dict[str, Any] = {"type": "object", "properties": {"success": {"const": True}}}
_PRODUCT = json_content({**_OBJECT, "properties": {"success": {"const": True}, "sku": {"type": "string"}}})
_ORDER = json_content({**_OBJECT, "properties": {"success": {"const": True}, "id": {"type": "string"}}})
_PAGE = json_content(ref("Page"))

OPERATIONS: dict[str, Operation] = {
    "shop.create_product": Operation(
        summary="Add a product (its code is drawn and stored)",
        tag="shop",
        body=ProductIn,
        status=(201,),
        content=_PRODUCT,
        errors=(409, 422),
    ),
    "shop.list_products": Operation(summary="Products", tag="shop", query=PageQuery, content=_PAGE),
    "shop.get_product": Operation(summary="A product", tag="shop", content=_PRODUCT),
    "shop.update_product": Operation(
        summary="Change a product", tag="shop", body=ProductChangesIn, content=_PRODUCT, errors=(409, 422)
    ),
    "shop.create_order": Operation(
        summary="Place an order (its code, email and label follow)",
        tag="shop",
        body=OrderIn,
        status=(201,),
        content=_ORDER,
        errors=(409, 422),
    ),
    "shop.list_orders": Operation(summary="Orders", tag="shop", query=PageQuery, content=_PAGE),
    "shop.get_order": Operation(summary="An order", tag="shop", content=_ORDER),
    "shop.confirmation_preview": Operation(
        summary="An order's confirmation email, for a browser", tag="shop", content=HTML
    ),
    "shop.confirmation_message": Operation(
        summary="An order's confirmation email as sent",
        tag="shop",
        content={"message/rfc822": {"type": "string"}},
    ),
    "shop.shelf_labels_post": Operation(
        summary="Shelf labels for products, as a PDF",
        tag="shop",
        body=ShelfLabelsIn,
        content=PDF,
        errors=(404, 422),
    ),
    "shop.shelf_labels_get": Operation(
        summary="Shelf labels for products, as a PDF (query string)",
        tag="shop",
        query=ShelfLabelsQuery,
        content=PDF,
        errors=(404, 422),
    ),
    "shop.packing_label": Operation(
        summary="An order's packing label, as a PDF", tag="shop", query=PackingLabelQuery, content=PDF
    ),
    "shop.webhook": Operation(
        summary="Receive a platform's webhook (Shopify, WooCommerce)",
        tag="shop",
        description="No API key: the platform's signature header is the credential.",
        body_schema={"type": "object"},
        content=json_content(_OBJECT),
        errors=(401, 404, 409, 422),
    ),
}

__all__ = ["OPERATIONS"]
