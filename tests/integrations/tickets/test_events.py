"""Events and tickets over HTTP: creation, validation, ownership, codes, revocation, reissue."""

from __future__ import annotations

import pytest

from .conftest import hours, iso


def test_create_event_returns_201_and_reads_back(client, manager) -> None:
    body = {
        "name": "Jazz night",
        "venue": "Blue Hall",
        "starts_at": "2030-05-01T19:00:00+02:00",
        "ends_at": "2030-05-01T23:00:00Z",
        "allow_reentry": True,
    }
    response = client.post("/v1/events", json=body, headers=manager)
    assert response.status_code == 201
    event = response.get_json()
    assert event["id"].startswith("evt_")
    assert event["starts_at"] == "2030-05-01T17:00:00Z"
    assert event["ends_at"] == "2030-05-01T23:00:00Z"
    assert (event["name"], event["venue"], event["allow_reentry"]) == ("Jazz night", "Blue Hall", True)
    assert client.get(f"/v1/events/{event['id']}", headers=manager).get_json() == event


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        (
            {"starts_at": "2030-01-01T10:00:00Z", "ends_at": "2030-01-01T12:00:00Z"},
            400,
            "missing_parameter",
            "name",
        ),
        ({"name": "x", "starts_at": "2030-01-01T10:00:00Z"}, 400, "missing_parameter", "ends_at"),
        (
            {"name": 5, "starts_at": "2030-01-01T10:00:00Z", "ends_at": "2030-01-02T10:00:00Z"},
            400,
            "invalid_parameter",
            "name",
        ),
        (
            {"name": "x", "starts_at": "tomorrow", "ends_at": "2030-01-02T10:00:00Z"},
            400,
            "invalid_parameter",
            "starts_at",
        ),
        (
            {"name": "x", "starts_at": "2030-01-01T10:00:00", "ends_at": "2030-01-02T10:00:00Z"},
            400,
            "invalid_parameter",
            "starts_at",
        ),
        (
            {
                "name": "x",
                "starts_at": "2030-01-01T10:00:00Z",
                "ends_at": "2030-01-02T10:00:00Z",
                "colour": "red",
            },
            400,
            "unknown_parameter",
            "colour",
        ),
        (
            {
                "name": "x",
                "starts_at": "2030-01-01T10:00:00Z",
                "ends_at": "2030-01-02T10:00:00Z",
                "allow_reentry": "yes",
            },
            400,
            "invalid_parameter",
            "allow_reentry",
        ),
        (
            {"name": "x", "starts_at": "2030-01-02T10:00:00Z", "ends_at": "2030-01-01T10:00:00Z"},
            422,
            "invalid_time_range",
            "ends_at",
        ),
    ],
)
def test_bad_event_bodies_name_the_field(client, manager, body, status, error, field) -> None:
    response = client.post("/v1/events", json=body, headers=manager)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert response.get_json()["field"] == field


def test_event_body_must_be_json(client, manager) -> None:
    assert client.post("/v1/events", data="name=x", headers=manager).status_code == 415
    response = client.post("/v1/events", data="{", headers={**manager, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"


def test_keys_need_the_tickets_scope(client, make_key, scanner) -> None:
    body = {"name": "x", "starts_at": iso(hours(1)), "ends_at": iso(hours(2))}
    assert client.post("/v1/events", json=body).status_code == 401
    assert client.post("/v1/events", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    qr_only = {"Authorization": f"Bearer {make_key('qr', 'pro', ('qr',))}"}
    assert client.post("/v1/events", json=body, headers=qr_only).status_code == 403
    assert client.post("/v1/events", json=body, headers=scanner).status_code == 403
    star = {"Authorization": f"Bearer {make_key('admin', 'pro', ('*',))}"}
    assert client.post("/v1/events", json=body, headers=star).status_code == 201


def test_another_keys_event_and_tickets_are_404(client, make_key, event, ticket) -> None:
    other = {"Authorization": f"Bearer {make_key('other', 'pro', ('tickets',))}"}
    for path in (
        f"/v1/events/{event['id']}",
        f"/v1/events/{event['id']}/stats",
        f"/v1/events/{event['id']}/scans",
        f"/v1/events/{event['id']}/revocations",
        f"/v1/tickets/{ticket['id']}",
        f"/v1/tickets/{ticket['id']}/pdf",
    ):
        assert client.get(path, headers=other).status_code == 404, path
    assert (
        client.post(f"/v1/events/{event['id']}/tickets", json={"holder_name": "x"}, headers=other).status_code
        == 404
    )
    assert client.post(f"/v1/tickets/{ticket['id']}/revoke", headers=other).status_code == 404
    assert client.get("/v1/events/evt_missing", headers=other).status_code == 404


def test_issued_ticket_has_token_stored_qr_and_pdf_url(client, manager, event, issue, decode) -> None:
    ticket = issue(event["id"], holder_email="ada@example.com", seat="B7", tier="VIP")
    assert ticket["id"].startswith("tkt_")
    assert (ticket["seat"], ticket["tier"], ticket["holder_email"]) == ("B7", "VIP", "ada@example.com")
    assert ticket["state"] == "valid"
    assert ticket["token"].count(".") == 2
    assert ticket["pdf_url"] == f"http://localhost/v1/tickets/{ticket['id']}/pdf"
    qr = ticket["qr"]
    assert qr["image_url"] == f"http://localhost/v1/qr/{qr['id']}.png"
    image = client.get(qr["image_url"])
    assert image.status_code == 200
    assert decode(image.data, "png") == [ticket["token"]]
    history = client.get("/v1/qr", headers=manager).get_json()
    assert qr["id"] in [item["id"] for item in history["items"]]
    meta = client.get(f"/v1/qr/{qr['id']}", headers=manager).get_json()
    assert meta["error_correction"] in ("M", "Q")
    assert meta["data"] == ticket["token"]


def test_batch_issue_keeps_input_order_and_every_code_scans(client, manager, event, decode) -> None:
    names = [f"Guest {i}" for i in range(5)]
    body = {"tickets": [{"holder_name": n, "seat": f"R{i}"} for i, n in enumerate(names)]}
    response = client.post(f"/v1/events/{event['id']}/tickets", json=body, headers=manager)
    assert response.status_code == 201
    tickets = response.get_json()["tickets"]
    assert [t["holder_name"] for t in tickets] == names
    assert len({t["id"] for t in tickets}) == 5
    for ticket in tickets:
        assert decode(client.get(ticket["qr"]["image_url"]).data) == [ticket["token"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "holder_name"),
        ({"holder_name": ""}, 400, "holder_name"),
        ({"holder_name": "x", "holder_email": "not-an-address"}, 400, "holder_email"),
        ({"holder_name": "x", "seat": 12}, 400, "seat"),
        ({"holder_name": "x", "row": "12"}, 400, "row"),
        ({"tickets": []}, 400, "tickets"),
        ({"tickets": "x"}, 400, "tickets"),
        ({"tickets": [{"holder_name": "a"}, {"seat": "b"}]}, 400, "tickets[1].holder_name"),
        ({"tickets": [{"holder_name": "a"}], "extra": 1}, 400, "extra"),
    ],
)
def test_bad_ticket_bodies_name_the_field(client, manager, event, body, status, field) -> None:
    response = client.post(f"/v1/events/{event['id']}/tickets", json=body, headers=manager)
    assert response.status_code == status
    assert response.get_json()["field"] == field


@pytest.mark.parametrize("app_config", [{"TICKETS_BATCH_LIMIT": 3}])
def test_batch_over_the_limit_is_413(client, manager, event) -> None:
    body = {"tickets": [{"holder_name": f"g{i}"} for i in range(4)]}
    response = client.post(f"/v1/events/{event['id']}/tickets", json=body, headers=manager)
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_many_items"
    assert client.get(f"/v1/events/{event['id']}/stats", headers=manager).get_json()["issued"] == 0


def test_ticket_codes_count_against_the_plan_quota(client, make_key) -> None:
    tiny = {"Authorization": f"Bearer {make_key('tiny', 'tiny', ('tickets',))}"}
    body = {"name": "x", "starts_at": iso(hours(-1)), "ends_at": iso(hours(2))}
    event = client.post("/v1/events", json=body, headers=tiny).get_json()
    over = {"tickets": [{"holder_name": f"g{i}"} for i in range(6)]}
    response = client.post(f"/v1/events/{event['id']}/tickets", json=over, headers=tiny)
    assert response.status_code == 429
    assert response.get_json()["error"] == "quota_exceeded"
    assert client.get(f"/v1/events/{event['id']}/stats", headers=tiny).get_json()["issued"] == 0


def test_get_ticket_shows_state_and_scans(client, manager, ticket, scan) -> None:
    assert scan(ticket["token"], gate="north").get_json()["result"] == "admitted"
    body = client.get(f"/v1/tickets/{ticket['id']}", headers=manager).get_json()
    assert body["state"] == "used"
    assert body["first_gate"] == "north"
    assert [s["result"] for s in body["scans"]] == ["admitted"]


def test_revoke_makes_scans_revoked_and_bumps_the_revocation_version(
    client, manager, event, issue, scan
) -> None:
    keep, drop = issue(event["id"]), issue(event["id"])
    before = client.get(f"/v1/events/{event['id']}/revocations", headers=manager).get_json()
    assert before["revoked"] == []
    response = client.post(f"/v1/tickets/{drop['id']}/revoke", headers=manager)
    assert response.status_code == 200
    assert response.get_json()["state"] == "revoked"
    after = client.get(f"/v1/events/{event['id']}/revocations", headers=manager).get_json()
    assert [r["ticket_id"] for r in after["revoked"]] == [drop["id"]]
    assert after["version"] != before["version"]
    # Revoking again changes nothing, so neither does the version.
    client.post(f"/v1/tickets/{drop['id']}/revoke", headers=manager)
    again = client.get(f"/v1/events/{event['id']}/revocations", headers=manager).get_json()
    assert again["version"] == after["version"]
    since = client.get(
        f"/v1/events/{event['id']}/revocations",
        query_string={"since": after["revoked"][0]["revoked_at"]},
        headers=manager,
    ).get_json()
    assert since["revoked"] == []
    assert scan(drop["token"]).get_json() == {
        "admit": False,
        "result": "revoked",
        "ticket": {k: drop[k] for k in ("id", "event_id", "holder_name", "seat", "tier")}
        | {"state": "revoked"},
    }
    assert scan(keep["token"]).get_json()["result"] == "admitted"


def test_revocations_are_readable_by_scan_keys_and_validate_since(client, scanner, event) -> None:
    response = client.get(f"/v1/events/{event['id']}/revocations", headers=scanner)
    assert response.status_code == 200
    bad = client.get(f"/v1/events/{event['id']}/revocations?since=yesterday", headers=scanner)
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "since"


def test_reissue_gives_a_new_token_and_revokes_the_old(client, manager, ticket, scan, decode) -> None:
    response = client.post(f"/v1/tickets/{ticket['id']}/reissue", json={"seat": "C3"}, headers=manager)
    assert response.status_code == 201
    new = response.get_json()
    assert new["id"] != ticket["id"] and new["token"] != ticket["token"]
    assert (new["seat"], new["holder_name"]) == ("C3", ticket["holder_name"])
    assert decode(client.get(new["qr"]["image_url"]).data) == [new["token"]]
    old = client.get(f"/v1/tickets/{ticket['id']}", headers=manager).get_json()
    assert (old["state"], old["replaced_by"]) == ("revoked", new["id"])
    assert scan(ticket["token"]).get_json()["result"] == "revoked"
    assert scan(new["token"]).get_json()["result"] == "admitted"
    # A used or revoked ticket cannot be reissued.
    assert (
        client.post(f"/v1/tickets/{new['id']}/reissue", headers=manager).get_json()["error"] == "ticket_used"
    )
    assert client.post(f"/v1/tickets/{ticket['id']}/reissue", headers=manager).status_code == 409


@pytest.mark.parametrize("ec", ["Q"])
def test_ticket_codes_use_the_configured_error_correction(
    app, client, manager, event, issue, decode, ec
) -> None:
    app.config["TICKETS_QR_EC"] = ec
    ticket = issue(event["id"])
    meta = client.get(f"/v1/qr/{ticket['qr']['id']}", headers=manager).get_json()
    assert meta["error_correction"] == ec
    assert decode(client.get(ticket["qr"]["image_url"]).data) == [ticket["token"]]


def test_unsafe_settings_are_refused_at_start_up(database_url, tmp_path) -> None:
    from tests.conftest import make_app

    for overrides in (
        {"TICKETS_ALGORITHMS": "EdDSA,HS256"},
        {"TICKETS_SIGNING_ALG": "none"},
        {"TICKETS_QR_EC": "L"},
    ):
        with pytest.raises(ValueError, match="QRSVC_TICKETS_"):
            make_app(database_url, tmp_path / "instance", **overrides)
