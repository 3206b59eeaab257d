"""Bulk generation: many codes from one request, each item's options over the batch's defaults.

Every item goes through the one options parser; an item that fails (a bad
colour, `data_too_long`, …) is reported in its place and never fails the others.
Good items are rendered a slice at a time (across processes when there are many),
stored with one `store_codes` call and counted as N codes; the request counts once
against the rate limit. Images are never all in memory: a ZIP gets each image as it
is drawn, the `url` form keeps none, and the inline (base64) form stops with a 413
as soon as its body would pass `BATCH_MAX_INLINE_BYTES`. The body is written to a
spooled temporary file and streamed from there.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

from qrsvc import clock, codes, idempotency
from qrsvc.errors import ApiError
from qrsvc.images import Image, ImageStream
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
    """One item's result: its stored code, or the error that stopped it."""

    item: BatchItem
    code: QrCode | None = None
    error: ApiError | None = None


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


class _Body:
    """Where rendered images go as they are drawn, and how the finished body is written."""

    def __init__(self, response: str, image_url: Callable[[QrCode], str], max_inline_bytes: int) -> None:
        self.response = response
        self.image_url = image_url
        self.max_inline_bytes = max_inline_bytes
        self.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (returned open)
        self._inline: dict[int, bytes] = {}
        self._inline_bytes = 0
        self._names: dict[int, str] = {}
        self._used: set[str] = set()
        self._archive = zipfile.ZipFile(self.file, "w") if response == "zip" else None

    @property
    def needs_images(self) -> bool:
        return self.response != "url"

    def add(self, item: BatchItem, image: Image, when: datetime) -> None:
        """Take one image: into the ZIP at once, or kept for the JSON body within its byte limit."""
        if self._archive is not None:
            fmt = image.options.format
            name = _unique_name(item, fmt, self._used)
            self._names[item.index] = name
            entry = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED if fmt in _ZIP_COMPRESSED else zipfile.ZIP_STORED
            self._archive.writestr(entry, image.content)
        elif self.response == "json":
            self._inline_bytes += 4 * -(-len(image.content) // 3) + _ITEM_OVERHEAD  # base64, rounded up
            if self._inline_bytes > self.max_inline_bytes:
                raise ApiError(
                    413,
                    "response_too_large",
                    f"the images of this batch are more than {self.max_inline_bytes} bytes as base64; "
                    'ask for "response": "url" (image URLs) or "zip" (a ZIP archive), '
                    "or split the batch",
                    field="response",
                )
            self._inline[item.index] = image.content

    def finish(self, outcomes: Sequence[Outcome], when: datetime) -> IO[bytes]:
        """Write what follows the images (the JSON, or the ZIP's manifest) and rewind."""
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        if self._archive is not None:
            manifest = []
            for outcome in outcomes:
                entry = item_json(outcome, self.image_url)
                entry["filename"] = self._names.get(outcome.item.index)
                if not entry["success"]:
                    entry["data"] = outcome.item.data
                manifest.append(entry)
            document = {"count": len(outcomes), "failed": failed, "items": manifest}
            info = zipfile.ZipInfo("manifest.json", date_time=when.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            self._archive.writestr(info, json.dumps(document, indent=1))
            self._archive.close()
        else:
            head = {"success": True, "count": len(outcomes), "failed": failed}
            self.file.write(json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"items":[')
            for position, outcome in enumerate(outcomes):
                if position:
                    self.file.write(b",")
                image = self._inline.pop(outcome.item.index, None)
                self.file.write(json.dumps(item_json(outcome, self.image_url, image=image)).encode())
            self.file.write(b"]}\n")
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
        self.file.close()


#: Bytes an inline item adds around its base64 (id, data, URL, …), for the byte limit.
_ITEM_OVERHEAD = 200


def generate_batch(
    owner: ApiKey,
    request: BatchRequest,
    engine: str,
    image_url: Callable[[QrCode], str],
    idempotency_key: str | None = None,
    *,
    max_inline_bytes: int = 64 * 1024 * 1024,
) -> BatchOutput:
    """Run the batch and write its response body; with an `Idempotency-Key`, at most once a key.

    A retry with the same key and request gets the first outcome back, re-rendered
    from the stored codes (nothing new is stored or counted); the same key with
    another request is a 422. The codes and the key's record are written in the caller's
    transaction and commit together (the view is `transactional`); only the claim, a lease
    other requests must see at once, commits on its own (`qrsvc.idempotency`).
    """
    claim: idempotency.Claim | None = None
    when = clock.now()
    if idempotency_key is not None:
        found = idempotency.claim(owner, idempotency.check_key(idempotency_key), request.fingerprint)
        if isinstance(found, idempotency.Stored):
            return _replay(
                owner, request, found, engine, _Body(request.response, image_url, max_inline_bytes)
            )
        claim, when = found, found.created_at
    body = _Body(request.response, image_url, max_inline_bytes)
    try:
        outcomes, cache_hits = _run(owner, request, engine, body, when, claim)
        if claim is not None:
            idempotency.finish(claim, [_outcome_record(outcome) for outcome in outcomes])
        content = body.finish(outcomes, when)
    except BaseException:
        body.close()
        if claim is not None:
            idempotency.release(claim)
        raise
    return BatchOutput(CONTENT_TYPES[request.response], content, cache_hits=cache_hits)


def _run(
    owner: ApiKey,
    request: BatchRequest,
    engine: str,
    body: _Body,
    when: datetime,
    claim: idempotency.Claim | None,
) -> tuple[list[Outcome], int]:
    """Render every good item into `body`, then store the drawn codes (uncommitted)."""
    good = [item for item in request.items if item.options is not None]
    stream = ImageStream([item.options for item in good if item.options is not None], engine)
    drawn: list[tuple[BatchItem, Image]] = []
    errors: dict[int, ApiError] = {}
    for item, result in zip(good, stream, strict=True):
        if claim is not None:
            claim.renew()
        if isinstance(result, ApiError):
            errors[item.index] = result
            continue
        body.add(item, result, when)
        drawn.append((item, replace(result, content=b"")))  # the bytes are in the body now
    stored = codes.store_images(owner, [image for _item, image in drawn])
    by_index = {item.index: code for (item, _image), code in zip(drawn, stored, strict=True)}
    outcomes = [
        Outcome(item, code=by_index.get(item.index), error=errors.get(item.index, item.error))
        for item in request.items
    ]
    return outcomes, stream.cache_hits


def _outcome_record(outcome: Outcome) -> Any:
    """What an idempotency record keeps of an item: its code id, or its error (no image bytes)."""
    if outcome.code is not None:
        return outcome.code.id
    error = outcome.error or ApiError(500, "internal_error", "item was not processed")
    return {"status": error.status, "error": error.code, "message": error.message, "field": error.field}


def _replay(
    owner: ApiKey, request: BatchRequest, stored: idempotency.Stored, engine: str, body: _Body
) -> BatchOutput:
    """The first request's outcome again: the same codes, re-rendered when the body holds images."""
    ids = [entry for entry in stored.items if isinstance(entry, str)]
    found = {code.id: code for code in codes.find_codes(owner, ids)}
    outcomes = []
    for item, entry in zip(request.items, stored.items, strict=True):
        if isinstance(entry, str):
            code = found.get(entry)
            error = None if code else ApiError(404, "not_found", f"code {entry} was deleted since")
            outcomes.append(Outcome(item, code=code, error=error))
        else:
            error = ApiError(entry["status"], entry["error"], entry["message"], entry.get("field"))
            outcomes.append(Outcome(item, error=error))
    try:
        if body.needs_images:
            kept = [outcome for outcome in outcomes if outcome.code is not None]
            stream = ImageStream([codes.stored_options(o.code) for o in kept if o.code], engine)
            for outcome, image in zip(kept, stream, strict=True):
                if isinstance(image, Image):
                    body.add(outcome.item, image, stored.created_at)
        content = body.finish(outcomes, stored.created_at)
    except BaseException:
        body.close()
        raise
    return BatchOutput(CONTENT_TYPES[request.response], content, replayed=True)


def item_json(
    outcome: Outcome, image_url: Callable[[QrCode], str], *, image: bytes | None = None
) -> dict[str, Any]:
    """One item of the response: the code, or the error that stopped it, with its input index."""
    item = outcome.item
    if outcome.code is None:
        error = outcome.error or ApiError(500, "internal_error", "item was not processed")
        return {"index": item.index, **error.to_dict()}
    code = outcome.code
    body = {
        "index": item.index,
        "success": True,
        "id": code.id,
        "data": code.data,
        "format": code.options["format"],
        "version": code.version,
        "image_url": image_url(code),
    }
    if item.filename is not None:
        body["filename"] = item.filename
    if image is not None:
        body["image_base64"] = base64.b64encode(image).decode()
    return body


def _unique_name(item: BatchItem, fmt: str, used: set[str]) -> str:
    """A sanitised file name for the item's image, unique (regardless of case) among `used`."""
    stem = safe_stem(item.filename, fmt) or f"qr-{item.index:04d}"
    name, number = f"{stem}.{fmt}", 2
    while name.casefold() in used:
        name, number = f"{stem}-{number}.{fmt}", number + 1
    used.add(name.casefold())
    return name


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
    """Stream a body and close it when done (the response also closes it if the client leaves early)."""
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
    "Outcome",
    "generate_batch",
    "item_json",
    "iter_chunks",
    "parse_batch",
    "safe_stem",
]
