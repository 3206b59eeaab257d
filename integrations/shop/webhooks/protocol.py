"""The webhook protocol both platforms share: verify the signature, de-duplicate the delivery,
keep its receipt, and hand the payload to the platform's mapper.

Both platforms sign the raw body with HMAC-SHA256 and send it base64-encoded; the
signature is the credential (no API key). Records belong to the key configured in
QRSVC_SHOP_OWNER_KEY.

A signature proves who wrote a body, not when: a captured delivery stays valid
forever. So a delivery's receipt (its id and the SHA-256 of its body, both unique)
is recorded in the same transaction as the record it made — the same body under a
new delivery id is a duplicate — and a product delivery is applied only when the
platform's own last-modified time in it (Shopify `updated_at`, WooCommerce
`date_modified_gmt`) is after the one stored, so an old body cannot roll a product
back. An ignored delivery still answers 200 (the platform stops retrying) and
leaves a receipt saying `ignored_stale`. Orders are insert-only: a later delivery
of an existing order changes nothing (`exists`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import current_app

from integrations.shop.models import WebhookDelivery
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError, insert, now, savepoint

__all__ = [
    "TOPICS",
    "DeliveryStatus",
    "Mapper",
    "Outcome",
    "Platform",
    "receive",
    "shop_owner",
    "sign",
    "verify",
]

#: The topics every platform maps (`/v1/shop/webhooks/<platform>/<topic>`).
TOPICS = ("orders", "products")


class DeliveryStatus(StrEnum):
    """What a delivery did, as the response's `status` and the receipt's `outcome` say."""

    CREATED = "created"  # an order was made
    SAVED = "saved"  # products were created or updated
    EXISTS = "exists"  # the order was already there; nothing changed
    DUPLICATE_DELIVERY = "duplicate_delivery"  # this delivery id or this exact body was seen before
    IGNORED_STALE = "ignored_stale"  # not newer than what is stored; nothing changed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery did and the records it made or changed."""

    status: DeliveryStatus
    records: tuple[str, ...] = ()


#: A platform's mapping of one topic: stores what the payload describes (flushes, never commits).
Mapper = Callable[[ApiKey, Mapping[str, Any]], Outcome]


@dataclass(frozen=True, slots=True)
class Platform:
    """A store platform: where its webhook headers are, the setting with its secret, its mappers."""

    name: str
    signing_setting: str
    signature_header: str
    delivery_header: str
    topic_header: str
    mappers: Mapping[str, Mapper]


def sign(secret: str, body: bytes) -> str:
    """The signature both platforms send: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(platform: Platform, body: bytes, headers: Mapping[str, str]) -> None:
    """401 unless the header carries the body's signature under the configured secret.

    `headers` has lower-case names.
    """
    secret = current_app.config[platform.signing_setting]
    given = headers.get(platform.signature_header.lower(), "")
    if not secret:
        raise ApiError(
            401, "webhook_not_configured", f"QRSVC_{platform.signing_setting} is not set on this server"
        )
    if not given:
        raise ApiError(401, "missing_signature", f"the {platform.signature_header} header is required")
    if not hmac.compare_digest(sign(secret, body).encode(), given.strip().encode()):
        raise ApiError(401, "invalid_signature", f"{platform.signature_header} does not match the body")


def shop_owner() -> ApiKey:
    prefix = current_app.config["SHOP_OWNER_KEY"]
    key: ApiKey | None = None
    if prefix:
        key = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)))
    if key is None:
        raise ApiError(
            503,
            "shop_owner_not_configured",
            "QRSVC_SHOP_OWNER_KEY must name the prefix of a live API key to own webhook records",
        )
    return key


def receive(platform: Platform, topic: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
    """Verify, de-duplicate and store one delivery (the view has already checked `topic`).

    Order of checks: signature (401), delivery id (400), JSON (400), owner (503), replay of
    the delivery id or of the body (200 `duplicate_delivery`), payload mapping (422), age
    (200 `ignored_stale`). Everything a delivery stores goes into the caller's transaction
    with its receipt, or nothing does (a savepoint): a product with a bad third variant
    leaves no first variant behind, and the corrected retry under the same delivery id is
    not taken for a replay. The request commits.
    """
    headers = {name.lower(): value for name, value in headers.items()}  # HTTP names are case-blind
    verify(platform, body, headers)
    delivery_id = headers.get(platform.delivery_header.lower(), "").strip()
    if not delivery_id or len(delivery_id) > 128:
        raise ApiError(
            400,
            "missing_header",
            f"the {platform.delivery_header} header is required",
            platform.delivery_header,
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", "The JSON body must be an object.")
    owner = shop_owner()
    # All or nothing, the receipt too: a payload that fails to map may be fixed and sent again.
    with savepoint():
        recorded = db.session.execute(
            insert(WebhookDelivery)
            .values(
                platform=platform.name,
                delivery_id=delivery_id,
                topic=headers.get(platform.topic_header.lower(), topic)[:64],
                received_at=now(),
                body_sha256=hashlib.sha256(body).hexdigest(),
            )
            # Either unique constraint: the same delivery id, or the same signed body under a new one.
            .on_conflict_do_nothing()
            .returning(WebhookDelivery.id)
        ).scalar_one_or_none()
        if recorded is None:  # the delivery is already recorded: a replay, and nothing was written
            return Outcome(DeliveryStatus.DUPLICATE_DELIVERY)
        outcome = platform.mappers[topic](owner, payload)
        db.session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id == recorded)
            .values(outcome=outcome.status.value, record=outcome.records[0][:64] if outcome.records else None)
        )
    return outcome
