"""Use cases for codes: make (encode + render + store), find, list, delete.

The HTTP views, the CLI, the batch endpoint and the integrations all come here,
so a code made anywhere is an ordinary stored code with the same rules.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, has_app_context

from qrsvc import clock, usage
from qrsvc.config import Plan
from qrsvc.db import insert, per_dialect
from qrsvc.errors import ApiError, NotFoundError
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.options import QrOptions
from qrsvc.pagination import Page, paginate
from qrsvc.qr import Symbol
from qrsvc.qr.cache import RenderCache
from qrsvc.qr.pool import Drawn, Job, Refused, RenderPool, draw

if TYPE_CHECKING:
    from flask import Flask

# The module, not the `render` function `qrsvc.qr` re-exports: its version is read at call time.
_renderer = importlib.import_module("qrsvc.qr.render")


@dataclass(frozen=True, slots=True)
class Image:
    """Rendered bytes of one code with what a response needs to describe them."""

    options: QrOptions
    symbol: Symbol
    content: bytes
    #: Whether the bytes came from the render cache (responses say so in X-QR-Cache).
    cached: bool = False


def new_code_id() -> str:
    """`qr_` and 128 random bits: public image URLs rely on ids being unguessable."""
    return "qr_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class Rendering:
    """A process's render cache and render pool (kept in `app.extensions["qrsvc_rendering"]`)."""

    cache: RenderCache[tuple[Symbol, bytes]]
    pool: RenderPool

    def close(self) -> None:
        self.pool.close()
        self.cache.clear()


def init_app(app: Flask) -> None:
    """Give the app its render cache and (lazily started) render pool, sized by settings."""
    app.extensions["qrsvc_rendering"] = Rendering(
        RenderCache(app.config["RENDER_CACHE_BYTES"]),
        RenderPool(app.config["RENDER_PROCESSES"], app.config["RENDER_POOL_MIN_ITEMS"]),
    )


def _rendering() -> Rendering | None:
    """The app's cache and pool; None offline (e.g. `qrsvc generate`), where every render is fresh."""
    if has_app_context():
        rendering: Rendering | None = current_app.extensions.get("qrsvc_rendering")
        return rendering
    return None


def _job(options: QrOptions, engine: str) -> Job:
    return Job(options.data, options.error_correction, options.version, engine, options.format, options.style)


def _image(options: QrOptions, drawn: Drawn | Refused) -> Image:
    if isinstance(drawn, Refused):
        field = "data" if drawn.reason == "data_too_long" else "size"
        raise ApiError(422, drawn.reason, drawn.message, field=field)
    return Image(options, drawn.symbol, drawn.content)


def make_image(options: QrOptions, engine: str) -> Image:
    """Encode and render (or take the bytes from the cache); impossible cases become 422s."""
    result = render_images([options], engine).results[0]
    if isinstance(result, ApiError):
        raise result
    return result


@dataclass(frozen=True, slots=True)
class Rendered:
    """Images (or the 422 each failed one would raise) in the order asked, and how many were cached."""

    results: list[Image | ApiError]
    cache_hits: int


def render_images(options: Sequence[QrOptions], engine: str) -> Rendered:
    """Render many codes: cached ones from the cache, the rest here or in the render pool.

    A code that cannot be drawn does not stop the others: its place holds the
    ApiError (422) that `make_image` would have raised.
    """
    stream = ImageStream(options, engine)
    results = list(stream)
    return Rendered(results, stream.cache_hits)


#: Pixels (sum of size²) rendered per slice of an `ImageStream`: 64 codes of 1024 px.
STREAM_SLICE_PIXELS = 64 * 1024 * 1024
_STREAM_SLICE_ITEMS = 512


class ImageStream:
    """Images (or 422 ApiErrors) in the order asked, rendered a slice at a time.

    A consumer that writes each image out and forgets it (a ZIP, a byte count) holds
    one slice of images, not the batch: 900 JPEGs of 1024 px are 650 MB at once.
    `cache_hits` counts the images taken from the render cache so far.
    """

    def __init__(self, options: Sequence[QrOptions], engine: str) -> None:
        self.options = options
        self.engine = engine
        self.cache_hits = 0

    def __iter__(self) -> Iterator[Image | ApiError]:
        rendering = _rendering()
        start = 0
        while start < len(self.options):
            end, pixels = start, 0
            while end < len(self.options) and end - start < _STREAM_SLICE_ITEMS:
                pixels += self.options[end].size ** 2
                end += 1
                if pixels >= STREAM_SLICE_PIXELS:
                    break
            yield from self._slice(self.options[start:end], rendering)
            start = end

    def _slice(self, options: Sequence[QrOptions], rendering: Rendering | None) -> list[Image | ApiError]:
        keys = [image_etag(o, self.engine) for o in options]
        results: list[Image | ApiError | None] = [None] * len(options)
        missing: list[int] = []
        for i, key in enumerate(keys):
            cached = rendering.cache.get(key) if rendering is not None else None
            if cached is None:
                missing.append(i)
            else:
                results[i] = Image(options[i], cached[0], cached[1], cached=True)
        self.cache_hits += len(options) - len(missing)
        jobs = [_job(options[i], self.engine) for i in missing]
        drawn_all = rendering.pool.draw_all(jobs) if rendering is not None else map(draw, jobs)
        for i, drawn in zip(missing, drawn_all, strict=True):
            try:
                image = _image(options[i], drawn)
            except ApiError as exc:
                results[i] = exc
                continue
            results[i] = image
            if rendering is not None:
                rendering.cache.put(keys[i], (image.symbol, image.content), _cost(image))
        return [r for r in results if r is not None]


def _cost(image: Image) -> int:
    return len(image.content) + len(image.symbol.modules) + 200


def image_etag(options: QrOptions, engine: str) -> str:
    """Everything that changes the bytes, hashed: data, options, engine, renderer version.

    The renderer version is read at call time, so a new renderer can never be
    answered from a cache (or an ETag) filled by the old one.
    """
    key = json.dumps([_renderer.RENDERER_VERSION, engine, options.data, options.stored()], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _content_hash(options: QrOptions) -> str:
    canonical = json.dumps({"data": options.data, "options": options.stored()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reserve_quota(owner: ApiKey, plan: Plan, count: int) -> None:
    """Count `count` codes against the plan's month, or refuse with 429 (decided in SQL)."""
    if not usage.reserve_codes(owner.id, count, plan.codes_per_month):
        used = usage.codes_this_month(owner.id)
        today = clock.now()
        next_month = (today.replace(day=28) + timedelta(days=4)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        raise ApiError(
            429,
            "quota_exceeded",
            f"plan {plan.name!r} allows {plan.codes_per_month} codes a month and "
            f"{used} have been made; the quota renews on {next_month.date().isoformat()}",
            headers={"Retry-After": str(int((next_month - today).total_seconds()) + 1)},
        )


@per_dialect
def _insert_codes() -> Any:
    # On the Table, not the class: Core executemany skips the ORM's bulk-insert machinery.
    table = QrCode.__table__
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.owner_id, table.c.content_hash])
        .returning(table.c.content_hash)
    )


def store_codes(owner: ApiKey, plan: Plan, images: Sequence[Image], *, commit: bool = True) -> list[QrCode]:
    """Store one record per image (identical requests share one) and count them, in one transaction.

    With `commit=False` the caller owns the transaction: an integration stores the code
    together with the record that carries it, and a rollback undoes both.
    """
    if not images:
        return []
    _reserve_quota(owner, plan, len(images))
    now = clock.now()
    hashes = [_content_hash(image.options) for image in images]
    rows = {
        content_hash: {
            "id": new_code_id(),
            "owner_id": owner.id,
            "content_hash": content_hash,
            "data": image.options.data,
            "options": image.options.stored(),
            "version": image.symbol.version,
            "created_at": now,
        }
        for content_hash, image in zip(hashes, images, strict=True)
    }
    # One statement, many parameter sets: SQLAlchemy batches them ("insertmanyvalues").
    inserted = set(db.session.scalars(_insert_codes(), list(rows.values())))
    found = {content_hash: QrCode(**rows[content_hash]) for content_hash in inserted}
    existing = set(rows) - inserted
    if existing:
        found.update(
            (code.content_hash, code)
            for code in db.session.scalars(
                sa.select(QrCode).where(QrCode.owner_id == owner.id, QrCode.content_hash.in_(existing))
            )
        )
    usage.count(owner.id, codes=len(images))
    if commit:
        db.session.commit()
    return [found[content_hash] for content_hash in hashes]


def generate(
    owner: ApiKey, plan: Plan, options: QrOptions, engine: str, *, commit: bool = True
) -> tuple[QrCode, Image]:
    """Make one code: render it, store it, count it (`commit=False`: in the caller's transaction)."""
    image = make_image(options, engine)
    (code,) = store_codes(owner, plan, [image], commit=commit)
    return code, image


def get_code(owner: ApiKey, code_id: str) -> QrCode:
    """The owner's code; someone else's is as absent as a missing one."""
    code = db.session.get(QrCode, code_id)
    if code is None or code.owner_id != owner.id:
        raise NotFoundError(f"no code {code_id!r}")
    return code


def find_codes(owner: ApiKey, code_ids: Sequence[str]) -> list[QrCode]:
    """The owner's codes among `code_ids` (missing or foreign ones are left out)."""
    if not code_ids:
        return []
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id, QrCode.id.in_(set(code_ids)))
    return list(db.session.scalars(query))


def find_public_code(code_id: str) -> QrCode:
    code = db.session.get(QrCode, code_id)
    if code is None:
        raise NotFoundError(f"no code {code_id!r}")
    return code


def stored_options(code: QrCode, changes: Mapping[str, object] | None = None) -> QrOptions:
    """A stored code's options, with allowed display changes (format, size, colours) applied."""
    from qrsvc.options import build_options

    base = QrOptions.from_stored(code.data, code.options)
    return build_options(changes or {}, base=base)


def list_codes(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[QrCode]:
    """The owner's codes, newest first; `cursor` continues after the last page's final item."""
    query = sa.select(QrCode).where(QrCode.owner_id == owner.id)
    return paginate(query, (QrCode.created_at, QrCode.id), limit, cursor)


def delete_code(owner: ApiKey, code_id: str) -> None:
    code = get_code(owner, code_id)
    db.session.delete(code)
    db.session.commit()


__all__ = [
    "Image",
    "ImageStream",
    "Page",
    "Rendered",
    "Rendering",
    "delete_code",
    "find_codes",
    "find_public_code",
    "generate",
    "get_code",
    "image_etag",
    "list_codes",
    "init_app",
    "make_image",
    "new_code_id",
    "render_images",
    "store_codes",
    "stored_options",
]
