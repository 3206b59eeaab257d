"""Webhook replay protection: receipts keep the body's hash and outcome; products the platform's time.

Revision ID: 0002_shop_webhook_replay
Revises: 0001_shop
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_shop_webhook_replay"
down_revision = "0001_shop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_webhook_deliveries") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.create_unique_constraint("uq_shop_webhook_body", ["platform", "body_sha256"])
    with op.batch_alter_table("shop_products") as batch:
        batch.add_column(sa.Column("platform_modified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shop_products") as batch:
        batch.drop_column("platform_modified_at")
    with op.batch_alter_table("shop_webhook_deliveries") as batch:
        batch.drop_constraint("uq_shop_webhook_body", type_="unique")
        batch.drop_column("outcome")
        batch.drop_column("body_sha256")
