"""Where things are: absolute URLs on the public origin, a code's image URL, and `data:` URIs."""

from __future__ import annotations

import base64

from flask import current_app, request

from qrsvc.models import QrCode


def public_url(path: str) -> str:
    """An absolute URL for `path` on the configured public origin (or the request's own)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    return base.rstrip("/") + path


def images_base() -> str:
    """The prefix of every image URL: work it out once for a list, then pass it as `base`."""
    return public_url("/v1/qr/")


def image_url(code: QrCode, fmt: str | None = None, *, base: str | None = None) -> str:
    """The code's public image URL (no key needed: the id is unguessable), in its own format or `fmt`."""
    return f"{base or images_base()}{code.id}.{fmt or code.options['format']}"


def data_uri(data: bytes, mime: str) -> str:
    """`data:<mime>;base64,…`: an image inline in HTML, for a browser or WeasyPrint."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


__all__ = ["data_uri", "image_url", "images_base", "public_url"]
