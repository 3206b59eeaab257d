"""The CRM's endpoints as the OpenAPI description shows them (`qrsvc.toolkit.register_operations`)."""

from __future__ import annotations

from typing import Any

from qrsvc.toolkit import PDF, Operation, PageQuery, json_content, ref

from .campaign_schemas import CampaignIn, CodesIn, ExportQuery, StatsQuery
from .schemas import CardsIn, ContactIn, ContactPatch, ContactQuery, ImportQuery, ListQuery

_OBJECT: dict[str, Any] = {"type": "object", "properties": {"success": {"const": True}}}
_CONTACT = json_content(
    {"type": "object", "properties": {"success": {"const": True}, "id": {"type": "string"}}}
)
_CAMPAIGN = _CONTACT
_PAGE = json_content(ref("Page"))

OPERATIONS: dict[str, Operation] = {
    "crm.create_contact": Operation(
        summary="Add a contact",
        tag="crm",
        body=ContactIn,
        query=ContactQuery,
        status=(201,),
        content=_CONTACT,
        errors=(409, 422),
    ),
    "crm.list_contacts": Operation(summary="Contacts", tag="crm", query=ListQuery, content=_PAGE),
    "crm.get_contact": Operation(summary="A contact", tag="crm", content=_CONTACT),
    "crm.update_contact": Operation(
        summary="Change a contact",
        tag="crm",
        body=ContactPatch,
        query=ContactQuery,
        content=_CONTACT,
        errors=(409, 422),
    ),
    "crm.delete_contact": Operation(summary="Delete a contact", tag="crm", content=json_content(_OBJECT)),
    "crm.upsert_contact": Operation(
        summary="Create or replace the contact with this external id",
        tag="crm",
        body=ContactIn,
        query=ContactQuery,
        status=(200, 201),
        content=_CONTACT,
        errors=(409, 422),
    ),
    "crm.import_contacts": Operation(
        summary="Import contacts from CSV",
        tag="crm",
        query=ImportQuery,
        body_schema={"type": "string"},
        body_types=("text/csv",),
        content=json_content(_OBJECT),
        errors=(415, 422),
    ),
    "crm.contact_vcard": Operation(
        summary="A contact as a vCard", tag="crm", content={"text/vcard": {"type": "string"}}
    ),
    "crm.contact_card": Operation(summary="A contact's business card, as a PDF", tag="crm", content=PDF),
    "crm.card_sheets": Operation(
        summary="Business cards on a sheet, as a PDF", tag="crm", body=CardsIn, content=PDF, errors=(404, 422)
    ),
    "crm.campaigns.create_campaign": Operation(
        summary="Create a campaign",
        tag="crm",
        body=CampaignIn,
        status=(201,),
        content=_CAMPAIGN,
        errors=(409, 422),
    ),
    "crm.campaigns.list_campaigns": Operation(summary="Campaigns", tag="crm", query=PageQuery, content=_PAGE),
    "crm.campaigns.get_campaign": Operation(summary="A campaign", tag="crm", content=_CAMPAIGN),
    "crm.campaigns.make_codes": Operation(
        summary="Codes for a campaign's contacts",
        tag="crm",
        body=CodesIn,
        status=(200, 201),
        content=json_content(_OBJECT),
        errors=(409, 422),
    ),
    "crm.campaigns.get_stats": Operation(
        summary="A campaign's scans", tag="crm", query=StatsQuery, content=json_content(_OBJECT)
    ),
    "crm.campaigns.export_csv": Operation(
        summary="A campaign's codes as CSV", tag="crm", content={"text/csv": {"type": "string"}}
    ),
    "crm.campaigns.export_zip": Operation(
        summary="A campaign's code images as a ZIP",
        tag="crm",
        query=ExportQuery,
        content={"application/zip": {"type": "string"}},
    ),
}

__all__ = ["OPERATIONS"]
