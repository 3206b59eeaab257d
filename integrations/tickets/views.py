"""HTTP for ticketing: recipes that parse, authorize, call one service and shape the answer.

The request is the unit of work: `transactional` commits once after the view has
built its answer, and nothing when it raises or answers with an error.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from qrsvc.toolkit import current_key, parse_body, parse_query, read_json_object, require_key, transactional

from . import events, gates, inputs, issuance, pdf, scanlog, scanning, shapes, tokens
from .gates import MANAGE_SCOPE, SCAN_SCOPE

bp = Blueprint("tickets", __name__, url_prefix="/v1")
wellknown = Blueprint("tickets_wellknown", __name__)


@bp.post("/events")
@require_key(MANAGE_SCOPE)
@transactional
def create_event() -> tuple[Response, int]:
    event = events.create_event(current_key(), parse_body(inputs.NewEvent))
    return jsonify(shapes.event_json(event)), 201


@bp.get("/events/<event_id>")
@require_key(MANAGE_SCOPE)
def get_event(event_id: str) -> Response:
    return jsonify(shapes.event_json(events.get_event(current_key(), event_id)))


@bp.get("/events/<event_id>/stats")
@require_key(MANAGE_SCOPE)
def event_stats(event_id: str) -> Response:
    event = events.get_event(current_key(), event_id)
    return jsonify(shapes.stats_json(events.event_stats(event)))


@bp.get("/events/<event_id>/scans")
@require_key(MANAGE_SCOPE)
def event_scans(event_id: str) -> Response:
    event = events.get_event(current_key(), event_id)
    query = parse_query(inputs.ScanLogQuery)
    page = scanlog.list_scans(event, query.limit, query.cursor)
    return jsonify({"scans": [shapes.scan_json(s) for s in page.items], "next_cursor": page.next_cursor})


@bp.get("/events/<event_id>/revocations")
@require_key(MANAGE_SCOPE, SCAN_SCOPE)
def event_revocations(event_id: str) -> Response:
    event = gates.get_event_for_scanner(current_key(), event_id)
    since = parse_query(inputs.RevocationsQuery).since
    version, revoked = issuance.revocations(event, since)
    return jsonify(shapes.revocations_json(event, version, since, revoked))


@bp.post("/events/<event_id>/tickets")
@require_key(MANAGE_SCOPE)
@transactional
def issue_tickets(event_id: str) -> tuple[Response, int]:
    key = current_key()
    event = events.get_event(key, event_id)
    if "tickets" not in read_json_object():
        (issued,) = issuance.issue_tickets(key, event, [parse_body(inputs.TicketSpec)])
        return jsonify(shapes.ticket_json(issued)), 201
    batch = parse_body(inputs.TicketBatch)
    return jsonify(shapes.tickets_json(issuance.issue_tickets(key, event, batch.tickets))), 201


@bp.get("/tickets/<ticket_id>")
@require_key(MANAGE_SCOPE)
def get_ticket(ticket_id: str) -> Response:
    found = issuance.find_ticket(current_key(), ticket_id)
    scans = scanlog.ticket_scans(found.ticket)
    return jsonify({**shapes.ticket_json(found), "scans": [shapes.scan_json(s) for s in scans]})


@bp.get("/tickets/<ticket_id>/pdf")
@require_key(MANAGE_SCOPE)
def ticket_pdf(ticket_id: str) -> Response:
    key = current_key()
    ticket = issuance.get_ticket(key, ticket_id)
    content = pdf.ticket_pdf(ticket, events.get_event(key, ticket.event_id))
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{ticket.id}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/tickets/<ticket_id>/revoke")
@require_key(MANAGE_SCOPE)
@transactional
def revoke_ticket(ticket_id: str) -> Response:
    return jsonify(shapes.ticket_json(issuance.revoke_ticket(current_key(), ticket_id)))


@bp.post("/tickets/<ticket_id>/reissue")
@require_key(MANAGE_SCOPE)
@transactional
def reissue_ticket(ticket_id: str) -> tuple[Response, int]:
    key = current_key()
    changes = parse_body(inputs.TicketChanges) if request.content_length else inputs.TicketChanges()
    issued = issuance.reissue_ticket(key, ticket_id, changes)
    return jsonify(shapes.ticket_json(issued)), 201


@bp.post("/tickets/scan")
@require_key(SCAN_SCOPE, MANAGE_SCOPE)
@transactional
def scan() -> Response:
    outcome = scanning.scan_ticket(current_key(), parse_body(inputs.ScanRequest))
    return jsonify(shapes.scan_answer(outcome))


@bp.post("/tickets/scans/upload")
@require_key(SCAN_SCOPE, MANAGE_SCOPE)
@transactional
def upload_scans() -> Response:
    outcomes = scanning.upload_scans(current_key(), parse_body(inputs.OfflineUpload).scans)
    return jsonify(shapes.upload_json(outcomes))


@wellknown.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(tokens.jwks())
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['TICKETS_JWKS_MAX_AGE']}"
    return response


__all__ = ["MANAGE_SCOPE", "bp", "wellknown"]
