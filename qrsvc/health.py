"""Probes for a platform: `/healthz` (the process answers) and `/readyz` (it can serve: 503 otherwise).

A load balancer sends traffic only to an instance whose `/readyz` says 200: its database
answers and is migrated to every head (core and integrations), and its Redis, when the rate
limits live there, answers. Each check has a short deadline, so a probe never hangs.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify

from qrsvc.db import unapplied_heads

bp = Blueprint("health", __name__)

#: Seconds a probe waits for Redis, and a client is told to wait before asking again.
REDIS_TIMEOUT = 1.0
RETRY_AFTER = 5
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    checks = {"database": _check_database(app)}
    url: str = app.config["RATELIMIT_STORAGE_URL"]
    if urllib.parse.urlsplit(url).scheme in _REDIS_SCHEMES:
        checks["redis"] = _check_redis(url)
    failed = {name: reason for name, reason in checks.items() if reason != "ok"}
    if not failed:
        return jsonify({"status": "ready", "checks": checks})
    response = jsonify(
        {
            "status": "not_ready",
            "reason": "; ".join(f"{name}: {reason}" for name, reason in failed.items()),
            "checks": checks,
        }
    )
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _check_database(app: Flask) -> str:
    try:
        missing = unapplied_heads(app)
    except sa.exc.SQLAlchemyError as exc:
        return f"unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})"
    if missing:
        return f"not migrated to head (missing {', '.join(missing)}): run `qrsvc db upgrade`"
    return "ok"


def _check_redis(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        client.close()
    return "ok"


__all__ = ["bp"]
