"""Images of codes: encode + render, through the per-process render cache and render pool.

No database here: `qrsvc.codes` stores what is drawn. A view, the CLI (offline,
with no app), the batch endpoint and the integrations all draw through `make_image`
or `render_images`, so the cache and the pool serve every one of them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, has_app_context

from qrsvc import metrics
from qrsvc.errors import ApiError
from qrsvc.options import QrOptions
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


def _engine(engine: str | None) -> str:
    """The encoder asked for, else the app's (offline callers, with no app, always say which)."""
    if engine is not None:
        return engine
    if not has_app_context():
        raise RuntimeError("no app: pass the engine")
    chosen: str = current_app.config["ENGINE"]
    return chosen


def make_image(options: QrOptions, engine: str | None = None) -> Image:
    """Encode and render (or take the bytes from the cache); impossible cases become 422s."""
    result = render_images([options], _engine(engine)).results[0]
    if isinstance(result, ApiError):
        raise result
    return result


@dataclass(frozen=True, slots=True)
class Rendered:
    """Images (or the 422 each failed one would raise) in the order asked, and how many were cached."""

    results: list[Image | ApiError]
    cache_hits: int


def render_images(options: Sequence[QrOptions], engine: str | None = None) -> Rendered:
    """Render many codes: cached ones from the cache, the rest here or in the render pool.

    A code that cannot be drawn does not stop the others: its place holds the
    ApiError (422) that `make_image` would have raised.
    """
    stream = ImageStream(options, _engine(engine))
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
        done = [r for r in results if r is not None]
        for result in done:
            if isinstance(result, Image):
                metrics.count_rendered(result.options.format)
        metrics.count_cache_hits(len(options) - len(missing))
        return done


def _cost(image: Image) -> int:
    return len(image.content) + len(image.symbol.modules) + 200


def image_etag(options: QrOptions, engine: str) -> str:
    """Everything that changes the bytes, hashed: data, options, engine, renderer version.

    The renderer version is read at call time, so a new renderer can never be
    answered from a cache (or an ETag) filled by the old one.
    """
    key = json.dumps([_renderer.RENDERER_VERSION, engine, options.data, options.stored()], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


__all__ = [
    "STREAM_SLICE_PIXELS",
    "Image",
    "ImageStream",
    "Rendered",
    "Rendering",
    "image_etag",
    "init_app",
    "make_image",
    "render_images",
]
