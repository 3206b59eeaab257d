"""Scans of campaign codes: counted per campaign, per contact and per day, unique by visitor, with no
client address stored; a retargeted code keeps its image and follows its new target at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integrations.crm.conftest import TYPICAL, create
from tests.integrations.crm.test_campaigns import make_campaign, make_codes, path_of

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
ADDRESSES = ("203.0.113.77", "198.51.100.23", "2001:db8::4242")


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"SCAN_FLUSH_SECONDS": 0}


def scan(client: Any, short_url: str, address: str, agent: str) -> Any:
    response = client.get(
        path_of(short_url), headers={"User-Agent": agent}, environ_base={"REMOTE_ADDR": address}
    )
    assert response.status_code == 302
    return response


def test_scans_are_counted_per_campaign_contact_and_day_unique_by_visitor(client, auth, app) -> None:
    ann, bo = create(client, auth), create(client, auth, {**TYPICAL, "given_name": "Bo"})
    carl = create(client, auth, {**TYPICAL, "given_name": "Carl"})
    campaign = make_campaign(client, auth)
    items = {i["contact_id"]: i for i in make_codes(client, auth, campaign["id"]).get_json()["items"]}
    other = make_campaign(client, auth, name="Other")
    other_items = make_codes(client, auth, other["id"], contact_ids=[ann["id"]]).get_json()["items"]

    for _ in range(3):
        scan(client, items[ann["id"]]["short_url"], ADDRESSES[0], PHONE)  # one visitor, three scans
    scan(client, items[ann["id"]]["short_url"], ADDRESSES[1], PHONE)
    scan(client, items[ann["id"]]["short_url"], ADDRESSES[1], LAPTOP)
    scan(client, items[bo["id"]]["short_url"], ADDRESSES[2], LAPTOP)
    scan(client, other_items[0]["short_url"], ADDRESSES[0], PHONE)  # another campaign's: not counted

    response = client.get(f"/v1/crm/campaigns/{campaign['id']}/stats", headers=auth)
    assert response.status_code == 200
    stats = response.get_json()
    assert stats["campaign_id"] == campaign["id"]
    assert stats["scans"]["total"] == 6
    assert stats["scans"]["unique"] == 4
    assert stats["scans"]["last_at"].endswith("Z")
    per_contact = {row["contact_id"]: row for row in stats["contacts"]}
    assert set(per_contact) == {ann["id"], bo["id"], carl["id"]}
    assert [row["contact_id"] for row in stats["contacts"]] == [ann["id"], bo["id"], carl["id"]]
    assert per_contact[ann["id"]]["scans"]["total"] == 5
    assert per_contact[ann["id"]]["scans"]["unique"] == 3
    assert per_contact[bo["id"]]["scans"] == {
        "total": 1,
        "unique": 1,
        "last_at": per_contact[bo["id"]]["scans"]["last_at"],
    }
    assert per_contact[carl["id"]]["scans"] == {"total": 0, "unique": 0, "last_at": None}
    assert per_contact[ann["id"]]["id"] == items[ann["id"]]["id"]
    assert per_contact[ann["id"]]["reference"] == items[ann["id"]]["reference"]
    assert per_contact[ann["id"]]["external_id"] is None

    today = datetime.now(UTC).date()
    assert stats["days"] == [{"day": today.isoformat(), "total": 6, "unique": 4}]  # since it began
    assert stats["from"] == f"{today.isoformat()}T00:00:00Z"
    assert stats["to"] == f"{(today + timedelta(days=1)).isoformat()}T00:00:00Z"

    month = client.get(f"/v1/crm/campaigns/{campaign['id']}/stats?days=30", headers=auth).get_json()
    assert len(month["days"]) == 30
    assert month["days"][0]["day"] == (today - timedelta(days=29)).isoformat()
    assert month["days"][-1] == {"day": today.isoformat(), "total": 6, "unique": 4}
    assert month["scans"] == stats["scans"]
    for bad in ("0", "367", "x"):
        refused = client.get(f"/v1/crm/campaigns/{campaign['id']}/stats?days={bad}", headers=auth)
        assert refused.status_code == 400
        assert refused.get_json()["field"] == "days"

    from qrsvc.extensions import db

    with app.app_context():
        dumped = []
        with db.engine.connect() as connection:
            for table in db.metadata.sorted_tables:
                for row in connection.execute(sa.select(table)):
                    dumped.extend(str(value) for value in row)
    text = "\n".join(dumped)
    assert "Bo" in text  # the dump does hold the data
    for address in ADDRESSES:
        assert address not in text
        assert address.replace(":", "") not in text.replace(":", "")


def test_a_retargeted_code_redirects_to_the_new_target_with_the_same_image(client, auth, decode) -> None:
    create(client, auth)
    campaign = make_campaign(client, auth)
    (item,) = make_codes(client, auth, campaign["id"]).get_json()["items"]
    before = client.get(path_of(item["image_url"])).data
    assert decode(before) == [item["short_url"]]

    changed = client.patch(
        f"/v1/qr/{item['id']}", json={"target": "https://new.example.org/landing?x=1"}, headers=auth
    )
    assert changed.status_code == 200, changed.get_json()
    redirect = client.get(path_of(item["short_url"]))
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == "https://new.example.org/landing?x=1"
    after = client.get(path_of(item["image_url"])).data
    assert after == before

    again = make_codes(client, auth, campaign["id"]).get_json()["items"]
    assert [(i["id"], i["short_url"], i["target"]) for i in again] == [
        (item["id"], item["short_url"], "https://new.example.org/landing?x=1")
    ]
    rows = client.get(f"/v1/crm/campaigns/{campaign['id']}/export.csv", headers=auth).data.decode("utf-8-sig")
    assert item["short_url"] in rows


def test_a_campaign_without_scans_has_zero_counts(client, auth) -> None:
    create(client, auth)
    campaign = make_campaign(client, auth)
    make_codes(client, auth, campaign["id"])
    stats = client.get(f"/v1/crm/campaigns/{campaign['id']}/stats", headers=auth).get_json()
    assert stats["scans"] == {"total": 0, "unique": 0, "last_at": None}
    assert all(day["total"] == 0 for day in stats["days"])
