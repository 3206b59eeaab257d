"""Ticketing fixtures: a managing key, a gate's scan-only key, events and tickets made over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hours(n: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=n)


@pytest.fixture
def manager(make_key: Callable[..., str]) -> dict[str, str]:
    """Headers of a key with the `tickets` scope (it owns the events it makes)."""
    return {"Authorization": f"Bearer {make_key('box office', 'unlimited', ('tickets', 'qr:read'))}"}


@pytest.fixture
def scanner(make_key: Callable[..., str]) -> dict[str, str]:
    """Headers of a gate device's scan-only key."""
    return {"Authorization": f"Bearer {make_key('gate', 'unlimited', ('tickets:scan',))}"}


@pytest.fixture
def make_event(client: Any, manager: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def make(headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": "Concert", "starts_at": iso(hours(-1)), "ends_at": iso(hours(3)), **fields}
        response = client.post("/v1/events", json=body, headers=manager if headers is None else headers)
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    return make


@pytest.fixture
def event(make_event: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_event()


@pytest.fixture
def issue(client: Any, manager: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def make(event_id: str, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"holder_name": "Ada Lovelace", **fields}
        response = client.post(
            f"/v1/events/{event_id}/tickets", json=body, headers=manager if headers is None else headers
        )
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    return make


@pytest.fixture
def ticket(event: dict[str, Any], issue: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return issue(event["id"], seat="A12")


@pytest.fixture
def scan(client: Any, scanner: dict[str, str]) -> Callable[..., Any]:
    def post(token: str, headers: dict[str, str] | None = None, **fields: Any) -> Any:
        return client.post(
            "/v1/tickets/scan",
            json={"token": token, **fields},
            headers=scanner if headers is None else headers,
        )

    return post


@pytest.fixture
def travel(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime | None], None]:
    """Set the one clock (`qrsvc.clock.now`) to a moment; None goes back to real time."""
    from qrsvc import clock

    real = clock.now

    def to(moment: datetime | None) -> None:
        monkeypatch.setattr(clock, "now", real if moment is None else (lambda: moment))

    return to


@pytest.fixture
def issued_at(
    travel: Callable[[datetime | None], None], issue: Callable[..., dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    """Issue a ticket as if at `moment` (its token's `iat`), then go back to real time."""

    def make(moment: datetime, event_id: str, **fields: Any) -> dict[str, Any]:
        travel(moment)
        try:
            return issue(event_id, **fields)
        finally:
            travel(None)

    return make
