"""A batch request parsed: the request as a whole (400/413) and each item on its own (errors in place)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qrsvc import dynamic, idempotency
from qrsvc.errors import ApiError
from qrsvc.fields import boolean, choice, text
from qrsvc.options import Bounds, QrOptions, Spec, build_options, parse_fields

#: `response` values: base64 images and URLs, URLs only, or a ZIP archive.
RESPONSE_FORMS = ("json", "url", "zip")
#: Response header telling clients the item limit (also given in the 413 message).
MAX_ITEMS_HEADER = "X-Batch-Max-Items"
MAX_FILENAME = 255


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One parsed item: its options, or the error that stops it. `data`/`filename` as sent."""

    index: int
    data: str | None
    filename: str | None
    options: QrOptions | None = None
    error: ApiError | None = None
    #: A dynamic code: `options.data` is its target until the batch gives it a short URL.
    dynamic: bool = False


@dataclass(frozen=True, slots=True)
class BatchRequest:
    items: list[BatchItem]
    response: str
    #: Canonical hash of what was asked, for `Idempotency-Key` checks.
    fingerprint: str


def defaults_spec(bounds: Bounds) -> Spec:
    """The fields beside `items`: options every item takes unless it gives its own, and `response`."""
    extra = {"response": choice(RESPONSE_FORMS), "dynamic": boolean()}
    return Spec(bounds=bounds, extra=extra, ignored=frozenset())


def item_spec_of(bounds: Bounds) -> Spec:
    """The fields of one item: the QR options, `filename` and `dynamic`."""
    return Spec(bounds=bounds, extra={"filename": text(), "dynamic": boolean()}, ignored=frozenset())


def parse_batch(
    body: Mapping[str, Any],
    bounds: Bounds,
    max_items: int,
    *,
    max_pixels: int | None = None,
    zip_accepted: bool = False,
) -> BatchRequest:
    """Check the batch as a whole (400/413 for the request) and each item on its own (errors in place)."""
    if "items" not in body:
        raise ApiError(400, "missing_parameter", "items is required: a list of objects with data", "items")
    raw_items = body["items"]
    if not isinstance(raw_items, list):
        raise ApiError(400, "invalid_parameter", "items must be a list of objects with data", "items")
    if not raw_items:
        raise ApiError(400, "empty_batch", "items is empty: a batch needs at least one item", "items")
    if len(raw_items) > max_items:
        raise ApiError(
            413,
            "batch_too_large",
            f"a batch may hold at most {max_items} items and this one has {len(raw_items)}; "
            "split it into several batches",
            field="items",
            headers={MAX_ITEMS_HEADER: str(max_items)},
        )
    top = {name: value for name, value in body.items() if name != "items"}
    for name in ("data", "filename"):
        if name in top:
            raise ApiError(400, "unknown_parameter", f"{name} belongs in each item, not beside items", name)
    defaults = parse_fields(top, defaults_spec(bounds))
    response = str(defaults.pop("response", "zip" if zip_accepted else "json"))
    item_spec = item_spec_of(bounds)
    items = [_parse_item(index, raw, defaults, item_spec) for index, raw in enumerate(raw_items)]
    pixels = sum(item.options.size**2 for item in items if item.options is not None)
    if max_pixels is not None and pixels > max_pixels:
        # A 20 KB body of 1000 × 4096 px JPEGs would otherwise cost minutes of CPU and GBs of memory.
        raise ApiError(
            413,
            "batch_too_large",
            f"this batch asks for {pixels / 1e6:.0f} megapixels of images and one batch may ask for "
            f"at most {max_pixels / 1e6:.0f}; use smaller sizes or split it into several batches",
            field="items",
        )
    return BatchRequest(items, response, idempotency.fingerprint(body, response))


def _parse_item(index: int, raw: object, defaults: Mapping[str, object], spec: Spec) -> BatchItem:
    if not isinstance(raw, dict):
        error = ApiError(400, "invalid_item", f"item {index} must be a JSON object with data")
        return BatchItem(index, None, None, error=error)
    data = raw.get("data") if isinstance(raw.get("data"), str) else None
    filename = raw.get("filename") if isinstance(raw.get("filename"), str) else None
    try:
        values = parse_fields(raw, spec)
        if filename is not None and len(filename) > MAX_FILENAME:
            raise ApiError(
                400, "invalid_parameter", f"filename is longer than {MAX_FILENAME} characters", "filename"
            )
        options = build_options({**defaults, **values})
        is_dynamic = bool({**defaults, **values}.get("dynamic", False))
        if is_dynamic:
            dynamic.check_target(options.data, "data")
    except ApiError as error:
        return BatchItem(index, data, filename, error=error)
    return BatchItem(index, data, filename, options=options, dynamic=is_dynamic)


__all__ = [
    "MAX_FILENAME",
    "MAX_ITEMS_HEADER",
    "RESPONSE_FORMS",
    "BatchItem",
    "BatchRequest",
    "defaults_spec",
    "item_spec_of",
    "parse_batch",
]
