"""What clients may send to ticketing: request bodies and query strings checked into typed values.

Every error names the field at fault, with its position in a list (`tickets[2].seat`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast

from flask import current_app

from qrsvc.errors import ApiError
from qrsvc.options import Parser, Spec, boolean, choice, integer, parse_fields

from .issuance import TicketSpec
from .scanning import OfflineScan, ScanRequest

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


def event_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A new event's fields, as `create_event` takes them."""
    return _fields(body, _EVENT_FIELDS, ("name", "starts_at", "ends_at"))


def ticket_specs(body: dict[str, Any]) -> tuple[list[TicketSpec], bool]:
    """The tickets to issue, and whether the body was one ticket (not `{"tickets": [...]}`)."""
    if "tickets" not in body:
        return [TicketSpec(**_fields(body, _TICKET_FIELDS, ("holder_name",)))], True
    _fields(body, {"tickets": _as_is})
    values = _each(_items(body, "tickets"), "tickets", _TICKET_FIELDS, ("holder_name",))
    return [TicketSpec(**v) for v in values], False


def ticket_changes(body: dict[str, Any]) -> dict[str, str | None]:
    """What a reissue changes; fields left out keep the old ticket's values."""
    return _fields(body, _TICKET_FIELDS)


def scan_request(body: dict[str, Any]) -> ScanRequest:
    return ScanRequest(**_fields(body, _SCAN_FIELDS, ("token",)))


def offline_scans(body: dict[str, Any]) -> list[OfflineScan]:
    _fields(body, {"scans": _as_is})
    required = ("token", "scanned_at", "device", "nonce")
    return [OfflineScan(**v) for v in _each(_items(body, "scans"), "scans", _UPLOAD_FIELDS, required)]


def page_params(args: dict[str, Any]) -> tuple[int, str | None]:
    """`limit` (default 50) and `cursor` of a page of the scan log."""
    parsers = {"limit": integer(1, current_app.config["PAGE_SIZE_MAX"]), "cursor": _string(40)}
    params = _fields(args, parsers, from_query=True)
    return params.get("limit", 50), params.get("cursor")


def since_param(args: dict[str, Any]) -> datetime | None:
    since: datetime | None = _fields(args, {"since": _timestamp}, from_query=True).get("since")
    return since


__all__ = [
    "event_fields",
    "offline_scans",
    "page_params",
    "scan_request",
    "since_param",
    "ticket_changes",
    "ticket_specs",
]
