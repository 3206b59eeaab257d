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

from integrations.crm.contact_codes import card_of, code_for, code_text, forget_codes
from integrations.crm.models import Contact
from integrations.crm.schemas import ADDRESS_FIELDS, AddressIn, ContactIn, ContactPatch
from qrsvc.extensions import db
from qrsvc.models import ApiKey, QrCode
from qrsvc.toolkit import ApiError, NotFoundError, Page, given_fields, insert, now, paginate

__all__ = [
    "Saved",
    "contact_text",
    "create_contact",
    "delete_contact",
    "get_contact",
    "list_contacts",
    "save_by_external_id",
    "save_new",
    "update_contact",
    "upsert_contact",
]

#: Attempts at an upsert or update that keeps losing races before giving up with a 409.
_ATTEMPTS = 5

#: A contact's own columns, as a request names them (the address flattened).
_COLUMNS = (*(name for name in ContactIn.__dataclass_fields__ if name != "address"), *ADDRESS_FIELDS)


def new_contact_id() -> str:
    """`ct_` and 128 random bits."""
    return "ct_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


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


def contact_text(fields: ContactIn, encoding: str) -> str:
    """What the code of a contact made from `fields` says: its vCard or its MeCard."""
    return code_text(card_of(_columns(fields)), encoding)


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


def _insert(owner: ApiKey, values: Mapping[str, Any], encoding: str, code: QrCode) -> str | None:
    """Insert a new contact showing `code`; None when its external_id is taken (nothing is written)."""
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
    return inserted


def save_new(owner: ApiKey, fields: ContactIn, encoding: str | None, premade: QrCode | None = None) -> str:
    """Insert a contact and its code (`premade` if it says the right thing); a taken external_id is a 409."""
    chosen = encoding or "vcard"
    values = _columns(fields)
    contact_id = _insert(owner, values, chosen, code_for(owner, values, chosen, premade))
    if contact_id is None:
        raise _duplicate(fields.external_id)
    return contact_id


def create_contact(owner: ApiKey, fields: ContactIn, encoding: str | None = None) -> Contact:
    """A new contact and its code; an external_id the owner already uses is a 409."""
    return _load(owner, save_new(owner, fields, encoding))


def _update(
    owner: ApiKey, contact: Contact, changes: Mapping[str, Any], encoding: str | None, *known: QrCode
) -> tuple[QrCode, bool]:
    """Write `changes` and the code they make, if the row still shows the code it was read with.

    The code, and False when another writer changed the contact meanwhile: read it again and retry.
    """
    values = {**{column: getattr(contact, column) for column in _COLUMNS}, **changes}
    chosen = encoding or contact.qr_encoding
    code = code_for(owner, values, chosen, contact.code, *known)
    table = Contact.__table__
    try:
        result = db.session.execute(
            sa.update(table)
            .where(table.c.id == contact.id, table.c.qr_code.is_not_distinct_from(contact.qr_code))
            .values(**changes, qr_code=code.id, qr_encoding=chosen, updated_at=now())
        )
    except sa.exc.IntegrityError:
        raise _duplicate(changes.get("external_id")) from None
    return code, result.rowcount == 1  # type: ignore[attr-defined]


def _ids(codes: Iterable[QrCode]) -> list[str]:
    return [code.id for code in codes]


def update_contact(
    owner: ApiKey, contact_id: str, patch: ContactPatch, encoding: str | None = None
) -> Contact:
    """Change some fields (and the code with them); another key's contact is a 404."""
    changes = _changes(patch)
    made: list[QrCode] = []
    for _attempt in range(_ATTEMPTS):
        contact = _load(owner, contact_id)
        old = contact.qr_code
        code, written = _update(owner, contact, changes, encoding, *made)
        made.append(code)
        if written:
            forget_codes(owner, {old, *_ids(made)} - {code.id})
            return _load(owner, contact_id)
    forget_codes(owner, _ids(made))
    raise _busy()


def _busy() -> ApiError:
    return ApiError(409, "conflict", "the contact kept changing while it was being saved; try again")


def save_by_external_id(
    owner: ApiKey, external_id: str, fields: ContactIn, encoding: str | None, premade: QrCode | None = None
) -> tuple[str, bool]:
    """Insert or replace the contact with this external_id: its id, and whether it is new.

    Concurrent saves of one external_id make one contact: the loser of the insert updates
    it, and the last writer's fields and code win together. `premade` is used as the code
    when it says the right thing (an import makes its codes in one batch).
    """
    if fields.external_id not in (None, external_id):
        raise ApiError(
            400, "invalid_parameter", "external_id in the body differs from the URL's", field="external_id"
        )
    values = {**_columns(fields), "external_id": external_id}
    made: list[QrCode] = []
    for _attempt in range(_ATTEMPTS):
        query = sa.select(Contact).where(Contact.owner_id == owner.id, Contact.external_id == external_id)
        contact: Contact | None = db.session.scalar(query)
        if contact is None:
            chosen = encoding or "vcard"
            code = code_for(owner, values, chosen, *made, premade)
            made.append(code)
            contact_id = _insert(owner, values, chosen, code)
            if contact_id is not None:
                forget_codes(owner, set(_ids(made)) - {code.id})
                return contact_id, True
        else:
            old = contact.qr_code
            code, written = _update(owner, contact, values, encoding, *made, *([premade] if premade else []))
            made.append(code)
            if written:
                forget_codes(owner, {old, *_ids(made)} - {code.id})
                return contact.id, False
        db.session.expire_all()
    forget_codes(owner, _ids(made))
    raise _busy()


@dataclass(frozen=True, slots=True)
class Saved:
    """An upserted contact, and whether it was made (201) rather than updated (200)."""

    contact: Contact
    created: bool


def upsert_contact(owner: ApiKey, external_id: str, fields: ContactIn, encoding: str | None = None) -> Saved:
    """The contact with this external_id, made or replaced by `fields` (what a CRM sync calls)."""
    contact_id, created = save_by_external_id(owner, external_id, fields, encoding)
    return Saved(_load(owner, contact_id), created)


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
    forget_codes(owner, code_ids)
