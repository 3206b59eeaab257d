"""Contacts CSVs as CRMs and spreadsheets write them: BOM, `;` or `,`, quoted newlines, nested columns."""

from __future__ import annotations

import pytest

from integrations.crm.csvimport import CsvError, Row, read_rows

COLUMNS = ("external_id", "given_name", "family_name", "note", "address.city", "address.country")


def rows(body: bytes, max_rows: int = 100) -> list[Row]:
    return list(read_rows(body, COLUMNS, max_rows))


def test_comma_file_with_bom_and_nested_columns() -> None:
    body = '\ufeffexternal_id,given_name,family_name,address.city\r\nc1,Zoë,"O\'Brien, Jr",Paris\r\n'.encode()
    assert rows(body) == [
        Row(
            2,
            {
                "external_id": "c1",
                "given_name": "Zoë",
                "family_name": "O'Brien, Jr",
                "address": {"city": "Paris"},
            },
        )
    ]


def test_semicolon_file_with_a_quoted_newline_counts_rows_as_a_spreadsheet_does() -> None:
    body = b'given_name;note\nAnn;"two\nlines; and a comma, too"\n\nBob;\n'
    assert rows(body) == [
        Row(2, {"given_name": "Ann", "note": "two\nlines; and a comma, too"}),
        Row(4, {"given_name": "Bob"}),
    ]


def test_extra_cells_are_reported_for_the_row() -> None:
    assert rows(b"given_name,family_name\nAnn,Lee,extra\n") == [
        Row(2, {"given_name": "Ann", "family_name": "Lee"}, extra_cells=1)
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no header"),
        (b"given_name,shoe_size\nAnn,9\n", "unknown column 'shoe_size'"),
        (b"given_name,given_name\n", "appears twice"),
        (b"given_name\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(body: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message):
        rows(body)


def test_more_rows_than_allowed_overflow() -> None:
    body = b"given_name\n" + b"Ann\n" * 11
    with pytest.raises(OverflowError):
        rows(body, max_rows=10)
