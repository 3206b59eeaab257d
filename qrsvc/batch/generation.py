"""Running a batch: many codes from one request, each item's options over the batch's defaults.

Every item goes through the one options parser; an item that fails (a bad
colour, `data_too_long`, …) is reported in its place and never fails the others.
Good items are rendered a slice at a time (across processes when there are many),
stored with one `store_images` call and counted as N codes; the request counts once
against the rate limit. Images are never all in memory: a ZIP gets each image as it
is drawn, the `url` form keeps none, and the inline (base64) form stops with a 413
as soon as its body would pass `BATCH_MAX_INLINE_BYTES`. The body is written to a
spooled temporary file and streamed from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

from qrsvc import clock, codes, dynamic, idempotency
from qrsvc.batch.bodies import BatchBody, Outcome
from qrsvc.batch.items import BatchItem, BatchRequest
from qrsvc.errors import ApiError
from qrsvc.images import Image, ImageStream
from qrsvc.models import ApiKey, QrCode

CONTENT_TYPES = {"json": "application/json", "url": "application/json", "zip": "application/zip"}


@dataclass(frozen=True, slots=True)
class BatchOutput:
    """A finished response body, ready to stream, and what the response headers need."""

    content_type: str
    body: IO[bytes]
    replayed: bool = False
    cache_hits: int | None = None


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
                owner, request, found, engine, BatchBody(request.response, image_url, max_inline_bytes)
            )
        claim, when = found, found.created_at
    body = BatchBody(request.response, image_url, max_inline_bytes)
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
    body: BatchBody,
    when: datetime,
    claim: idempotency.Claim | None,
) -> tuple[list[Outcome], int]:
    """Render every good item into `body`, then store the drawn codes (uncommitted).

    A dynamic item is drawn with a fresh short URL and keeps its `data` as the target.
    """
    good = [item for item in request.items if item.options is not None]
    targets = [item.options.data for item in good if item.dynamic and item.options is not None]
    planned = iter(dynamic.plan_codes(targets))
    plans = {item.index: next(planned) for item in good if item.dynamic}
    stream = ImageStream(
        [
            replace(item.options, data=plans[item.index].short_url) if item.dynamic else item.options
            for item in good
            if item.options is not None
        ],
        engine,
    )
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
    stored = codes.store_images(
        owner,
        [image for _item, image in drawn],
        keep=[plans[item.index].target if item.dynamic else image.options.data for item, image in drawn],
    )
    by_index = {item.index: code for (item, _image), code in zip(drawn, stored, strict=True)}
    made = [(by_index[item.index], plans[item.index]) for item, _image in drawn if item.dynamic]
    dynamic.attach([code for code, _planned in made], [planned for _code, planned in made])
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
    owner: ApiKey, request: BatchRequest, stored: idempotency.Stored, engine: str, body: BatchBody
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


__all__ = ["CONTENT_TYPES", "BatchOutput", "generate_batch"]
