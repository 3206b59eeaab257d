"""Email is never sent inside a request: orders queue it and `qrsvc worker` (a real process) delivers it."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import cli
from tests.integrations.shop.conftest import order_body, parse_message, until


class SilentSmtpServer:
    """Accepts TCP connections and never says a word: the SMTP greeting never comes."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            self.connections.append(connection)

    def stop(self) -> None:
        self._listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_smtp():
    server = SilentSmtpServer()
    yield server
    server.stop()


@pytest.fixture
def app_config(silent_smtp):
    return {"SMTP_URL": silent_smtp.url}


def test_orders_queue_while_smtp_is_silent_and_the_worker_delivers_each_once(
    client, auth, silent_smtp, smtp_server, start_worker, decode
) -> None:
    placed = []
    for number in ("W-1", "W-2"):
        response = client.post("/v1/shop/orders", json=order_body(number), headers=auth)
        assert response.status_code == 201, response.get_json()
        placed.append(response.get_json())
        assert (placed[-1]["email"]["status"], placed[-1]["email"]["attempts"]) == ("queued", 0)
    assert silent_smtp.connections == []  # no request waited on the mail server

    worker = start_worker(
        QRSVC_SMTP_URL=smtp_server.url, QRSVC_OUTBOX_INTERVAL_SECONDS="0.2", QRSVC_LOG_LEVEL="DEBUG"
    )
    until(lambda: len(smtp_server.messages) >= 2)
    until(lambda: worker.log.read_bytes().count(b"job shop.outbox done") >= 3)  # it keeps running …
    assert worker.process.poll() is None
    assert sorted(parse_message(content)["Subject"] for _, _, content in smtp_server.messages) == [
        "Order W-1 confirmed",
        "Order W-2 confirmed",
    ]  # … and sends each message once
    image = list(parse_message(smtp_server.messages[0][2]).walk())[-1]
    assert decode(image.get_content())[0].startswith("https://track.example.com/o/W-")
    for order in placed:
        email = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]
        assert (email["status"], email["attempts"]) == ("sent", 1)

    assert worker.terminate() == 0
    assert b"worker stopped" in worker.log.read_bytes()
    assert b"Traceback" not in worker.log.read_bytes()


def test_sigterm_lets_the_delivery_in_progress_finish(client, auth, silent_smtp, start_worker) -> None:
    order = client.post("/v1/shop/orders", json=order_body("W-3"), headers=auth).get_json()
    worker = start_worker(QRSVC_SMTP_URL=silent_smtp.url, QRSVC_SMTP_TIMEOUT="3")
    until(lambda: len(silent_smtp.connections) == 1)  # the worker is waiting for the greeting
    assert worker.terminate() == 0
    email = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]
    # The attempt was finished and recorded (not left claimed as `sending`), with its timeout.
    assert (email["status"], email["attempts"]) == ("queued", 1)
    assert "timed out" in email["last_error"]
    assert email["next_attempt_at"] is not None


def test_worker_once_for_cron(client, auth, smtp_server, database_url, tmp_path) -> None:
    order = client.post("/v1/shop/orders", json=order_body("W-4"), headers=auth).get_json()
    env = {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_SMTP_URL": smtp_server.url,
    }
    done = cli("worker", "--once", env=env)
    assert done.returncode == 0, done.stderr
    assert len(smtp_server.messages) == 1
    email = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]
    assert email["status"] == "sent"


def test_sigterm_hands_back_the_rest_of_the_claimed_batch(client, auth, silent_smtp, start_worker) -> None:
    orders = [
        client.post("/v1/shop/orders", json=order_body(f"W-5{n}"), headers=auth).get_json() for n in range(3)
    ]
    worker = start_worker(QRSVC_SMTP_URL=silent_smtp.url, QRSVC_SMTP_TIMEOUT="3")
    until(lambda: len(silent_smtp.connections) == 1)  # all three claimed, the first being sent
    assert worker.terminate() == 0
    assert len(silent_smtp.connections) == 1  # nothing else was tried after the stop
    emails = [client.get(f"/v1/shop/orders/{o['id']}", headers=auth).get_json()["email"] for o in orders]
    assert [(e["status"], e["attempts"]) for e in emails] == [("queued", 1), ("queued", 0), ("queued", 0)]
    assert "timed out" in emails[0]["last_error"]
    assert emails[1]["last_error"] is None  # handed back untried: due again at once, no lease to wait for
