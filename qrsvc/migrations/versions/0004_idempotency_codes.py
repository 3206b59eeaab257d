"""Idempotency records keep code ids, not response bodies, and a lease instead of a 10-minute lock.

`items` holds each batch item's outcome (a code id or its error); a replay re-renders
from the stored codes. `claimed_by`/`expires_at` say which request owns an unfinished
claim and until when; a retry takes over a claim whose lease ran out (its worker died).
Finished records from before this revision kept only bodies, so they are dropped.

Revision ID: 0004_idempotency_codes
Revises: 0003_usage_months
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_idempotency_codes"
down_revision = "0003_usage_months"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_records")
    with op.batch_alter_table("idempotency_records") as table:
        table.drop_column("body")
        table.drop_column("content_type")
        table.add_column(sa.Column("items", sa.JSON, nullable=True))
        table.add_column(sa.Column("claimed_by", sa.String(32), nullable=True))
        table.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_records")
    with op.batch_alter_table("idempotency_records") as table:
        table.drop_column("expires_at")
        table.drop_column("claimed_by")
        table.drop_column("items")
        table.add_column(sa.Column("content_type", sa.String(100), nullable=True))
        table.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
