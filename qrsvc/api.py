"""The /v1 QR API: thin views that parse, authorize, call a service and shape the response."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request

from qrsvc import batch, codes, dynamic, idempotency, metrics, scan_counts, scans, usage
from qrsvc.auth import current_key, require_key
from qrsvc.clock import isoformat
from qrsvc.errors import ApiError
from qrsvc.extensions import limiter
from qrsvc.fields import boolean, choice
from qrsvc.http import parse_body, parse_query, read_json_object, wants_json, wants_zip
from qrsvc.images import Image, image_etag, make_image
from qrsvc.keys import plan_of
from qrsvc.links import data_uri, image_url, images_base
from qrsvc.models import QrCode
from qrsvc.options import Bounds, Spec, parse_fields, parse_options
from qrsvc.pagination import PageQuery
from qrsvc.qr import CONTENT_TYPES, FORMATS
from qrsvc.transactions import transactional

bp = Blueprint("qr", __name__, url_prefix="/v1")

#: Display changes a public image URL may ask of a stored code (the symbol itself is fixed).
_IMAGE_CHANGES = frozenset({"size", "foreground", "background", "quiet_zone", "allow_low_contrast"})


def _bounds() -> Bounds:
    return Bounds(current_app.config["MIN_SIZE"], current_app.config["MAX_SIZE"])


def generate_spec() -> Spec:
    """Fields of /v1/qr/generate: the QR options plus `response` and `dynamic`."""
    return Spec(bounds=_bounds(), extra={"response": choice(("image", "json")), "dynamic": boolean()})


def scans_spec() -> Spec:
    """Query fields of /v1/qr/{id}/scans: a time range and a grouping."""
    return Spec(
        extra={
            "from": scan_counts.parse_bound,
            "to": scan_counts.parse_bound,
            "group": choice(tuple(scan_counts.GROUPS)),
        },
        qr_fields=False,
    )


def image_changes_spec() -> Spec:
    """The display changes a public image URL takes (`get_image` refuses the other QR fields)."""
    parsers = Spec(bounds=_bounds()).parsers()
    return Spec(extra={name: parsers[name] for name in sorted(_IMAGE_CHANGES)}, qr_fields=False)


def code_json(
    code: QrCode, image: Image | None = None, counts: scan_counts.Counts | None = None
) -> dict[str, Any]:
    """The JSON shape of a code; with `image`, its bytes inline as base64 and a data URI.

    A dynamic code adds its `dynamic` object, with `scans` when `counts` are given.
    """
    stored = code.options
    body: dict[str, Any] = {
        "success": True,
        "id": code.id,
        "data": code.data,
        "format": stored["format"],
        "size": stored["size"],
        "version": code.version,
        "error_correction": stored["error_correction"],
        "quiet_zone": stored["quiet_zone"],
        "foreground": stored["foreground"],
        "background": stored["background"],
        "created_at": isoformat(code.created_at),
        "image_url": image_url(code),
    }
    if code.dynamic is not None:
        body["dynamic"] = dynamic.describe(code, counts.to_dict() if counts else None)
    if image is not None:
        uri = data_uri(image.content, CONTENT_TYPES[image.options.format])
        body["image_base64"] = uri.partition(",")[2]
        body["data_uri"] = uri
    return body


def image_response(image: Image, etag: str, cache_control: str, code: QrCode | None = None) -> Response:
    response = Response(image.content, mimetype=CONTENT_TYPES[image.options.format])
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-QR-Version"] = str(image.symbol.version)
    response.headers["X-QR-Cache"] = "hit" if image.cached else "miss"
    if code is not None:
        response.headers["X-QR-Id"] = code.id
    return response


def _generate(source: dict[str, Any], from_query: bool) -> Response | tuple[Response, int]:
    options, extras = parse_options(source, generate_spec(), from_query=from_query)
    if extras.get("dynamic"):
        (made,) = dynamic.make_dynamic(current_key(), [options.data], options)
    else:
        made = codes.make_code(current_key(), options)
    if extras.get("response") == "json" or ("response" not in extras and wants_json()):
        return jsonify(code_json(made.code, made.image))
    etag = image_etag(made.image.options, current_app.config["ENGINE"])
    return image_response(made.image, etag, "private, max-age=86400", made.code)


@bp.post("/qr/generate")
@require_key("qr:write")
@transactional
def generate_post() -> Response | tuple[Response, int]:
    return _generate(read_json_object(), from_query=False)


@bp.get("/qr/generate")
@require_key("qr:write")
@transactional
def generate_get() -> Response | tuple[Response, int]:
    return _generate(request.args.to_dict(), from_query=True)


@bp.post("/qr/batch")
@require_key("qr:write")
@transactional
def generate_batch() -> Response:
    """Many codes in one request: JSON with base64 images, JSON with URLs only, or a ZIP."""
    config = current_app.config
    wanted = batch.parse_batch(
        read_json_object(),
        _bounds(),
        config["BATCH_MAX_ITEMS"],
        max_pixels=config["BATCH_MAX_PIXELS"],
        zip_accepted=wants_zip(),
    )
    metrics.observe_batch(len(wanted.items))
    images = images_base()  # once, not once an item
    output = batch.generate_batch(
        current_key(),
        wanted,
        config["ENGINE"],
        lambda code: image_url(code, base=images),
        idempotency_key=request.headers.get(idempotency.HEADER),
        max_inline_bytes=config["BATCH_MAX_INLINE_BYTES"],
    )
    return _batch_response(output)


def _batch_response(output: batch.BatchOutput) -> Response:
    length = output.body.seek(0, 2)
    output.body.seek(0)
    response = Response(batch.iter_chunks(output.body), mimetype=output.content_type)
    response.call_on_close(output.body.close)
    response.content_length = length
    if output.content_type == "application/zip":
        response.headers["Content-Disposition"] = 'attachment; filename="qr-codes.zip"'
    if output.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if output.cache_hits is not None:
        response.headers["X-QR-Cache-Hits"] = str(output.cache_hits)
    response.headers[batch.MAX_ITEMS_HEADER] = str(current_app.config["BATCH_MAX_ITEMS"])
    return response


@bp.get("/qr/<code_id>")
@require_key("qr:read")
def get_code(code_id: str) -> Response:
    parse_fields(request.args.to_dict(), Spec(qr_fields=False))
    scans.flush()  # this worker's waiting scans count too
    code = codes.get_code(current_key(), code_id)
    return jsonify(code_json(code, counts=scan_counts.counts(code.id) if code.dynamic else None))


@bp.patch("/qr/<code_id>")
@require_key("qr:write")
@transactional
def change_code(code_id: str) -> Response:
    """A dynamic code's target, `disabled` or `expires_at`; the printed image stays the same."""
    wanted = parse_body(dynamic.Change)
    scans.flush()  # before this request writes: SQLite has one writer
    code = dynamic.change(current_key(), code_id, wanted)
    return jsonify(code_json(code, counts=scan_counts.counts(code.id)))


@bp.get("/qr/<code_id>/scans")
@require_key("qr:read")
def code_scans(code_id: str) -> Response:
    """A dynamic code's scans over a bounded time range, per day, device, referrer, browser or country."""
    params = parse_fields(request.args.to_dict(), scans_spec(), from_query=True)
    window = scan_counts.window(
        cast("date | datetime | None", params.get("from")), cast("date | datetime | None", params.get("to"))
    )
    group = str(params.get("group", "day"))
    scans.flush()  # this worker's waiting scans count too
    code = dynamic.get_dynamic_code(current_key(), code_id)
    return jsonify(
        {
            "success": True,
            "id": code.id,
            "group": group,
            "from": isoformat(window.start),
            "to": isoformat(window.end),
            "items": scan_counts.series(code.id, window.start, window.end, group),
        }
    )


@bp.get("/qr/<code_id>.<ext>")
def get_image(code_id: str, ext: str) -> Response:
    """Public: the id is the capability. Any format, and display changes by query string."""
    if ext not in FORMATS:
        raise ApiError(404, "not_found", f"no image format {ext!r}; formats: {', '.join(FORMATS)}")
    spec = Spec(bounds=_bounds())
    changes = parse_fields(request.args.to_dict(), spec, from_query=True)
    refused = sorted(set(changes) - _IMAGE_CHANGES)
    if refused:
        raise ApiError(
            400,
            "unknown_parameter",
            f"a stored code's {refused[0]} cannot be changed; accepted: {', '.join(sorted(_IMAGE_CHANGES))}",
            field=refused[0],
        )
    code = codes.find_public_code(code_id)
    options = codes.stored_options(code, {**changes, "format": ext})
    engine = current_app.config["ENGINE"]
    etag = image_etag(options, engine)
    if etag in request.if_none_match:
        response = Response(status=304)
        response.set_etag(etag)
        response.headers["Cache-Control"] = _PUBLIC_CACHE
        return response
    return image_response(make_image(options, engine), etag, _PUBLIC_CACHE, code)


_PUBLIC_CACHE = "public, max-age=31536000, immutable"


@bp.get("/qr")
@require_key("qr:read")
def list_codes() -> Response:
    query = parse_query(PageQuery)
    page = codes.list_codes(current_key(), query.limit, query.cursor)
    return jsonify(
        {
            "success": True,
            "items": [code_json(code) for code in page.items],
            "next_cursor": page.next_cursor,
        }
    )


@bp.delete("/qr/<code_id>")
@require_key("qr:write")
@transactional
def delete_code(code_id: str) -> Response:
    codes.delete_code(current_key(), code_id)
    return jsonify({"success": True, "id": code_id, "deleted": True})


@bp.get("/account/usage")
@require_key("qr:read")
@transactional
def account_usage() -> Response:
    key = current_key()
    plan = plan_of(key)
    current = limiter.current_limit
    usage.flush()  # count this request (committed with the view) before reading the counters
    counts = usage.usage_of(key.id)
    return jsonify(
        {
            "success": True,
            "plan": plan.name,
            "rate_limit": {
                "limit": plan.requests_per_minute,
                "remaining": current.remaining if current else plan.requests_per_minute,
                "reset": int(current.reset_at) if current else None,
                "window_seconds": plan.window_seconds,
            },
            "quota": {"codes_per_month": plan.codes_per_month},
            "usage": {
                "requests_today": counts.requests_today,
                "codes_today": counts.codes_today,
                "codes_this_month": counts.codes_this_month,
            },
        }
    )


__all__ = ["bp", "code_json", "generate_spec", "image_changes_spec", "image_response", "scans_spec"]
