"""Contacts: the one "contact saved → its vCard code made" path, for JSON, upserts and CSV rows alike.

A contact's code is an ordinary stored code (EC M) of its vCard, or of its MeCard when the
contact's `qr_encoding` says so. Its data is personal, so a code a contact no longer uses
(changed or deleted) is deleted too, unless another contact still shows it.

Races are decided in SQL: an upsert inserts with `ON CONFLICT DO NOTHING` on the
(owner, external_id) constraint and otherwise updates, and every update is conditional
on the code the caller read (`qr_code IS NOT DISTINCT FROM :old`): a writer that lost a
race reads the row again instead of pairing its fields with another writer's code.
Services flush; the request (or the CSV row's savepoint) owns the transaction.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from integrations.crm.models import Contact
from integrations.crm.schemas import ADDRESS_FIELDS, AddressIn, ContactIn, ContactPatch
from integrations.crm.vcards import Address, Card, mecard, vcard
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.toolkit import (
    ApiError,
    DataTooLongError,
    NotFoundError,
    Page,
    QrOptions,
    encode,
    given_fields,
    insert,
    make_code,
    now,
    paginate,
)

__all__ = [
    "CODE_ERROR_CORRECTION",
    "CODE_SIZE",
    "Saved",
    "card_of",
    "check_contact",
    "check_fits",
    "code_text",
    "create_contact",
    "delete_contact",
    "get_contact",
    "list_contacts",
    "update_contact",
    "upsert_contact",
]

#: EC M: a vCard is long, and a business card is read from a hand, not a warehouse shelf.
CODE_ERROR_CORRECTION = "M"
CODE_SIZE = 512
#: Attempts at an upsert or update that keeps losing races before giving up with a 409.
_ATTEMPTS = 5

_CARD_FIELDS = ("organization", "title", "email", "phone", "mobile", "website", "note")
#: A contact's own columns, as a request names them (the address flattened).
_COLUMNS = (*(name for name in ContactIn.__dataclass_fields__ if name != "address"), *ADDRESS_FIELDS)


def new_contact_id() -> str:
    """`ct_` and 128 random bits."""
    return "ct_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


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


def _columns(fields: ContactIn) -> dict[str, Any]:
    """A whole contact as column values (the address flattened; absent parts are NULL)."""
    address = fields.address or AddressIn()
    return {
        name: getattr(address, name) if name in ADDRESS_FIELDS else getattr(fields, name) for name in _COLUMNS
    }


def _changes(patch: ContactPatch) -> dict[str, Any]:
    """The columns a PATCH sets: a given `address` replaces every part of it."""
    changes = given_fields(patch)
    if "address" in changes:
        address = changes.pop("address") or AddressIn()
        changes.update((name, getattr(address, name)) for name in ADDRESS_FIELDS)
    return changes


def check_fits(data: str, encoding: str) -> None:
    """422 `data_too_long` saying what to do when the contact's text fits no QR code at EC M."""
    try:
        encode(data, CODE_ERROR_CORRECTION, engine=current_app.config["ENGINE"])
    except DataTooLongError as error:
        raise ApiError(
            422,
            "data_too_long",
            f"the contact's {'MeCard' if encoding == 'mecard' else 'vCard'} fits no QR code: {error}; "
            "shorten the note or the address"
            + ("" if encoding == "mecard" else ", or ask for ?encoding=mecard"),
        ) from None


def check_contact(fields: ContactIn, encoding: str) -> None:
    """The 422 that saving `fields` would meet: the contact's text must fit in a QR code."""
    check_fits(code_text(card_of(_columns(fields)), encoding), encoding)


def _code(owner: ApiKey, values: Mapping[str, Any], encoding: str, current: QrCode | None) -> QrCode:
    """The code of these values: the current one when it already says that, else a new stored code."""
    data = code_text(card_of(values), encoding)
    if current is not None and current.data == data:
        return current
    check_fits(data, encoding)
    options = QrOptions(data=data, format="png", size=CODE_SIZE, error_correction=CODE_ERROR_CORRECTION)
    code: QrCode = make_code(owner, options).code
    return code


def _forget_codes(owner: ApiKey, code_ids: Iterable[str | None]) -> None:
    """Delete codes no contact shows any more: they hold personal data."""
    ids = {code_id for code_id in code_ids if code_id}
    if not ids:
        return
    shown = sa.select(Contact.qr_code).where(Contact.qr_code.in_(ids))
    db.session.execute(
        sa.delete(QrCode)
        .where(QrCode.owner_id == owner.id, QrCode.id.in_(ids), QrCode.id.not_in(shown))
        .execution_options(synchronize_session=False)
    )


def get_contact(owner: ApiKey, contact_id: str) -> Contact:
    """The owner's contact; another key's is as absent as a missing one."""
    query = sa.select(Contact).where(Contact.id == contact_id, Contact.owner_id == owner.id)
    contact: Contact | None = db.session.scalar(query)
    if contact is None:
        raise NotFoundError(f"no contact {contact_id!r}")
    return contact


def _load(owner: ApiKey, contact_id: str) -> Contact:
    db.session.expire_all()  # a row written by a statement, not through the ORM: read it afresh
    return get_contact(owner, contact_id)


def list_contacts(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[Contact]:
    """The owner's contacts, newest first."""
    query = sa.select(Contact).where(Contact.owner_id == owner.id)
    return paginate(query, (Contact.created_at, Contact.id), limit, cursor)


def _duplicate(external_id: object) -> ApiError:
    return ApiError(
        409,
        "duplicate_external_id",
        f"a contact with external_id {external_id!r} exists; "
        "PUT /v1/crm/contacts/by-external-id/… updates it",
        field="external_id",
    )


def _insert(owner: ApiKey, values: Mapping[str, Any], encoding: str) -> str | None:
    """Insert a new contact with its code; None when its external_id is taken (nothing is written)."""
    code = _code(owner, values, encoding, None)
    moment = now()
    table = Contact.__table__
    statement = (
        insert(table)
        .values(
            id=new_contact_id(),
            owner_id=owner.id,
            **values,
            qr_code=code.id,
            qr_encoding=encoding,
            created_at=moment,
            updated_at=moment,
        )
        .on_conflict_do_nothing(index_elements=[table.c.owner_id, table.c.external_id])
        .returning(table.c.id)
    )
    inserted: str | None = db.session.scalar(statement)
    if inserted is None:
        _forget_codes(owner, [code.id])
    return inserted


def create_contact(owner: ApiKey, fields: ContactIn, encoding: str | None = None) -> Contact:
    """A new contact and its code; an external_id the owner already uses is a 409."""
    contact_id = _insert(owner, _columns(fields), encoding or "vcard")
    if contact_id is None:
        raise _duplicate(fields.external_id)
    return _load(owner, contact_id)


def _update(owner: ApiKey, contact: Contact, changes: Mapping[str, Any], encoding: str | None) -> bool:
    """Write `changes` and the code they make, if the row still has the code it was read with.

    False when another writer changed the contact's code meanwhile: read it again and retry.
    """
    old = contact.qr_code
    values = {**{column: getattr(contact, column) for column in _COLUMNS}, **changes}
    chosen = encoding or contact.qr_encoding
    code = _code(owner, values, chosen, contact.code)
    table = Contact.__table__
    try:
        result = db.session.execute(
            sa.update(table)
            .where(table.c.id == contact.id, table.c.qr_code.is_not_distinct_from(old))
            .values(**changes, qr_code=code.id, qr_encoding=chosen, updated_at=now())
        )
    except sa.exc.IntegrityError:
        raise _duplicate(changes.get("external_id")) from None
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if code.id != old:
            _forget_codes(owner, [code.id])
        return False
    if code.id != old:
        _forget_codes(owner, [old])
    return True


def update_contact(
    owner: ApiKey, contact_id: str, patch: ContactPatch, encoding: str | None = None
) -> Contact:
    """Change some fields (and the code with them); another key's contact is a 404."""
    changes = _changes(patch)
    for _attempt in range(_ATTEMPTS):
        contact = _load(owner, contact_id)
        if _update(owner, contact, changes, encoding):
            return _load(owner, contact_id)
    raise _busy()


def _busy() -> ApiError:
    return ApiError(409, "conflict", "the contact kept changing while it was being saved; try again")


@dataclass(frozen=True, slots=True)
class Saved:
    """An upserted contact, and whether it was made (201) rather than updated (200)."""

    contact: Contact
    created: bool


def upsert_contact(owner: ApiKey, external_id: str, fields: ContactIn, encoding: str | None = None) -> Saved:
    """The contact with this external_id, made or replaced by `fields` (what a CRM sync calls).

    Concurrent upserts of one external_id make one contact: the loser of the insert
    updates it, and the last writer's fields and code win together.
    """
    if fields.external_id not in (None, external_id):
        raise ApiError(
            400, "invalid_parameter", "external_id in the body differs from the URL's", field="external_id"
        )
    values = {**_columns(fields), "external_id": external_id}
    for _attempt in range(_ATTEMPTS):
        query = sa.select(Contact).where(Contact.owner_id == owner.id, Contact.external_id == external_id)
        contact: Contact | None = db.session.scalar(query)
        if contact is None:
            contact_id = _insert(owner, values, encoding or "vcard")
            if contact_id is not None:
                return Saved(_load(owner, contact_id), created=True)
        elif _update(owner, contact, values, encoding):
            return Saved(_load(owner, contact.id), created=False)
        db.session.expire_all()
    raise _busy()


def delete_contact(owner: ApiKey, contact_id: str) -> None:
    """Delete the contact and its code (unless another contact shows the same code)."""
    table = Contact.__table__
    code_ids = db.session.scalars(
        sa.delete(table)
        .where(table.c.id == contact_id, table.c.owner_id == owner.id)
        .returning(table.c.qr_code)
    ).all()
    if not code_ids:
        raise NotFoundError(f"no contact {contact_id!r}")
    _forget_codes(owner, code_ids)
