"""The CRM's tables: contacts with their vCard code, campaigns, a dynamic code per contact and campaign."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qrsvc.extensions import db
from qrsvc.models import QrCode, UTCDateTime


class Contact(db.Model):  # type: ignore[name-defined,misc]
    """A person as a CRM holds them; `qr_code` is the stored code (EC M) of their vCard or MeCard
    (`qr_encoding`).

    `external_id` is the CRM's own id, unique per key, so a sync can upsert by it.
    """

    __tablename__ = "crm_contacts"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "external_id", name="uq_crm_contacts_owner_external"),
        sa.Index("ix_crm_contacts_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    given_name: Mapped[str] = mapped_column(sa.String(200))
    family_name: Mapped[str] = mapped_column(sa.String(200))
    organization: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    title: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    email: Mapped[str | None] = mapped_column(sa.String(320), default=None)
    phone: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    mobile: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    website: Mapped[str | None] = mapped_column(sa.String(2048), default=None)
    street: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    city: Mapped[str | None] = mapped_column(sa.String(100), default=None)
    region: Mapped[str | None] = mapped_column(sa.String(100), default=None)
    postal_code: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    country: Mapped[str | None] = mapped_column(sa.String(100), default=None)
    note: Mapped[str | None] = mapped_column(sa.Text, default=None)
    qr_code: Mapped[str | None] = mapped_column(sa.ForeignKey("qr_codes.id", ondelete="SET NULL"))
    #: What the code holds: `vcard` (the .vcf's text) or the smaller `mecard`.
    qr_encoding: Mapped[str] = mapped_column(sa.String(8), default="vcard", server_default="vcard")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    code: Mapped[QrCode | None] = relationship(lazy="joined", viewonly=True)


class Campaign(db.Model):  # type: ignore[name-defined,misc]
    """A landing page with UTM parameters; each contact gets a dynamic code that redirects there."""

    __tablename__ = "crm_campaigns"
    __table_args__ = (sa.Index("ix_crm_campaigns_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    landing_url: Mapped[str] = mapped_column(sa.String(2048))
    utm_source: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    utm_medium: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignCode(db.Model):  # type: ignore[name-defined,misc]
    """The one dynamic code of a contact in a campaign; `reference` is the opaque `qrc` in its target."""

    __tablename__ = "crm_campaign_codes"

    campaign_id: Mapped[str] = mapped_column(
        sa.ForeignKey("crm_campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[str] = mapped_column(
        sa.ForeignKey("crm_contacts.id", ondelete="CASCADE"), primary_key=True
    )
    qr_code: Mapped[str] = mapped_column(sa.ForeignKey("qr_codes.id", ondelete="CASCADE"), unique=True)
    reference: Mapped[str] = mapped_column(sa.String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    code: Mapped[QrCode] = relationship(lazy="joined", viewonly=True)


__all__ = ["Campaign", "CampaignCode", "Contact"]
