"""Bulk generation: many codes from one request, each item's options over the batch's defaults.

Every item goes through the one options parser; an item that fails (a bad
colour, `data_too_long`, …) is reported in its place and never fails the others.
Good items are rendered together (across processes when there are many), stored
with one `store_codes` call and counted as N codes; the request counts once
against the rate limit. The response body is written to a spooled temporary file,
so a large ZIP or JSON body is never held in memory more than once.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from qrsvc import codes, idempotency
from qrsvc.codes import Image
from qrsvc.config import Plan
from qrsvc.errors import ApiError
from qrsvc.models import ApiKey, QrCode
from qrsvc.options import Bounds, QrOptions, Spec, build_options, choice, parse_fields, text

#: `response` values: base64 images and URLs, URLs only, or a ZIP archive.
RESPONSE_FORMS = ("json", "url", "zip")
CONTENT_TYPES = {"json": "application/json", "url": "application/json", "zip": "application/zip"}
#: Response header telling clients the item limit (also given in the 413 message).
MAX_ITEMS_HEADER = "X-Batch-Max-Items"
MAX_FILENAME = 255
#: Bodies up to this size stay in memory; larger ones go to a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024
_UNSAFE = re.compile(r"[^\w.-]+")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{n}" for p in ("com", "lpt") for n in range(1, 10)]
)
_ZIP_COMPRESSED = frozenset({"svg"})  # PNG, JPEG, WebP and our PDFs are compressed already


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One parsed item: its options, or the error that stops it. `data`/`filename` as sent."""

    index: int
    data: str | None
    filename: str | None
    options: QrOptions | None = None
    error: ApiError | None = None


@dataclass(frozen=True, slots=True)
class BatchRequest:
    items: list[BatchItem]
    response: str
    #: Canonical hash of what was asked, for `Idempotency-Key` checks.
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Outcome:
    item: BatchItem
    code: QrCode | None = None
    image: Image | None = None
    error: ApiError | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcomes: list[Outcome]
    cache_hits: int

    @property
    def failed(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.error is not None)


@dataclass(frozen=True, slots=True)
class BatchOutput:
    """A finished response body, ready to stream, and what the response headers need."""

    content_type: str
    body: IO[bytes]
    replayed: bool = False
    cache_hits: int | None = None


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
    defaults = parse_fields(
        top, Spec(bounds=bounds, extra={"response": choice(RESPONSE_FORMS)}, ignored=frozenset())
    )
    response = str(defaults.pop("response", "zip" if zip_accepted else "json"))
    item_spec = Spec(bounds=bounds, extra={"filename": text}, ignored=frozenset())
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
    except ApiError as error:
        return BatchItem(index, data, filename, error=error)
    return BatchItem(index, data, filename, options=options)


def run_batch(owner: ApiKey, plan: Plan, request: BatchRequest, engine: str) -> BatchResult:
    """Render every good item, store the rendered ones at once, and pair results with items."""
    good = [item for item in request.items if item.options is not None]
    rendered = codes.render_images([item.options for item in good if item.options is not None], engine)
    by_index = dict(zip((item.index for item in good), rendered.results, strict=True))
    images = [result for result in rendered.results if isinstance(result, Image)]
    stored = iter(codes.store_codes(owner, plan, images))
    outcomes = []
    for item in request.items:
        result = by_index.get(item.index)
        if isinstance(result, Image):
            outcomes.append(Outcome(item, code=next(stored), image=result))
        else:
            outcomes.append(Outcome(item, error=result or item.error))
    return BatchResult(outcomes, rendered.cache_hits)


def generate_batch(
    owner: ApiKey,
    plan: Plan,
    request: BatchRequest,
    engine: str,
    image_url: Callable[[QrCode], str],
    idempotency_key: str | None = None,
) -> BatchOutput:
    """Run the batch and write its response body; with an `Idempotency-Key`, at most once a key.

    A retry with the same key and request gets the first body back (nothing new
    is stored or counted); the same key with another request is a 422.
    """
    if idempotency_key is None:
        return _produce(owner, plan, request, engine, image_url)
    key = idempotency.check_key(idempotency_key)
    stored = idempotency.claim(owner, key, request.fingerprint)
    if stored is not None:
        return BatchOutput(stored.content_type, io.BytesIO(stored.body), replayed=True)
    try:
        output = _produce(owner, plan, request, engine, image_url)
        with output.body:
            content = output.body.read()
        idempotency.finish(owner, key, idempotency.StoredResponse(200, output.content_type, content))
    except BaseException:
        idempotency.release(owner, key)
        raise
    return BatchOutput(output.content_type, io.BytesIO(content), cache_hits=output.cache_hits)


def _produce(
    owner: ApiKey, plan: Plan, request: BatchRequest, engine: str, image_url: Callable[[QrCode], str]
) -> BatchOutput:
    result = run_batch(owner, plan, request, engine)
    body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (returned open)
    try:
        if request.response == "zip":
            write_zip(result, body, image_url)
        else:
            write_json(result, body, image_url, with_images=request.response == "json")
    except BaseException:
        body.close()
        raise
    body.seek(0)
    return BatchOutput(CONTENT_TYPES[request.response], body, cache_hits=result.cache_hits)


def item_json(
    outcome: Outcome, image_url: Callable[[QrCode], str], *, with_image: bool = False
) -> dict[str, Any]:
    """One item of the response: the code, or the error that stopped it, with its input index."""
    item = outcome.item
    if outcome.code is None or outcome.image is None:
        error = outcome.error or ApiError(500, "internal_error", "item was not processed")
        return {"index": item.index, **error.to_dict()}
    code = outcome.code
    body = {
        "index": item.index,
        "success": True,
        "id": code.id,
        "data": code.data,
        "format": outcome.image.options.format,
        "version": code.version,
        "image_url": image_url(code),
    }
    if item.filename is not None:
        body["filename"] = item.filename
    if with_image:
        body["image_base64"] = base64.b64encode(outcome.image.content).decode()
    return body


def write_json(
    result: BatchResult, out: IO[bytes], image_url: Callable[[QrCode], str], *, with_images: bool
) -> None:
    """`{"success", "count", "failed", "items"}`, written item by item (one image in memory at a time)."""
    head = {"success": True, "count": len(result.outcomes), "failed": result.failed}
    out.write(json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"items":[')
    for position, outcome in enumerate(result.outcomes):
        if position:
            out.write(b",")
        out.write(json.dumps(item_json(outcome, image_url, with_image=with_images)).encode())
    out.write(b"]}\n")


def write_zip(result: BatchResult, out: IO[bytes], image_url: Callable[[QrCode], str]) -> None:
    """The images under safe, unique names, and `manifest.json` mapping each name to its item."""
    names = zip_names(result.outcomes)
    manifest = []
    with zipfile.ZipFile(out, "w") as archive:
        for outcome, name in zip(result.outcomes, names, strict=True):
            entry = item_json(outcome, image_url)
            entry["filename"] = name
            if not entry["success"]:
                entry["data"] = outcome.item.data
            manifest.append(entry)
            if name is not None and outcome.image is not None:
                method = zipfile.ZIP_DEFLATED if outcome.image.options.format in _ZIP_COMPRESSED else 0
                archive.writestr(name, outcome.image.content, compress_type=method)
        document = {"count": len(result.outcomes), "failed": result.failed, "items": manifest}
        archive.writestr("manifest.json", json.dumps(document, indent=1), compress_type=zipfile.ZIP_DEFLATED)


def zip_names(outcomes: Sequence[Outcome]) -> list[str | None]:
    """A name for every image (None for failed items): sanitised, unique regardless of case."""
    used: set[str] = set()
    names: list[str | None] = []
    for outcome in outcomes:
        if outcome.image is None:
            names.append(None)
            continue
        fmt = outcome.image.options.format
        stem = safe_stem(outcome.item.filename, fmt) or f"qr-{outcome.item.index:04d}"
        name, number = f"{stem}.{fmt}", 2
        while name.casefold() in used:
            name, number = f"{stem}-{number}.{fmt}", number + 1
        used.add(name.casefold())
        names.append(name)
    return names


def safe_stem(filename: str | None, fmt: str) -> str:
    """The last path component, without our extension, in letters, digits, `.`, `-` and `_` only.

    `../../etc/passwd` becomes `passwd`; an empty or device-like result (`CON`) becomes "".
    """
    if not filename:
        return ""
    stem = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    for extension in {f".{fmt}", ".jpg" if fmt == "jpeg" else f".{fmt}"}:
        if stem.lower().endswith(extension):
            stem = stem[: -len(extension)]
    stem = _UNSAFE.sub("_", stem).strip("._ ")[:100].rstrip("._ ")
    if stem.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
        return ""
    return stem


def iter_chunks(body: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Stream a body and close it when done."""
    with body:
        while chunk := body.read(size):
            yield chunk


__all__ = [
    "CONTENT_TYPES",
    "MAX_ITEMS_HEADER",
    "RESPONSE_FORMS",
    "BatchItem",
    "BatchOutput",
    "BatchRequest",
    "BatchResult",
    "Outcome",
    "generate_batch",
    "item_json",
    "iter_chunks",
    "parse_batch",
    "run_batch",
    "safe_stem",
    "write_json",
    "write_zip",
    "zip_names",
]
