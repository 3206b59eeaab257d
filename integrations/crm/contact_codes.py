"""A contact's code: the text of its vCard or MeCard, made into a stored code, forgotten when unused.

The code's data is personal: a code that no contact shows any more is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app

from integrations.crm.models import Contact
from integrations.crm.schemas import ADDRESS_FIELDS
from integrations.crm.vcards import Address, Card, mecard, vcard
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.toolkit import ApiError, DataTooLongError, QrOptions, encode, make_code, make_codes

__all__ = [
    "CODE_ERROR_CORRECTION",
    "CODE_SIZE",
    "card_of",
    "check_fits",
    "code_for",
    "code_text",
    "forget_codes",
    "make_contact_codes",
]

#: EC M: a vCard is long, and a business card is read from a hand, not a warehouse shelf.
CODE_ERROR_CORRECTION = "M"
CODE_SIZE = 512

_CARD_FIELDS = ("organization", "title", "email", "phone", "mobile", "website", "note")


def card_of(contact: Contact | Mapping[str, Any]) -> Card:
    """What the contact's vCard, MeCard and business card say (a model or its column values)."""

    def get(name: str) -> Any:
        return contact[name] if isinstance(contact, Mapping) else getattr(contact, name)

    parts = [get(name) or "" for name in ADDRESS_FIELDS]
    return Card(
        given_name=get("given_name"),
        family_name=get("family_name"),
        **{name: get(name) or "" for name in _CARD_FIELDS},
        address=Address(*parts) if any(parts) else None,
    )


def code_text(card: Card, encoding: str) -> str:
    return mecard(card) if encoding == "mecard" else vcard(card)


def _too_long(detail: str, encoding: str) -> ApiError:
    kind = "MeCard" if encoding == "mecard" else "vCard"
    advice = "" if encoding == "mecard" else ", or ask for ?encoding=mecard"
    return ApiError(
        422,
        "data_too_long",
        f"the contact's {kind} fits no QR code: {detail}; shorten the note or the address{advice}",
    )


def check_fits(data: str, encoding: str) -> None:
    """422 `data_too_long` saying what to do when the contact's text fits no QR code at EC M."""
    try:
        encode(data, CODE_ERROR_CORRECTION, engine=current_app.config["ENGINE"])
    except DataTooLongError as error:
        raise _too_long(str(error), encoding) from None


def _options(data: str) -> QrOptions:
    return QrOptions(data=data, format="png", size=CODE_SIZE, error_correction=CODE_ERROR_CORRECTION)


def make_contact_codes(owner: ApiKey, texts: Sequence[str]) -> list[QrCode]:
    """Codes for many contacts' texts at once (one render batch, one quota reservation)."""
    return [made.code for made in make_codes(owner, [_options(text) for text in texts])]


def code_for(owner: ApiKey, values: Mapping[str, Any], encoding: str, *known: QrCode | None) -> QrCode:
    """The code of these values: a known one (the contact's own, one made for it) when it says
    that already, else a new stored code."""
    data = code_text(card_of(values), encoding)
    for code in known:
        if code is not None and code.data == data:
            return code
    try:
        made: QrCode = make_code(owner, _options(data)).code
    except ApiError as error:
        if error.code == "data_too_long":
            raise _too_long(error.message, encoding) from None
        raise
    return made


def forget_codes(owner: ApiKey, code_ids: Iterable[str | None]) -> None:
    """Delete those of these codes that no contact shows (any more): they hold personal data."""
    ids = {code_id for code_id in code_ids if code_id}
    if not ids:
        return
    shown = sa.select(Contact.qr_code).where(Contact.qr_code.in_(ids))
    db.session.execute(
        sa.delete(QrCode)
        .where(QrCode.owner_id == owner.id, QrCode.id.in_(ids), QrCode.id.not_in(shown))
        .execution_options(synchronize_session=False)
    )
