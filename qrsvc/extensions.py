"""Extensions, created unbound; `create_app` binds them. A leaf module: imports nothing of ours."""

from __future__ import annotations

from flask import g, request
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def _rate_limit_key() -> str:
    # `qrsvc.auth.identify_request` runs first and puts the caller's identity in `g`.
    key: str | None = g.get("rate_limit_key")
    return key or f"ip:{request.remote_addr}"


def _rate_limit() -> str:
    limit: str = g.get("rate_limit") or "600/minute"
    return limit


def _rate_limit_cost() -> int:
    cost: int = g.get("rate_limit_cost", 1)
    return cost


def _request_identifier() -> str:
    # Unrouted requests (404/405) count too, so every /v1 response carries the limit headers.
    return request.endpoint or "unrouted"


def _not_api_request() -> bool:
    return not request.path.startswith("/v1/")


# Objects stay usable after commit: a view reads what its service just stored without a reload.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
limiter = Limiter(
    key_func=_rate_limit_key,
    application_limits=[_rate_limit],
    application_limits_cost=_rate_limit_cost,
    application_limits_exempt_when=_not_api_request,
    strategy="moving-window",
    headers_enabled=True,
    request_identifier=_request_identifier,
)

__all__ = ["Base", "db", "limiter"]
