"""The /v1/shop API: thin views that parse, authorize, call a shop service and shape the response."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import cast

from flask import Blueprint, Response, current_app, jsonify, request

from integrations.shop import catalog, emails, orders
from integrations.shop.labels.layouts import LAYOUTS
from integrations.shop.labels.limits import LabelLimits, check_cost, packing_cost, shelf_cost
from integrations.shop.shapes import order_json, product_json
from integrations.shop.webhooks import PLATFORMS, protocol, woocommerce
from qrsvc.auth import current_key, require_key
from qrsvc.errors import ApiError, NotFoundError
from qrsvc.http import read_json_object
from qrsvc.options import Parser, Spec, integer, parse_fields, text

bp = Blueprint("shop", __name__, url_prefix="/v1/shop")

# -- field parsers (the shop's extras to qrsvc.options) ----------------------------------------------


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=name)


def _optional(parser: Parser) -> Parser:
    """`null` clears an optional field."""

    def parse(name: str, value: object, from_query: bool) -> object:
        return None if value is None else parser(name, value, from_query)

    return parse


def _price(name: str, value: object, from_query: bool) -> str:
    return catalog.normalize_price(value, name)


def _currency(name: str, value: object, from_query: bool) -> str:
    return catalog.normalize_currency(value, name)


def _millimetres(name: str, value: object, from_query: bool) -> float:
    """A finite number; the allowed range is the label renderer's to decide."""
    if from_query and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(name, f"{name} must be a number of millimetres") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, f"{name} must be a number of millimetres")
    if not math.isfinite(value):
        raise _bad(name, f"{name} must be a finite number of millimetres")
    return float(value)


def _object_fields(name: str, value: object, spec: Spec) -> dict[str, object]:
    """A nested JSON object, checked like a body; errors name the path (`customer.email`)."""
    if not isinstance(value, Mapping):
        raise _bad(name, f"{name} must be an object")
    try:
        return parse_fields(value, spec)
    except ApiError as exc:
        exc.field = f"{name}.{exc.field}" if exc.field else name
        raise


def _require(values: Mapping[str, object], names: tuple[str, ...], prefix: str = "") -> None:
    for field in names:
        if values.get(field) is None:
            raise ApiError(400, "missing_parameter", f"{prefix}{field} is required", field=f"{prefix}{field}")


_PRODUCT_FIELDS: dict[str, Parser] = {
    "sku": text,
    "name": text,
    "url": text,
    "price": _optional(_price),
    "currency": _optional(_currency),
}


def _customer(name: str, value: object, from_query: bool) -> dict[str, object]:
    fields = _object_fields(name, value, Spec(extra={"name": text, "email": text}, qr_fields=False))
    _require(fields, ("name", "email"), f"{name}.")
    return fields


def _items(name: str, value: object, from_query: bool) -> list[orders.ItemFields]:
    if not isinstance(value, list) or not value:
        raise _bad(name, f"{name} must be a non-empty list of {{sku, quantity, unit_price?}}")
    if len(value) > 1000:
        raise ApiError(413, "too_many_items", f"{name} may hold at most 1000 lines", field=name)
    spec = Spec(
        extra={"sku": text, "quantity": integer(1, orders.MAX_QUANTITY), "unit_price": _optional(_price)},
        qr_fields=False,
    )
    items = []
    for index, raw in enumerate(value):
        fields = _object_fields(f"{name}[{index}]", raw, spec)
        _require(fields, ("sku", "quantity"), f"{name}[{index}].")
        items.append(
            orders.ItemFields(
                sku=cast(str, fields["sku"]),
                quantity=cast(int, fields["quantity"]),
                unit_price=cast("str | None", fields.get("unit_price")),
            )
        )
    return items


def _address(name: str, value: object, from_query: bool) -> dict[str, str]:
    spec = Spec(extra=dict.fromkeys(orders.ADDRESS_FIELDS, text), qr_fields=False)
    return {k: str(v) for k, v in _object_fields(name, value, spec).items() if str(v).strip()}


_ORDER_SPEC = Spec(
    extra={
        "order_number": text,
        "customer": _customer,
        "items": _items,
        "currency": _optional(_currency),
        "tracking_url": _optional(text),
        "shipping_address": _optional(_address),
    },
    qr_fields=False,
)


def _page_spec() -> Spec:
    return Spec(
        extra={"limit": integer(1, current_app.config["PAGE_SIZE_MAX"]), "cursor": text}, qr_fields=False
    )


# -- products ----------------------------------------------------------------------------------------


@bp.post("/products")
@require_key("shop:write")
def create_product() -> tuple[Response, int]:
    fields = parse_fields(read_json_object(), Spec(extra=_PRODUCT_FIELDS, qr_fields=False))
    _require(fields, ("sku", "name", "url"))
    product = catalog.create_product(current_key(), catalog.ProductFields(**fields))  # type: ignore[arg-type]
    return jsonify({"success": True, **product_json(product)}), 201


@bp.get("/products")
@require_key("shop:read")
def list_products() -> Response:
    params = parse_fields(request.args.to_dict(), _page_spec(), from_query=True)
    page = catalog.list_products(
        current_key(), cast(int, params.get("limit", 20)), cast("str | None", params.get("cursor"))
    )
    return jsonify(
        {"success": True, "items": [product_json(p) for p in page.items], "next_cursor": page.next_cursor}
    )


@bp.get("/products/<sku>")
@require_key("shop:read")
def get_product(sku: str) -> Response:
    return jsonify({"success": True, **product_json(catalog.get_product(current_key(), sku))})


@bp.patch("/products/<sku>")
@require_key("shop:write")
def update_product(sku: str) -> Response:
    spec = Spec(extra={k: v for k, v in _PRODUCT_FIELDS.items() if k != "sku"}, qr_fields=False)
    changes = parse_fields(read_json_object(), spec)
    for required in ("name", "url"):
        if required in changes and changes[required] is None:
            raise _bad(required, f"{required} cannot be null")
    product = catalog.update_product(current_key(), sku, cast(dict[str, "str | None"], changes))
    return jsonify({"success": True, **product_json(product)})


# -- orders ------------------------------------------------------------------------------------------


@bp.post("/orders")
@require_key("shop:write")
def create_order() -> tuple[Response, int]:
    body = parse_fields(read_json_object(), _ORDER_SPEC)
    _require(body, ("order_number", "customer", "items"))
    customer = cast(dict[str, str], body["customer"])
    fields = orders.OrderFields(
        order_number=cast(str, body["order_number"]),
        customer_name=customer["name"],
        customer_email=customer["email"],
        items=tuple(cast(list[orders.ItemFields], body["items"])),
        currency=cast("str | None", body.get("currency")),
        tracking_url=cast("str | None", body.get("tracking_url")),
        shipping_address=cast("dict[str, str] | None", body.get("shipping_address")),
    )
    order = orders.place_order(current_key(), fields)
    return jsonify({"success": True, **order_json(order)}), 201


@bp.get("/orders")
@require_key("shop:read")
def list_orders() -> Response:
    params = parse_fields(request.args.to_dict(), _page_spec(), from_query=True)
    items, cursor = orders.list_orders(
        current_key(), cast(int, params.get("limit", 20)), cast("str | None", params.get("cursor"))
    )
    return jsonify({"success": True, "items": [order_json(o) for o in items], "next_cursor": cursor})


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


# -- labels (rendering: integrations.shop.labels.documents) ------------------------------------------------


#: Parsing bound for `copies`; the real bound is the label limits, checked as a 413 on the total.
_MAX_COPIES = 1_000_000


def _label_spec() -> Spec:
    return Spec(
        extra={
            "layout": text,
            "start_at": integer(1, 1000),
            "offset_x_mm": _millimetres,
            "offset_y_mm": _millimetres,
            "dpi": integer(100, 1200),
            "copies": integer(1, _MAX_COPIES),
        },
        qr_fields=False,
    )


def _sku_copies(name: str, value: object) -> list[tuple[str, int]]:
    """`skus` of a JSON body: `"SKU"` or `{"sku": "SKU", "copies": 3}` per entry."""
    if not isinstance(value, list) or not value:
        raise _bad(name, f"{name} must be a non-empty list of SKUs or {{sku, copies}} objects")
    spec = Spec(extra={"sku": text, "copies": integer(1, _MAX_COPIES)}, qr_fields=False)
    result = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            result.append((entry, 1))
            continue
        fields = _object_fields(f"{name}[{index}]", entry, spec)
        _require(fields, ("sku",), f"{name}[{index}].")
        result.append((cast(str, fields["sku"]), cast(int, fields.get("copies", 1))))
    return result


def _label_limits() -> LabelLimits:
    config = current_app.config
    return LabelLimits(
        labels=config["LABEL_MAX_LABELS"],
        pages=config["LABEL_MAX_PAGES"],
        megapixels=config["LABEL_MAX_MEGAPIXELS"],
    )


def _shelf_labels_response(skus: list[tuple[str, int]], params: Mapping[str, object]) -> Response:
    from integrations.shop.labels import documents  # WeasyPrint loads with the first print

    layout = cast(str, params.get("layout", "avery-5160"))
    if layout not in LAYOUTS:
        raise _bad("layout", f"layout must be one of: {', '.join(LAYOUTS)}")
    start_at = cast(int, params.get("start_at", 1))
    dpi = cast("int | None", params.get("dpi"))
    limits = _label_limits()
    # The cost is known from the request: refuse before looking anything up or drawing anything.
    cost = shelf_cost(
        layout,
        sum(copies for _sku, copies in skus),
        len({sku for sku, _copies in skus}),
        start_at=start_at,
        dpi=dpi,
    )
    check_cost(cost, limits)
    pdf = documents.render_shelf_labels(
        catalog.labels_for_products(current_key(), skus, max_labels=limits.labels),
        layout,
        start_at=start_at,
        offset_x_mm=cast(float, params.get("offset_x_mm", 0.0)),
        offset_y_mm=cast(float, params.get("offset_y_mm", 0.0)),
        dpi=dpi,
        limits=limits,
        engine=current_app.config["ENGINE"],
    )
    return _pdf(pdf, f"labels-{layout}.pdf")


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
    body = read_json_object()
    skus = _sku_copies("skus", body.pop("skus", None))
    params = parse_fields(body, _label_spec())
    if "copies" in params:
        raise ApiError(400, "unknown_parameter", "copies goes inside each skus entry", field="copies")
    return _shelf_labels_response(skus, params)


@bp.get("/labels.pdf")
@require_key("shop:read")
def shelf_labels_get() -> Response:
    """`?sku=A&sku=B` (repeat a SKU or give `copies` for more of each), plus the layout options."""
    skus = request.args.getlist("sku")
    if not skus:
        raise ApiError(400, "missing_parameter", "give at least one sku=…", field="sku")
    params = parse_fields(
        {k: v for k, v in request.args.items() if k != "sku"}, _label_spec(), from_query=True
    )
    copies = cast(int, params.get("copies", 1))
    return _shelf_labels_response([(sku, copies) for sku in skus], params)


@bp.get("/orders/<order_id>/label.pdf")
@require_key("shop:read")
def packing_label(order_id: str) -> Response:
    from integrations.shop.labels import documents  # WeasyPrint loads with the first print

    params = parse_fields(
        request.args.to_dict(), Spec(extra={"dpi": integer(100, 1200)}, qr_fields=False), from_query=True
    )
    dpi = cast(int, params.get("dpi", 203))
    limits = _label_limits()
    check_cost(packing_cost(dpi), limits)  # before the order is looked up
    order = orders.get_order(current_key(), order_id)
    pdf = documents.render_packing_label(
        orders.packing_label_for(order), dpi=dpi, engine=current_app.config["ENGINE"], limits=limits
    )
    return _pdf(pdf, f"packing-{_filename_part(order.order_number, order.id)}.pdf")


# -- webhooks (no API key: the platform's signature is the credential) ------------------------------


@bp.post("/webhooks/<platform>/<topic>")
def webhook(platform: str, topic: str) -> Response:
    if platform not in PLATFORMS or topic not in protocol.TOPICS:
        raise NotFoundError(f"no webhook endpoint for {platform}/{topic}")
    body = request.get_data(cache=True)
    if platform == "woocommerce" and woocommerce.is_ping(body):
        return jsonify({"success": True, "status": "pong"})
    outcome = protocol.receive(PLATFORMS[platform], topic, body, dict(request.headers.items()))
    return jsonify({"success": True, "status": outcome.status, "records": list(outcome.records)})
