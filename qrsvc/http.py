"""Request/response plumbing shared by every blueprint: JSON bodies, absolute URLs, request ids."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import BadRequest

from qrsvc.errors import ApiError

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_SECRET_IN_QUERY = re.compile(r"(api_key=)[^&\s\"]+", re.IGNORECASE)


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the 415/400 of DESIGN.md §4."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "The body must be JSON (Content-Type: application/json)."
        )
    try:
        body = request.get_json()
    except BadRequest:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    except RecursionError:
        # The decoder recurses per level: `[[[[…` a thousand deep would otherwise be a 500.
        raise ApiError(400, "invalid_json", "The body is JSON nested too deeply to read.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The JSON body must be an object.")
    return body


def public_url(path: str) -> str:
    """An absolute URL for `path` on the configured public origin (or the request's own)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    return base.rstrip("/") + path


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["image/*", "application/json"], default="image/*")
    return best == "application/json" and request.accept_mimetypes["application/json"] > 0


def wants_zip() -> bool:
    """`Accept: application/zip` preferred over JSON (the batch endpoint's ZIP form)."""
    best = request.accept_mimetypes.best_match(["application/json", "application/zip"])
    return best == "application/zip"


def redact(text: str) -> str:
    """Remove API keys given in query strings from text bound for a log."""
    return _SECRET_IN_QUERY.sub(r"\1[redacted]", text)


class _RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def init_app(app: Flask) -> None:
    """Request ids on every response and in every log line; keys never in a log."""

    @app.before_request
    def _assign_request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _add_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        return response

    root = logging.getLogger()
    if not any(getattr(h, "qrsvc", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.qrsvc = True  # type: ignore[attr-defined]
        handler.addFilter(_RequestContextFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
        root.addHandler(handler)
        root.setLevel(app.config["LOG_LEVEL"])


__all__ = ["public_url", "read_json_object", "redact", "wants_json", "wants_zip"]
