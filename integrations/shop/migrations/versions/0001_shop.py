"""Shop tables: products, orders and their items, the email outbox, webhook deliveries.

Revision ID: 0001_shop
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_shop"
down_revision = None
branch_labels = ("shop",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "shop_products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("price", sa.String(32), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("qr_code", sa.String(40), sa.ForeignKey("qr_codes.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "sku", name="uq_shop_products_owner_sku"),
    )
    op.create_table(
        "shop_orders",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("tracking_url", sa.Text, nullable=True),
        sa.Column("shipping_address", sa.JSON, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("qr_code", sa.String(40), sa.ForeignKey("qr_codes.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "order_number", name="uq_shop_orders_owner_number"),
    )
    op.create_index("ix_shop_orders_owner_created", "shop_orders", ["owner_id", "created_at", "id"])
    op.create_table(
        "shop_order_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "order_id", sa.String(40), sa.ForeignKey("shop_orders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.String(32), nullable=True),
    )
    op.create_index("ix_shop_order_items_order_id", "shop_order_items", ["order_id"])
    op.create_table(
        "shop_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "order_id",
            sa.String(40),
            sa.ForeignKey("shop_orders.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shop_outbox_due", "shop_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "shop_webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("record", sa.String(64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("platform", "delivery_id", name="uq_shop_webhook_delivery"),
    )


def downgrade() -> None:
    op.drop_table("shop_webhook_deliveries")
    op.drop_index("ix_shop_outbox_due", table_name="shop_outbox")
    op.drop_table("shop_outbox")
    op.drop_index("ix_shop_order_items_order_id", table_name="shop_order_items")
    op.drop_table("shop_order_items")
    op.drop_index("ix_shop_orders_owner_created", table_name="shop_orders")
    op.drop_table("shop_orders")
    op.drop_table("shop_products")
