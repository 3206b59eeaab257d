"""Pages for people: the generator at `/` with the keyless preview route it draws with, and `/docs`.

The preview renders through the one options parser and the one renderer, stores
nothing, and lives under `/v1/` so the public per-address limit (with its
size-weighted cost) counts it like any other keyless request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from qrsvc import codes
from qrsvc.fields import boolean
from qrsvc.openapi import describe
from qrsvc.options import Bounds, Spec, parse_options
from qrsvc.qr import CONTENT_TYPES, ERROR_CORRECTION_LEVELS, FORMATS, contrast_ratio

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/static/qrsvc")

#: Formats a browser can show in an <img>; a PDF is previewed as a PNG.
SHOWN_FORMATS = ("png", "svg", "jpeg", "webp")

#: Extensions a download is saved with, per format.
EXTENSIONS = {"png": "png", "svg": "svg", "jpeg": "jpg", "webp": "webp", "pdf": "pdf"}


def content_security_policy(*, images: str = "", media: str = "") -> str:
    """No inline script, nothing from another origin: the pages handle API keys."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob: data:{images}",
            f"media-src 'self' blob: mediastream:{media}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def secure_page(response: Response, policy: str) -> Response:
    """Headers every HTML page of ours carries."""
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _public_origin() -> str:
    """The configured public origin, when it is not this one: stored codes' images come from there."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return ""
    parts = urlsplit(base)
    return f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@bp.get("/")
def generator() -> Response:
    config = current_app.config
    page = render_template(
        "pages/generator.html",
        formats=FORMATS,
        shown_formats=SHOWN_FORMATS,
        extensions=EXTENSIONS,
        levels=ERROR_CORRECTION_LEVELS,
        min_size=config["MIN_SIZE"],
        max_size=config["MAX_SIZE"],
    )
    response = Response(page, mimetype="text/html")
    return secure_page(response, content_security_policy(images=_public_origin()))


def preview_spec() -> Spec:
    """The QR options, plus `download` (ask the browser to save the image)."""
    bounds = Bounds(current_app.config["MIN_SIZE"], current_app.config["MAX_SIZE"])
    return Spec(bounds=bounds, extra={"download": boolean()})


@bp.get("/v1/qr/preview")
def preview() -> Response:
    """A code drawn and returned, never stored: the generator page's live preview and keyless download.

    Low contrast and the other impossible requests are the same 422s as everywhere;
    `X-QR-Contrast` gives the ratio of an accepted one, for the page's verdict.
    """
    options, extras = parse_options(request.args.to_dict(), preview_spec(), from_query=True)
    image = codes.make_image(options, current_app.config["ENGINE"])
    response = Response(image.content, mimetype=CONTENT_TYPES[options.format])
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-QR-Version"] = str(image.symbol.version)
    response.headers["X-QR-Contrast"] = f"{contrast_ratio(options.foreground, options.background):.2f}"
    if extras.get("download"):
        name = f"qr-code.{EXTENSIONS[options.format]}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


#: Swagger UI sets inline styles and draws its icons from data: URIs; scripts stay our own files.
_DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@bp.get("/v1/openapi.json")
def description() -> Response:
    return jsonify(describe(current_app))


@bp.get("/docs")
def reference() -> Response:
    return secure_page(Response(render_template("pages/docs.html"), mimetype="text/html"), _DOCS_POLICY)


__all__ = ["EXTENSIONS", "SHOWN_FORMATS", "bp", "content_security_policy", "secure_page"]
