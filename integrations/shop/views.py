"""The /v1/shop API: thin views that parse, authorize, call a shop service and shape the response."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from integrations.shop import catalog, emails, orders, printing
from integrations.shop.schemas import (
    OrderIn,
    PackingLabelQuery,
    PageQuery,
    ProductChangesIn,
    ProductIn,
    ShelfLabelsIn,
    ShelfLabelsQuery,
)
from integrations.shop.shapes import order_json, product_json
from integrations.shop.webhooks import PLATFORMS, protocol, woocommerce
from qrsvc.toolkit import (
    NotFoundError,
    current_key,
    given_fields,
    parse_body,
    parse_query,
    require_key,
    transactional,
)

bp = Blueprint("shop", __name__, url_prefix="/v1/shop")


# -- products ----------------------------------------------------------------------------------------


@bp.post("/products")
@require_key("shop:write")
@transactional
def create_product() -> tuple[Response, int]:
    product = catalog.create_product(current_key(), parse_body(ProductIn).to_fields())
    return jsonify({"success": True, **product_json(product)}), 201


@bp.get("/products")
@require_key("shop:read")
def list_products() -> Response:
    query = parse_query(PageQuery)
    page = catalog.list_products(current_key(), query.limit, query.cursor)
    return jsonify(
        {"success": True, "items": [product_json(p) for p in page.items], "next_cursor": page.next_cursor}
    )


@bp.get("/products/<sku>")
@require_key("shop:read")
def get_product(sku: str) -> Response:
    return jsonify({"success": True, **product_json(catalog.get_product(current_key(), sku))})


@bp.patch("/products/<sku>")
@require_key("shop:write")
@transactional
def update_product(sku: str) -> Response:
    changes = given_fields(parse_body(ProductChangesIn))
    product = catalog.update_product(current_key(), sku, changes)
    return jsonify({"success": True, **product_json(product)})


# -- orders ------------------------------------------------------------------------------------------


@bp.post("/orders")
@require_key("shop:write")
@transactional
def create_order() -> tuple[Response, int]:
    order = orders.place_order(current_key(), parse_body(OrderIn).to_fields())
    return jsonify({"success": True, **order_json(order)}), 201


@bp.get("/orders")
@require_key("shop:read")
def list_orders() -> Response:
    query = parse_query(PageQuery)
    page = orders.list_orders(current_key(), query.limit, query.cursor)
    return jsonify(
        {"success": True, "items": [order_json(o) for o in page.items], "next_cursor": page.next_cursor}
    )


@bp.get("/orders/<order_id>")
@require_key("shop:read")
def get_order(order_id: str) -> Response:
    return jsonify({"success": True, **order_json(orders.get_order(current_key(), order_id))})


@bp.get("/orders/<order_id>/confirmation.html")
@require_key("shop:read")
def confirmation_preview(order_id: str) -> Response:
    """Browser preview (code as a data: URI). Needs the key: Bearer, or ?api_key= for a browser tab."""
    order = orders.get_order(current_key(), order_id)
    response = Response(emails.render_preview(order, orders.order_png(order)), mimetype="text/html")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/orders/<order_id>/confirmation.eml")
@require_key("shop:read")
def confirmation_message(order_id: str) -> Response:
    """The message exactly as queued for (or sent to) the customer."""
    order = orders.get_order(current_key(), order_id)
    if order.email is None:
        raise NotFoundError(f"order {order_id!r} has no confirmation email")
    response = Response(order.email.content, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = f'attachment; filename="order-{order.id}.eml"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- labels (printing: integrations.shop.printing) ---------------------------------------------------


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def _filename_part(text: str, fallback: str) -> str:
    """`text` kept to [A-Za-z0-9._-] (`#1001` → `1001`): a quote cannot end Content-Disposition early."""
    return _UNSAFE_IN_FILENAME.sub("", text).strip(".") or fallback


def _pdf(content: bytes, filename: str) -> Response:
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/labels")
@require_key("shop:read")
def shelf_labels_post() -> Response:
    body = parse_body(ShelfLabelsIn)
    pdf = printing.shelf_labels_pdf(current_key(), body.sku_copies(), body.sheet_options())
    return _pdf(pdf, f"labels-{body.layout}.pdf")


@bp.get("/labels.pdf")
@require_key("shop:read")
def shelf_labels_get() -> Response:
    """`?sku=A&sku=B` (repeat a SKU or give `copies` for more of each), plus the layout options."""
    query = parse_query(ShelfLabelsQuery)
    pdf = printing.shelf_labels_pdf(current_key(), query.sku_copies(), query.sheet_options())
    return _pdf(pdf, f"labels-{query.layout}.pdf")


@bp.get("/orders/<order_id>/label.pdf")
@require_key("shop:read")
def packing_label(order_id: str) -> Response:
    query = parse_query(PackingLabelQuery)
    order, pdf = printing.packing_label_pdf(current_key(), order_id, query.dpi)
    return _pdf(pdf, f"packing-{_filename_part(order.order_number, order.id)}.pdf")


# -- webhooks (no API key: the platform's signature is the credential) ------------------------------


@bp.post("/webhooks/<platform>/<topic>")
@transactional
def webhook(platform: str, topic: str) -> Response:
    if platform not in PLATFORMS or topic not in protocol.TOPICS:
        raise NotFoundError(f"no webhook endpoint for {platform}/{topic}")
    body = request.get_data(cache=True)
    if platform == "woocommerce" and woocommerce.is_ping(body):
        return jsonify({"success": True, "status": "pong"})
    outcome = protocol.receive(PLATFORMS[platform], topic, body, dict(request.headers.items()))
    return jsonify({"success": True, "status": outcome.status, "records": list(outcome.records)})
