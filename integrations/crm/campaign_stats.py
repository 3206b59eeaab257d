"""A campaign's scans: in total, per contact and per day, read from the core's scan records.

Unique visitors are the core's: a keyed hash of address and user agent under a daily
salt, per code, so one person is one visitor per code and day, and no address is
ever stored. Totals and per-contact counts cover every scan; the per-day series the
last `days` days to the end of today (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from integrations.crm.campaigns import codes_query, get_campaign
from integrations.crm.models import Campaign, CampaignCode, Contact
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import (
    ScanCounts,
    flush_scans,
    now,
    scan_counts,
    scan_counts_by_code,
    scan_series,
    scan_window,
)

__all__ = ["CampaignStats", "ContactScans", "campaign_stats"]

_NONE = ScanCounts(0, 0, None)


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
    scans: ScanCounts
    contacts: list[ContactScans]
    days: list[dict[str, Any]]


def campaign_stats(owner: ApiKey, campaign_id: str, days: int) -> CampaignStats:
    """Every scan of the campaign's codes; contacts with most scans first (then by name)."""
    campaign = get_campaign(owner, campaign_id)
    flush_scans()  # this worker's waiting scans count too
    codes = codes_query(campaign)
    by_code = scan_counts_by_code(codes)
    query = (
        sa.select(CampaignCode.contact_id, Contact.external_id, CampaignCode.qr_code, CampaignCode.reference)
        .join(Contact, Contact.id == CampaignCode.contact_id)
        .where(CampaignCode.campaign_id == campaign.id)
        .order_by(Contact.family_name, Contact.given_name, Contact.id)
    )
    contacts = [
        ContactScans(contact_id, external_id, code_id, reference, by_code.get(code_id, _NONE))
        for contact_id, external_id, code_id, reference in db.session.execute(query)
    ]
    contacts.sort(key=lambda row: -row.scans.total)  # stable: ties stay in name order
    today = now().date()
    window = scan_window(today - timedelta(days=days - 1), today)
    series = scan_series(codes, window.start, window.end, "day")
    return CampaignStats(campaign, scan_counts(codes), contacts, series)
