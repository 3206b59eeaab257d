"""Core table usage_months: codes a key made in a calendar month, where the quota is decided.

Revision ID: 0003_usage_months
Revises: 0002_idempotency
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_usage_months"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_months",
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("codes", sa.Integer, nullable=False),
    )
    # Carry over what the daily rows already counted.
    if op.get_bind().dialect.name == "postgresql":
        month = "CAST(date_trunc('month', day) AS DATE)"
    else:
        month = "date(day, 'start of month')"
    op.execute(
        f"INSERT INTO usage_months (key_id, month, codes) "  # noqa: S608 (no user input)
        f"SELECT key_id, {month}, SUM(codes) FROM usage_days GROUP BY key_id, {month}"
    )


def downgrade() -> None:
    op.drop_table("usage_months")
