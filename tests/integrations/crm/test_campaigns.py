"""Campaigns through the HTTP API: one dynamic code per contact, leading to the landing page with UTM
parameters and an opaque reference, made in one batch and the same code when asked again."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.integrations.crm.conftest import TYPICAL, create

LANDING = "https://shop.example.com/spring?ref=mail&lang=en#offer"
UTM = {"source": "newsletter", "medium": "print & post", "campaign": "spring sale 2027/Ü"}


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Scans written in the request: no writer thread outlives a test.
    return {"SCAN_FLUSH_SECONDS": 0}


def make_campaign(client: Any, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST a campaign (LANDING and UTM unless given) and return its JSON; asserts the 201."""
    payload = {"name": "Spring", "landing_url": LANDING, "utm": UTM, **body}
    response = client.post("/v1/crm/campaigns", json=payload, headers=auth)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def make_codes(client: Any, auth: dict[str, str], campaign_id: str, **body: Any) -> Any:
    """POST the codes request and return the response (200 or 201 expected by the caller)."""
    return client.post(f"/v1/crm/campaigns/{campaign_id}/codes", json=body or {"all": True}, headers=auth)


def import_contacts(client: Any, auth: dict[str, str], rows: list[dict[str, str]]) -> None:
    """Many contacts in one CSV import (header = the keys of the first row)."""
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(row[name] for name in header) for row in rows]
    response = client.post(
        "/v1/crm/contacts/import",
        data="\r\n".join(lines).encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == len(rows), response.get_json()


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_a_campaign_is_made_read_and_listed_newest_first(client, auth) -> None:
    made = make_campaign(client, auth)
    assert made["success"] is True
    assert made["id"].startswith("cp_")
    assert made["name"] == "Spring"
    assert made["landing_url"] == LANDING
    assert made["utm"] == UTM
    assert made["codes"] == 0
    assert made["created_at"].endswith("Z")
    assert path_of(made["links"]["export_csv"]) == f"/v1/crm/campaigns/{made['id']}/export.csv"

    got = client.get(f"/v1/crm/campaigns/{made['id']}", headers=auth).get_json()
    assert got == made

    second = make_campaign(client, auth, name="Summer", utm=None)
    assert second["utm"] == {"source": None, "medium": None, "campaign": None}
    first_page = client.get("/v1/crm/campaigns?limit=1", headers=auth).get_json()
    assert [c["id"] for c in first_page["items"]] == [second["id"]]
    cursor = first_page["next_cursor"]
    rest = client.get(f"/v1/crm/campaigns?limit=1&cursor={cursor}", headers=auth).get_json()
    assert [c["id"] for c in rest["items"]] == [made["id"]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"landing_url": "javascript:alert(1)"}, 422, "landing_url"),
        ({"landing_url": "data:text/html,hi"}, 422, "landing_url"),
        ({"landing_url": "ftp://example.com/file"}, 422, "landing_url"),
        ({"landing_url": "https:///no-host"}, 422, "landing_url"),
        ({"landing_url": "https://example.com/a b"}, 422, "landing_url"),
        ({"landing_url": "https://example.com/" + "a" * 2100}, 400, "landing_url"),
        ({"landing_url": "https://example.com/" + "a" * 2020}, 422, "landing_url"),
        ({"landing_url": 5}, 400, "landing_url"),
        ({"name": ""}, 400, "name"),
        ({"name": "a\x00b"}, 400, "name"),
        ({"utm": {"source": "x", "term": "y"}}, 400, "utm.term"),
        ({"utm": {"source": "a" * 201}}, 400, "utm.source"),
        ({"utm": "newsletter"}, 400, "utm"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_field(client, auth, body, status, field) -> None:
    payload = {"name": "Spring", "landing_url": LANDING, **body}
    response = client.post("/v1/crm/campaigns", json=payload, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["field"] == field
    assert client.get("/v1/crm/campaigns", headers=auth).get_json()["items"] == []


def test_each_code_leads_to_the_landing_page_with_utm_and_an_opaque_reference(client, auth, decode) -> None:
    contact = create(client, auth)
    campaign = make_campaign(client, auth)
    response = make_codes(client, auth, campaign["id"], contact_ids=[contact["id"]])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["count"], body["created"]) == (1, 1)
    (item,) = body["items"]
    assert item["contact_id"] == contact["id"]
    assert item["created"] is True

    target = urlsplit(item["target"])
    assert (target.scheme, target.netloc, target.path, target.fragment) == (
        "https",
        "shop.example.com",
        "/spring",
        "offer",
    )
    query = parse_qsl(target.query, keep_blank_values=True, strict_parsing=True)
    assert query == [
        ("ref", "mail"),
        ("lang", "en"),
        ("utm_source", "newsletter"),
        ("utm_medium", "print & post"),
        ("utm_campaign", "spring sale 2027/Ü"),
        ("qrc", item["reference"]),
    ]
    assert target.query.isascii() and " " not in target.query
    assert len(item["reference"]) >= 16
    for personal in ("Ann", "Lee", "ann.lee", "example.com", contact["id"], contact["vcard_qr"]["id"]):
        assert personal not in item["target"].replace("shop.example.com", "")

    image = client.get(path_of(item["image_url"]))
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    assert decode(image.data) == [item["short_url"]]

    redirect = client.get(path_of(item["short_url"]))
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == item["target"]

    stored = client.get(f"/v1/qr/{item['id']}", headers=auth).get_json()
    assert stored["dynamic"]["short_url"] == item["short_url"]
    assert stored["dynamic"]["target"] == item["target"]
    listed = client.get("/v1/qr?limit=100", headers=auth).get_json()["items"]
    assert item["id"] in {code["id"] for code in listed}


def test_references_are_different_for_every_contact_and_campaign(client, auth) -> None:
    first, second = create(client, auth), create(client, auth, {**TYPICAL, "email": "b@example.com"})
    references = []
    for name in ("One", "Two"):
        campaign = make_campaign(client, auth, name=name)
        items = make_codes(client, auth, campaign["id"]).get_json()["items"]
        assert {item["contact_id"] for item in items} == {first["id"], second["id"]}
        references += [item["reference"] for item in items]
    assert len(set(references)) == 4


@pytest.mark.parametrize(
    ("landing", "expected"),
    [
        ("https://example.com", "https://example.com/?utm_source=s&qrc={ref}"),
        (
            "https://example.com/?qrc=old&utm_source=old&x=1",
            "https://example.com/?x=1&utm_source=s&qrc={ref}",
        ),
        ("https://example.com/p?a=%20b&c", "https://example.com/p?a=%20b&c&utm_source=s&qrc={ref}"),
        ("HTTPS://Example.com/P#top", "HTTPS://Example.com/P?utm_source=s&qrc={ref}#top"),
    ],
)
def test_the_landing_urls_own_query_is_kept_and_ours_replaced(client, auth, landing, expected) -> None:
    create(client, auth)
    campaign = make_campaign(client, auth, landing_url=landing, utm={"source": "s"})
    (item,) = make_codes(client, auth, campaign["id"]).get_json()["items"]
    assert item["target"] == expected.format(ref=item["reference"])


def test_asking_again_returns_the_same_codes_and_makes_only_the_new_ones(client, auth) -> None:
    first = create(client, auth)
    campaign = make_campaign(client, auth)
    made = make_codes(client, auth, campaign["id"]).get_json()["items"]

    again = make_codes(client, auth, campaign["id"], contact_ids=[first["id"], first["id"]])
    assert again.status_code == 200
    assert again.get_json()["created"] == 0
    assert [item["id"] for item in again.get_json()["items"]] == [made[0]["id"]]
    assert again.get_json()["items"][0]["created"] is False

    second = create(client, auth, {**TYPICAL, "given_name": "Bo"})
    both = make_codes(client, auth, campaign["id"])
    assert both.status_code == 201
    items = {item["contact_id"]: item for item in both.get_json()["items"]}
    assert both.get_json()["created"] == 1
    assert items[first["id"]]["id"] == made[0]["id"]
    assert items[first["id"]]["reference"] == made[0]["reference"]
    assert items[second["id"]]["created"] is True
    assert client.get(f"/v1/crm/campaigns/{campaign['id']}", headers=auth).get_json()["codes"] == 2


def test_all_with_no_contacts_makes_nothing(client, auth) -> None:
    campaign = make_campaign(client, auth)
    response = make_codes(client, auth, campaign["id"])
    assert response.status_code == 200
    assert response.get_json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "contact_ids"),
        ({"all": True, "contact_ids": ["x"]}, 400, "contact_ids"),
        ({"all": False}, 400, "contact_ids"),
        ({"contact_ids": []}, 400, "contact_ids"),
        ({"contact_ids": ["ct_nope"]}, 404, "contact_ids[0]"),
        ({"contact_ids": "ct_nope"}, 400, "contact_ids"),
    ],
)
def test_choosing_contacts_is_checked(client, auth, body, status, field) -> None:
    create(client, auth)
    campaign = make_campaign(client, auth)
    response = client.post(f"/v1/crm/campaigns/{campaign['id']}/codes", json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["field"] == field


class TestBoundedCount:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"SCAN_FLUSH_SECONDS": 0, "CRM_CAMPAIGN_MAX_CODES": 2}

    def test_more_contacts_than_one_call_may_make_is_413_and_makes_nothing(self, client, auth) -> None:
        ids = [create(client, auth, {**TYPICAL, "given_name": f"N{n}"})["id"] for n in range(3)]
        campaign = make_campaign(client, auth)
        for body in ({"all": True}, {"contact_ids": ids}):
            response = make_codes(client, auth, campaign["id"], **body)
            assert response.status_code == 413, response.get_json()
            assert response.get_json()["error"] in ("too_many_contacts", "too_many_items")
            assert "2" in response.get_json()["message"]
        assert client.get(f"/v1/crm/campaigns/{campaign['id']}", headers=auth).get_json()["codes"] == 0
        assert make_codes(client, auth, campaign["id"], contact_ids=ids[:2]).status_code == 201


def test_another_keys_campaign_is_404_everywhere(client, auth, make_key) -> None:
    contact = create(client, auth)
    campaign = make_campaign(client, auth)
    make_codes(client, auth, campaign["id"])
    other = {"Authorization": f"Bearer {make_key('other')}"}
    base = f"/v1/crm/campaigns/{campaign['id']}"
    for method, path in (
        ("get", base),
        ("post", f"{base}/codes"),
        ("get", f"{base}/stats"),
        ("get", f"{base}/export.csv"),
        ("get", f"{base}/export.zip"),
    ):
        response = getattr(client, method)(
            path, headers=other, json={"all": True} if method == "post" else None
        )
        assert response.status_code == 404, (path, response.get_json())
        assert response.get_json()["error"] == "not_found"
    assert client.get("/v1/crm/campaigns", headers=other).get_json()["items"] == []

    theirs = make_campaign(client, other)
    response = make_codes(client, other, theirs["id"], contact_ids=[contact["id"]])
    assert response.status_code == 404
    assert response.get_json()["field"] == "contact_ids[0]"


def test_keys_need_the_crm_scope(client, make_key) -> None:
    headers = {"Authorization": f"Bearer {make_key('qr only', scopes=('qr',))}"}
    assert client.get("/v1/crm/campaigns", headers=headers).status_code == 403
    response = client.post("/v1/crm/campaigns", json={"name": "x", "landing_url": LANDING}, headers=headers)
    assert response.status_code == 403
    assert client.get("/v1/crm/campaigns").status_code == 401
