"""`qrsvc_ticket_scans` on /metrics: each scan logged counts once, by result and mode, when it commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .conftest import iso


def scans_counted(client: Any) -> dict[tuple[str, str], float]:
    """(result, mode) → count, as a Prometheus scrape of /metrics reads them."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "qrsvc_ticket_scans_total":
                found[(sample.labels["result"], sample.labels["mode"])] = sample.value
    return {labels: value for labels, value in found.items() if value}


def upload(client: Any, headers: dict[str, str], *scans: dict[str, Any]) -> Any:
    return client.post("/v1/tickets/scans/upload", json={"scans": list(scans)}, headers=headers)


def test_online_scans_count_by_result_and_retries_do_not(client, event, issue, scan) -> None:
    first, second = issue(event["id"]), issue(event["id"])
    answers = [
        scan(first["token"], device="g1", nonce="1"),
        scan(first["token"], device="g1", nonce="1"),  # a retry: the same scan, not counted again
        scan(first["token"], device="g1", nonce="2"),
        scan(second["token"]),
        scan(second["token"], direction="exit"),
        scan(second["token"], direction="exit"),
        scan("not a token"),
    ]
    assert [a.get_json()["result"] for a in answers] == [
        "admitted",
        "admitted",
        "already_used",
        "admitted",
        "exited",
        "not_inside",
        "malformed",
    ]
    assert scans_counted(client) == {
        ("admitted", "online"): 2,
        ("already_used", "online"): 1,
        ("exited", "online"): 1,
        ("not_inside", "online"): 1,
        ("malformed", "online"): 1,
    }


def test_offline_uploads_count_each_row_logged(client, scanner, event, issued_at) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    ticket = issued_at(t0 - timedelta(minutes=5), event["id"])
    rows = [
        {"token": ticket["token"], "scanned_at": iso(t0 + timedelta(minutes=m)), "device": "A", "nonce": n}
        for m, n in ((1, "1"), (2, "2"))
    ]
    refused = {**rows[1], "nonce": "3", "admitted_locally": False}
    answer = upload(client, scanner, *rows, refused)
    assert [r["result"] for r in answer.get_json()["results"]] == ["admitted", "already_used", "already_used"]
    assert upload(client, scanner, *rows).status_code == 200  # the same rows again: retries
    assert scans_counted(client) == {("admitted", "offline"): 1, ("already_used", "offline"): 2}


def test_a_scan_whose_request_rolls_back_is_not_counted(
    client, make_key, manager, event, issue, issued_at
) -> None:
    """The organiser's own ticket is decided first; a stranger's ticket then refuses the whole upload."""
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    own = issued_at(t0 - timedelta(minutes=5), event["id"])
    stranger = {"Authorization": f"Bearer {make_key('other organiser', 'unlimited', ('tickets',))}"}
    body = {"name": "Theirs", "starts_at": iso(t0), "ends_at": iso(t0 + timedelta(hours=5))}
    theirs = client.post("/v1/events", json=body, headers=stranger).get_json()
    foreign = issued_at(t0 - timedelta(minutes=5), theirs["id"], headers=stranger)

    refused = upload(
        client,
        manager,
        {"token": own["token"], "scanned_at": iso(t0), "device": "A", "nonce": "1"},
        {
            "token": foreign["token"],
            "scanned_at": iso(t0 + timedelta(minutes=1)),
            "device": "A",
            "nonce": "2",
        },
    )
    assert refused.status_code == 403
    assert client.get(f"/v1/tickets/{own['id']}", headers=manager).get_json()["used_at"] is None
    assert scans_counted(client) == {}
    # The same scan on its own commits, and counts.
    kept = upload(
        client, manager, {"token": own["token"], "scanned_at": iso(t0), "device": "A", "nonce": "1"}
    )
    assert kept.get_json()["results"][0]["result"] == "admitted"
    assert scans_counted(client) == {("admitted", "offline"): 1}
