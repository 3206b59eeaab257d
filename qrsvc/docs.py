"""The API described: `/v1/openapi.json` (public) and the reference page `/docs` that reads it."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template

from qrsvc.openapi import describe
from qrsvc.pages import secure_page

bp = Blueprint("docs", __name__)

#: Swagger UI sets inline styles and draws its icons from data: URIs; scripts stay our own files.
_POLICY = "; ".join(
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
    return secure_page(Response(render_template("pages/docs.html"), mimetype="text/html"), _POLICY)


__all__ = ["bp"]
