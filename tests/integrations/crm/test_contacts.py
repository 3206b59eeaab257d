"""Contacts through the HTTP API: each with a stored vCard code that says what its .vcf says."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.integrations.crm.conftest import TYPICAL, create, expected_fields, mecard_fields, vcard_fields

HARD_TEXT = [
    pytest.param(
        {
            "given_name": "Zoë",
            "family_name": "Müller-Lüdenscheidt",
            "organization": "Société Générale, Île-de-France",
            "title": "Directrice générale adjointe",
            "address": {"street": "12, rue de l'Église", "city": "Besançon", "country": "France"},
            "note": "Préfère être appelée « Zoé »",
        },
        id="accents",
    ),
    pytest.param(
        {
            "given_name": "太郎",
            "family_name": "山田",
            "organization": "株式会社サンプル 東京支社",
            "title": "営業部長",
            "email": "taro@例え.jp",
            "address": {
                "street": "千代田区千代田1-1",
                "city": "東京都",
                "postal_code": "100-0001",
                "country": "日本",
            },
            "note": "中文 한국어 😀",
        },
        id="cjk",
    ),
    pytest.param(
        {
            "given_name": "Lee, Ann; Jr",
            "family_name": "O'Brien; \\ Smith, III",
            "organization": "Commas, Semicolons; Backslashes \\ Inc.",
            "title": "A:B, C;D",
            "phone": "+1 (555) 010-0100",
            "website": "https://example.com/a?b=c,d;e",
            "address": {"street": "Suite 5; Floor 2, Bldg \\ 3", "city": "St. Louis, MO", "country": "USA"},
            "note": "a;b,c\\d:e",
        },
        id="separators",
    ),
    pytest.param(
        {
            "given_name": "Ann",
            "family_name": "Lee",
            "address": {"street": "Building B\nFloor 3\r\nRoom 12", "city": "Oslo"},
            "note": "first line\nsecond line, with; stuff\r\n\nlast" + " and a long tail" * 8,
        },
        id="newlines",
    ),
]


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    """Line ends are stored as `\\n`; emails with their domain as email-validator normalises it."""
    body = copy.deepcopy(body)
    for holder, name in ((body, "note"), (body.get("address") or {}, "street")):
        if name in holder:
            holder[name] = holder[name].replace("\r\n", "\n")
    return body


def _image(client: Any, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200
    return bytes(response.data)


@pytest.mark.parametrize("body", HARD_TEXT)
def test_every_field_round_trips_through_the_vcf_and_the_decoded_code(client, auth, decode, body) -> None:
    created = create(client, auth, body)
    want = expected_fields(_normalised(body))
    if "email" in body:
        want["email"] = created["email"]  # the IDN domain as email-validator writes it
        assert created["email"].startswith("taro@")
    vcf = client.get(f"/v1/crm/contacts/{created['id']}/vcard.vcf", headers=auth)
    assert vcf.status_code == 200
    assert vcf.headers["Content-Type"] == "text/vcard; charset=utf-8"
    text = vcf.data.decode("utf-8")
    assert vcard_fields(text) == want
    (decoded,) = decode(_image(client, created["vcard_qr"]["image_url"]))
    assert decoded == text
    assert vcard_fields(decoded) == want
    # The JSON says the same, line ends as `\n`.
    again = client.get(f"/v1/crm/contacts/{created['id']}", headers=auth).get_json()
    assert again["given_name"] == body["given_name"] and again["note"] == want["note"]


def test_a_contact_gets_a_stored_code_at_ec_m_listed_with_the_key_codes(client, auth, decode) -> None:
    created = create(client, auth)
    assert created["id"].startswith("ct_")
    assert set(created["vcard_qr"]) == {"id", "image_url", "encoding", "version"}
    assert created["vcard_qr"]["encoding"] == "vcard"
    code_id = created["vcard_qr"]["id"]
    assert created["links"] == {
        "vcf": f"http://localhost/v1/crm/contacts/{created['id']}/vcard.vcf",
        "card_pdf": f"http://localhost/v1/crm/contacts/{created['id']}/card.pdf",
    }
    meta = client.get(f"/v1/qr/{code_id}", headers=auth).get_json()
    assert meta["error_correction"] == "M"
    assert meta["version"] == created["vcard_qr"]["version"]
    listed = client.get("/v1/qr", headers=auth).get_json()["items"]
    assert [item["id"] for item in listed] == [code_id]
    assert vcard_fields(decode(_image(client, created["vcard_qr"]["image_url"]))[0]) == expected_fields(
        TYPICAL
    )


def test_mecard_encoding_makes_a_smaller_code_with_the_same_fields(client, auth, decode) -> None:
    vcard_contact = create(client, auth)
    mecard_contact = create(client, auth, query="?encoding=mecard")
    assert mecard_contact["vcard_qr"]["encoding"] == "mecard"
    assert mecard_contact["vcard_qr"]["version"] < vcard_contact["vcard_qr"]["version"]
    (text,) = decode(_image(client, mecard_contact["vcard_qr"]["image_url"]))
    fields = mecard_fields(text)
    address = TYPICAL["address"]
    assert fields == {
        "N": [("Lee", "Ann")],
        "ORG": [("Example Corp",)],
        "TEL": [("+1 555 0100",), ("+1 555 0199",)],
        "EMAIL": [("ann.lee@example.com",)],
        "URL": [("https://example.com",)],
        "ADR": [
            ("", "", *(address[name] for name in ("street", "city", "region", "postal_code", "country")))
        ],
    }
    # The choice stays with the contact: a change keeps MeCard until asked otherwise.
    path = f"/v1/crm/contacts/{mecard_contact['id']}"
    changed = client.patch(path, json={"title": "CEO"}, headers=auth).get_json()
    assert changed["vcard_qr"]["encoding"] == "mecard"
    back = client.patch(f"{path}?encoding=vcard", json={}, headers=auth).get_json()
    assert back["vcard_qr"]["encoding"] == "vcard"
    assert vcard_fields(decode(_image(client, back["vcard_qr"]["image_url"]))[0])["title"] == "CEO"


def test_list_pages_newest_first_with_a_cursor(client, auth) -> None:
    made = [create(client, auth, {**TYPICAL, "given_name": f"Ann {i}"})["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/crm/contacts{query}", headers=auth).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    bad = client.get("/v1/crm/contacts?cursor=nonsense", headers=auth)
    assert (bad.status_code, bad.get_json()["field"]) == (400, "cursor")


def test_patch_changes_fields_and_the_code_and_deletes_the_old_code(client, auth, decode) -> None:
    created = create(client, auth)
    old_code = created["vcard_qr"]["id"]
    path = f"/v1/crm/contacts/{created['id']}"
    response = client.patch(
        path, json={"title": "CEO", "mobile": None, "address": {"city": "Paris"}}, headers=auth
    )
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert (changed["title"], changed["mobile"], changed["given_name"]) == ("CEO", None, "Ann")
    assert changed["address"] == {
        "street": None,
        "city": "Paris",
        "region": None,
        "postal_code": None,
        "country": None,
    }
    assert changed["vcard_qr"]["id"] != old_code
    fields = vcard_fields(decode(_image(client, changed["vcard_qr"]["image_url"]))[0])
    assert (fields["title"], fields["mobile"], fields["address"]["city"]) == ("CEO", None, "Paris")
    # The old code held the old personal data: it is gone, and only the new one is listed.
    assert client.get(f"/v1/qr/{old_code}", headers=auth).status_code == 404
    assert [c["id"] for c in client.get("/v1/qr", headers=auth).get_json()["items"]] == [
        changed["vcard_qr"]["id"]
    ]
    refused = client.patch(path, json={"given_name": None}, headers=auth)
    assert (refused.status_code, refused.get_json()["field"]) == (400, "given_name")


def test_delete_removes_the_contact_and_its_code(client, auth) -> None:
    created = create(client, auth)
    path = f"/v1/crm/contacts/{created['id']}"
    response = client.delete(path, headers=auth)
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "id": created["id"], "deleted": True}
    assert client.get(path, headers=auth).status_code == 404
    assert client.get(f"/v1/qr/{created['vcard_qr']['id']}", headers=auth).status_code == 404
    assert client.get(created["vcard_qr"]["image_url"]).status_code == 404
    assert client.delete(path, headers=auth).status_code == 404


def test_two_contacts_with_one_code_keep_it_until_both_are_gone(client, auth) -> None:
    first, second = create(client, auth), create(client, auth)
    assert first["vcard_qr"]["id"] == second["vcard_qr"]["id"]  # identical data: one stored code
    client.delete(f"/v1/crm/contacts/{first['id']}", headers=auth)
    assert client.get(second["vcard_qr"]["image_url"]).status_code == 200
    client.delete(f"/v1/crm/contacts/{second['id']}", headers=auth)
    assert client.get(second["vcard_qr"]["image_url"]).status_code == 404


def test_another_keys_contact_is_404_everywhere(client, auth, make_key) -> None:
    created = create(client, auth)
    other = {"Authorization": f"Bearer {make_key('other')}"}
    path = f"/v1/crm/contacts/{created['id']}"
    for method, url in [
        ("get", path),
        ("patch", path),
        ("delete", path),
        ("get", f"{path}/vcard.vcf"),
        ("get", f"{path}/card.pdf"),
    ]:
        response = getattr(client, method)(url, json={} if method == "patch" else None, headers=other)
        assert response.status_code == 404, (method, url)
        assert response.get_json()["error"] == "not_found"
    cards = client.post(
        "/v1/crm/cards", json={"contact_ids": [created["id"]], "layout": "a4-2x5"}, headers=other
    )
    assert (cards.status_code, cards.get_json()["field"]) == (404, "contact_ids[0]")
    assert client.get("/v1/crm/contacts", headers=other).get_json()["items"] == []
    assert client.get(path, headers=auth).status_code == 200


def test_keys_need_the_crm_scope(client, make_key) -> None:
    missing = client.get("/v1/crm/contacts")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/crm/contacts", headers={"Authorization": "Bearer qrs_nope"}).status_code == 401
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('qr:read', 'shop:write'))}"}
    for method, url in [("get", "/v1/crm/contacts"), ("post", "/v1/crm/contacts"), ("post", "/v1/crm/cards")]:
        response = getattr(client, method)(url, json=TYPICAL, headers=reader)
        assert (response.status_code, response.get_json()["error"]) == (403, "insufficient_scope")
    crm = {"Authorization": f"Bearer {make_key('crm', scopes=('crm',))}"}
    assert create(client, crm)["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"given_name": None}, "given_name"),
        ({"given_name": "   "}, "given_name"),
        ({"family_name": 7}, "family_name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ann@@example.com"}, "email"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"website": "ftp://example.com"}, "website"),
        ({"website": "https://"}, "website"),
        ({"given_name": "Ann\x1b[31m"}, "given_name"),
        ({"title": "CEO\nand founder"}, "title"),
        ({"organization": "Acme\u2028Inc"}, "organization"),
        ({"note": "bell\x07"}, "note"),
        ({"note": "nul\x00"}, "note"),
        ({"address": {"street": "tab\x0bvertical"}}, "address.street"),
        ({"address": {"planet": "Mars"}}, "address.planet"),
        ({"address": "1 Main St"}, "address"),
        ({"title": "x" * 201}, "title"),
        ({"note": "x" * 2001}, "note"),
        ({"external_id": "x" * 129}, "external_id"),
        ({"shoe_size": 9}, "shoe_size"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(client, auth, change: dict[str, Any], field: str) -> None:
    body = {**TYPICAL, **change}
    if change.get("given_name", "") is None:
        del body["given_name"]
    response = client.post("/v1/crm/contacts", json=body, headers=auth)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field
    assert client.get("/v1/crm/contacts", headers=auth).get_json()["items"] == []


def test_a_body_that_is_not_json_is_415(client, auth) -> None:
    response = client.post("/v1/crm/contacts", data="given_name=Ann", headers=auth)
    assert response.status_code == 415


def test_a_contact_too_long_for_any_code_is_422_and_stores_nothing(client, auth) -> None:
    body = {
        **TYPICAL,
        "note": "東" * 2000,  # 6000 bytes of UTF-8
    }
    response = client.post("/v1/crm/contacts", json=body, headers=auth)
    assert (response.status_code, response.get_json()["error"]) == (422, "data_too_long")
    assert "encoding=mecard" in response.get_json()["message"]
    assert client.get("/v1/qr", headers=auth).get_json()["items"] == []
    assert client.get("/v1/crm/contacts", headers=auth).get_json()["items"] == []


HOSTILE = {
    "given_name": "<script>alert(1)</script>",
    "family_name": '=HYPERLINK("http://evil.example","x")',
    "organization": "@SUM(A1:A9)",
    "title": "-1+1",
    "note": "<img src=file:///etc/passwd> {{ 7*7 }}",
}


def test_hostile_text_is_stored_and_served_verbatim(client, auth, decode) -> None:
    created = create(client, auth, HOSTILE)
    for name, value in HOSTILE.items():
        assert created[name] == value
    vcf = client.get(f"/v1/crm/contacts/{created['id']}/vcard.vcf", headers=auth).data.decode()
    assert vcard_fields(vcf) == expected_fields(HOSTILE)
    assert vcard_fields(decode(_image(client, created["vcard_qr"]["image_url"]))[0]) == expected_fields(
        HOSTILE
    )


def test_vcf_file_name_is_safe_whatever_the_name(client, auth) -> None:
    created = create(client, auth, {"given_name": 'Zoë "x"; filename=evil', "family_name": "Lee\\/.."})
    vcf = client.get(f"/v1/crm/contacts/{created['id']}/vcard.vcf", headers=auth)
    assert vcf.headers["Content-Disposition"] == 'attachment; filename="Zoxfilenameevil-Lee.vcf"'
    unnamed = create(client, auth, {"given_name": "東", "family_name": "京"})
    vcf = client.get(f"/v1/crm/contacts/{unnamed['id']}/vcard.vcf", headers=auth)
    assert vcf.headers["Content-Disposition"] == f'attachment; filename="{unnamed["id"]}.vcf"'


def test_a_second_contact_with_an_external_id_is_409(client, auth) -> None:
    create(client, auth, {**TYPICAL, "external_id": "crm-1"})
    response = client.post(
        "/v1/crm/contacts", json={**TYPICAL, "external_id": "crm-1", "title": "x"}, headers=auth
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "duplicate_external_id")
    assert len(client.get("/v1/qr", headers=auth).get_json()["items"]) == 1
    other = create(client, auth, {**TYPICAL, "external_id": "crm-2"})
    taken = client.patch(f"/v1/crm/contacts/{other['id']}", json={"external_id": "crm-1"}, headers=auth)
    assert (taken.status_code, taken.get_json()["field"]) == (409, "external_id")
