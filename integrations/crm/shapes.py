"""The CRM's JSON: what a contact and an import result look like to a client."""

from __future__ import annotations

from typing import Any

from integrations.crm.importing import ImportResult
from integrations.crm.models import Contact
from integrations.crm.schemas import ADDRESS_FIELDS
from qrsvc.toolkit import image_url, isoformat, public_url

__all__ = ["contact_json", "import_json"]


def contact_json(contact: Contact, *, base: str | None = None) -> dict[str, Any]:
    """A contact, its code (`vcard_qr`) and its links; `base` is `images_base()` when listing many."""
    address = {name: getattr(contact, name) for name in ADDRESS_FIELDS}
    path = f"/v1/crm/contacts/{contact.id}"
    code = contact.code
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "given_name": contact.given_name,
        "family_name": contact.family_name,
        "organization": contact.organization,
        "title": contact.title,
        "email": contact.email,
        "phone": contact.phone,
        "mobile": contact.mobile,
        "website": contact.website,
        "address": address if any(address.values()) else None,
        "note": contact.note,
        "vcard_qr": None
        if code is None
        else {
            "id": code.id,
            "image_url": image_url(code, base=base),
            "encoding": contact.qr_encoding,
            "version": code.version,
        },
        "links": {"vcf": public_url(f"{path}/vcard.vcf"), "card_pdf": public_url(f"{path}/card.pdf")},
        "created_at": isoformat(contact.created_at),
        "updated_at": isoformat(contact.updated_at),
    }


def import_json(result: ImportResult, *, dry_run: bool) -> dict[str, Any]:
    return {
        "success": True,
        "dry_run": dry_run,
        "created": result.created,
        "updated": result.updated,
        "failed": result.failed,
        "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in result.errors],
    }
