"""Dynamic codes and their scans: dynamic_codes, scans, scan_salts.

Revision ID: 0005_dynamic_codes
Revises: 0004_idempotency_codes
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_dynamic_codes"
down_revision = "0004_idempotency_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dynamic_codes",
        sa.Column(
            "code_id", sa.String(40), sa.ForeignKey("qr_codes.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("short_code", sa.String(16), nullable=False, unique=True),
        sa.Column("short_url", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column(
            "code_id",
            sa.String(40),
            sa.ForeignKey("dynamic_codes.code_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("visitor", sa.String(32), nullable=False),
        sa.Column("browser", sa.String(32), nullable=False),
        sa.Column("device", sa.String(16), nullable=False),
        sa.Column("referrer", sa.String(255), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
    )
    op.create_index("ix_scans_code_scanned", "scans", ["code_id", "scanned_at"])
    op.create_table(
        "scan_salts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("salt", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scan_salts")
    op.drop_index("ix_scans_code_scanned", table_name="scans")
    op.drop_table("scans")
    op.drop_table("dynamic_codes")
