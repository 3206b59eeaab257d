"""Scan retries scoped by key and event, with the token's hash kept to tell a retry from a reuse.

Revision ID: 0002_tickets_scan_scope
Revises: 0001_tickets
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_tickets_scan_scope"
down_revision = "0001_tickets"
branch_labels = None
depends_on = None

_SCOPE: list[str | sa.TextClause] = ["key_id", sa.text("coalesce(event_id, '')"), "device", "nonce"]


def upgrade() -> None:
    # Rows logged before this have no hash: a reuse of their nonce is answered 409, never replayed.
    with op.batch_alter_table("ticket_scans") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64), nullable=True))
        batch.drop_constraint("uq_ticket_scans_device_nonce", type_="unique")
    op.create_index("uq_ticket_scans_scope", "ticket_scans", _SCOPE, unique=True)


def downgrade() -> None:
    # Fails if two keys or events have since used one (device, nonce): the old rule cannot hold them.
    op.drop_index("uq_ticket_scans_scope", table_name="ticket_scans")
    with op.batch_alter_table("ticket_scans") as batch:
        batch.create_unique_constraint("uq_ticket_scans_device_nonce", ["device", "nonce"])
        batch.drop_column("token_hash")
