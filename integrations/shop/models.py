"""The shop's tables: products and orders with their stored codes, the email outbox, webhook receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qrsvc.extensions import db
from qrsvc.models import QrCode, UTCDateTime


class Product(db.Model):  # type: ignore[name-defined,misc]
    """A catalogue entry; `qr_code` is the stored code (EC level H) that encodes its `url`."""

    __tablename__ = "shop_products"
    __table_args__ = (sa.UniqueConstraint("owner_id", "sku", name="uq_shop_products_owner_sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str] = mapped_column(sa.Text)
    #: Decimal text ("12.50"); kept as text so every backend returns exactly what was stored.
    price: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    currency: Mapped[str | None] = mapped_column(sa.String(3), default=None)
    qr_code: Mapped[str | None] = mapped_column(sa.ForeignKey("qr_codes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The store platform's own last-modified time of the delivery applied last (None: never
    #: delivered); a delivery that is not newer is ignored, so a replay cannot roll a product back.
    platform_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    #: The stored code itself (loaded with the product: every JSON shape shows its image URL).
    code: Mapped[QrCode | None] = relationship(lazy="joined", viewonly=True)


class Order(db.Model):  # type: ignore[name-defined,misc]
    """An order; `qr_code` (EC level M) encodes the tracking URL, or the order number without one."""

    __tablename__ = "shop_orders"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "order_number", name="uq_shop_orders_owner_number"),
        sa.Index("ix_shop_orders_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    order_number: Mapped[str] = mapped_column(sa.String(64))
    customer_name: Mapped[str] = mapped_column(sa.String(200))
    customer_email: Mapped[str] = mapped_column(sa.String(320))
    currency: Mapped[str | None] = mapped_column(sa.String(3), default=None)
    tracking_url: Mapped[str | None] = mapped_column(sa.Text, default=None)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    source: Mapped[str] = mapped_column(sa.String(16), default="api")
    qr_code: Mapped[str | None] = mapped_column(sa.ForeignKey("qr_codes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    code: Mapped[QrCode | None] = relationship(lazy="joined", viewonly=True)
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    email: Mapped[OutboxMessage | None] = relationship(
        back_populates="order", uselist=False, cascade="all, delete-orphan"
    )


class OrderItem(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(sa.ForeignKey("shop_orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    sku: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    unit_price: Mapped[str | None] = mapped_column(sa.String(32), default=None)

    order: Mapped[Order] = relationship(back_populates="items")


class OutboxMessage(db.Model):  # type: ignore[name-defined,misc]
    """An email waiting to be sent, sent, or given up on; `content` is the exact RFC 5322 message."""

    __tablename__ = "shop_outbox"
    __table_args__ = (sa.Index("ix_shop_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(sa.ForeignKey("shop_orders.id", ondelete="CASCADE"), unique=True)
    sender: Mapped[str] = mapped_column(sa.String(320))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    #: queued → sending → sent; or failed (gave up) / disabled (no SMTP configured).
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship(back_populates="email")


class WebhookDelivery(db.Model):  # type: ignore[name-defined,misc]
    """A webhook delivery already processed: platforms retry, and a replay must not make a second record.

    Unique by delivery id and by the SHA-256 of the signed body: a captured body re-sent
    under a new delivery id is a duplicate too. `outcome` says what it did (`created`,
    `saved`, `exists`, `ignored_stale`).
    """

    __tablename__ = "shop_webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("platform", "delivery_id", name="uq_shop_webhook_delivery"),
        sa.UniqueConstraint("platform", "body_sha256", name="uq_shop_webhook_body"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(sa.String(16))
    delivery_id: Mapped[str] = mapped_column(sa.String(128))
    topic: Mapped[str] = mapped_column(sa.String(64))
    record: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Hex SHA-256 of the raw body (None only on receipts from before it was kept).
    body_sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    outcome: Mapped[str | None] = mapped_column(sa.String(32), default=None)


__all__ = ["Order", "OrderItem", "OutboxMessage", "Product", "WebhookDelivery"]
