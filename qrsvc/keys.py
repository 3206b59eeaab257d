"""API keys: made once, kept as a hash, found by a short public prefix (the caller commits)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
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
    return cast(ApiKey, key)


def plan_of(key: ApiKey) -> Plan:
    """The key's plan; a key whose plan was removed from configuration falls back to the default plan."""
    plans: dict[str, Plan] = current_app.config["PLANS"]
    return plans.get(key.plan) or plans[current_app.config["DEFAULT_PLAN"]]


_BY_PREFIX = sa.select(ApiKey).where(ApiKey.prefix == sa.bindparam("prefix"))


def find_key(plain: str) -> ApiKey | None:
    """The key whose secret is `plain` (revoked or not), compared in constant time."""
    prefix = split_key(plain)
    key = None
    if prefix is not None:
        key = db.session.scalar(_BY_PREFIX, {"prefix": prefix})
    expected = key.secret_hash if key is not None else _DUMMY_HASH
    if hmac.compare_digest(expected, hash_secret(plain)) and key is not None:
        return cast(ApiKey, key)
    return None


__all__ = ["create_key", "find_key", "hash_secret", "list_keys", "plan_of", "revoke_key", "split_key"]
