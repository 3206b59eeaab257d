"""/v1/crm/campaigns: thin views over campaigns, their codes, stats and mail-merge exports.

A blueprint nested in the CRM's (`crm.campaigns`), so it shares its prefix and scope.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from integrations.crm import campaigns, exports
from integrations.crm.campaign_schemas import CampaignIn, CodesIn, ExportQuery, StatsQuery
from integrations.crm.campaign_stats import CampaignStats, campaign_stats
from integrations.crm.models import Campaign
from qrsvc.toolkit import (
    PageQuery,
    current_key,
    image_url,
    images_base,
    isoformat,
    iter_chunks,
    parse_body,
    parse_query,
    public_url,
    require_key,
    transactional,
)

__all__ = ["bp"]

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

SCOPE = "crm"


def _campaign_json(campaign: Campaign, codes: int) -> dict[str, Any]:
    path = f"/v1/crm/campaigns/{campaign.id}"
    return {
        "id": campaign.id,
        "name": campaign.name,
        "landing_url": campaign.landing_url,
        "utm": campaigns.utm_of(campaign),
        "codes": codes,
        "links": {
            "codes": public_url(f"{path}/codes"),
            "stats": public_url(f"{path}/stats"),
            "export_csv": public_url(f"{path}/export.csv"),
            "export_zip": public_url(f"{path}/export.zip"),
        },
        "created_at": isoformat(campaign.created_at),
    }


def _one(campaign: Campaign) -> dict[str, Any]:
    return {"success": True, **_campaign_json(campaign, campaigns.code_counts([campaign.id])[campaign.id])}


@bp.post("")
@require_key(SCOPE)
@transactional
def create_campaign() -> tuple[Response, int]:
    campaign = campaigns.create_campaign(current_key(), parse_body(CampaignIn))
    return jsonify(_one(campaign)), 201


@bp.get("")
@require_key(SCOPE)
def list_campaigns() -> Response:
    query = parse_query(PageQuery)
    page = campaigns.list_campaigns(current_key(), query.limit, query.cursor)
    counts = campaigns.code_counts([campaign.id for campaign in page.items])
    items = [_campaign_json(campaign, counts[campaign.id]) for campaign in page.items]
    return jsonify({"success": True, "items": items, "next_cursor": page.next_cursor})


@bp.get("/<campaign_id>")
@require_key(SCOPE)
def get_campaign(campaign_id: str) -> Response:
    return jsonify(_one(campaigns.get_campaign(current_key(), campaign_id)))


@bp.post("/<campaign_id>/codes")
@require_key(SCOPE)
@transactional
def make_codes(campaign_id: str) -> tuple[Response, int]:
    made = campaigns.make_codes(current_key(), campaign_id, parse_body(CodesIn))
    base = images_base()
    items = [
        {
            "contact_id": item.link.contact_id,
            "id": item.link.code.id,
            "reference": item.link.reference,
            "short_url": item.link.code.encoded,
            "target": item.link.code.data,
            "image_url": image_url(item.link.code, base=base),
            "created": item.created,
        }
        for item in made.items
    ]
    body = {
        "success": True,
        "campaign_id": made.campaign.id,
        "count": len(items),
        "created": made.created,
        "items": items,
    }
    return jsonify(body), 201 if made.created else 200


def _stats_json(stats: CampaignStats) -> dict[str, Any]:
    return {
        "success": True,
        "campaign_id": stats.campaign.id,
        "from": isoformat(stats.start),
        "to": isoformat(stats.end),
        "scans": stats.scans.to_dict(),
        "contacts": [
            {
                "contact_id": row.contact_id,
                "external_id": row.external_id,
                "id": row.code_id,
                "reference": row.reference,
                "scans": row.scans.to_dict(),
            }
            for row in stats.contacts
        ],
        "days": stats.days,
    }


@bp.get("/<campaign_id>/stats")
@require_key(SCOPE)
def get_stats(campaign_id: str) -> Response:
    days = parse_query(StatsQuery).days
    return jsonify(_stats_json(campaign_stats(current_key(), campaign_id, days)))


def _download(export: exports.Export, mimetype: str, extension: str) -> Response:
    """Streamed from its spooled file, which is closed at the end (or when the client leaves)."""
    response = Response(iter_chunks(export.content), mimetype=mimetype)
    response.headers.set(
        "Content-Disposition", "attachment", filename=exports.export_name(export.campaign, extension)
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<campaign_id>/export.csv")
@require_key(SCOPE)
def export_csv(campaign_id: str) -> Response:
    export = exports.campaign_csv(current_key(), campaign_id)
    return _download(export, "text/csv", "csv")


@bp.get("/<campaign_id>/export.zip")
@require_key(SCOPE)
def export_zip(campaign_id: str) -> Response:
    fmt = parse_query(ExportQuery).format
    return _download(exports.campaign_zip(current_key(), campaign_id, fmt), "application/zip", "zip")
