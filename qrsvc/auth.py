"""Who is calling: the API key from the request, its scopes, and its rate limit.

`identify_request` runs before flask-limiter's check so the limiter counts per
key (with the key's plan) and falls back to the client address for requests
without a valid key. `require_key` then enforces 401/403 in the view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request

from qrsvc import usage
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.keys import find_key, plan_of
from qrsvc.models import ApiKey
from qrsvc.options import Bounds, Spec
from qrsvc.transactions import before_view_commit

F = TypeVar("F", bound=Callable[..., Any])


def credential() -> str | None:
    """The key as sent: `Authorization: Bearer`, `X-API-Key`, or `?api_key=` (GET only)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if "X-API-Key" in request.headers:
        return request.headers["X-API-Key"].strip() or None
    if request.method in ("GET", "HEAD") and "api_key" in request.args:
        return request.args["api_key"].strip() or None
    return None


#: Said when no key came at all; the other messages say what was sent instead.
KEY_REQUIRED = "An API key is required: send Authorization: Bearer <key>."


def missing_key_message() -> str:
    """Why `credential()` found no key in this request, in terms of what the caller sent."""
    header = request.headers.get("Authorization")
    if header is not None:
        if header[:7].lower() == "bearer " or header.strip().lower() == "bearer":
            return "The Authorization header has no key after 'Bearer': use 'Authorization: Bearer <key>'."
        return "The Authorization header lacks the Bearer scheme: use 'Authorization: Bearer <key>'."
    if "X-API-Key" in request.headers:
        return "The X-API-Key header is empty: send the key in it, or use 'Authorization: Bearer <key>'."
    if "api_key" in request.args:
        if request.method not in ("GET", "HEAD"):
            return (
                f"?api_key= is accepted on GET only (a {request.method} keeps its key out of URLs and logs): "
                "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
            )
        return "?api_key= is empty: put the key after it, or send 'Authorization: Bearer <key>'."
    return KEY_REQUIRED


def identify_request() -> None:
    """Resolve the caller once per request and give the limiter its key and limit."""
    if not request.path.startswith("/v1/"):
        return
    plain = credential()
    key = find_key(plain) if plain else None
    g.qrsvc_credential = plain
    g.qrsvc_key = key
    # Read now, for the access log: a rollback expires the key, and reloading it while the
    # response is finished would query a database that may just have gone away.
    g.qrsvc_key_prefix = key.prefix if key is not None else None
    if key is not None and key.revoked_at is None:
        g.rate_limit_key = f"key:{key.prefix}"
        g.rate_limit = plan_of(key).rate_limit
    else:
        g.rate_limit = current_app.config["PUBLIC_RATE_LIMIT"]
        g.rate_limit_cost = _public_cost()


#: Pixels one unit of the public (per-address) limit pays for.
PUBLIC_COST_PIXELS = 1024 * 1024


def _public_cost() -> int:
    """Without a key, a large image costs more of the limit: a unit per 1024 × 1024 px asked for.

    Public image URLs take any `size` up to the maximum; unweighted, 600 renders of 4096 px a
    minute from one address would keep a core busy. Keyed requests are bounded by their plan.
    """
    if "size" not in request.args:
        return 1
    bounds = Bounds(current_app.config["MIN_SIZE"], current_app.config["MAX_SIZE"])
    try:
        # The view's own parser, so every spelling it accepts (`+4096`, `4096 `) costs the same.
        size = Spec(bounds=bounds).parsers()["size"]("size", request.args["size"], True)
    except ApiError:
        return 1  # the view answers 400
    pixels = cast(int, size) ** 2
    return max(1, -(-pixels // PUBLIC_COST_PIXELS))  # rounded up


def authenticate(scope: str, *alternatives: str) -> ApiKey:
    """The calling key if it is valid, live and has `scope` (or one of `alternatives`); else 401/403."""
    challenge = {"WWW-Authenticate": 'Bearer realm="qrsvc"'}
    if "qrsvc_key" not in g:
        identify_request()
    key: ApiKey | None = g.get("qrsvc_key")
    if key is None:
        if g.get("qrsvc_credential"):
            raise ApiError(401, "invalid_api_key", "The API key is not valid.", headers=challenge)
        raise ApiError(401, "missing_api_key", missing_key_message(), headers=challenge)
    if key.revoked_at is not None:
        raise ApiError(403, "key_revoked", "This API key has been revoked.")
    if not any(key.has_scope(s) for s in (scope, *alternatives)):
        wanted = " or ".join(repr(s) for s in (scope, *alternatives))
        raise ApiError(403, "insufficient_scope", f"This API key lacks the {wanted} scope.")
    return key


def require_key(scope: str, *alternatives: str) -> Callable[[F], F]:
    """View decorator: authenticate with `scope` (or any of `alternatives`), then count the request.

    The count joins the view's own transaction when the view commits one (`transactional`
    below this decorator writes it just before its commit: one commit keeps both, or
    neither); otherwise (a read-only view, an error) it is committed here, after the view,
    in a transaction of its own.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            key = authenticate(scope, *alternatives)
            usage.count_request_later(key.id)
            try:
                return view(*args, **kwargs)
            finally:
                _count_request()

        vars(wrapped)[_SCOPES] = (scope, *alternatives)  # functools.wraps carries it to outer decorators
        return cast(F, wrapped)

    return decorator


_SCOPES = "qrsvc_scopes"


def required_scopes(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The scopes `require_key` asks of `view` (any one of them will do); None for a public view."""
    scopes: tuple[str, ...] | None = vars(view).get(_SCOPES)
    return scopes


def known_scopes(app: Flask) -> list[str]:
    """Every scope a view of `app` asks for (core and integrations), and `*` (all of them)."""
    found = {"*"}
    for view in app.view_functions.values():
        found.update(required_scopes(view) or ())
    return sorted(found)


# A `transactional` view's commit carries the request's count: one commit, both kept or neither.
before_view_commit(usage.flush)


def _count_request() -> None:
    """The request counts whatever the view did: in its own small transaction when the view's did not."""
    if usage.has_pending():
        db.session.rollback()  # what the view left uncommitted is not ours to commit
        usage.flush()
        db.session.commit()


def current_key() -> ApiKey:
    """The key `require_key` authenticated for this request."""
    key: ApiKey = g.qrsvc_key
    return key


__all__ = [
    "authenticate",
    "credential",
    "current_key",
    "identify_request",
    "known_scopes",
    "missing_key_message",
    "require_key",
]
