"""A campaign's scans: in total, per contact and per day, over a range of whole UTC days.

The counting is the core's (`scan_stats`): unique visitors are keyed hashes of address
and user agent under a daily salt, per code, and no address is ever stored. The range
is the last `days` days to the end of today, by default every day since the campaign
began; the core caps a range at a year (`MAX_STATS_DAYS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from integrations.crm.campaign_schemas import MAX_STATS_DAYS
from integrations.crm.campaigns import get_campaign
from integrations.crm.models import Campaign, CampaignCode, Contact
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ScanCounts, now, scan_stats

__all__ = ["CampaignStats", "ContactScans", "campaign_stats"]


@dataclass(frozen=True, slots=True)
class ContactScans:
    contact_id: str
    external_id: str | None
    code_id: str
    reference: str
    scans: ScanCounts


@dataclass(frozen=True, slots=True)
class CampaignStats:
    campaign: Campaign
    start: datetime
    end: datetime
    scans: ScanCounts
    #: Every contact with a code: most scanned first, then by name.
    contacts: list[ContactScans]
    #: Every day of the range: {"day", "total", "unique"}.
    days: list[dict[str, Any]]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def campaign_stats(owner: ApiKey, campaign_id: str, days: int | None = None) -> CampaignStats:
    """Scans of the campaign's codes in the last `days` days (None: since it began, at most a year)."""
    campaign = get_campaign(owner, campaign_id)
    today = now().date()
    if days is None:
        days = min((today - campaign.created_at.date()).days + 1, MAX_STATS_DAYS)
    start, end = _midnight(today - timedelta(days=days - 1)), _midnight(today + timedelta(days=1))
    query = (
        sa.select(CampaignCode.contact_id, Contact.external_id, CampaignCode.qr_code, CampaignCode.reference)
        .join(Contact, Contact.id == CampaignCode.contact_id)
        .where(CampaignCode.campaign_id == campaign.id)
        .order_by(Contact.family_name, Contact.given_name, Contact.id)
    )
    rows = db.session.execute(query).all()
    stats = scan_stats([row.qr_code for row in rows], start, end)
    contacts = [
        ContactScans(row.contact_id, row.external_id, row.qr_code, row.reference, stats.per_code[row.qr_code])
        for row in rows
    ]
    contacts.sort(key=lambda contact: -contact.scans.total)  # stable: ties stay in name order
    moments = [contact.scans.last_at for contact in contacts if contact.scans.last_at is not None]
    total = ScanCounts(stats.total, stats.unique, max(moments, default=None))
    return CampaignStats(campaign, start, end, total, contacts, stats.per_day)
