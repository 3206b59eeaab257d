"""Shop fixtures: a real SMTP server (aiosmtpd) on loopback, webhook payloads, shop helpers."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import ROOT, free_port

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return loaded


def parse_message(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on a fixed loopback port that a test can stop and start again."""

    def __init__(self, logins: dict[str, str] | None = None, *, smtputf8: bool = False) -> None:
        self.port = free_port()
        self.smtputf8 = smtputf8
        self.inbox = _Inbox()
        self.logins = logins
        self.login_attempts: list[str] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        return self.inbox.messages

    def start(self) -> None:
        auth: dict[str, Any] = {}
        if self.logins is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.smtputf8, **auth
        )
        self._controller.start()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and self.logins is not None
        if isinstance(data, LoginPassword):
            self.login_attempts.append(data.login.decode())
        ok = ok and self.logins.get(data.login.decode()) == data.password.decode()
        return AuthResult(success=ok)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtputf8_server() -> Iterator[SmtpServer]:
    """An SMTP server that advertises SMTPUTF8 (RFC 6531): it takes non-ASCII mailbox names."""
    server = SmtpServer(smtputf8=True)
    server.start()
    yield server
    server.stop()


def order_body(number: str = "1001", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_number": number,
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": [{"sku": "MUG-1", "quantity": 2, "unit_price": "9.50"}, {"sku": "TEE-M", "quantity": 1}],
        "currency": "EUR",
        "tracking_url": f"https://track.example.com/o/{number}?k=7f3a",
        "shipping_address": {
            "name": "Ada Lovelace",
            "address1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
    }
    body.update(changes)
    return body


def product_body(sku: str = "MUG-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku,
        "name": f"Mug {sku}",
        "url": f"https://shop.example.com/p/{sku.lower()}",
        "price": "9.50",
        "currency": "EUR",
    }
    body.update(changes)
    return body


def until(condition, seconds: float = 60.0) -> None:
    """Wait for something another process does (a deadline, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class WorkerProcess:
    """`qrsvc worker` as a user starts it, in its own process group, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing runs after it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log_file.close()


@pytest.fixture
def start_worker(database_url, tmp_path):
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        base = {"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
        worker = WorkerProcess({**base, **env}, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.close()
        # Captured output: pytest shows it only when the test failed, which is when it is wanted.
        print(f"--- {worker.log.name} (tail) ---\n{worker.log.read_text(errors='replace')[-6000:]}")
