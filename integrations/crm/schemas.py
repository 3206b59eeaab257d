"""What a CRM request may hold: one schema per request, so a JSON body and a CSV row meet one set of rules.

Names and one-line fields refuse every control character (they are printed on cards and
read by address books); `note` and `address.street` may hold line breaks, stored as `\\n`.
Hostile text (`=HYPERLINK(…)`, `<script>`) is text like any other: kept as given, escaped
where it is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app

from qrsvc.toolkit import (
    UNSET,
    Parser,
    Unset,
    boolean,
    choice,
    integer,
    invalid,
    list_of,
    nested,
    nullable,
    text,
)

__all__ = [
    "ADDRESS_FIELDS",
    "CONTACT_COLUMNS",
    "ENCODINGS",
    "EXTERNAL_ID",
    "AddressIn",
    "CardsIn",
    "ContactIn",
    "ContactPatch",
    "ContactQuery",
    "ImportQuery",
    "ListQuery",
]

#: What a contact's code may hold: the vCard of its .vcf, or the smaller MeCard.
ENCODINGS = ("vcard", "mecard")

#: Unicode's line and paragraph separators end a line for many readers (vobject among them).
_SEPARATORS = re.compile("[\u2028\u2029]")
#: Controls a multi-line field may not hold: all but tab and the line ends.
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def _line(max_length: int, *, required: bool = False) -> Parser[str]:
    """One line of text, trimmed; no control characters."""
    parse = text(max_length, strip=True, allow_blank=not required, allow_controls=False)

    def checked(path: str, value: object, from_query: bool) -> str:
        result = parse(path, value, from_query)
        if _SEPARATORS.search(result):
            raise invalid(path, f"{path} must not contain control characters")
        return result

    return checked


def _lines(max_length: int) -> Parser[str]:
    """Text that may run over lines (`\\r\\n` and `\\r` are kept as `\\n`); no other control characters."""
    parse = text(max_length)

    def checked(path: str, value: object, from_query: bool) -> str:
        result = parse(path, value, from_query).replace("\r\n", "\n").replace("\r", "\n")
        if _CONTROLS_BUT_LINES.search(result):
            raise invalid(path, f"{path} must not contain control characters other than line breaks")
        return result

    return checked


_ADDRESS_LINE = _line(320)


def _email(path: str, value: object, from_query: bool) -> str:
    """An address as RFC 5321/5322 allow it (internationalised ones too), its domain normalised."""
    address = _ADDRESS_LINE(path, value, from_query)
    if not address:
        return address
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise invalid(path, f"{path} is not an email address: {error}") from None


_URL_LINE = _line(2048)


def _website(path: str, value: object, from_query: bool) -> str:
    """An absolute http(s) URL: no `javascript:` or `data:` on a card or in an address book."""
    url = _URL_LINE(path, value, from_query)
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise invalid(path, f"{path} must be an absolute http or https URL")
    return url


def _optional(parser: Parser[str]) -> Parser[str | None]:
    """`null`, left out or blank: no value."""
    return nullable(parser, blank=True)


_GIVEN_NAME = _line(200, required=True)
_FAMILY_NAME = _line(200, required=True)
_ORGANIZATION = _optional(_line(200))
_TITLE = _optional(_line(200))
_EMAIL = _optional(_email)
_PHONE = _optional(_line(64))
_WEBSITE = _optional(_website)
_NOTE = _optional(_lines(2000))
#: An external id as a URL names it (`PUT /contacts/by-external-id/<external_id>`).
EXTERNAL_ID = _line(128, required=True)
_EXTERNAL_ID = _optional(_line(128))


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressIn:
    """A postal address; every part may be left out."""

    street: Annotated[str | None, _optional(_lines(200))] = None
    city: Annotated[str | None, _optional(_line(100))] = None
    region: Annotated[str | None, _optional(_line(100))] = None
    postal_code: Annotated[str | None, _optional(_line(32))] = None
    country: Annotated[str | None, _optional(_line(100))] = None


ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")
_ADDRESS = nullable(nested(AddressIn))


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactIn:
    """A whole contact: `POST /contacts`, `PUT /contacts/by-external-id/…` and each CSV row."""

    given_name: Annotated[str, _GIVEN_NAME]
    family_name: Annotated[str, _FAMILY_NAME]
    organization: Annotated[str | None, _ORGANIZATION] = None
    title: Annotated[str | None, _TITLE] = None
    email: Annotated[str | None, _EMAIL] = None
    phone: Annotated[str | None, _PHONE] = None
    mobile: Annotated[str | None, _PHONE] = None
    website: Annotated[str | None, _WEBSITE] = None
    address: Annotated[AddressIn | None, _ADDRESS] = None
    note: Annotated[str | None, _NOTE] = None
    external_id: Annotated[str | None, _EXTERNAL_ID] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactPatch:
    """The fields a `PATCH` changes; `null` clears an optional one, `address` is replaced whole."""

    given_name: Annotated[str | Unset, _GIVEN_NAME] = UNSET
    family_name: Annotated[str | Unset, _FAMILY_NAME] = UNSET
    organization: Annotated[str | None | Unset, _ORGANIZATION] = UNSET
    title: Annotated[str | None | Unset, _TITLE] = UNSET
    email: Annotated[str | None | Unset, _EMAIL] = UNSET
    phone: Annotated[str | None | Unset, _PHONE] = UNSET
    mobile: Annotated[str | None | Unset, _PHONE] = UNSET
    website: Annotated[str | None | Unset, _WEBSITE] = UNSET
    address: Annotated[AddressIn | None | Unset, _ADDRESS] = UNSET
    note: Annotated[str | None | Unset, _NOTE] = UNSET
    external_id: Annotated[str | None | Unset, _EXTERNAL_ID] = UNSET


#: The CSV header names an import accepts: the fields, `address.city` style for the address.
CONTACT_COLUMNS = tuple(
    [name for name in ContactIn.__dataclass_fields__ if name != "address"]
    + [f"address.{name}" for name in ADDRESS_FIELDS]
)

_ENCODING = nullable(choice(ENCODINGS))


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactQuery:
    """`?encoding=mecard` on a write: what the contact's code holds from now on (default: unchanged)."""

    encoding: Annotated[str | None, _ENCODING] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportQuery:
    """`?dry_run=true` validates only; `?encoding=` as on a single write."""

    dry_run: Annotated[bool, boolean()] = False
    encoding: Annotated[str | None, _ENCODING] = None


def _page_size() -> int:
    size: int = current_app.config["PAGE_SIZE_MAX"]
    return size


@dataclass(frozen=True, slots=True, kw_only=True)
class ListQuery:
    """A page of contacts: `limit`, and the `cursor` of the page before."""

    limit: Annotated[int, integer(1, _page_size)] = 20
    cursor: Annotated[str | None, nullable(text(512))] = None


_CONTACT_ID = text(40, allow_blank=False, allow_controls=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CardsIn:
    """`POST /cards`: some contacts (`contact_ids`) or `all` of them, on a sheet `layout`."""

    layout: Annotated[str, text(40)]
    contact_ids: Annotated[tuple[str, ...] | None, nullable(list_of(_CONTACT_ID, min_length=1))] = None
    all: Annotated[bool, boolean()] = False
