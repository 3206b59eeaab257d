"""Hostile input to every field of the tickets endpoints: always a JSON 4xx naming the field, never a 500.

Lone surrogates (sent as JSON escapes), NUL and other control characters, very long
strings, wrong types, and times that overflow when converted to UTC, in every string
and time field of every body, query string and path the integration accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import iso

HOSTILE_STRINGS = [
    "\ud800",  # lone high surrogate: not encodable as UTF-8
    "\udfff",  # lone low surrogate
    "ab\ud800cd",
    "nul\x00byte",  # PostgreSQL text cannot hold NUL
    "esc\x1b[2Jape",
    "line\nbreak",
    "next\u0085line",  # C1 control
    "x" * 100_000,
    123,
    12345678901234567890123456789,
    1.5,
    True,
    ["a"],
    {"a": "b"},
]
HOSTILE_FLAGS = ["\ud800", "nul\x00", "true", "yes", 1, 0, "x" * 100_000, ["a"], {"a": "b"}]
HOSTILE_TIMES = [
    "9999-12-31T23:59:59-14:00",  # overflows when converted to UTC
    "0001-01-01T00:00:00+01:00",  # underflows when converted to UTC
    "9999-12-31T23:59:59Z",  # valid in UTC, but leaves no room for validity windows
    "0001-01-01T00:00:00Z",
    "2026-01-01T00:00:00",  # no zone
    "2026-01-01T00:00:00\x00Z",
    "\ud800",
    "2026-02-30T00:00:00Z",
    "x" * 100_000,
    1767225600,
    None,
    ["2026-01-01T00:00:00Z"],
]


def _good_times() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"starts_at": iso(now - timedelta(hours=1)), "ends_at": iso(now + timedelta(hours=3))}


def _good_row(token: str) -> dict[str, Any]:
    return {
        "token": token,
        "scanned_at": iso(datetime.now(UTC)),
        "gate": "east",
        "device": "A",
        "nonce": "1",
    }


#: (endpoint, field) for every string, time and flag field of every ticketing body.
FIELDS = [
    *[("create event", f) for f in ("name", "venue", "starts_at", "ends_at", "allow_reentry")],
    *[("issue ticket", f) for f in ("holder_name", "holder_email", "seat", "tier")],
    *[("issue tickets", f"tickets[1].{f}") for f in ("holder_name", "holder_email", "seat", "tier")],
    *[("reissue", f) for f in ("holder_name", "holder_email", "seat", "tier")],
    *[("scan", f) for f in ("token", "gate", "device", "nonce", "direction", "event_id", "scanned_at")],
    *[
        ("upload", f"scans[1].{f}")
        for f in ("token", "scanned_at", "gate", "device", "nonce", "admitted_locally")
    ],
]


def send(
    client: Any,
    headers: dict[str, dict[str, str]],
    ticket: dict[str, Any],
    endpoint: str,
    field: str,
    value: Any,
) -> Any:
    """POST a valid body of `endpoint` whose `field` is `value`."""
    name = field.rsplit(".", 1)[-1]
    manager, scanner = headers["manager"], headers["scanner"]
    if endpoint == "create event":
        return client.post(
            "/v1/events", json={"name": "Concert", **_good_times(), name: value}, headers=manager
        )
    if endpoint == "issue ticket":
        body: dict[str, Any] = {"holder_name": "Ada", name: value}
        return client.post(f"/v1/events/{ticket['event_id']}/tickets", json=body, headers=manager)
    if endpoint == "issue tickets":
        body = {"tickets": [{"holder_name": "Ada"}, {"holder_name": "Bob", name: value}]}
        return client.post(f"/v1/events/{ticket['event_id']}/tickets", json=body, headers=manager)
    if endpoint == "reissue":
        return client.post(f"/v1/tickets/{ticket['id']}/reissue", json={name: value}, headers=manager)
    if endpoint == "scan":
        body = {"token": ticket["token"], "device": "A", "nonce": "1", name: value}
        return client.post("/v1/tickets/scan", json=body, headers=scanner)
    rows = [_good_row(ticket["token"]), {**_good_row(ticket["token"]), "nonce": "2", name: value}]
    return client.post("/v1/tickets/scans/upload", json={"scans": rows}, headers=scanner)


TIME_FIELDS = {"starts_at", "ends_at", "scanned_at"}


def _values_for(field: str) -> list[Any]:
    name = field.rsplit(".", 1)[-1]
    if name in ("allow_reentry", "admitted_locally"):
        return HOSTILE_FLAGS
    return HOSTILE_TIMES if name in TIME_FIELDS else HOSTILE_STRINGS


@pytest.fixture
def headers(manager: dict[str, str], scanner: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"manager": manager, "scanner": scanner}


def assert_refused(response: Any, field: str | None, what: str) -> None:
    assert response.status_code in (400, 404, 409, 413, 422), (
        what,
        response.status_code,
        response.data[:300],
    )
    assert response.is_json, what
    body = response.get_json()
    assert body["success"] is False and body["error"] and body["message"], what
    if field is not None:
        assert body.get("field") == field, (what, body)


@pytest.mark.parametrize(("endpoint", "field"), FIELDS, ids=[f"{e}:{f}" for e, f in FIELDS])
def test_every_hostile_value_is_a_json_4xx_naming_the_field(client, headers, ticket, endpoint, field) -> None:
    for value in _values_for(field):
        if value is None and field.rsplit(".", 1)[-1] not in ("starts_at", "ends_at"):
            continue  # null is "not given" for optional fields
        response = send(client, headers, ticket, endpoint, field, value)
        assert_refused(response, field, f"{endpoint} {field}={value!r:.60}")
    # Nothing hostile got in: the ticket still scans once.
    scanned = client.post("/v1/tickets/scan", json={"token": ticket["token"]}, headers=headers["scanner"])
    assert scanned.get_json()["result"] == "admitted"


@pytest.mark.parametrize("key", ["\ud800", "nul\x00", "x" * 10_000], ids=["surrogate", "nul", "long"])
def test_hostile_field_names_are_unknown_parameters(client, headers, ticket, key) -> None:
    bodies = [
        ("/v1/events", {"name": "C", **_good_times(), key: 1}, "manager"),
        (f"/v1/events/{ticket['event_id']}/tickets", {"holder_name": "A", key: 1}, "manager"),
        (f"/v1/tickets/{ticket['id']}/reissue", {key: 1}, "manager"),
        ("/v1/tickets/scan", {"token": ticket["token"], key: 1}, "scanner"),
        ("/v1/tickets/scans/upload", {"scans": [{**_good_row(ticket["token"]), key: 1}]}, "scanner"),
    ]
    for path, body, who in bodies:
        response = client.post(path, json=body, headers=headers[who])
        assert_refused(response, None, path)
        assert response.get_json()["error"] == "unknown_parameter"


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00%2B01:00",
        "9999-12-31T23:59:59Z",
        "%ED%A0%80",  # a surrogate's UTF-8 form: not valid UTF-8
        "2026-01-01T00:00:00%00Z",
        "%00",
        "x" * 5000,
        "2026-01-01T00:00:00",
    ],
)
def test_hostile_revocations_since_is_a_json_400(client, headers, ticket, since) -> None:
    response = client.get(
        f"/v1/events/{ticket['event_id']}/revocations?since={since}", headers=headers["scanner"]
    )
    assert_refused(response, "since", since)
    assert response.status_code == 400


@pytest.mark.parametrize("cursor", ["%00", "%ED%A0%80", "x" * 5000, "%1B", "99999999999999999999999"])
def test_hostile_scan_log_cursors_are_a_json_400(client, headers, ticket, cursor) -> None:
    response = client.get(
        f"/v1/events/{ticket['event_id']}/scans?cursor={cursor}", headers=headers["manager"]
    )
    assert_refused(response, "cursor", cursor)


@pytest.mark.parametrize("record_id", ["%00", "nul%00id", "%ED%A0%80", "%1B%5B2J", "x" * 5000])
def test_hostile_ids_in_paths_are_a_json_404(client, headers, record_id) -> None:
    manager, scanner = headers["manager"], headers["scanner"]
    requests = [
        client.get(f"/v1/events/{record_id}", headers=manager),
        client.get(f"/v1/events/{record_id}/stats", headers=manager),
        client.get(f"/v1/events/{record_id}/scans", headers=manager),
        client.get(f"/v1/events/{record_id}/revocations", headers=scanner),
        client.post(f"/v1/events/{record_id}/tickets", json={"holder_name": "A"}, headers=manager),
        client.get(f"/v1/tickets/{record_id}", headers=manager),
        client.get(f"/v1/tickets/{record_id}/pdf", headers=manager),
        client.post(f"/v1/tickets/{record_id}/revoke", headers=manager),
        client.post(f"/v1/tickets/{record_id}/reissue", json={}, headers=manager),
    ]
    for response in requests:
        assert_refused(response, None, record_id[:20])
        assert response.status_code == 404
