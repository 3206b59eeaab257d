"""Mail-merge CSVs that Excel opens as text: BOM, CRLF, and formulas turned into plain cells."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from integrations.crm.mailmerge import csv_bytes, neutralise, zip_bytes


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-1+1", "'-1+1"),
        ("+1 555 0100", "'+1 555 0100"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Zoë = fine", "Zoë = fine"),
        ("", ""),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_get_an_apostrophe(cell: object, expected: str) -> None:
    assert neutralise(cell) == expected


def test_csv_has_a_bom_crlf_and_reads_back_neutralised() -> None:
    content = csv_bytes(["given_name", "note"], [["Zoë", 'a, b; "c"\nd'], ["=cmd|' /C calc'!A0", "@x"]])
    assert content.startswith(b"\xef\xbb\xbf")
    text = content[3:].decode("utf-8")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["given_name", "note"], ["Zoë", 'a, b; "c"\nd'], ["'=cmd|' /C calc'!A0", "'@x"]]


def test_zip_keeps_every_file() -> None:
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes([("contacts.csv", b"a\r\n"), ("x.png", b"\x89PNG")])))
    assert archive.namelist() == ["contacts.csv", "x.png"]
    assert archive.read("x.png") == b"\x89PNG"
    assert archive.getinfo("x.png").compress_type == zipfile.ZIP_STORED
