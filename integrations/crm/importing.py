"""Importing a contacts CSV: every row parsed like a JSON body, saved in its own savepoint.

A bad row (a broken email, a missing name, cells past the header) is reported with its
spreadsheet row number and never stops the good ones; a dry run parses and checks every
row and says what it would do, storing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from integrations.crm.contact_codes import check_fits, forget_codes, make_contact_codes
from integrations.crm.contacts import contact_text, save_by_external_id, save_new
from integrations.crm.csvimport import CsvError, Row, read_rows
from integrations.crm.models import Contact
from integrations.crm.schemas import CONTACT_COLUMNS, ContactIn
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError, parse_object, savepoint

__all__ = ["ImportResult", "RowError", "import_contacts"]


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one row was not saved; `row` is numbered as a spreadsheet shows it (the header is 1)."""

    row: int
    field: str | None
    message: str


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


def _rows(body: bytes, max_rows: int) -> list[Row]:
    """Every data row, or the 400/413 of a file that cannot be read as a whole."""
    try:
        return list(read_rows(body, CONTACT_COLUMNS, max_rows))
    except OverflowError:
        raise ApiError(
            413,
            "too_many_rows",
            f"the file has more than {max_rows} rows; at most {max_rows} in one import "
            "(QRSVC_CRM_IMPORT_MAX_ROWS): split it",
        ) from None
    except CsvError as error:
        raise ApiError(400, "invalid_csv", str(error), field=error.field) from None


def _parse(row: Row) -> ContactIn:
    if row.extra_cells:
        raise ApiError(
            400, "invalid_row", f"the row has {row.extra_cells} more cells than the header has columns"
        )
    return parse_object(ContactIn, row.values)


def _encodings(owner: ApiKey, external_ids: set[str]) -> dict[str, str]:
    """The code encoding of each of the owner's contacts with one of these external ids."""
    if not external_ids:
        return {}
    query = sa.select(Contact.external_id, Contact.qr_encoding).where(
        Contact.owner_id == owner.id, Contact.external_id.in_(external_ids)
    )
    return {external_id: encoding for external_id, encoding in db.session.execute(query) if external_id}


@dataclass(frozen=True, slots=True)
class _Planned:
    row: Row
    fields: ContactIn
    text: str  # what the contact's code will say


def import_contacts(
    owner: ApiKey, body: bytes, *, max_rows: int, dry_run: bool = False, encoding: str | None = None
) -> ImportResult:
    """Create or update (by `external_id`) a contact per row; rows without one are new contacts.

    Every row is parsed and its code text checked first; the codes of the good rows are then
    made in one batch (one render pass, one quota reservation) and each row is saved in its
    own savepoint. A dry run stops after the checks and counts what saving would do.
    """
    result = ImportResult()
    parsed: list[tuple[Row, ContactIn]] = []
    for row in _rows(body, max_rows):
        try:
            parsed.append((row, _parse(row)))
        except ApiError as error:
            result.errors.append(RowError(row.number, error.field, error.message))
    existing = _encodings(owner, {fields.external_id for _row, fields in parsed if fields.external_id})
    planned: list[_Planned] = []
    for row, fields in parsed:
        # A contact that exists keeps its own encoding unless the request asks for one.
        chosen = encoding or existing.get(fields.external_id or "", "vcard")
        text = contact_text(fields, chosen)
        try:
            check_fits(text, chosen)
        except ApiError as error:
            result.errors.append(RowError(row.number, error.field, error.message))
            continue
        planned.append(_Planned(row, fields, text))
    if dry_run:
        _count(planned, set(existing), result)
    else:
        _save(owner, planned, encoding, result)
    result.errors.sort(key=lambda error: error.row)
    return result


def _count(planned: list[_Planned], existing: set[str], result: ImportResult) -> None:
    """What saving would do: a row whose external_id exists (or came earlier) updates it."""
    seen = set(existing)
    for plan in planned:
        external_id = plan.fields.external_id
        if external_id in seen:
            result.updated += 1
        else:
            result.created += 1
            if external_id:
                seen.add(external_id)


def _save(owner: ApiKey, planned: list[_Planned], encoding: str | None, result: ImportResult) -> None:
    if not planned:
        return
    codes = make_contact_codes(owner, [plan.text for plan in planned])
    for plan, code in zip(planned, codes, strict=True):
        fields = plan.fields
        try:
            with savepoint():
                if fields.external_id:
                    _contact_id, created = save_by_external_id(
                        owner, fields.external_id, fields, encoding, code
                    )
                else:
                    save_new(owner, fields, encoding, code)
                    created = True
        except ApiError as error:
            result.errors.append(RowError(plan.row.number, error.field, error.message))
            continue
        if created:
            result.created += 1
        else:
            result.updated += 1
    forget_codes(owner, [code.id for code in codes])  # those of rows that failed, or changed meanwhile
