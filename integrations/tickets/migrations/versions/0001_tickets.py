"""Ticketing tables: ticket_events, tickets, ticket_signing_keys, ticket_scans.

Revision ID: 0001_tickets
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_tickets"
down_revision = None
branch_labels = ("tickets",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("venue", sa.String(200), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allow_reentry", sa.Boolean, nullable=False),
        sa.Column("revocation_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_events_owner_id", "ticket_events", ["owner_id"])
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "event_id", sa.String(40), sa.ForeignKey("ticket_events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("holder_email", sa.String(254), nullable=True),
        sa.Column("seat", sa.String(40), nullable=True),
        sa.Column("tier", sa.String(40), nullable=True),
        sa.Column("jti", sa.String(32), nullable=False, unique=True),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column(
            "qr_code_id", sa.String(40), sa.ForeignKey("qr_codes.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_gate", sa.String(64), nullable=True),
        sa.Column("inside", sa.Boolean, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(40), nullable=True),
    )
    op.create_index("ix_tickets_event_id", "tickets", ["event_id"])
    op.create_table(
        "ticket_signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False, unique=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.Text, nullable=True),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "ticket_scans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("event_id", sa.String(40), nullable=True),
        sa.Column("ticket_id", sa.String(40), nullable=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("result", sa.String(24), nullable=False),
        sa.Column("admit", sa.Boolean, nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("gate", sa.String(64), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("nonce", sa.String(64), nullable=True),
        sa.Column("server_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offline", sa.Boolean, nullable=False),
        sa.Column("conflict", sa.Boolean, nullable=False),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_gate", sa.String(64), nullable=True),
        sa.UniqueConstraint("device", "nonce", name="uq_ticket_scans_device_nonce"),
    )
    op.create_index("ix_ticket_scans_event_id", "ticket_scans", ["event_id", "id"])
    op.create_index("ix_ticket_scans_ticket_id", "ticket_scans", ["ticket_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_scans_ticket_id", table_name="ticket_scans")
    op.drop_index("ix_ticket_scans_event_id", table_name="ticket_scans")
    op.drop_table("ticket_scans")
    op.drop_table("ticket_signing_keys")
    op.drop_index("ix_tickets_event_id", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("ix_ticket_events_owner_id", table_name="ticket_events")
    op.drop_table("ticket_events")
