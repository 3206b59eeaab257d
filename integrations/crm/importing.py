"""Importing a contacts CSV: every row parsed like a JSON body, saved in its own savepoint.

A bad row (a broken email, a missing name, cells past the header) is reported with its
spreadsheet row number and never stops the good ones; a dry run parses and checks every
row and says what it would do, storing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from integrations.crm.contacts import check_contact, create_contact, upsert_contact
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


def _existing(owner: ApiKey, external_ids: set[str]) -> set[str]:
    if not external_ids:
        return set()
    query = sa.select(Contact.external_id).where(
        Contact.owner_id == owner.id, Contact.external_id.in_(external_ids)
    )
    return {external_id for external_id in db.session.scalars(query) if external_id is not None}


def import_contacts(
    owner: ApiKey, body: bytes, *, max_rows: int, dry_run: bool = False, encoding: str | None = None
) -> ImportResult:
    """Create or update (by `external_id`) a contact per row; rows without one are new contacts."""
    result = ImportResult()
    parsed: list[tuple[Row, ContactIn]] = []
    for row in _rows(body, max_rows):
        try:
            parsed.append((row, _parse(row)))
        except ApiError as error:
            result.errors.append(RowError(row.number, error.field, error.message))
    if dry_run:
        _check(owner, parsed, encoding, result)
    else:
        _save(owner, parsed, encoding, result)
    result.errors.sort(key=lambda error: error.row)
    return result


def _check(
    owner: ApiKey, parsed: list[tuple[Row, ContactIn]], encoding: str | None, result: ImportResult
) -> None:
    """What saving would do: each code must fit, and an external_id seen before is an update."""
    seen = _existing(owner, {fields.external_id for _row, fields in parsed if fields.external_id})
    for row, fields in parsed:
        # An existing contact keeps its own encoding when none is asked for; vCard is the larger one.
        chosen = encoding or "vcard"
        try:
            check_contact(fields, chosen)
        except ApiError as error:
            result.errors.append(RowError(row.number, error.field, error.message))
            continue
        if fields.external_id in seen:
            result.updated += 1
        else:
            result.created += 1
            if fields.external_id:
                seen.add(fields.external_id)


def _save(
    owner: ApiKey, parsed: list[tuple[Row, ContactIn]], encoding: str | None, result: ImportResult
) -> None:
    for row, fields in parsed:
        try:
            with savepoint():
                if fields.external_id:
                    created = upsert_contact(owner, fields.external_id, fields, encoding).created
                else:
                    create_contact(owner, fields, encoding)
                    created = True
        except ApiError as error:
            result.errors.append(RowError(row.number, error.field, error.message))
            continue
        if created:
            result.created += 1
        else:
            result.updated += 1
