"""Concurrent requests for one campaign's codes, through `qrsvc serve`: the primary key decides, so every
request answers with the same code per contact and no extra code is left behind."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

CONTACTS = 120


def test_concurrent_code_requests_give_every_contact_one_code(
    database_url, make_key, serve, tmp_path: Path
) -> None:
    key = make_key("racer")
    server = serve(
        {"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}, workers=2
    )
    headers = {"Authorization": f"Bearer {key}"}
    rows = "\r\n".join(["given_name,family_name"] + [f"Racer{n},Doe" for n in range(CONTACTS)])
    imported = requests.post(
        f"{server.url}/v1/crm/contacts/import",
        data=rows.encode(),
        headers={**headers, "Content-Type": "text/csv"},
        timeout=120,
    )
    assert imported.json()["created"] == CONTACTS, imported.text
    campaign = requests.post(
        f"{server.url}/v1/crm/campaigns",
        json={"name": "Race", "landing_url": "https://example.com/"},
        headers=headers,
        timeout=30,
    ).json()

    for _ in range(8):  # every worker warm (imports done, connections open) before the race
        requests.get(f"{server.url}/v1/crm/campaigns/{campaign['id']}", headers=headers, timeout=30)

    def ask(_: int) -> dict[str, Any]:
        response = requests.post(
            f"{server.url}/v1/crm/campaigns/{campaign['id']}/codes",
            json={"all": True},
            headers=headers,
            timeout=120,
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(6)))

    codes = [{item["contact_id"]: (item["id"], item["reference"]) for item in a["items"]} for a in answers]
    assert all(len(found) == CONTACTS for found in codes)
    assert all(found == codes[0] for found in codes)
    assert sum(a["created"] for a in answers) == CONTACTS

    stored, cursor = [], None
    while True:
        page = requests.get(
            f"{server.url}/v1/qr", params={"limit": 100, "cursor": cursor}, headers=headers, timeout=30
        ).json()
        stored += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    dynamic = {code["id"] for code in stored if code.get("dynamic")}
    assert dynamic == {code_id for code_id, _reference in codes[0].values()}
    read = requests.get(f"{server.url}/v1/crm/campaigns/{campaign['id']}", headers=headers, timeout=30)
    assert read.json()["codes"] == CONTACTS
