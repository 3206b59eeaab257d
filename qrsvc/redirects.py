"""`/r/<CODE>`: the public side of dynamic codes. A person is looking, so failures are small pages.

A found, live code answers 302 to its target and records the scan (GET only: a HEAD
is a link checker, not a person); unknown codes get a 404 page, disabled or expired
ones a 410 page. Nothing here is cached, by us or by the browser (`no-store`): a
retargeted code sends its next visitor to the new target. Each address may follow
QRSVC_REDIRECT_RATE_LIMIT redirects (known codes or not, so guessing codes is slow too);
beyond it a 429 page says when to try again (`Retry-After`). The limiter counts under a
salted hash of the address (`scans.address_key`), as the scan statistics do: its storage
never holds the address itself.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request
from flask_limiter import RateLimitExceeded
from werkzeug.urls import iri_to_uri

from qrsvc import clock, dynamic, scans
from qrsvc.extensions import limiter

bp = Blueprint("redirects", __name__)

_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(template: str, status: int) -> Response:
    response = Response(render_template(template), status=status, mimetype="text/html")
    response.headers.update(_HEADERS)
    return response


def _limit() -> str:
    limit: str = current_app.config["REDIRECT_RATE_LIMIT"]
    return limit


def _visitor() -> str:
    return scans.address_key(request.remote_addr)


@bp.errorhandler(RateLimitExceeded)
def too_many(_error: RateLimitExceeded) -> Response:
    """A person is looking: a page, not JSON (the limiter adds `Retry-After`)."""
    return _page("redirects/too_many.html", 429)


@bp.get("/r/<short_code>")
@bp.get("/R/<short_code>")
@limiter.limit(_limit, key_func=_visitor)
def follow(short_code: str) -> Response:
    """Send the visitor on to the code's target and count the scan."""
    normalised = dynamic.normalise_short_code(short_code)
    destination = dynamic.resolve(normalised) if normalised else None
    if destination is None:
        return _page("redirects/not_found.html", 404)
    if destination.gone(clock.now()):
        return _page("redirects/gone.html", 410)
    if request.method == "GET":
        header = current_app.config["TRUSTED_COUNTRY_HEADER"]
        scans.record(
            destination.code_id,
            request.remote_addr,
            request.headers.get("User-Agent"),
            request.headers.get("Referer"),
            request.headers.get(header) if header else None,
        )
    target = destination.target if destination.target.isascii() else iri_to_uri(destination.target)
    response = Response(status=302)
    response.headers["Location"] = target
    response.headers.update(_HEADERS)
    return response


__all__ = ["bp"]
