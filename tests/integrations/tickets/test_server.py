"""Through real gunicorn (2 workers) on SQLite and PostgreSQL: exactly-once scans, JWKS consumers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import sqlalchemy as sa

from tests.conftest import TEST_PLANS, cli

SCANS = 50


@pytest.fixture
def server_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "server-instance"),
        "QRSVC_PLANS": json.dumps(TEST_PLANS),
    }


def concurrently(
    count: int, call: Callable[[requests.Session], requests.Response]
) -> list[requests.Response]:
    """Run `call` from `count` threads released at the same instant, one HTTP session each."""
    barrier = threading.Barrier(count)
    responses: list[requests.Response | None] = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        with requests.Session() as session:
            try:
                barrier.wait(timeout=30)
                responses[index] = call(session)
            except BaseException as exc:  # reported below, not swallowed
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return [r for r in responses if r is not None]


def scan_rows(app: Any, ticket_id: str) -> list[tuple[str, str | None]]:
    from integrations.tickets.models import Scan
    from qrsvc.extensions import db

    with app.app_context():
        rows = db.session.execute(sa.select(Scan.result, Scan.nonce).where(Scan.ticket_id == ticket_id))
        return [(r, n) for r, n in rows]


def test_fifty_concurrent_scans_admit_exactly_once(
    app, ticket, scanner, serve, server_env, make_event, issue
) -> None:
    server = serve(server_env, workers=2)
    url = f"{server.url}/v1/tickets/scan"

    def scan(session: requests.Session) -> requests.Response:
        return session.post(url, json={"token": ticket["token"], "gate": "g"}, headers=scanner, timeout=60)

    responses = concurrently(SCANS, scan)
    assert [r.status_code for r in responses] == [200] * SCANS, [
        r.text for r in responses if r.status_code != 200
    ]
    results = Counter(r.json()["result"] for r in responses)
    assert results == {"admitted": 1, "already_used": SCANS - 1}
    assert sum(r.json()["admit"] for r in responses) == 1
    firsts = {r.json()["first_used_at"] for r in responses}
    assert len(firsts) == 1  # every loser names the winner's redemption time
    assert Counter(result for result, _ in scan_rows(app, ticket["id"])) == results
    log = server.log.read_text()
    assert "database is locked" not in log
    assert "Traceback" not in log
    assert '" 500 ' not in log

    # Retries of one scan (same device + nonce) racing each other: one redemption, one answer.
    retried = issue(make_event()["id"])

    def retry(session: requests.Session) -> requests.Response:
        body = {"token": retried["token"], "device": "gate-1", "nonce": "same"}
        return session.post(url, json=body, headers=scanner, timeout=60)

    answers = concurrently(20, retry)
    assert [r.status_code for r in answers] == [200] * 20
    assert {json.dumps(r.json(), sort_keys=True) for r in answers} == {
        json.dumps(answers[0].json(), sort_keys=True)
    }
    assert answers[0].json()["result"] == "admitted"
    assert scan_rows(app, retried["id"]) == [("admitted", "same")]


def test_jwks_consumers_verify_across_rotate_and_not_after_retire(event, manager, serve, server_env) -> None:
    server = serve(server_env, workers=2)

    def issue() -> dict[str, Any]:
        response = requests.post(
            f"{server.url}/v1/events/{event['id']}/tickets",
            json={"holder_name": "Lin"},
            headers=manager,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def verify(token: str) -> dict[str, Any]:
        client = jwt.PyJWKClient(f"{server.url}/.well-known/jwks.json", cache_jwk_set=False)
        key = client.get_signing_key_from_jwt(token)
        return dict(
            jwt.decode(token, key, algorithms=["EdDSA", "ES256"], options={"require": ["exp", "nbf"]})
        )

    old = issue()
    assert verify(old["token"])["tid"] == old["id"]
    rotated = cli("signing-keys", "rotate", env=server_env)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip().splitlines()[-1]
    new = issue()
    assert jwt.get_unverified_header(new["token"])["kid"] == new_kid
    assert verify(old["token"])["tid"] == old["id"]
    assert verify(new["token"])["tid"] == new["id"]

    old_kid = jwt.get_unverified_header(old["token"])["kid"]
    retired = cli("signing-keys", "retire", old_kid, env=server_env)
    assert retired.returncode == 0, retired.stderr
    with pytest.raises(jwt.PyJWKClientError):
        verify(old["token"])
    assert verify(new["token"])["tid"] == new["id"]
    listing = cli("signing-keys", "list", env=server_env).stdout
    assert f"{old_kid}\tEdDSA" in listing and "retired" in listing
    assert "PRIVATE KEY" not in listing


def test_the_first_signing_key_is_made_once_under_concurrent_requests(app, serve, server_env) -> None:
    from integrations.tickets.models import SigningKey
    from qrsvc.extensions import db

    server = serve(server_env, workers=2)
    responses = concurrently(12, lambda s: s.get(f"{server.url}/.well-known/jwks.json", timeout=60))
    assert [r.status_code for r in responses] == [200] * 12
    kids = {tuple(k["kid"] for k in r.json()["keys"]) for r in responses}
    assert len(kids) == 1 and len(next(iter(kids))) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SigningKey)) == 1


def test_racing_scans_reusing_one_nonce_with_different_tokens_admit_one_and_redeem_one(
    app, client, manager, event, scanner, serve, server_env
) -> None:
    body = {"tickets": [{"holder_name": f"Guest {i}"} for i in range(20)]}
    issued = client.post(f"/v1/events/{event['id']}/tickets", json=body, headers=manager).get_json()[
        "tickets"
    ]
    server = serve(server_env, workers=2)
    tokens = iter(t["token"] for t in issued)
    lock = threading.Lock()

    def reuse(session: requests.Session) -> requests.Response:
        with lock:
            token = next(tokens)
        scan = {"token": token, "device": "gate-1", "nonce": "same", "event_id": event["id"]}
        return session.post(f"{server.url}/v1/tickets/scan", json=scan, headers=scanner, timeout=60)

    responses = concurrently(20, reuse)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}, [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"nonce_reused"}
    (winner,) = (r.json() for r in responses if r.status_code == 200)
    assert winner["result"] == "admitted"
    # The losers' redemptions were rolled back with their scan rows: one ticket used, one logged.
    states = Counter(
        client.get(f"/v1/tickets/{t['id']}", headers=manager).get_json()["state"] for t in issued
    )
    assert states == {"used": 1, "valid": 19}
    assert scan_rows(app, winner["ticket"]["id"]) == [("admitted", "same")]
    assert "Traceback" not in server.log.read_text()


def test_uploads_crossing_the_same_tickets_in_opposite_order_all_succeed(
    app, client, manager, event, scanner, serve, server_env, travel
) -> None:
    """Two scanners upload scans of the same tickets, each in the other's order, at once.

    An upload is one transaction; were its tickets locked in scan order, these would
    deadlock on PostgreSQL. The earliest scan of each ticket still wins.
    """
    from datetime import UTC, datetime, timedelta

    from .conftest import iso

    rounds, per_upload = 4, 10
    now = datetime.now(UTC)
    travel(now - timedelta(hours=2))
    body = {"tickets": [{"holder_name": f"Guest {i}"} for i in range(rounds * per_upload)]}
    issued = client.post(f"/v1/events/{event['id']}/tickets", json=body, headers=manager).get_json()[
        "tickets"
    ]
    travel(None)
    server = serve(server_env, workers=2)

    def row(token: str, minutes: int, device: str, nonce: int) -> dict[str, str]:
        at = iso(now - timedelta(minutes=minutes))
        return {"token": token, "scanned_at": at, "device": device, "nonce": str(nonce)}

    uploads, earliest = [], {}
    for r in range(rounds):
        tickets = issued[r * per_upload : (r + 1) * per_upload]
        # Scanner A saw the tickets in list order; scanner B, earlier, in reverse order.
        uploads.append([row(t["token"], 30 - i, "A", r * per_upload + i) for i, t in enumerate(tickets)])
        uploads.append([row(t["token"], 60 + i, "B", r * per_upload + i) for i, t in enumerate(tickets)])
        earliest.update((t["id"], iso(now - timedelta(minutes=60 + i))) for i, t in enumerate(tickets))
    pending = iter(uploads)
    lock = threading.Lock()

    def upload(session: requests.Session) -> requests.Response:
        with lock:
            scans = next(pending)
        url = f"{server.url}/v1/tickets/scans/upload"
        return session.post(url, json={"scans": scans}, headers=scanner, timeout=60)

    responses = concurrently(len(uploads), upload)
    assert [r.status_code for r in responses] == [200] * len(uploads), [r.text[:200] for r in responses]
    for ticket_id, first in earliest.items():
        assert client.get(f"/v1/tickets/{ticket_id}", headers=manager).get_json()["used_at"] == first
    assert "deadlock" not in server.log.read_text().lower()
