"""Issuing in bulk: a constant number of queries however many tickets, and every code scans."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa


@contextmanager
def counting_queries(app: Any) -> Iterator[list[str]]:
    """Every statement the app's engine sends while the block runs."""
    from qrsvc.extensions import db

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def _issue_many(client: Any, manager: dict[str, str], event_id: str, count: int) -> list[dict[str, Any]]:
    body = {"tickets": [{"holder_name": f"Guest {i}", "seat": f"S{i}"} for i in range(count)]}
    response = client.post(f"/v1/events/{event_id}/tickets", json=body, headers=manager)
    assert response.status_code == 201, response.get_json()
    return list(response.get_json()["tickets"])


def test_issuing_500_tickets_takes_as_many_queries_as_issuing_5(app, client, manager, event, issue) -> None:
    issue(event["id"])  # the first ticket also makes the signing key: not what is measured
    with counting_queries(app) as few:
        small = _issue_many(client, manager, event["id"], 5)
    with counting_queries(app) as many:
        large = _issue_many(client, manager, event["id"], 500)
    assert (len(small), len(large)) == (5, 500)
    repeated, times = Counter(many).most_common(1)[0]
    assert len(many) == len(few), f"{len(few)} queries for 5, {len(many)} for 500; {times}x {repeated[:80]}"


def test_tickets_drawn_by_the_render_pool_each_scan_to_their_own_token(
    app, client, manager, event, decode
) -> None:
    count = app.config["RENDER_POOL_MIN_ITEMS"] + 6  # enough for the pool to draw them
    tickets = _issue_many(client, manager, event["id"], count)
    assert len({t["qr"]["id"] for t in tickets}) == count
    for ticket in tickets:
        assert decode(client.get(ticket["qr"]["image_url"]).data) == [ticket["token"]]
