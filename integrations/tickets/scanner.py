"""The gate scanner page at `/scan`, and the events a gate may pick from (`GET /v1/events`).

The page is static HTML and script; everything it shows comes from the API
(`GET /v1/events`, `POST /v1/tickets/scan`), called with the key the operator pasted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from flask import Blueprint, Response, current_app, jsonify, render_template

from qrsvc.toolkit import current_key, integer, parse_query, require_key

from .gates import MANAGE_SCOPE, SCAN_SCOPE, scannable_events
from .shapes import event_json

bp = Blueprint("tickets_scanner", __name__, static_folder="static", static_url_path="/static/tickets")

#: No inline script and nothing from elsewhere: the page holds a key that can burn tickets.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def _page_size_max() -> int:
    return int(current_app.config["PAGE_SIZE_MAX"])


@dataclass(frozen=True, slots=True, kw_only=True)
class EventListQuery:
    limit: Annotated[int, integer(1, _page_size_max)] = 50


@bp.get("/scan")
def scan_page() -> Response:
    response = Response(render_template("tickets/scan.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Permissions-Policy"] = "camera=(self)"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/v1/events")
@require_key(SCAN_SCOPE, MANAGE_SCOPE)
def list_events() -> Response:
    query = parse_query(EventListQuery)
    events = scannable_events(current_key(), query.limit)
    return jsonify({"events": [event_json(event) for event in events]})


__all__ = ["bp", "scannable_events"]
