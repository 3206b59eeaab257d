"""Many `qrsvc worker` processes, one outbox: each email reaches the mail server once, and a
worker killed mid-send leaves nothing stuck (its claim's lease runs out and another sends it).

The mail server is aiosmtpd on loopback; each message is counted by its Message-ID, which the
outbox makes once per message, so a second delivery of the same email would show as a count of 2.
"""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tests.conftest import free_port
from tests.integrations.shop.conftest import order_body, until


def message_id(content: bytes) -> str:
    headers = email.message_from_bytes(content.split(b"\r\n\r\n", 1)[0], policy=email.policy.SMTP)
    found: str = headers["Message-ID"]
    return found


class Sink:
    """An SMTP server that counts what it accepts by Message-ID.

    `gate`: hold every DATA until that many are in DATA at the same time (so several senders
    are proven to be sending at once) — then let all through. `stall_first`: the first message
    never gets an answer to its DATA (a server that hangs while the sender waits); the same
    message sent again later is accepted.
    """

    def __init__(self, *, gate: int = 0, stall_first: bool = False) -> None:
        self.port = free_port()
        self.accepted: list[str] = []
        self.gate = gate
        self.opened = gate == 0
        self.in_data = 0
        self.peak = 0
        self.stall_first = stall_first
        self.stalled: str | None = None
        self.released = False
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        found = message_id(envelope.original_content)
        self.in_data += 1
        self.peak = max(self.peak, self.in_data)
        try:
            if self.stall_first and self.stalled is None:
                self.stalled = found
                while not self.released:
                    await asyncio.sleep(0.05)
                return "451 stalled and given up"
            while not self.opened:
                if self.in_data >= self.gate:
                    self.opened = True
                    break
                await asyncio.sleep(0.01)
            self.accepted.append(found)
            return "250 accepted"
        finally:
            self.in_data -= 1

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self.released = self.opened = True
        self._controller.stop()


@pytest.fixture
def sink_factory() -> Iterator[Any]:
    sinks: list[Sink] = []

    def make(**options: Any) -> Sink:
        sink = Sink(**options)
        sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def app_config() -> dict[str, Any]:
    # Orders are queued for sending (an SMTP URL is configured); this process never sends.
    return {"SMTP_URL": "smtp://127.0.0.1:9"}


@pytest.fixture
def unlimited(make_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(plan='unlimited')}"}


def place_orders(client, headers: dict[str, str], count: int, prefix: str) -> None:
    for number in range(count):
        response = client.post("/v1/shop/orders", json=order_body(f"{prefix}-{number}"), headers=headers)
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["email"]["status"] == "queued"


def outbox_rows(app) -> list[tuple[int, str, int, str]]:
    """(id, status, attempts, Message-ID) of every message, by id."""
    from integrations.shop.models import OutboxMessage
    from qrsvc.extensions import db

    with app.app_context():
        rows = db.session.execute(
            sa.select(
                OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.content
            ).order_by(OutboxMessage.id)
        ).all()
        db.session.remove()
    return [(row.id, row.status, row.attempts, message_id(row.content)) for row in rows]


def sent_by(log: str) -> int:
    """Emails a worker's log says it sent (`job shop.outbox done in … s: sent N, …`)."""
    return sum(int(n) for n in re.findall(r"job shop\.outbox done in [\d.]+ s: sent (\d+)", log))


def test_two_workers_send_each_of_200_emails_exactly_once(app, client, unlimited, sink_factory, start_worker):
    place_orders(client, unlimited, 200, "M")
    queued = outbox_rows(app)
    assert len(queued) == 200 and {status for _, status, _, _ in queued} == {"queued"}
    # Each sender's first message waits in DATA until the other sender has one there too.
    sink = sink_factory(gate=2)
    env = {
        "QRSVC_SMTP_URL": sink.url,
        "QRSVC_OUTBOX_INTERVAL_SECONDS": "0.2",
        "QRSVC_OUTBOX_BATCH_SIZE": "5",
        "QRSVC_SMTP_TIMEOUT": "60",  # the gate holds the first sender until the second has started
    }
    workers = [start_worker(**env), start_worker(**env)]

    until(lambda: len(sink.accepted) >= 200, seconds=240)
    until(lambda: {status for _, status, _, _ in outbox_rows(app)} == {"sent"})
    for worker in workers:
        assert worker.terminate() == 0

    counts = collections.Counter(sink.accepted)
    assert sorted(counts) == sorted(mid for _, _, _, mid in queued)  # every one arrived …
    assert set(counts.values()) == {1}  # … once
    assert sink.peak >= 2  # two were in DATA at the same moment: two senders at work
    logs = [worker.log.read_text() for worker in workers]
    assert [sent_by(log) > 0 for log in logs] == [True, True]
    assert sum(sent_by(log) for log in logs) == 200
    assert {attempts for _, _, attempts, _ in outbox_rows(app)} == {1}
    assert all("Traceback" not in log for log in logs)


def test_a_worker_killed_mid_send_leaves_nothing_stuck(app, client, unlimited, sink_factory, start_worker):
    place_orders(client, unlimited, 3, "K")
    sink = sink_factory(stall_first=True)
    env = {
        "QRSVC_SMTP_URL": sink.url,
        "QRSVC_OUTBOX_INTERVAL_SECONDS": "0.2",
        "QRSVC_SMTP_TIMEOUT": "5",
        "QRSVC_OUTBOX_LEASE_SECONDS": "15",
    }
    first = start_worker(**env)
    until(lambda: sink.stalled is not None)  # the first worker waits for the answer to its DATA …
    first.kill()  # … and dies there
    held = outbox_rows(app)
    stalled = next(row for row in held if row[3] == sink.stalled)
    assert stalled[1:3] == ("sending", 1)  # claimed by a worker that is gone

    second = start_worker(**env)  # after the lease, the claim is offered again
    until(lambda: {status for _, status, _, _ in outbox_rows(app)} == {"sent"})
    assert second.terminate() == 0

    counts = collections.Counter(sink.accepted)
    assert sorted(counts) == sorted(row[3] for row in held)
    assert set(counts.values()) == {1}
    attempts = {mid: attempts for _, _, attempts, mid in outbox_rows(app)}
    assert attempts[sink.stalled] == 2
