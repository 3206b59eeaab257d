"""`PUT /v1/crm/contacts/by-external-id/…`: what a CRM sync calls, safe when its calls race."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import requests

from tests.conftest import decode
from tests.integrations.crm.conftest import TYPICAL, expected_fields, vcard_fields

PATH = "/v1/crm/contacts/by-external-id"


def test_put_creates_then_replaces_the_contact(client, auth, decode) -> None:
    first = client.put(f"{PATH}/sf-0031", json=TYPICAL, headers=auth)
    assert first.status_code == 201, first.get_json()
    made = first.get_json()
    assert made["external_id"] == "sf-0031"
    replacement = {"given_name": "Ann", "family_name": "Lee-Smith", "email": "ann@example.org"}
    second = client.put(f"{PATH}/sf-0031", json=replacement, headers=auth)
    assert second.status_code == 200
    replaced = second.get_json()
    assert replaced["id"] == made["id"]
    assert (replaced["family_name"], replaced["title"], replaced["address"]) == ("Lee-Smith", None, None)
    assert replaced["vcard_qr"]["id"] != made["vcard_qr"]["id"]
    image = client.get(replaced["vcard_qr"]["image_url"]).data
    assert vcard_fields(decode(image)[0]) == expected_fields(replacement)
    assert client.get(f"/v1/qr/{made['vcard_qr']['id']}", headers=auth).status_code == 404
    # The same body again changes nothing but the time: the code is kept.
    third = client.put(f"{PATH}/sf-0031", json=replacement, headers=auth).get_json()
    assert third["vcard_qr"]["id"] == replaced["vcard_qr"]["id"]


def test_external_ids_may_hold_slashes_and_unicode_and_belong_to_their_key(client, auth, make_key) -> None:
    other = {"Authorization": f"Bearer {make_key('other')}"}
    mine = client.put(f"{PATH}/accounts/ÉU%2F7", json=TYPICAL, headers=auth)
    theirs = client.put(f"{PATH}/accounts/ÉU%2F7", json=TYPICAL, headers=other)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.get_json()["external_id"] == "accounts/ÉU/7"
    assert mine.get_json()["id"] != theirs.get_json()["id"]


def test_a_body_naming_another_external_id_is_400(client, auth) -> None:
    response = client.put(f"{PATH}/a-1", json={**TYPICAL, "external_id": "b-2"}, headers=auth)
    assert (response.status_code, response.get_json()["field"]) == (400, "external_id")
    same = client.put(f"{PATH}/a-1", json={**TYPICAL, "external_id": "a-1"}, headers=auth)
    assert same.status_code == 201


def test_put_validates_like_post(client, auth) -> None:
    response = client.put(f"{PATH}/a-1", json={"given_name": "Ann"}, headers=auth)
    assert (response.status_code, response.get_json()["field"]) == (400, "family_name")
    too_long = client.put(f"{PATH}/{'x' * 129}", json=TYPICAL, headers=auth)
    assert (too_long.status_code, too_long.get_json()["field"]) == (400, "external_id")


PUTS = 12


def test_concurrent_puts_of_one_external_id_make_one_contact_with_a_matching_code(
    database_url, make_key, serve, tmp_path: Path
) -> None:
    key = make_key("sync")
    server = serve({"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")})
    headers = {"Authorization": f"Bearer {key}"}
    barrier = threading.Barrier(PUTS)
    statuses: list[int] = [0] * PUTS

    def put(index: int) -> None:
        body: dict[str, Any] = {**TYPICAL, "title": f"Title {index}"}
        barrier.wait()
        response = requests.put(f"{server.url}{PATH}/race-1", json=body, headers=headers, timeout=60)
        statuses[index] = response.status_code

    threads = [threading.Thread(target=put, args=(i,)) for i in range(PUTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * (PUTS - 1) + [201], statuses
    (contact,) = requests.get(f"{server.url}/v1/crm/contacts", headers=headers, timeout=30).json()["items"]
    # The last writer's fields and its code, and no code left behind by the losers.
    codes = requests.get(f"{server.url}/v1/qr", headers=headers, timeout=30).json()["items"]
    assert [code["id"] for code in codes] == [contact["vcard_qr"]["id"]]
    vcf = requests.get(f"{server.url}/v1/crm/contacts/{contact['id']}/vcard.vcf", headers=headers, timeout=30)
    assert codes[0]["data"] == vcf.text
    assert vcard_fields(vcf.text)["title"] == contact["title"]
    assert decode(requests.get(contact["vcard_qr"]["image_url"], timeout=30).content) == [vcf.text]
