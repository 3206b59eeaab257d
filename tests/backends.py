"""Which databases the suite runs against: PostgreSQL and Redis are found without being told.

`make test` on a machine where PostgreSQL or Redis answer at their usual local addresses
uses them, as CI does; a variable set to a URL chooses another server, and set to the
empty string turns that backend off. One line in the report header says what ran and why.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa

DATABASE_VARIABLE = "QRSVC_TEST_DATABASE_URL"
REDIS_VARIABLE = "QRSVC_TEST_REDIS_URL"
#: Tried in order when QRSVC_TEST_DATABASE_URL is not set.
LOCAL_POSTGRES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
)
LOCAL_REDIS = "redis://127.0.0.1:6379/15"
PROBE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    url: str | None
    why: str

    def describe(self) -> str:
        return f"{self.name} ({self.why})" if self.url else f"{self.name} skipped ({self.why})"


def _postgres_answers(url: str) -> str | None:
    """None when `url` accepts a connection and `CREATE SCHEMA`, else the reason in a few words."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": int(PROBE_SECONDS)})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None
    except sa.exc.SQLAlchemyError as error:
        return str(error.orig or error).strip().splitlines()[0][:120]
    finally:
        engine.dispose()


def _redis_answers(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_SECONDS, socket_timeout=PROBE_SECONDS)
    try:
        client.ping()
        return None
    except (redis.RedisError, OSError) as error:
        return str(error)[:120]
    finally:
        client.close()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def find_postgres() -> Backend:
    if DATABASE_VARIABLE in os.environ:
        url = os.environ[DATABASE_VARIABLE]
        return Backend(
            "PostgreSQL", url or None, f"{DATABASE_VARIABLE} set" if url else f"{DATABASE_VARIABLE} is empty"
        )
    if not _port_open("127.0.0.1", 5432):
        return Backend(
            "PostgreSQL", None, f"nothing answers on 127.0.0.1:5432 and {DATABASE_VARIABLE} is not set"
        )
    reasons = []
    for url in LOCAL_POSTGRES:
        reason = _postgres_answers(url)
        if reason is None:
            return Backend("PostgreSQL", url, f"found at {url.split('@', 1)[1]}")
        reasons.append(reason)
    return Backend("PostgreSQL", None, f"127.0.0.1:5432 refused us: {reasons[-1]}")


def find_redis() -> Backend:
    if REDIS_VARIABLE in os.environ:
        url = os.environ[REDIS_VARIABLE]
        return Backend("Redis", url or None, f"{REDIS_VARIABLE} set" if url else f"{REDIS_VARIABLE} is empty")
    if not _port_open("127.0.0.1", 6379):
        return Backend("Redis", None, f"nothing answers on 127.0.0.1:6379 and {REDIS_VARIABLE} is not set")
    reason = _redis_answers(LOCAL_REDIS)
    if reason is None:
        return Backend("Redis", LOCAL_REDIS, f"found at {LOCAL_REDIS.split('//', 1)[1]}")
    return Backend("Redis", None, f"127.0.0.1:6379 refused us: {reason}")


def choose() -> tuple[Backend, ...]:
    """Probe once and export the chosen URLs, so fixtures and server subprocesses see them."""
    chosen = (find_postgres(), find_redis())
    for backend, variable in zip(chosen, (DATABASE_VARIABLE, REDIS_VARIABLE), strict=True):
        os.environ[variable] = backend.url or ""
    return chosen


def summary(chosen: tuple[Backend, ...]) -> str:
    return "backends: SQLite; " + "; ".join(backend.describe() for backend in chosen)
