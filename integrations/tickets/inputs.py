"""What clients may send to ticketing: the schemas of every body and query string, as frozen values.

Views parse a request into one of these (`parse_body`, `parse_query`), services take
them as they are. Text that is printed on a ticket or shown at a gate refuses control
characters; every error names the field by its full path (`tickets[2].seat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from flask import current_app

from qrsvc.toolkit import (
    UNSET,
    Parser,
    Unset,
    boolean,
    choice,
    integer,
    invalid,
    iso_datetime,
    list_of,
    nested,
    nullable,
    text,
)


def _required(max_length: int) -> Parser[str]:
    """Text that must not be blank, trimmed."""
    return text(max_length, strip=True, allow_blank=False, allow_controls=False)


def _optional(max_length: int) -> Parser[str | None]:
    """Text that may be left out, null or blank (all None), trimmed."""
    return nullable(text(max_length, strip=True, allow_controls=False), blank=True)


def _email(path: str, value: object, from_query: bool) -> str | None:
    address = _optional(254)(path, value, from_query)
    if address is not None and ("@" not in address or address.startswith("@") or address.endswith("@")):
        raise invalid(path, f"{path} must be an email address")
    return address


def _batch_limit() -> int:
    limit: int = current_app.config["TICKETS_BATCH_LIMIT"]
    return limit


def _page_size_max() -> int:
    most: int = current_app.config["PAGE_SIZE_MAX"]
    return most


Name = Annotated[str, _required(200)]
Email = Annotated[str | None, _email]
Label = Annotated[str | None, _optional(40)]
Moment = Annotated[datetime, iso_datetime()]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    name: Name
    starts_at: Moment
    ends_at: Moment
    venue: Annotated[str | None, _optional(200)] = None
    allow_reentry: Annotated[bool, boolean()] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketSpec:
    """Who a new ticket is for, and where they sit."""

    holder_name: Name
    holder_email: Email = None
    seat: Label = None
    tier: Label = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketBatch:
    tickets: Annotated[
        tuple[TicketSpec, ...], list_of(nested(TicketSpec), min_length=1, max_length=_batch_limit)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketChanges:
    """What a reissue changes; a field left out keeps the old ticket's value, null clears it."""

    holder_name: Annotated[str | Unset, _required(200)] = UNSET
    holder_email: Annotated[str | None | Unset, _email] = UNSET
    seat: Annotated[str | None | Unset, _optional(40)] = UNSET
    tier: Annotated[str | None | Unset, _optional(40)] = UNSET


Token = Annotated[str, _required(4096)]
Device = Annotated[str, _required(64)]
Gate = Annotated[str | None, _optional(64)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    """An online scan as a gate sends it."""

    token: Token
    gate: Gate = None
    device: Annotated[str | None, _optional(64)] = None
    nonce: Annotated[str | None, _optional(64)] = None
    direction: Annotated[str, choice(("entry", "exit"))] = "entry"
    event_id: Annotated[str | None, _optional(40)] = None
    scanned_at: Annotated[datetime | None, iso_datetime()] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineScan:
    """A scan an offline scanner decided itself, uploaded later."""

    token: Token
    scanned_at: Moment
    device: Device
    nonce: Device
    gate: Gate = None
    admitted_locally: Annotated[bool, boolean()] = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineUpload:
    scans: Annotated[
        tuple[OfflineScan, ...], list_of(nested(OfflineScan), min_length=1, max_length=_batch_limit)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanLogQuery:
    limit: Annotated[int, integer(1, _page_size_max)] = 50
    cursor: Annotated[str | None, _required(40)] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationsQuery:
    since: Annotated[datetime | None, iso_datetime()] = None


__all__ = [
    "NewEvent",
    "OfflineScan",
    "OfflineUpload",
    "RevocationsQuery",
    "ScanLogQuery",
    "ScanRequest",
    "TicketBatch",
    "TicketChanges",
    "TicketSpec",
]
