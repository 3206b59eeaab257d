"""Probes for a platform: `/healthz` (the process answers) and `/readyz` (it can serve: 503 otherwise).

A load balancer sends traffic only to an instance whose `/readyz` says 200: its database
answers and is migrated to every head (core and integrations), and its Redis, when the rate
limits live there, answers. Each check has a short deadline, so a probe never hangs: a
server that accepts the connection and then says nothing (hung, or behind a half-dead
network) is "unreachable" after `TIMEOUT` seconds, not after the kernel gives up on TCP.
PostgreSQL is asked on a fresh connection of its own (`connect_timeout`, and a
`statement_timeout` for a database that answers but is stuck), never on the request pool's,
whose pooled connections have no deadline.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify

from qrsvc.db import unapplied_heads

bp = Blueprint("health", __name__)

#: Seconds each check may take (PostgreSQL's connect_timeout is whole seconds).
TIMEOUT = 2
#: Seconds a client is told to wait before asking again.
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


def _probe_engine(app: Flask) -> sa.Engine | None:
    """PostgreSQL: an engine of the probe's own, one fresh connection a probe, each with a deadline."""
    url = sa.engine.make_url(app.config["DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        return None  # SQLite is a local file: nothing to wait for on a network
    engine: sa.Engine | None = app.extensions.get("qrsvc_probe_engine")
    if engine is None:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": TIMEOUT})
        sa.event.listen(engine, "connect", _statement_timeout)
        engine = app.extensions["qrsvc_probe_engine"] = engine
    return engine


def _statement_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET statement_timeout = {TIMEOUT * 1000}")
    cursor.close()
    dbapi_connection.commit()


def _check_database(app: Flask) -> str:
    try:
        missing = unapplied_heads(app, _probe_engine(app))
    except sa.exc.SQLAlchemyError as exc:
        return f"unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})"
    if missing:
        return f"not migrated to head (missing {', '.join(missing)}): run `qrsvc db upgrade`"
    return "ok"


def _check_redis(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        client.close()
    return "ok"


__all__ = ["bp"]
