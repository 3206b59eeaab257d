"""HTTP for ticketing: thin views that parse, authorize, call the service and shape JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request

from qrsvc.api import image_url
from qrsvc.auth import current_key, plan_of, require_key
from qrsvc.clock import isoformat
from qrsvc.errors import ApiError
from qrsvc.http import public_url, read_json_object
from qrsvc.options import Parser, Spec, boolean, choice, integer, parse_fields

from . import pdf, service, tokens
from .models import Event, Scan, Ticket
from .service import MANAGE_SCOPE, SCAN_SCOPE

bp = Blueprint("tickets", __name__, url_prefix="/v1")
wellknown = Blueprint("tickets_wellknown", __name__)


# ---------------------------------------------------------------- field parsers

#: C0/C1 controls (NUL is a 500 on PostgreSQL, the rest corrupt logs and printed tickets)
#: and lone surrogates (a JSON escape like "\ud800" parses, but no database can store it).
_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Times outside this range overflow validity windows, UTC conversion or JWT claims.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _text(name: str, value: object) -> str:
    """A string with no control characters or lone surrogates (checked here, not in the core parser)."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_parameter", f"{name} must be a string", field=name)
    if _UNSAFE_CHARACTERS.search(value):
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must not contain control characters or unpaired surrogates",
            field=name,
        )
    return value


def _string(max_length: int, *, optional: bool = False) -> Parser:
    def parse(name: str, value: object, from_query: bool) -> str | None:
        if value is None and optional:
            return None
        value = _text(name, value).strip()
        if not value and not optional:
            raise ApiError(400, "invalid_parameter", f"{name} must not be empty", field=name)
        if len(value) > max_length:
            raise ApiError(400, "invalid_parameter", f"{name} is longer than {max_length} characters", name)
        return value or None

    return parse


def _timestamp(name: str, value: object, from_query: bool) -> datetime:
    """ISO 8601 with a time zone (`Z` or an offset), as UTC; a naive time is ambiguous and refused.

    Years 1970 to 8999 only: `9999-12-31T23:59:59-14:00` parses but overflows in UTC.
    """
    moment = None
    if isinstance(value, str) and not _UNSAFE_CHARACTERS.search(value):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be an ISO 8601 time with a zone, e.g. 2026-12-31T20:00:00Z",
            name,
        )
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not _EARLIEST <= moment < _LATEST:
        raise ApiError(400, "out_of_range", f"{name} must lie between 1970 and 8999 (UTC)", field=name)
    return moment


def _email(name: str, value: object, from_query: bool) -> str | None:
    parsed = cast("str | None", _string(254, optional=True)(name, value, from_query))
    if parsed is not None and ("@" not in parsed or parsed.startswith("@") or parsed.endswith("@")):
        raise ApiError(400, "invalid_parameter", f"{name} must be an email address", field=name)
    return parsed


def _fields(
    source: dict[str, Any],
    parsers: dict[str, Parser],
    required: tuple[str, ...] = (),
    *,
    from_query: bool = False,
) -> dict[str, Any]:
    values = parse_fields(source, Spec(qr_fields=False, extra=parsers), from_query=from_query)
    for name in required:
        if values.get(name) is None:
            raise ApiError(400, "missing_parameter", f"{name} is required", field=name)
    return values


_EVENT_FIELDS: dict[str, Parser] = {
    "name": _string(200),
    "venue": _string(200, optional=True),
    "starts_at": _timestamp,
    "ends_at": _timestamp,
    "allow_reentry": boolean,
}
_TICKET_FIELDS: dict[str, Parser] = {
    "holder_name": _string(200),
    "holder_email": _email,
    "seat": _string(40, optional=True),
    "tier": _string(40, optional=True),
}
_SCAN_FIELDS: dict[str, Parser] = {
    "token": _string(4096),
    "gate": _string(64, optional=True),
    "device": _string(64, optional=True),
    "nonce": _string(64, optional=True),
    "direction": choice(("entry", "exit")),
    "event_id": _string(40, optional=True),
    "scanned_at": _timestamp,
}
_UPLOAD_FIELDS: dict[str, Parser] = {
    "token": _string(4096),
    "scanned_at": _timestamp,
    "gate": _string(64, optional=True),
    "device": _string(64),
    "nonce": _string(64),
    "admitted_locally": boolean,
}


def _as_is(name: str, value: object, from_query: bool) -> object:
    """A field whose items `_each` checks one by one."""
    return value


def _items(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = body.get(name)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ApiError(400, "invalid_parameter", f"{name} must be a list of objects", field=name)
    if not items:
        raise ApiError(400, "invalid_parameter", f"{name} must not be empty", field=name)
    limit = current_app.config["TICKETS_BATCH_LIMIT"]
    if len(items) > limit:
        raise ApiError(413, "too_many_items", f"at most {limit} {name} in one request", field=name)
    return items


def _each(
    items: list[dict[str, Any]], name: str, parsers: dict[str, Parser], required: tuple[str, ...]
) -> list[dict[str, Any]]:
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(_fields(item, parsers, required))
        except ApiError as exc:
            exc.field = f"{name}[{index}].{exc.field}" if exc.field else f"{name}[{index}]"
            raise
    return parsed


# ---------------------------------------------------------------- JSON shapes


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "venue": event.venue,
        "starts_at": isoformat(event.starts_at),
        "ends_at": isoformat(event.ends_at),
        "allow_reentry": event.allow_reentry,
        "created_at": isoformat(event.created_at),
    }


def _time(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "event_id": ticket.event_id,
        "holder_name": ticket.holder_name,
        "seat": ticket.seat,
        "tier": ticket.tier,
        "state": service.state_of(ticket),
    }


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    code = service.ticket_code(ticket)
    return {
        **ticket_summary(ticket),
        "holder_email": ticket.holder_email,
        "token": ticket.token,
        "qr": {"id": code.id, "image_url": image_url(code)} if code is not None else None,
        "pdf_url": public_url(f"/v1/tickets/{ticket.id}/pdf"),
        "created_at": isoformat(ticket.created_at),
        "used_at": _time(ticket.used_at),
        "first_gate": ticket.first_gate,
        "revoked_at": _time(ticket.revoked_at),
        "replaced_by": ticket.replaced_by,
    }


def scan_json(scan: Scan) -> dict[str, Any]:
    return {
        "id": scan.id,
        "ticket_id": scan.ticket_id,
        "result": scan.result,
        "admit": scan.admit,
        "direction": scan.direction,
        "gate": scan.gate,
        "device": scan.device,
        "server_time": isoformat(scan.server_time),
        "client_time": _time(scan.client_time),
        "offline": scan.offline,
        "conflict": scan.conflict,
    }


def scan_answer(scan: Scan) -> dict[str, Any]:
    """What a gate needs to decide: admit or not, why, and whose ticket it is."""
    body: dict[str, Any] = {"admit": scan.admit, "result": scan.result}
    ticket = service.scan_ticket_of(scan)
    if ticket is not None:
        body["ticket"] = ticket_summary(ticket)
    if scan.first_used_at is not None:
        body["first_used_at"] = isoformat(scan.first_used_at)
        body["first_gate"] = scan.first_gate
    return body


# ---------------------------------------------------------------- events


@bp.post("/events")
@require_key(MANAGE_SCOPE)
def create_event() -> tuple[Response, int]:
    values = _fields(read_json_object(), _EVENT_FIELDS, ("name", "starts_at", "ends_at"))
    event = service.create_event(current_key(), **values)
    return jsonify(event_json(event)), 201


@bp.get("/events/<event_id>")
@require_key(MANAGE_SCOPE)
def get_event(event_id: str) -> Response:
    return jsonify(event_json(service.get_event(current_key(), event_id)))


@bp.get("/events/<event_id>/stats")
@require_key(MANAGE_SCOPE)
def event_stats(event_id: str) -> Response:
    return jsonify(service.event_stats(service.get_event(current_key(), event_id)))


@bp.get("/events/<event_id>/scans")
@require_key(MANAGE_SCOPE)
def event_scans(event_id: str) -> Response:
    event = service.get_event(current_key(), event_id)
    params = _fields(
        request.args.to_dict(),
        {"limit": integer(1, current_app.config["PAGE_SIZE_MAX"]), "cursor": _string(40)},
        from_query=True,
    )
    page = service.list_scans(event, params.get("limit", 50), params.get("cursor"))
    return jsonify({"scans": [scan_json(s) for s in page.items], "next_cursor": page.next_cursor})


@bp.get("/events/<event_id>/revocations")
@require_key(MANAGE_SCOPE, SCAN_SCOPE)
def event_revocations(event_id: str) -> Response:
    key = current_key()
    event = service.get_event_for_scanner(key, event_id)
    params = _fields(request.args.to_dict(), {"since": _timestamp}, from_query=True)
    version, revoked = service.revocations(event, params.get("since"))
    return jsonify(
        {
            "event_id": event.id,
            "version": version,
            "since": _time(params.get("since")),
            "revoked": [{"ticket_id": t.id, "revoked_at": _time(t.revoked_at)} for t in revoked],
        }
    )


# ---------------------------------------------------------------- tickets


@bp.post("/events/<event_id>/tickets")
@require_key(MANAGE_SCOPE)
def issue_tickets(event_id: str) -> tuple[Response, int]:
    key = current_key()
    event = service.get_event(key, event_id)
    body = read_json_object()
    single = "tickets" not in body
    if single:
        values = [_fields(body, _TICKET_FIELDS, ("holder_name",))]
    else:
        _fields(body, {"tickets": _as_is})
        values = _each(_items(body, "tickets"), "tickets", _TICKET_FIELDS, ("holder_name",))
    specs = [service.TicketSpec(**v) for v in values]
    tickets = service.issue_tickets(key, plan_of(key), event, specs)
    if single:
        return jsonify(ticket_json(tickets[0])), 201
    return jsonify({"tickets": [ticket_json(t) for t in tickets]}), 201


@bp.get("/tickets/<ticket_id>")
@require_key(MANAGE_SCOPE)
def get_ticket(ticket_id: str) -> Response:
    ticket = service.get_ticket(current_key(), ticket_id)
    return jsonify({**ticket_json(ticket), "scans": [scan_json(s) for s in service.ticket_scans(ticket)]})


@bp.get("/tickets/<ticket_id>/pdf")
@require_key(MANAGE_SCOPE)
def ticket_pdf(ticket_id: str) -> Response:
    key = current_key()
    ticket = service.get_ticket(key, ticket_id)
    content = pdf.ticket_pdf(ticket, service.get_event(key, ticket.event_id))
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{ticket.id}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/tickets/<ticket_id>/revoke")
@require_key(MANAGE_SCOPE)
def revoke_ticket(ticket_id: str) -> Response:
    return jsonify(ticket_json(service.revoke_ticket(current_key(), ticket_id)))


@bp.post("/tickets/<ticket_id>/reissue")
@require_key(MANAGE_SCOPE)
def reissue_ticket(ticket_id: str) -> tuple[Response, int]:
    key = current_key()
    body = read_json_object() if request.content_length else {}
    changes = _fields(body, _TICKET_FIELDS)
    ticket = service.reissue_ticket(key, plan_of(key), ticket_id, changes)
    return jsonify(ticket_json(ticket)), 201


# ---------------------------------------------------------------- scanning


@bp.post("/tickets/scan")
@require_key(SCAN_SCOPE, MANAGE_SCOPE)
def scan() -> Response:
    values = _fields(read_json_object(), _SCAN_FIELDS, ("token",))
    answer = service.scan_ticket(current_key(), service.ScanRequest(**values))
    return jsonify(scan_answer(answer))


@bp.post("/tickets/scans/upload")
@require_key(SCAN_SCOPE, MANAGE_SCOPE)
def upload_scans() -> Response:
    body = read_json_object()
    _fields(body, {"scans": _as_is})
    values = _each(_items(body, "scans"), "scans", _UPLOAD_FIELDS, ("token", "scanned_at", "device", "nonce"))
    scans = service.upload_scans(current_key(), [service.OfflineScan(**v) for v in values])
    results = [
        {"index": i, "nonce": s.nonce, **scan_answer(s), "conflict": s.conflict} for i, s in enumerate(scans)
    ]
    return jsonify(
        {
            "count": len(results),
            "admitted": sum(1 for s in scans if s.result == "admitted"),
            "conflicts": sum(1 for s in scans if s.conflict),
            "results": results,
        }
    )


# ---------------------------------------------------------------- key publication


@wellknown.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(tokens.jwks())
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['TICKETS_JWKS_MAX_AGE']}"
    return response


__all__ = ["bp", "wellknown"]
