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
import requests
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
    """Emails a worker's log says it sent (`job shop.outbox: sent N, …`)."""
    return sum(int(n) for n in re.findall(r"job shop\.outbox: sent (\d+)", log))


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
        "QRSVC_SMTP_TIMEOUT": "1.5",  # the lease must be at least 10 × the timeout
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


def test_the_workers_counts_and_the_queue_show_on_the_servers_metrics(
    app, make_key, database_url, tmp_path, serve, sink_factory, start_worker
):
    from prometheus_client.parser import text_string_to_metric_families

    def value(text: str, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    sink = sink_factory()
    env = {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_SMTP_URL": sink.url,
        "QRSVC_OUTBOX_INTERVAL_SECONDS": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # the server's and the worker's
    }
    key = make_key(plan="pro")
    server = serve(env, workers=1)
    worker = start_worker(**env)
    for number in ("P-1", "P-2"):
        placed = requests.post(
            f"{server.url}/v1/shop/orders",
            json=order_body(number),
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert placed.status_code == 201, placed.text
    until(lambda: {status for _, status, _, _ in outbox_rows(app)} == {"sent"})

    text = requests.get(f"{server.url}/metrics", timeout=30).text
    assert value(text, "qrsvc_shop_outbox_deliveries_total", result="sent") == 2  # counted by the worker
    assert value(text, "qrsvc_shop_outbox_messages", status="sent") == 2  # read at the scrape
    assert value(text, "qrsvc_shop_outbox_messages", status="queued") == 0

    server.stop()  # a restarted server keeps the files of the worker, which still runs
    again = serve(env, workers=1)
    text = requests.get(f"{again.url}/metrics", timeout=30).text
    assert value(text, "qrsvc_shop_outbox_deliveries_total", result="sent") == 2
    assert worker.process.poll() is None


def test_worker_json_logs_one_object_a_line_without_the_smtp_password(
    app, client, unlimited, database_url, tmp_path, start_worker
):
    import json

    from tests.conftest import cli
    from tests.integrations.shop.conftest import SmtpServer

    password, wrong = "s3cret-Pa55word", "wr0ng-Pa55word"
    server = SmtpServer(logins={"shop": password})
    server.start()
    try:
        place_orders(client, unlimited, 1, "J")
        base = {
            "QRSVC_DATABASE_URL": database_url,
            "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
            "QRSVC_LOG_FORMAT": "json",
            "QRSVC_OUTBOX_BACKOFF_SECONDS": "0",
        }
        refused = cli(
            "worker",
            "--once",
            env={
                **base,
                "QRSVC_SMTP_URL": f"smtp://shop:{wrong}@127.0.0.1:{server.port}?starttls=0",
                "QRSVC_SMTP_TIMEOUT": "2",  # aiosmtpd answers a failed login slowly
            },
        )
        assert refused.returncode == 0, refused.stderr
        worker = start_worker(
            **base,
            QRSVC_SMTP_URL=f"smtp://shop:{password}@127.0.0.1:{server.port}?starttls=0",
            QRSVC_OUTBOX_INTERVAL_SECONDS="0.2",
        )
        until(lambda: len(server.messages) == 1)
        assert worker.terminate() == 0
    finally:
        server.stop()
    assert server.login_attempts == ["shop", "shop"]

    for text in (refused.stderr, worker.log.read_text()):
        assert password not in text and wrong not in text
    failed = [json.loads(line) for line in refused.stderr.splitlines() if line.strip()]
    retry = next(r for r in failed if r.get("outcome") == "retry")
    assert retry["level"] == "WARNING" and "not sent (attempt 1): SMTP" in retry["message"]
    job = next(r for r in failed if r.get("job") == "shop.outbox")
    assert (job["outcome"], job["level"]) == ("done", "INFO")
    assert "retrying later 1" in job["message"]

    records = [json.loads(line) for line in worker.log.read_text().splitlines() if line.strip()]
    assert records[0]["message"].startswith("worker started") and records[-1]["message"] == "worker stopped"
    sent = next(r for r in records if r.get("job") == "shop.outbox" and r["outcome"] == "done")
    assert sent["level"] == "INFO" and "sent 1" in sent["message"]
    assert isinstance(sent["duration_ms"], int | float) and sent["duration_ms"] >= 0
    assert sent["time"].endswith("Z") and sent["time"][:2] == "20"
