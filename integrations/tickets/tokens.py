"""Ticket tokens: signing keys (EdDSA or ES256), JWT issue and verification, the JWKS.

Private keys live in the database (or in the key file named by
QRSVC_TICKETS_SIGNING_KEY_FILE) and are never logged. A key's id (`kid`) is its
RFC 7638 thumbprint, so any verifier can recompute it from the published JWK.
Verification takes a fixed algorithm list: HS* and `none` are never accepted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import current_app
from jwt.types import Options

from qrsvc.extensions import db
from qrsvc.toolkit import insert, now

from .models import ScanResult, SigningKey

#: The algorithms we sign with; verification never accepts anything outside this list.
ALGORITHMS = ("EdDSA", "ES256")
TOKEN_TYPE = "qrsvc-ticket+jwt"  # noqa: S105 (a JWT "typ", not a secret)
_REQUIRED_CLAIMS = ["exp", "nbf", "iat"]

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class TokenError(Exception):
    """A token that must not admit; `result` is the scan result it earns."""

    def __init__(self, result: ScanResult, message: str) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified ticket token says."""

    ticket_id: str
    event_id: str
    seat: str | None
    jti: str
    kid: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_jwk(private_key: PrivateKey) -> dict[str, str]:
    """The public half as a JWK with only the RFC 7638 required members."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    numbers = private_key.public_key().public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _alg_of(private_key: PrivateKey) -> str:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == "secp256r1":
        return "ES256"
    raise ValueError("signing keys must be Ed25519 or EC P-256")


def _new_private_key(alg: str) -> PrivateKey:
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


def _pem(private_key: PrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _load_pem(pem: str | bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("signing keys must be Ed25519 or EC P-256")
    _alg_of(key)
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """The current private key with its id and algorithm, ready to sign many tokens."""

    kid: str
    alg: str
    key: PrivateKey


def _next_generation() -> int:
    highest = db.session.scalar(sa.select(sa.func.max(SigningKey.generation)))
    return (highest or 0) + 1


def _insert_key(private_key: PrivateKey, *, store_private: bool, generation: int) -> bool:
    """Publish a key row unless its generation (or kid) is taken; True when this call added it.

    Publishing is a unit of work of its own, on its own connection, never the caller's
    transaction: a key is committed before any token it signs can leave, and racing
    workers agree on one key through the unique generation.
    """
    jwk = public_jwk(private_key)
    statement = (
        insert(SigningKey)
        .values(
            kid=thumbprint(jwk),
            generation=generation,
            alg=_alg_of(private_key),
            private_pem=_pem(private_key) if store_private else None,
            public_jwk=jwk,
            created_at=now(),
        )
        .on_conflict_do_nothing()
    )
    with db.engine.begin() as connection:
        result = connection.execute(statement)
    return bool(result.rowcount)


def rotate(alg: str | None = None) -> SigningKey:
    """Make a new current key; older keys stay published and keep verifying until retired."""
    alg = alg or current_app.config["TICKETS_SIGNING_ALG"]
    private_key = _new_private_key(alg)
    while not _insert_key(private_key, store_private=True, generation=_next_generation()):
        pass  # another process took that generation in the meantime: take the next one
    key: SigningKey = db.session.get_one(SigningKey, thumbprint(public_jwk(private_key)))
    return key


def retire(kid: str) -> SigningKey:
    """Stop publishing and accepting `kid` (once the caller commits); its tokens no longer verify."""
    db.session.execute(
        sa.update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.retired_at.is_(None))
        .values(retired_at=now())
    )
    key: SigningKey | None = db.session.get(SigningKey, kid)
    if key is None:
        raise LookupError(f"no signing key {kid!r}")
    return key


def list_keys() -> list[SigningKey]:
    return list(db.session.scalars(sa.select(SigningKey).order_by(SigningKey.generation)))


def _file_signer(path: str) -> Signer:
    """The key from the configured key file; its public half is published like any other."""
    cache: dict[str, Signer] = current_app.extensions.setdefault("tickets_key_file", {})
    signer = cache.get(path)
    if signer is None:
        private_key = _load_pem(Path(path).read_bytes())
        signer = Signer(thumbprint(public_jwk(private_key)), _alg_of(private_key), private_key)
        if db.session.get(SigningKey, signer.kid) is None:
            while not _insert_key(private_key, store_private=False, generation=_next_generation()):
                if db.session.get(SigningKey, signer.kid) is not None:
                    break
        cache[path] = signer
    return signer


def current_signer() -> Signer:
    """The key new tickets are signed with; the first one is made on first use (race-safe)."""
    key_file = current_app.config["TICKETS_SIGNING_KEY_FILE"]
    if key_file:
        return _file_signer(key_file)
    alg = current_app.config["TICKETS_SIGNING_ALG"]
    query = (
        sa.select(SigningKey)
        .where(SigningKey.retired_at.is_(None), SigningKey.alg == alg, SigningKey.private_pem.is_not(None))
        .order_by(SigningKey.generation.desc())
        .limit(1)
    )
    # Read the next generation before looking for a key: every racer that finds none then
    # tries the same generation, and the unique constraint keeps exactly one of them. (Read
    # after, a racer that committed in between would push us to the generation above.)
    generation = _next_generation()
    key = db.session.scalar(query)
    if key is None:
        _insert_key(_new_private_key(alg), store_private=True, generation=generation)
        key = db.session.scalar(query)
        if key is None:  # a racer inserted a key of another algorithm at that generation
            key = rotate(alg)
    return Signer(key.kid, key.alg, _load_pem(key.private_pem or ""))


def issue_token(
    signer: Signer,
    *,
    ticket_id: str,
    event_id: str,
    seat: str | None,
    not_before: datetime,
    expires: datetime,
) -> tuple[str, str]:
    """A signed ticket token and its `jti`. Claim names are short to keep the QR small."""
    jti = _b64(secrets.token_bytes(9))
    claims: dict[str, Any] = {
        "tid": ticket_id,
        "eid": event_id,
        "iat": int(now().timestamp()),
        "nbf": int(not_before.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti,
    }
    if seat:
        claims["seat"] = seat
    token = jwt.encode(
        claims, signer.key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": TOKEN_TYPE}
    )
    return token, jti


def jwks() -> dict[str, list[dict[str, str]]]:
    """Every non-retired public key, as a JWK Set."""
    if not current_app.config["TICKETS_SIGNING_KEY_FILE"]:
        current_signer()  # publish a key before the first ticket exists
    keys = db.session.scalars(
        sa.select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.generation.desc())
    )
    return {"keys": [{**key.public_jwk, "kid": key.kid, "alg": key.alg, "use": "sig"} for key in keys]}


def _verification_key(kid: str) -> tuple[jwt.PyJWK, str]:
    key = db.session.scalar(
        sa.select(SigningKey).where(SigningKey.kid == kid, SigningKey.retired_at.is_(None))
    )
    if key is None:
        raise TokenError(ScanResult.INVALID_SIGNATURE, "the token is signed with an unknown or retired key")
    return jwt.PyJWK({**key.public_jwk, "kid": key.kid}, algorithm=key.alg), key.alg


def verify_token(token: str, *, at: datetime | None = None) -> Claims:
    """Check signature, type and times; raise TokenError with the scan result otherwise.

    `at` checks the times as of an earlier moment (offline scans are judged when they
    happened); the default is now, with QRSVC_TICKETS_CLOCK_LEEWAY seconds of leeway.
    An `at` before the token was issued (`iat`) or later than now plus
    QRSVC_TICKETS_OFFLINE_CLOCK_SKEW cannot be a real scan: `invalid_time`.
    """
    allowed = [alg for alg in current_app.config["TICKETS_ALGORITHMS"] if alg in ALGORITHMS]
    leeway = current_app.config["TICKETS_CLOCK_LEEWAY"]
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError(ScanResult.MALFORMED, "the token is not a JWT") from None
    if header.get("alg") not in allowed:
        raise TokenError(
            ScanResult.INVALID_SIGNATURE, f"tokens signed with {header.get('alg')!r} are not accepted"
        )
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenError(ScanResult.INVALID_SIGNATURE, "the token names no signing key")
    if header.get("typ") != TOKEN_TYPE:
        raise TokenError(ScanResult.MALFORMED, "the token is not a ticket token")
    key, alg = _verification_key(kid)
    options: Options = {"require": _REQUIRED_CLAIMS}
    if at is not None:
        options = {"require": _REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False, "verify_iat": False}
    try:
        claims = jwt.decode(token, key, algorithms=[alg], options=options, leeway=leeway)
    except jwt.ExpiredSignatureError:
        raise TokenError(ScanResult.EXPIRED, "the ticket has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError(ScanResult.NOT_YET_VALID, "the ticket is not valid yet") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise TokenError(ScanResult.INVALID_SIGNATURE, "the token's signature does not verify") from None
    except jwt.InvalidTokenError:
        raise TokenError(ScanResult.MALFORMED, "the token is not a well-formed ticket token") from None
    if at is not None:
        moment = at.timestamp()
        skew = current_app.config["TICKETS_OFFLINE_CLOCK_SKEW"]
        if moment > now().timestamp() + skew:
            raise TokenError(ScanResult.INVALID_TIME, "scanned_at is in the future")
        if moment < _number(claims, "iat") - leeway:
            raise TokenError(ScanResult.INVALID_TIME, "scanned_at is before the ticket was issued")
        if _number(claims, "exp") + leeway <= moment:
            raise TokenError(ScanResult.EXPIRED, "the ticket had expired when it was scanned")
        if _number(claims, "nbf") - leeway > moment:
            raise TokenError(ScanResult.NOT_YET_VALID, "the ticket was not valid yet when it was scanned")
    ticket_id, event_id, jti = claims.get("tid"), claims.get("eid"), claims.get("jti")
    seat = claims.get("seat")
    if not (isinstance(ticket_id, str) and isinstance(event_id, str) and isinstance(jti, str)):
        raise TokenError(ScanResult.MALFORMED, "the token lacks ticket claims")
    return Claims(ticket_id, event_id, seat if isinstance(seat, str) else None, jti, kid)


def ticket_id_of(token: str) -> str | None:
    """The ticket id a token claims, unverified: only for ordering work, never for a decision."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    ticket_id = claims.get("tid")
    return ticket_id if isinstance(ticket_id, str) else None


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TokenError(ScanResult.MALFORMED, f"the {name} claim is not a number")
    return float(value)


__all__ = [
    "ALGORITHMS",
    "TOKEN_TYPE",
    "Claims",
    "Signer",
    "TokenError",
    "current_signer",
    "issue_token",
    "jwks",
    "list_keys",
    "public_jwk",
    "retire",
    "rotate",
    "thumbprint",
    "ticket_id_of",
    "verify_token",
]
