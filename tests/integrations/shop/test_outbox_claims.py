"""How senders claim outbox messages: SKIP LOCKED batches, the lease, hand-back at stop; and the
outbox on `/metrics` (deliveries by result, messages by status)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_app, postgres_schema
from tests.integrations.shop.conftest import order_body


@pytest.fixture
def app_config(smtp_server) -> dict[str, Any]:
    return {"SMTP_URL": smtp_server.url}


def place(app, count: int, prefix: str = "C") -> None:
    from qrsvc.keys import create_key
    from qrsvc.transactions import unit_of_work

    with app.app_context(), unit_of_work():
        _key, plain = create_key(f"claims-{prefix}", "unlimited", ("*",), list(app.config["PLANS"]))
    client = app.test_client()
    for number in range(count):
        response = client.post(
            "/v1/shop/orders",
            json=order_body(f"{prefix}-{number}"),
            headers={"Authorization": f"Bearer {plain}"},
        )
        assert response.status_code == 201, response.get_json()


def rows(app) -> list[tuple[int, str, int]]:
    from integrations.shop.models import OutboxMessage
    from qrsvc.extensions import db

    with app.app_context():
        found = db.session.execute(
            sa.select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts).order_by(
                OutboxMessage.id
            )
        ).all()
        db.session.remove()
    return [tuple(row) for row in found]  # type: ignore[misc]


@pytest.fixture
def pg_app(tmp_path: Path, smtp_server) -> Iterator[Any]:
    """An app on PostgreSQL whatever the `database_url` parameter: row locks are PostgreSQL's."""
    from qrsvc.db import upgrade
    from qrsvc.extensions import db

    with postgres_schema("qrsvc_claims") as url:
        application = make_app(url, tmp_path / "pg", SMTP_URL=smtp_server.url)
        upgrade(application)
        yield application
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_second_sender_skips_the_rows_the_first_is_claiming(pg_app) -> None:
    from integrations.shop import outbox
    from qrsvc.extensions import db

    place(pg_app, 5)
    ids = [message_id for message_id, _, _ in rows(pg_app)]
    with pg_app.app_context():  # the first sender: its claim is not committed, its rows locked
        first = outbox.claim_due(2)
        with pg_app.app_context():  # the second sender, another session on another connection
            assert db.session is not None
            # Waiting for the first sender's locks would fail the test instead of hanging it.
            db.session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            second = outbox.claim_due(10)
            db.session.commit()
        db.session.commit()
    assert [claim.id for claim in first] == ids[:2]
    assert [claim.id for claim in second] == ids[2:]
    assert {(status, attempts) for _, status, attempts in rows(pg_app)} == {("sending", 1)}


def test_a_claimed_message_is_not_claimed_again_until_its_lease_runs_out(app, monkeypatch) -> None:
    from integrations.shop import outbox
    from qrsvc import clock
    from qrsvc.transactions import unit_of_work

    place(app, 3)
    with app.app_context(), unit_of_work():
        first = outbox.claim_due(2)
    with app.app_context(), unit_of_work():
        second = outbox.claim_due(10)
    assert [claim.id for claim in second] == [rows(app)[2][0]]
    with app.app_context(), unit_of_work():
        assert outbox.claim_due(10) == []  # all three are held

    later = clock.now() + timedelta(seconds=app.config["OUTBOX_LEASE_SECONDS"] + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context(), unit_of_work():
        again = outbox.claim_due(10)
    assert [claim.id for claim in again] == [claim.id for claim in first + second]
    assert [claim.attempts for claim in again] == [2, 2, 2]


def test_a_sender_whose_lease_was_taken_over_records_nothing(app, smtp_server, monkeypatch) -> None:
    from integrations.shop import outbox
    from integrations.shop.models import OutboxMessage
    from qrsvc import clock
    from qrsvc.extensions import db
    from qrsvc.transactions import unit_of_work

    place(app, 1)
    with app.app_context(), unit_of_work():
        (slow,) = outbox.claim_due(1)
        outgoing = outbox.Outgoing.of(db.session.get(OutboxMessage, slow.id))  # what the slow sender sends
    later = clock.now() + timedelta(seconds=app.config["OUTBOX_LEASE_SECONDS"] + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context(), unit_of_work():
        (taker,) = outbox.claim_due(1)
    assert (taker.id, taker.attempts) == (slow.id, 2)

    with app.app_context(), unit_of_work():  # the slow sender's send ends now: too late, its claim is gone
        assert outbox.send_claimed(outgoing) == outbox.SENDING
    assert rows(app) == [(slow.id, "sending", 2)]  # the taker's claim stands
    with app.app_context(), unit_of_work():
        assert outbox.send_claimed(db.session.get(OutboxMessage, taker.id)) == outbox.SENT
    assert rows(app) == [(slow.id, "sent", 2)]
    # Both sends reached the server: the window the README describes, with one Message-ID.
    assert len(smtp_server.messages) == 2
    assert len({content for _, _, content in smtp_server.messages}) == 1


def test_a_stopped_run_hands_back_what_it_claimed_but_did_not_send(app, smtp_server) -> None:
    from integrations.shop import outbox

    place(app, 4)
    asked: list[int] = []

    def stop() -> bool:  # SIGTERM arrives while the first email is being sent
        asked.append(1)
        return len(asked) > 2

    with app.app_context():
        result = outbox.deliver_due(stop=stop)
    assert (result.sent, result.retrying, result.failed) == (1, 0, 0)
    assert [(status, attempts) for _, status, attempts in rows(app)] == [
        ("sent", 1),
        ("queued", 0),
        ("queued", 0),
        ("queued", 0),
    ]
    with app.app_context():
        assert outbox.deliver_due().sent == 3
    assert len(smtp_server.messages) == 4


def test_a_sent_email_whose_result_fails_to_save_is_not_sent_again_by_the_next_run(
    app, smtp_server, monkeypatch
) -> None:
    from integrations.shop import outbox

    place(app, 2)
    record = outbox._record
    failures: list[int] = []

    def record_then_fail(*args: Any) -> str:  # the result's commit fails once ("database is locked")
        status = record(*args)
        if not failures:
            failures.append(1)
            raise sa.exc.OperationalError("UPDATE outbox_messages", {}, Exception("database is locked"))
        return status

    monkeypatch.setattr(outbox, "_record", record_then_fail)
    with app.app_context(), pytest.raises(sa.exc.OperationalError):
        outbox.deliver_due()
    assert len(smtp_server.messages) == 1  # the server took the first before its result failed to save
    first, second = rows(app)
    assert first[1:] == ("sending", 1)  # left to its lease, not handed back
    assert second[1:] == ("queued", 0)  # never tried: handed back at once

    with app.app_context():  # the next run, within the lease: sends the second only
        assert outbox.deliver_due().sent == 1
    assert len(smtp_server.messages) == 2
    assert len({content for _, _, content in smtp_server.messages}) == 2
    assert rows(app) == [(first[0], "sending", 1), (second[0], "sent", 1)]


def test_a_lease_shorter_than_the_smtp_conversation_is_refused(database_url, tmp_path) -> None:
    with pytest.raises(ValueError, match="QRSVC_OUTBOX_LEASE_SECONDS"):
        make_app(database_url, tmp_path / "i", OUTBOX_LEASE_SECONDS=99.0, SMTP_TIMEOUT=10.0)
    make_app(database_url, tmp_path / "j", OUTBOX_LEASE_SECONDS=100.0, SMTP_TIMEOUT=10.0)


# /metrics


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly `labels`; None when there is none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_metrics_show_the_queue_by_status_and_deliveries_by_result(app, smtp_server) -> None:
    from integrations.shop import outbox

    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert metric(before, "qrsvc_shop_outbox_messages", status="queued") == 0
    place(app, 3)
    queued = client.get("/metrics").get_data(as_text=True)
    assert metric(queued, "qrsvc_shop_outbox_messages", status="queued") == 3
    assert metric(queued, "qrsvc_shop_outbox_messages", status="sent") == 0

    smtp_server.stop()
    with app.app_context():
        assert outbox.deliver_due(limit=1).retrying == 1
    smtp_server.start()
    with app.app_context():
        assert outbox.deliver_due().sent == 2  # the retry waits for its backoff

    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "qrsvc_shop_outbox_deliveries_total", result="sent") == 2
    assert metric(text, "qrsvc_shop_outbox_deliveries_total", result="retry") == 1
    assert metric(text, "qrsvc_shop_outbox_messages", status="sent") == 2
    assert metric(text, "qrsvc_shop_outbox_messages", status="queued") == 1
    assert metric(text, "qrsvc_shop_outbox_messages", status="sending") == 0
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert families["qrsvc_shop_outbox_messages"] == "gauge"
    assert families["qrsvc_shop_outbox_deliveries"] == "counter"


def test_a_result_that_is_rolled_back_is_not_counted(app, smtp_server) -> None:
    from integrations.shop import outbox
    from integrations.shop.models import OutboxMessage
    from qrsvc.extensions import db
    from qrsvc.transactions import unit_of_work

    place(app, 2)
    with app.app_context(), unit_of_work():
        (first,) = outbox.claim_due(1)

    def send_then_fail() -> None:
        with unit_of_work():
            assert outbox.send_claimed(db.session.get(OutboxMessage, first.id)) == outbox.SENT
            raise RuntimeError("the unit of work fails after the result was written")

    with app.app_context(), pytest.raises(RuntimeError, match="after the result"):
        send_then_fail()
    assert rows(app)[0] == (first.id, "sending", 1)  # the result was rolled back
    with app.app_context():
        assert outbox.deliver_due().sent == 1  # the second; the first waits for its lease
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert len(smtp_server.messages) == 2
    assert metric(text, "qrsvc_shop_outbox_deliveries_total", result="sent") == 1
