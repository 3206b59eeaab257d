"""CRM tables: contacts, campaigns, campaign codes.

Revision ID: 0001_crm
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_crm"
down_revision = None
branch_labels = ("crm",)
depends_on = "0001_core"


def _owner() -> sa.Column[int]:
    return sa.Column("owner_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False)


def _text(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=True)


def _key(name: str, target: str, *, primary_key: bool = False, unique: bool = False) -> sa.Column[str]:
    foreign = sa.ForeignKey(target, ondelete="CASCADE")
    return sa.Column(name, sa.String(40), foreign, primary_key=primary_key, nullable=False, unique=unique)


def upgrade() -> None:
    op.create_table(
        "crm_contacts",
        sa.Column("id", sa.String(40), primary_key=True),
        _owner(),
        _text("external_id", 128),
        sa.Column("given_name", sa.String(200), nullable=False),
        sa.Column("family_name", sa.String(200), nullable=False),
        _text("organization", 200),
        _text("title", 200),
        _text("email", 320),
        _text("phone", 64),
        _text("mobile", 64),
        _text("website", 2048),
        _text("street", 200),
        _text("city", 100),
        _text("region", 100),
        _text("postal_code", 32),
        _text("country", 100),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("qr_code", sa.String(40), sa.ForeignKey("qr_codes.id", ondelete="SET NULL"), nullable=True),
        sa.Column("qr_encoding", sa.String(8), nullable=False, server_default="vcard"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "external_id", name="uq_crm_contacts_owner_external"),
    )
    op.create_index("ix_crm_contacts_owner_created", "crm_contacts", ["owner_id", "created_at", "id"])
    op.create_table(
        "crm_campaigns",
        sa.Column("id", sa.String(40), primary_key=True),
        _owner(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("landing_url", sa.String(2048), nullable=False),
        _text("utm_source", 200),
        _text("utm_medium", 200),
        _text("utm_campaign", 200),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_crm_campaigns_owner_created", "crm_campaigns", ["owner_id", "created_at", "id"])
    op.create_table(
        "crm_campaign_codes",
        _key("campaign_id", "crm_campaigns.id", primary_key=True),
        _key("contact_id", "crm_contacts.id", primary_key=True),
        _key("qr_code", "qr_codes.id", unique=True),
        sa.Column("reference", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crm_campaign_codes")
    op.drop_index("ix_crm_campaigns_owner_created", "crm_campaigns")
    op.drop_table("crm_campaigns")
    op.drop_index("ix_crm_contacts_owner_created", "crm_contacts")
    op.drop_table("crm_contacts")
