"""`POST /v1/crm/contacts/import`: a CSV as CRMs and spreadsheets write it, a bad row never stopping the rest."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integrations.crm.conftest import vcard_fields

CSV = {"Content-Type": "text/csv"}


def _import(client: Any, auth: dict[str, str], body: bytes, query: str = "") -> Any:
    return client.post(f"/v1/crm/contacts/import{query}", data=body, headers={**auth, **CSV})


def _contacts(client: Any, auth: dict[str, str]) -> list[dict[str, Any]]:
    return list(client.get("/v1/crm/contacts?limit=100", headers=auth).get_json()["items"])


GOOD = (
    "\ufeffexternal_id,given_name,family_name,email,organization,note,address.street,address.city\r\n"
    'c-1,Zoë,"O\'Brien, Jr",zoe@example.com,"Société; Générale","two\r\nlines, and; more",'
    '"1 Rue de la Paix\nBât B",Paris\r\n'
    "c-2,太郎,山田,taro@example.jp,株式会社サンプル,,,東京\r\n"
    ",Ann,Lee,,,,,\r\n"
).encode()


def test_a_comma_file_with_bom_creates_every_row_and_each_code_says_its_row(client, auth, decode) -> None:
    response = _import(client, auth, GOOD)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "success": True,
        "dry_run": False,
        "created": 3,
        "updated": 0,
        "failed": 0,
        "errors": [],
    }
    by_name = {c["given_name"]: c for c in _contacts(client, auth)}
    assert set(by_name) == {"Zoë", "太郎", "Ann"}
    zoe = by_name["Zoë"]
    assert (zoe["external_id"], zoe["family_name"], zoe["organization"]) == (
        "c-1",
        "O'Brien, Jr",
        "Société; Générale",
    )
    assert zoe["note"] == "two\nlines, and; more"
    assert zoe["address"]["street"] == "1 Rue de la Paix\nBât B"
    (text,) = decode(client.get(zoe["vcard_qr"]["image_url"]).data)
    fields = vcard_fields(text)
    assert (fields["family_name"], fields["note"], fields["address"]["street"]) == (
        "O'Brien, Jr",
        "two\nlines, and; more",
        "1 Rue de la Paix\nBât B",
    )
    assert by_name["Ann"]["external_id"] is None


def test_a_semicolon_file_upserts_by_external_id(client, auth) -> None:
    assert _import(client, auth, GOOD).status_code == 200
    again = "external_id;given_name;family_name;title\nc-1;Zoë;O'Brien;CEO\nc-9;Bob;Stone;\n".encode()
    response = _import(client, auth, again)
    assert response.get_json()["created"] == 1 and response.get_json()["updated"] == 1
    by_id = {c["external_id"]: c for c in _contacts(client, auth)}
    assert (by_id["c-1"]["family_name"], by_id["c-1"]["title"], by_id["c-1"]["note"]) == (
        "O'Brien",
        "CEO",
        None,
    )
    assert len(by_id) == 4  # c-1, c-2, c-9 and the row without an external_id
    # c-1's old code went with its old data: the stored codes are exactly the contacts' codes.
    codes = {c["id"] for c in client.get("/v1/qr", headers=auth).get_json()["items"]}
    assert codes == {c["vcard_qr"]["id"] for c in by_id.values()}


BROKEN = (
    b"external_id,given_name,family_name,email,website\n"
    b"ok-1,Ann,Lee,ann@example.com,https://example.com\n"
    b"bad-email,Bob,Stone,bob@@example,\n"
    b"no-name,,Nobody,,\n"
    b"extra,Cy,Young,cy@example.com,https://example.com,surplus\n"
    b"bad-url,Di,Ray,,javascript:alert(1)\n"
    b'ok-2,"=HYPERLINK(""http://evil"",""x"")",@SUM(A1),,\n'
    b"bell,Ed\x07,Bell,,\n"
)


def test_broken_rows_are_reported_and_the_good_ones_saved(client, auth) -> None:
    result = _import(client, auth, BROKEN).get_json()
    assert (result["created"], result["updated"], result["failed"]) == (2, 0, 5)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (3, "email"),
        (4, "given_name"),
        (5, None),
        (6, "website"),
        (8, "given_name"),
    ]
    assert all(e["message"] for e in result["errors"])
    assert "more cells" in result["errors"][2]["message"]
    by_id = {c["external_id"]: c for c in _contacts(client, auth)}
    assert set(by_id) == {"ok-1", "ok-2"}
    # Hostile text is a name like any other: stored as given.
    assert (by_id["ok-2"]["given_name"], by_id["ok-2"]["family_name"]) == (
        '=HYPERLINK("http://evil","x")',
        "@SUM(A1)",
    )


def test_a_file_of_only_broken_rows_saves_nothing(client, auth) -> None:
    result = _import(client, auth, b"given_name,family_name,email\n,Lee,\nAnn,Lee,x@\n").get_json()
    assert (result["created"], result["updated"], result["failed"]) == (0, 0, 2)
    assert client.get("/v1/qr", headers=auth).get_json()["items"] == []


def test_a_dry_run_counts_and_checks_but_stores_nothing(client, auth) -> None:
    _import(client, auth, b"external_id,given_name,family_name\nok-1,Ann,Lee\n")
    before = _contacts(client, auth)
    codes_before = client.get("/v1/qr", headers=auth).get_json()["items"]
    result = _import(client, auth, BROKEN + b"ok-3,Flo,Day,,\n", "?dry_run=true").get_json()
    assert result["dry_run"] is True
    assert (result["created"], result["updated"], result["failed"]) == (2, 1, 5)
    assert [e["row"] for e in result["errors"]] == [3, 4, 5, 6, 8]
    assert _contacts(client, auth) == before
    assert client.get("/v1/qr", headers=auth).get_json()["items"] == codes_before


def test_a_row_too_long_for_any_code_fails_alone(client, auth) -> None:
    body = ("given_name,family_name,note\nAnn,Lee," + "x" * 2000 + "\nBob,Stone,short\n").encode()
    for query in ("?dry_run=true", ""):
        result = _import(client, auth, body.replace(b"x" * 2000, "東".encode() * 2000), query).get_json()
        assert (result["created"], result["failed"]) == (1, 1)
        assert result["errors"][0]["row"] == 2
        assert "fits no QR code" in result["errors"][0]["message"]


def test_more_rows_than_allowed_is_413_and_stores_nothing(app, client, auth) -> None:
    app.config["CRM_IMPORT_MAX_ROWS"] = 3
    body = b"given_name,family_name\n" + b"Ann,Lee\n" * 4
    response = _import(client, auth, body)
    assert (response.status_code, response.get_json()["error"]) == (413, "too_many_rows")
    assert "QRSVC_CRM_IMPORT_MAX_ROWS" in response.get_json()["message"]
    assert _contacts(client, auth) == []
    assert _import(client, auth, b"given_name,family_name\n" + b"Ann,Lee\n" * 3).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "error", "field"),
    [
        (b"given_name,shoe_size\nAnn,9\n", CSV, 400, "invalid_csv", "shoe_size"),
        (b"", CSV, 400, "invalid_csv", None),
        (b"given_name\n\xff\n", CSV, 400, "invalid_csv", None),
        (b'{"given_name": "Ann"}', {"Content-Type": "application/json"}, 415, "unsupported_media_type", None),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(
    client, auth, body, headers, status, error, field
) -> None:
    response = client.post("/v1/crm/contacts/import", data=body, headers={**auth, **headers})
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert response.get_json().get("field") == field


def test_import_needs_the_crm_scope(client, make_key) -> None:
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('qr:read',))}"}
    assert _import(client, reader, GOOD).status_code == 403
    assert client.post("/v1/crm/contacts/import", data=GOOD, headers=CSV).status_code == 401
