"""The ticketing endpoints as the OpenAPI description shows them (`qrsvc.toolkit.register_operations`)."""

from __future__ import annotations

from typing import Any

from qrsvc.toolkit import HTML, PDF, Operation, json_content, object_schema

from . import inputs
from .models import ScanResult
from .scanner import EventListQuery

_OBJECT: dict[str, Any] = {"type": "object"}
_TIME = {"type": "string", "format": "date-time"}
_EVENT_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "venue": {"type": ["string", "null"]},
        "starts_at": _TIME,
        "ends_at": _TIME,
        "allow_reentry": {"type": "boolean"},
    },
    "required": ["id", "name", "starts_at", "ends_at", "allow_reentry"],
}
_EVENT = json_content(_EVENT_OBJECT)
_TICKET_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event_id": {"type": "string"},
        "holder_name": {"type": "string"},
        "token": {"type": "string"},
        "pdf_url": {"type": "string"},
        "revoked_at": {"type": ["string", "null"]},
        "replaced_by": {"type": ["string", "null"]},
    },
    "required": ["id", "event_id", "holder_name", "token", "pdf_url"],
}
_TICKET = json_content(_TICKET_OBJECT)
_RESULT = {"enum": [str(result) for result in ScanResult]}
_SCAN_ANSWER = json_content(
    {
        "type": "object",
        "description": "`result` is `admitted` or the reason for refusal; the gate switches on it.",
        "properties": {"admit": {"type": "boolean"}, "result": _RESULT},
        "required": ["admit", "result"],
    }
)
_ISSUED = json_content(
    {
        "oneOf": [
            _TICKET_OBJECT,
            {
                "type": "object",
                "properties": {"tickets": {"type": "array", "items": _TICKET_OBJECT}},
                "required": ["tickets"],
                "additionalProperties": False,
            },
        ]
    }
)


def _issue_body() -> dict[str, Any]:
    """One ticket, or `{"tickets": [...]}`."""
    return {"oneOf": [object_schema(inputs.TicketSpec), object_schema(inputs.TicketBatch)]}


OPERATIONS: dict[str, Operation] = {
    "tickets.create_event": Operation(
        summary="Create an event",
        tag="tickets",
        body=inputs.NewEvent,
        status=(201,),
        content=_EVENT,
        errors=(422,),
    ),
    "tickets_scanner.list_events": Operation(
        summary="Events a gate key may scan",
        tag="tickets",
        query=EventListQuery,
        content=json_content(_OBJECT),
    ),
    "tickets.get_event": Operation(summary="An event", tag="tickets", content=_EVENT),
    "tickets.event_stats": Operation(
        summary="An event's admissions", tag="tickets", content=json_content(_OBJECT)
    ),
    "tickets.event_scans": Operation(
        summary="An event's scan log", tag="tickets", query=inputs.ScanLogQuery, content=json_content(_OBJECT)
    ),
    "tickets.event_revocations": Operation(
        summary="Tickets revoked since a time (for offline gates)",
        tag="tickets",
        query=inputs.RevocationsQuery,
        content=json_content(_OBJECT),
    ),
    "tickets.issue_tickets": Operation(
        summary="Issue one ticket, or many with `tickets`",
        tag="tickets",
        body_schema=_issue_body,
        status=(201,),
        content=_ISSUED,
        errors=(409, 422),
    ),
    "tickets.get_ticket": Operation(summary="A ticket and its scans", tag="tickets", content=_TICKET),
    "tickets.ticket_pdf": Operation(summary="A ticket as a printable PDF", tag="tickets", content=PDF),
    "tickets.revoke_ticket": Operation(
        summary="Revoke a ticket", tag="tickets", content=_TICKET, errors=(409,)
    ),
    "tickets.reissue_ticket": Operation(
        summary="Reissue a ticket (the old token stops working)",
        tag="tickets",
        body=inputs.TicketChanges,
        body_required=False,
        status=(201,),
        content=_TICKET,
        errors=(409,),
    ),
    "tickets.scan": Operation(
        summary="Scan a ticket at a gate",
        tag="tickets",
        description="Answers 200 with the verdict, admitted or not; a retry with the same `nonce` "
        "gets the first answer again.",
        body=inputs.ScanRequest,
        content=_SCAN_ANSWER,
        errors=(409, 422),
    ),
    "tickets.upload_scans": Operation(
        summary="Upload scans made offline",
        tag="tickets",
        body=inputs.OfflineUpload,
        content=json_content(_OBJECT),
        errors=(409, 422),
    ),
    "tickets_wellknown.jwks": Operation(
        summary="The public keys tickets are signed with", tag="tickets", content=json_content(_OBJECT)
    ),
    "tickets_scanner.scan_page": Operation(summary="The gate scanner page", tag="pages", content=HTML),
}

__all__ = ["OPERATIONS"]
