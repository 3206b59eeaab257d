"""The gate: the /scan page and the events a gate key may pick from (GET /v1/events)."""

from __future__ import annotations

import re

import pytest

from tests.integrations.tickets.conftest import hours, iso


def test_scan_page_is_html_with_a_strict_content_security_policy(client) -> None:
    response = client.get("/scan")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert response.headers["Permissions-Policy"] == "camera=(self)"
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", page)
    assert len(scripts) == 2
    assert all(" src=" in tag for tag in scripts), "no inline script"


@pytest.mark.parametrize(
    ("asset", "mimetype"),
    [("scan.js", "text/javascript"), ("scan.css", "text/css"), ("vendor/jsQR.js", "text/javascript")],
)
def test_scan_page_assets_are_served_by_flask(client, asset, mimetype) -> None:
    response = client.get(f"/static/tickets/{asset}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    response.close()


def test_the_vendored_decoder_keeps_its_licence(client) -> None:
    response = client.get("/static/tickets/vendor/jsQR.LICENSE")
    assert response.status_code == 200
    assert "Apache License" in response.get_data(as_text=True)
    response.close()


def test_a_gate_key_lists_every_open_event_soonest_first(client, make_event, make_key, scanner) -> None:
    other_owner = {"Authorization": f"Bearer {make_key('other box office', 'unlimited', ('tickets',))}"}
    later = make_event(name="Late show", starts_at=iso(hours(5)), ends_at=iso(hours(8)))
    now = make_event(name="Matinee")
    theirs = make_event(other_owner, name="Their gig", starts_at=iso(hours(2)), ends_at=iso(hours(4)))
    make_event(name="Last week", starts_at=iso(hours(-200)), ends_at=iso(hours(-190)))
    response = client.get("/v1/events", headers=scanner)
    assert response.status_code == 200
    assert "X-RateLimit-Remaining" in response.headers
    events = response.get_json()["events"]
    assert [e["id"] for e in events] == [now["id"], theirs["id"], later["id"]]
    assert events[0] == now


def test_an_owner_key_lists_only_its_own_events(client, make_event, make_key, manager) -> None:
    other_owner = {"Authorization": f"Bearer {make_key('other box office', 'unlimited', ('tickets',))}"}
    mine = make_event(name="Mine")
    make_event(other_owner, name="Theirs")
    response = client.get("/v1/events", headers=manager)
    assert [e["id"] for e in response.get_json()["events"]] == [mine["id"]]


def test_listing_events_needs_a_ticketing_key(client, make_key) -> None:
    assert client.get("/v1/events").status_code == 401
    plain = {"Authorization": f"Bearer {make_key('qr only', 'pro', ('qr:read', 'qr:write'))}"}
    response = client.get("/v1/events", headers=plain)
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"


def test_listing_events_takes_a_bounded_limit(client, make_event, scanner) -> None:
    for n in range(3):
        make_event(name=f"Show {n}")
    assert len(client.get("/v1/events?limit=2", headers=scanner).get_json()["events"]) == 2
    response = client.get("/v1/events?limit=0", headers=scanner)
    assert response.status_code == 400
    assert response.get_json()["field"] == "limit"
    assert client.get("/v1/events?colour=red", headers=scanner).get_json()["error"] == "unknown_parameter"
