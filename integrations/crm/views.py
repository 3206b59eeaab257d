"""The /v1/crm API: thin views that parse, authorize, call a CRM service and shape the response."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request

from integrations.crm import campaign_views, cards, contacts, importing
from integrations.crm.contact_codes import card_of
from integrations.crm.schemas import (
    EXTERNAL_ID,
    CardsIn,
    ContactIn,
    ContactPatch,
    ContactQuery,
    ImportQuery,
    ListQuery,
)
from integrations.crm.shapes import contact_json, import_json
from integrations.crm.vcards import vcard
from qrsvc.toolkit import (
    ApiError,
    current_key,
    images_base,
    parse_body,
    parse_query,
    require_key,
    transactional,
)

__all__ = ["bp"]

bp = Blueprint("crm", __name__, url_prefix="/v1/crm")
bp.register_blueprint(campaign_views.bp)

SCOPE = "crm"


@bp.post("/contacts")
@require_key(SCOPE)
@transactional
def create_contact() -> tuple[Response, int]:
    encoding = parse_query(ContactQuery).encoding
    contact = contacts.create_contact(current_key(), parse_body(ContactIn), encoding)
    return jsonify({"success": True, **contact_json(contact)}), 201


@bp.get("/contacts")
@require_key(SCOPE)
def list_contacts() -> Response:
    query = parse_query(ListQuery)
    page = contacts.list_contacts(current_key(), query.limit, query.cursor)
    base = images_base()
    items = [contact_json(contact, base=base) for contact in page.items]
    return jsonify({"success": True, "items": items, "next_cursor": page.next_cursor})


@bp.get("/contacts/<contact_id>")
@require_key(SCOPE)
def get_contact(contact_id: str) -> Response:
    return jsonify({"success": True, **contact_json(contacts.get_contact(current_key(), contact_id))})


@bp.patch("/contacts/<contact_id>")
@require_key(SCOPE)
@transactional
def update_contact(contact_id: str) -> Response:
    encoding = parse_query(ContactQuery).encoding
    contact = contacts.update_contact(current_key(), contact_id, parse_body(ContactPatch), encoding)
    return jsonify({"success": True, **contact_json(contact)})


@bp.delete("/contacts/<contact_id>")
@require_key(SCOPE)
@transactional
def delete_contact(contact_id: str) -> Response:
    contacts.delete_contact(current_key(), contact_id)
    return jsonify({"success": True, "id": contact_id, "deleted": True})


@bp.put("/contacts/by-external-id/<path:external_id>")
@require_key(SCOPE)
@transactional
def upsert_contact(external_id: str) -> tuple[Response, int]:
    external_id = EXTERNAL_ID("external_id", external_id, True)
    encoding = parse_query(ContactQuery).encoding
    saved = contacts.upsert_contact(current_key(), external_id, parse_body(ContactIn), encoding)
    return jsonify({"success": True, **contact_json(saved.contact)}), 201 if saved.created else 200


_CSV_TYPES = ("text/csv", "application/csv")


@bp.post("/contacts/import")
@require_key(SCOPE)
@transactional
def import_contacts() -> Response:
    query = parse_query(ImportQuery)
    if request.mimetype not in _CSV_TYPES:
        raise ApiError(415, "unsupported_media_type", "The body must be a CSV file (Content-Type: text/csv).")
    result = importing.import_contacts(
        current_key(),
        request.get_data(cache=False),
        max_rows=current_app.config["CRM_IMPORT_MAX_ROWS"],
        dry_run=query.dry_run,
        encoding=query.encoding,
    )
    return jsonify(import_json(result, dry_run=query.dry_run))


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def _filename(*parts: str | None, fallback: str) -> str:
    """ASCII letters, digits, `.`, `_` and `-` only: a quote or a newline cannot end the header early."""
    name = "-".join(_UNSAFE_IN_FILENAME.sub("", part) for part in parts if part)
    return name.strip(".-")[:80] or fallback


def _attachment(content: bytes | str, mimetype: str, filename: str, disposition: str) -> Response:
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/contacts/<contact_id>/vcard.vcf")
@require_key(SCOPE)
def contact_vcard(contact_id: str) -> Response:
    contact = contacts.get_contact(current_key(), contact_id)
    name = _filename(contact.given_name, contact.family_name, fallback=contact.id)
    response = _attachment(vcard(card_of(contact)), "text/vcard", f"{name}.vcf", "attachment")
    response.headers["Content-Type"] = "text/vcard; charset=utf-8"
    return response


@bp.get("/contacts/<contact_id>/card.pdf")
@require_key(SCOPE)
def contact_card(contact_id: str) -> Response:
    contact = contacts.get_contact(current_key(), contact_id)
    pdf = cards.render_cards([contact], cards.CARD)
    name = _filename(contact.given_name, contact.family_name, fallback=contact.id)
    return _attachment(pdf, "application/pdf", f"card-{name}.pdf", "inline")


@bp.post("/cards")
@require_key(SCOPE)
def card_sheets() -> Response:
    body = parse_body(CardsIn)
    layout = cards.find_layout(cards.LAYOUTS, body.layout)
    chosen = cards.choose_contacts(current_key(), body.contact_ids, every=body.all, layout=layout)
    pdf = cards.render_cards(chosen.contacts, layout, chosen.fields)
    return _attachment(pdf, "application/pdf", f"cards-{layout.name}.pdf", "inline")
