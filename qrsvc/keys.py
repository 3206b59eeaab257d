"""API keys: made once, kept as a hash, found by a short public prefix (the caller commits)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from flask import current_app

from qrsvc import clock
from qrsvc.config import Plan
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.models import ApiKey

KEY_TAG = "qrs"
PREFIX_CHARS = 10
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def _random_text(nbytes: int) -> str:
    return base64.b32encode(secrets.token_bytes(nbytes)).decode().rstrip("=").lower()


def hash_secret(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key (`qrs_<prefix>_<secret>`), else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_TAG or len(parts[1]) != PREFIX_CHARS or len(parts[2]) < 32:
        return None
    return parts[1]


def create_key(name: str, plan: str, scopes: Sequence[str], plans: Sequence[str]) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plain text, which is never stored or shown again."""
    if plan not in plans:
        raise ApiError(400, "invalid_parameter", f"unknown plan {plan!r}; plans: {', '.join(plans)}", "plan")
    if not name.strip():
        raise ApiError(400, "invalid_parameter", "a key needs a name", "name")
    prefix = _random_text(10)[:PREFIX_CHARS]
    plain = f"{KEY_TAG}_{prefix}_{_random_text(20)}"
    key = ApiKey(
        prefix=prefix,
        secret_hash=hash_secret(plain),
        name=name.strip(),
        plan=plan,
        scopes=sorted(set(scopes)) or ["*"],
        created_at=clock.now(),
    )
    db.session.add(key)
    db.session.flush()
    return key, plain


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(prefix: str) -> ApiKey:
    """Revoke by prefix; a revoked key keeps its records and gets 403 from then on."""
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        raise ApiError(404, "not_found", f"no key with prefix {prefix!r}")
    db.session.execute(
        sa.update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    db.session.refresh(key)
    forget_keys()  # this process sees the revocation at once; the others within KEY_CACHE_SECONDS
    return cast(ApiKey, key)


def plan_of(key: ApiKey) -> Plan:
    """The key's plan; a key whose plan was removed from configuration falls back to the default plan."""
    plans: dict[str, Plan] = current_app.config["PLANS"]
    return plans.get(key.plan) or plans[current_app.config["DEFAULT_PLAN"]]


_BY_PREFIX = sa.select(ApiKey).where(ApiKey.prefix == sa.bindparam("prefix"))
_COLUMNS = tuple(column.key for column in ApiKey.__table__.columns)
#: Keys this process found lately: SHA-256 of the secret → (when looked up, the row's values).
_found: dict[str, tuple[float, tuple[object, ...]]] = {}
_FOUND_MAX = 10_000


def find_key(plain: str) -> ApiKey | None:
    """The key whose secret is `plain` (revoked or not), compared in constant time.

    A key found is trusted for `KEY_CACHE_SECONDS` (monotonic) before the database is asked
    again, so a revocation made elsewhere (`qrsvc keys revoke`, another worker) takes effect
    within that bound; `revoke_key` in this process takes effect at once. Each call returns a
    fresh transient `ApiKey`, never an instance another request or session holds.
    """
    hashed = hash_secret(plain)
    ttl: float = current_app.config["KEY_CACHE_SECONDS"]
    if ttl > 0:
        cached = _found.get(hashed)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return ApiKey(**dict(zip(_COLUMNS, cached[1], strict=True)))
    looked_up = time.monotonic()  # before the query: trust never outlasts the bound by its delay
    prefix = split_key(plain)
    key = None
    if prefix is not None:
        key = db.session.scalar(_BY_PREFIX, {"prefix": prefix})
    expected = key.secret_hash if key is not None else _DUMMY_HASH
    if hmac.compare_digest(expected, hashed) and key is not None:
        if ttl > 0:
            if len(_found) >= _FOUND_MAX:
                _found.clear()
            _found[hashed] = (looked_up, tuple(getattr(key, name) for name in _COLUMNS))
        return cast(ApiKey, key)
    return None


def forget_keys() -> None:
    """Look every key up again on its next use (after a change to keys in this process)."""
    _found.clear()


__all__ = [
    "create_key",
    "find_key",
    "forget_keys",
    "hash_secret",
    "list_keys",
    "plan_of",
    "revoke_key",
    "split_key",
]
