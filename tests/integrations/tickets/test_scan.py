"""Gate scanning through the app: results, idempotent retries, exits, the log, stats, offline uploads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import iso


def test_first_scan_admits_and_the_second_is_already_used(ticket, scan) -> None:
    first = scan(ticket["token"], gate="north", device="d1")
    assert first.status_code == 200
    body = first.get_json()
    assert (body["admit"], body["result"], body["first_gate"]) == (True, "admitted", "north")
    assert body["ticket"] == {
        "id": ticket["id"],
        "event_id": ticket["event_id"],
        "holder_name": "Ada Lovelace",
        "seat": "A12",
        "tier": None,
        "state": "used",
    }
    second = scan(ticket["token"], gate="south").get_json()
    assert (second["admit"], second["result"]) == (False, "already_used")
    assert (second["first_used_at"], second["first_gate"]) == (body["first_used_at"], "north")


def test_a_retry_with_the_same_nonce_gets_the_original_answer(client, manager, ticket, scan) -> None:
    first = scan(ticket["token"], device="gate-7", nonce="n-1").get_json()
    retry = scan(ticket["token"], device="gate-7", nonce="n-1").get_json()
    assert first["result"] == retry["result"] == "admitted"
    assert retry == first
    # Another device with the same nonce is another scan.
    assert scan(ticket["token"], device="gate-8", nonce="n-1").get_json()["result"] == "already_used"
    log = client.get(f"/v1/events/{ticket['event_id']}/scans", headers=manager).get_json()["scans"]
    assert [s["result"] for s in log] == ["admitted", "already_used"]


def test_who_may_scan(client, make_key, manager, ticket, scan) -> None:
    assert scan(ticket["token"], headers={}).status_code == 401
    qr_only = {"Authorization": f"Bearer {make_key('qr', 'pro', ('qr',))}"}
    assert scan(ticket["token"], headers=qr_only).status_code == 403
    stranger = {"Authorization": f"Bearer {make_key('other organiser', 'pro', ('tickets',))}"}
    response = scan(ticket["token"], headers=stranger)
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    # At the stranger's own event's gate it is simply the wrong event, and says nothing more.
    body = {"name": "Theirs", "starts_at": "2026-01-01T10:00:00Z", "ends_at": "2036-01-01T10:00:00Z"}
    theirs = client.post("/v1/events", json=body, headers=stranger).get_json()
    decided = scan(ticket["token"], headers=stranger, event_id=theirs["id"])
    assert decided.get_json() == {"admit": False, "result": "wrong_event"}
    assert client.get(f"/v1/events/{theirs['id']}/stats", headers=stranger).get_json()["failed"] == {
        "wrong_event": 1
    }
    # Garbage scanned with someone else's event id is not logged under that event.
    scan("garbage", headers=stranger, event_id=ticket["event_id"])
    assert client.get(f"/v1/events/{ticket['event_id']}/stats", headers=manager).get_json()["scans"] == 0
    # The event owner's own key may scan its tickets.
    assert scan(ticket["token"], headers=manager).get_json()["result"] == "admitted"


def test_an_ordinary_key_of_another_organiser_cannot_scan_or_read_revocations(
    client, make_key, ticket, scan
) -> None:
    # Every key has "*" by default; that must not make it a gate for other organisers' events.
    other = {"Authorization": f"Bearer {make_key('other organiser')}"}
    response = scan(ticket["token"], headers=other)
    assert response.status_code == 403
    assert "ticket" not in response.get_json()
    revocations = client.get(f"/v1/events/{ticket['event_id']}/revocations", headers=other)
    assert revocations.status_code == 404
    gate = {"Authorization": f"Bearer {make_key('gate', 'pro', ('tickets:scan',))}"}
    assert scan(ticket["token"], headers=gate).get_json()["result"] == "admitted"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "token"),
        ({"token": 5}, "token"),
        ({"token": "x", "direction": "sideways"}, "direction"),
        ({"token": "x", "scanned_at": "now"}, "scanned_at"),
        ({"token": "x", "gate": ["a"]}, "gate"),
        ({"token": "x", "ticket": "y"}, "ticket"),
    ],
)
def test_bad_scan_bodies_are_400_with_the_field(client, scanner, body, field) -> None:
    response = client.post("/v1/tickets/scan", json=body, headers=scanner)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_without_reentry_an_exit_does_not_let_the_ticket_back_in(ticket, scan) -> None:
    assert scan(ticket["token"]).get_json()["result"] == "admitted"
    assert scan(ticket["token"], direction="exit").get_json() == {
        "admit": True,
        "result": "exited",
        "ticket": scan(ticket["token"]).get_json()["ticket"],
        "first_used_at": scan(ticket["token"]).get_json()["first_used_at"],
        "first_gate": None,
    }
    assert scan(ticket["token"]).get_json()["result"] == "already_used"


def test_reentry_events_admit_again_after_an_exit(client, manager, make_event, issue, scan) -> None:
    event = make_event(allow_reentry=True)
    ticket = issue(event["id"])
    token = ticket["token"]
    assert scan(token, direction="exit").get_json()["result"] == "not_inside"
    assert scan(token).get_json()["result"] == "admitted"
    assert scan(token).get_json()["result"] == "already_used"  # still inside: a copy
    assert scan(token, direction="exit").get_json()["result"] == "exited"
    assert scan(token).get_json()["result"] == "admitted"
    stats = client.get(f"/v1/events/{event['id']}/stats", headers=manager).get_json()
    assert (stats["admitted"], stats["entries"], stats["exits"], stats["inside"]) == (1, 2, 1, 1)
    assert stats["failed"] == {"already_used": 1, "not_inside": 1}


def test_scan_log_pages_with_a_cursor(client, manager, ticket, scan) -> None:
    for gate in ("g1", "g2", "g3", "g4", "g5"):
        scan(ticket["token"], gate=gate, device="dev", scanned_at="2026-01-01T10:00:00Z")
    url = f"/v1/events/{ticket['event_id']}/scans"
    first = client.get(url, query_string={"limit": 2}, headers=manager).get_json()
    assert [s["gate"] for s in first["scans"]] == ["g1", "g2"]
    assert first["scans"][0]["client_time"] == "2026-01-01T10:00:00Z"
    assert first["scans"][0]["server_time"].endswith("Z")
    seen = [s["gate"] for s in first["scans"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(url, query_string={"limit": 2, "cursor": cursor}, headers=manager).get_json()
        seen += [s["gate"] for s in page["scans"]]
        cursor = page["next_cursor"]
    assert seen == ["g1", "g2", "g3", "g4", "g5"]
    assert client.get(url, query_string={"limit": 0}, headers=manager).status_code == 400
    assert client.get(url, query_string={"cursor": "zzz"}, headers=manager).status_code == 400
    assert client.get(url, query_string={"page": 2}, headers=manager).get_json()["field"] == "page"


def test_stats_count_tickets_scans_and_failures(client, manager, event, issue, scan) -> None:
    a, b, c = (issue(event["id"]) for _ in range(3))
    scan(a["token"])
    scan(a["token"])
    scan(b["token"])
    client.post(f"/v1/tickets/{c['id']}/revoke", headers=manager)
    scan(c["token"])
    scan("not.a.token", event_id=event["id"])
    stats = client.get(f"/v1/events/{event['id']}/stats", headers=manager).get_json()
    assert stats == {
        "event_id": event["id"],
        "issued": 3,
        "admitted": 2,
        "inside": 2,
        "revoked": 1,
        "scans": 5,
        "entries": 2,
        "exits": 0,
        "conflicts": 0,
        "failed": {"already_used": 1, "malformed": 1, "revoked": 1},
    }


# ------------------------------------------------------------------ offline uploads


def upload(client: Any, headers: dict[str, str], *scans: dict[str, Any]) -> Any:
    return client.post("/v1/tickets/scans/upload", json={"scans": list(scans)}, headers=headers)


def test_offline_earliest_scan_wins_and_later_ones_are_conflicts(
    client, manager, scanner, event, issued_at
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    ticket = issued_at(t0 - timedelta(minutes=5), event["id"], seat="A12")
    token = ticket["token"]
    later = {
        "token": token,
        "scanned_at": iso(t0 + timedelta(minutes=10)),
        "gate": "east",
        "device": "A",
        "nonce": "1",
    }
    earlier = {"token": token, "scanned_at": iso(t0), "gate": "west", "device": "B", "nonce": "1"}
    latest = {
        "token": token,
        "scanned_at": iso(t0 + timedelta(minutes=20)),
        "gate": "south",
        "device": "C",
        "nonce": "1",
    }

    first = upload(client, scanner, later).get_json()
    result = first["results"][0]
    assert result == {
        "index": 0,
        "nonce": "1",
        "admit": True,
        "result": "admitted",
        "conflict": False,
        "ticket": result["ticket"],
        "first_used_at": iso(t0 + timedelta(minutes=10)),
        "first_gate": "east",
    }
    assert (first["count"], first["admitted"], first["conflicts"]) == (1, 1, 0)
    # An earlier scan arrives later: it wins the redemption, and the pass-back is reported.
    second = upload(client, scanner, earlier, latest).get_json()
    assert [(r["result"], r["conflict"]) for r in second["results"]] == [
        ("admitted", True),
        ("already_used", True),
    ]
    assert second["conflicts"] == 2
    state = client.get(f"/v1/tickets/{ticket['id']}", headers=manager).get_json()
    assert state["first_gate"] == "west"
    assert state["used_at"] == iso(t0)
    # An online scan now is simply already used.
    online = client.post("/v1/tickets/scan", json={"token": token}, headers=scanner).get_json()
    assert (online["result"], online["first_gate"]) == ("already_used", "west")
    # Re-uploading the same batch (same device + nonce) changes nothing.
    again = upload(client, scanner, earlier, latest).get_json()
    assert [r["result"] for r in again["results"]] == ["admitted", "already_used"]
    stats = client.get(f"/v1/events/{ticket['event_id']}/stats", headers=manager).get_json()
    assert (stats["admitted"], stats["conflicts"], stats["scans"]) == (1, 2, 4)


def test_offline_scans_are_judged_at_scan_time(client, scanner, make_event, issued_at) -> None:
    # An event that ended an hour ago (still in the 6 h grace), its ticket sold days before.
    recent = make_event(
        starts_at=iso(datetime.now(UTC) - timedelta(hours=3)),
        ends_at=iso(datetime.now(UTC) - timedelta(hours=1)),
    )
    ticket = issued_at(datetime.now(UTC) - timedelta(days=4), recent["id"])
    long_ago = datetime.now(UTC) - timedelta(days=3)
    body = upload(
        client,
        scanner,
        {
            "token": ticket["token"],
            "scanned_at": iso(long_ago),
            "device": "A",
            "nonce": "x",
            "admitted_locally": False,
        },
        {
            "token": ticket["token"],
            "scanned_at": iso(datetime.now(UTC) - timedelta(hours=2)),
            "device": "A",
            "nonce": "y",
        },
    ).get_json()
    assert [(r["result"], r["conflict"]) for r in body["results"]] == [
        ("not_yet_valid", False),
        ("admitted", False),
    ]


@pytest.mark.parametrize(
    ("scans", "field"),
    [
        ([{"token": "t", "scanned_at": "2026-01-01T00:00:00Z", "device": "A"}], "scans[0].nonce"),
        ([{"token": "t", "device": "A", "nonce": "1"}], "scans[0].scanned_at"),
        (
            [
                {
                    "token": "t",
                    "scanned_at": "2026-01-01T00:00:00Z",
                    "device": "A",
                    "nonce": "1",
                    "admitted_locally": "y",
                }
            ],
            "scans[0].admitted_locally",
        ),
        ("x", "scans"),
    ],
)
def test_bad_uploads_name_the_field(client, scanner, scans, field) -> None:
    response = client.post("/v1/tickets/scans/upload", json={"scans": scans}, headers=scanner)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


@pytest.mark.parametrize("app_config", [{"TICKETS_BATCH_LIMIT": 2}])
def test_too_many_offline_scans_is_413(client, scanner) -> None:
    item = {"token": "t", "scanned_at": "2026-01-01T00:00:00Z", "device": "A", "nonce": "1"}
    response = client.post("/v1/tickets/scans/upload", json={"scans": [item] * 3}, headers=scanner)
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_many_items"


def test_wrong_method_and_non_json_bodies(client, scanner, manager, ticket) -> None:
    response = client.put("/v1/tickets/scan", headers=scanner)
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert client.post("/v1/tickets/scan", data="token=x", headers=scanner).status_code == 415
    bad = client.post(f"/v1/tickets/{ticket['id']}/reissue", json={"seat": 3}, headers=manager)
    assert (bad.status_code, bad.get_json()["field"]) == (400, "seat")
    assert client.post("/v1/tickets/tkt_missing/revoke", headers=manager).status_code == 404


# ------------------------------------------------------------------ retries are the same scan only


def test_another_keys_garbage_with_a_used_device_and_nonce_learns_nothing(
    client, make_key, manager, ticket, scan
) -> None:
    first = scan(ticket["token"], headers=manager, gate="north", device="gate-7", nonce="n-1")
    assert first.get_json()["result"] == "admitted"
    other_gate = {"Authorization": f"Bearer {make_key('gate B', 'unlimited', ('tickets:scan',))}"}
    for extra in ({}, {"event_id": ticket["event_id"]}):
        probe = scan("garbage", headers=other_gate, device="gate-7", nonce="n-1", **extra)
        assert probe.status_code == 200
        assert probe.get_json() == {"admit": False, "result": "malformed"}


def test_the_same_key_reusing_a_nonce_for_another_token_is_409(
    client, manager, event, issue, ticket, scan
) -> None:
    assert scan(ticket["token"], device="gate-7", nonce="n-1").get_json()["result"] == "admitted"
    other = issue(event["id"])
    for token, extra in (("garbage", {"event_id": event["id"]}), (other["token"], {})):
        response = scan(token, device="gate-7", nonce="n-1", **extra)
        assert response.status_code == 409
        body = response.get_json()
        assert (body["success"], body["error"], body["field"]) == (False, "nonce_reused", "nonce")
        assert "ticket" not in body and "admit" not in body
    # The other ticket was not redeemed by the refused scan, and the first scan's retry still works.
    assert scan(other["token"]).get_json()["result"] == "admitted"
    assert scan(ticket["token"], device="gate-7", nonce="n-1").get_json()["result"] == "admitted"
    log = client.get(f"/v1/events/{event['id']}/scans", headers=manager).get_json()["scans"]
    assert [s["result"] for s in log] == ["admitted", "admitted"]


def test_an_upload_row_reusing_a_nonce_for_another_token_is_nonce_reused(
    client, manager, scanner, event, issued_at
) -> None:
    sold = datetime.now(UTC) - timedelta(hours=1)
    first, other = issued_at(sold, event["id"]), issued_at(sold, event["id"])
    at = iso(datetime.now(UTC) - timedelta(minutes=10))
    row = {"token": first["token"], "scanned_at": at, "device": "A", "nonce": "7"}
    assert upload(client, scanner, row).get_json()["results"][0]["result"] == "admitted"
    body = upload(client, scanner, {**row, "token": other["token"]}, row).get_json()
    assert body["results"][0] == {
        "index": 0,
        "nonce": "7",
        "admit": False,
        "result": "nonce_reused",
        "conflict": False,
    }
    assert body["results"][1]["result"] == "admitted"  # the same row again: a retry
    assert body["admitted"] == 1
    # Garbage names no event, so it is not a retry of that event's scan: just malformed.
    garbage = upload(client, scanner, {**row, "token": "garbage"}).get_json()["results"][0]
    assert (garbage["result"], garbage["admit"], "ticket" in garbage) == ("malformed", False, False)
    # Another key's row with that device and nonce is its own scan.
    assert upload(client, manager, {**row, "token": "garbage"}).get_json()["results"][0]["result"] == (
        "malformed"
    )
    online = client.post("/v1/tickets/scan", json={"token": other["token"]}, headers=scanner)
    assert online.get_json()["result"] == "admitted"


# ------------------------------------------------------------------ offline uploads cannot rewrite history


def _row(token: str, at: datetime, nonce: str, **extra: Any) -> dict[str, Any]:
    return {"token": token, "scanned_at": iso(at), "device": "A", "nonce": nonce, **extra}


def test_an_upload_scanned_before_the_ticket_existed_or_in_the_future_is_invalid_time(
    client, scanner, event, issued_at
) -> None:
    now = datetime.now(UTC)
    ticket = issued_at(now - timedelta(minutes=30), event["id"])
    body = upload(
        client,
        scanner,
        _row(ticket["token"], now - timedelta(hours=2), "early"),
        _row(ticket["token"], now + timedelta(minutes=6), "future", admitted_locally=False),
        _row(ticket["token"], now + timedelta(days=300), "far"),
    ).get_json()
    assert [(r["result"], r["admit"], r["conflict"]) for r in body["results"]] == [
        ("invalid_time", False, True),
        ("invalid_time", False, False),
        ("invalid_time", False, True),
    ]
    # Nothing was redeemed: a scan within the window (a few minutes' skew is fine) still admits.
    ok = upload(client, scanner, _row(ticket["token"], now + timedelta(minutes=2), "ok")).get_json()
    assert ok["results"][0]["result"] == "admitted"


def test_the_old_token_of_a_reissued_ticket_is_revoked_from_the_reissue_time(
    client, manager, scanner, event, issued_at
) -> None:
    now = datetime.now(UTC)
    old = issued_at(now - timedelta(hours=2), event["id"])
    reissued = client.post(f"/v1/tickets/{old['id']}/reissue", json={"seat": "B1"}, headers=manager)
    assert reissued.status_code == 201
    after = upload(client, scanner, _row(old["token"], now + timedelta(seconds=30), "1")).get_json()
    assert [(r["result"], r["admit"], r["conflict"]) for r in after["results"]] == [("revoked", False, True)]
    before = upload(client, scanner, _row(old["token"], now - timedelta(hours=1), "2")).get_json()
    assert before["results"][0]["result"] == "admitted"  # scanned while it was still the valid ticket
    new = client.post("/v1/tickets/scan", json={"token": reissued.get_json()["token"]}, headers=scanner)
    assert new.get_json()["result"] == "admitted"


def test_a_row_not_admitted_locally_is_logged_and_never_redeems(
    client, manager, scanner, event, issued_at
) -> None:
    now = datetime.now(UTC)
    ticket = issued_at(now - timedelta(hours=1), event["id"])
    row = _row(ticket["token"], now - timedelta(minutes=5), "refused", admitted_locally=False)
    body = upload(client, scanner, row).get_json()
    assert [(r["result"], r["admit"], r["conflict"]) for r in body["results"]] == [
        ("refused_locally", False, False)
    ]
    state = client.get(f"/v1/tickets/{ticket['id']}", headers=manager).get_json()
    assert (state["state"], state["used_at"]) == ("valid", None)
    assert [(s["result"], s["offline"]) for s in state["scans"]] == [("refused_locally", True)]
    # The ticket is still good at the door, and a refused row after a use says already_used.
    assert (
        client.post("/v1/tickets/scan", json={"token": ticket["token"]}, headers=scanner).get_json()["result"]
        == "admitted"
    )
    late = upload(
        client, scanner, _row(ticket["token"], now + timedelta(seconds=5), "late", admitted_locally=False)
    )
    assert late.get_json()["results"][0]["result"] == "already_used"
    stats = client.get(f"/v1/events/{event['id']}/stats", headers=manager).get_json()
    assert (stats["admitted"], stats["entries"], stats["conflicts"]) == (1, 1, 0)
    assert stats["failed"] == {"already_used": 1, "refused_locally": 1}


def _inside(client: Any, manager: dict[str, str], event_id: str) -> int:
    return int(client.get(f"/v1/events/{event_id}/stats", headers=manager).get_json()["inside"])


def test_stats_count_inside_exactly_whom_the_exit_rule_lets_out(
    client, manager, scanner, event, issued_at, scan
) -> None:
    now = datetime.now(UTC)
    ticket = issued_at(now - timedelta(hours=1), event["id"])
    # A pass-back: two offline scanners let the same ticket in, the later scan uploaded first.
    later = _row(ticket["token"], now - timedelta(minutes=10), "later")
    earlier = {**_row(ticket["token"], now - timedelta(minutes=20), "earlier"), "device": "B"}
    assert upload(client, scanner, later).get_json()["admitted"] == 1
    assert upload(client, scanner, earlier).get_json()["results"][0]["conflict"] is True
    assert _inside(client, manager, event["id"]) == 1  # two entries, one ticket inside
    assert scan(ticket["token"], direction="exit").get_json()["result"] == "exited"
    assert _inside(client, manager, event["id"]) == 0
    assert scan(ticket["token"], direction="exit").get_json()["result"] == "not_inside"
    stats = client.get(f"/v1/events/{event['id']}/stats", headers=manager).get_json()
    assert (stats["entries"], stats["exits"], stats["inside"]) == (2, 1, 0)
