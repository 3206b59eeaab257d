"""`qrsvc serve` itself: slow clients cannot freeze it, and its logs cannot be forged or leak a key."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import cli


@pytest.fixture
def served(tmp_path: Path, serve):
    """A server on its own instance folder and a key made by the CLI."""
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance"), "QRSVC_TIMEOUT": "4"}
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "serving", env=env).stdout.strip().splitlines()[-1]
    return serve(env), key


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


@pytest.fixture
def slow_clients(served) -> Iterator[list[socket.socket]]:
    """Four sockets that send one header line every 2 s and one that stalls in a 1 MB body."""
    server, key = served
    dribblers = [_connect(server) for _ in range(4)]
    for sock in dribblers:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
    staller = _connect(server)
    staller.sendall(
        b"POST /v1/qr/generate HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: 1000000\r\n\r\n".encode()
        + b'{"data": "'
    )
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(2):
            for sock in dribblers:
                sock.sendall(b"X-Slow: still here\r\n")

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    time.sleep(1)  # the server has taken every slow socket by now
    yield [*dribblers, staller]
    stop.set()
    thread.join()
    for sock in [*dribblers, staller]:
        sock.close()


def test_slow_clients_do_not_hold_up_other_requests(served, slow_clients, decode) -> None:
    server, key = served
    for _ in range(3):
        started = time.monotonic()
        assert requests.get(f"{server.url}/healthz", timeout=30).ok
        assert time.monotonic() - started < 5  # sync workers: 30 s and more
    started = time.monotonic()
    response = requests.get(
        f"{server.url}/v1/qr/generate",
        params={"data": "while slow clients wait"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert time.monotonic() - started < 5
    assert decode(response.content) == ["while slow clients wait"]


def test_a_stalled_body_is_given_up_after_the_timeout(served, slow_clients) -> None:
    staller = slow_clients[-1]
    staller.settimeout(20)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = staller.recv(65536)
        if not chunk:
            break
        answer += chunk
    # QRSVC_TIMEOUT=4: the thread is free again, and the client hears why (JSON, like every error).
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"application/json" in answer


def test_a_body_over_the_limit_is_refused_before_it_is_read(served) -> None:
    server, key = served
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/qr/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: 100000000000\r\n\r\n{{".encode()
        )
        started = time.monotonic()
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"error":"payload_too_large"' in answer


def _raw(server, request: bytes) -> bytes:
    with _connect(server) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_control_characters_in_a_path_cannot_forge_an_access_log_line(served) -> None:
    server, key = served
    forged = "/v1/qr/x%0aFAKE%20LINE%0d%1b[31m%e2%80%a8%c2%85"
    response = requests.get(f"{server.url}{forged}", params={"api_key": "SECRET"}, timeout=30)
    assert response.status_code == 401
    # gunicorn refuses raw control bytes in a request line, and quotes the line in its error log.
    _raw(server, b"GET /v1/qr/raw\xff\x85?api_key=SECRET HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.5)
    log = server.log.read_text(encoding="utf-8", errors="strict")
    assert "SECRET" not in log
    lines = log.splitlines()
    assert not [line for line in lines if line.startswith("FAKE")], log
    (line,) = [line for line in lines if "/v1/qr/x" in line]
    assert '"GET /v1/qr/x\\nFAKE LINE\\r\\x1b[31m\\u2028\\x85" 401' in line
    assert "Invalid HTTP request line: 'GET /v1/qr/raw\xff\\x85?api_key=[redacted] HTTP/1.1'" in log
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]", log)


def test_gunicorns_error_log_never_holds_a_key(served) -> None:
    server, key = served
    # gunicorn answers a malformed request line itself, and logs the whole line.
    for line in (
        f"GET /v1/qr?api_key={key} HTTP/1.1 junk".encode(),
        f"GET /v1/qr?api%5Fkey={key}\x1b[2J HTTP/1.1".encode(),
    ):
        answer = _raw(server, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")
    time.sleep(0.5)
    log = server.log.read_text()
    assert "Invalid request from ip=127.0.0.1" in log  # the error log is on
    assert key not in log
    assert key.split("_", 2)[2] not in log
    assert "\x1b" not in log


def test_app_log_records_are_one_line_and_a_traceback_cannot_pass_for_a_record() -> None:
    import logging
    import sys

    from qrsvc.http import SafeFormatter

    try:
        raise ValueError("bad data\nERROR forged ?api_key=SECRET")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "qrsvc", logging.ERROR, __file__, 1, "looked up %s", ("/x\r\nINFO forged?api_key=SECRET",), exc_info
    )
    text = SafeFormatter(logging.Formatter("%(levelname)s %(message)s")).format(record)
    first, *rest = text.split("\n")
    assert first == "ERROR looked up /x\\r\\nINFO forged?api_key=[redacted]"
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "  | ERROR forged ?api_key=[redacted]" in rest
    assert "SECRET" not in text


def test_a_request_running_past_the_timeout_has_its_worker_replaced(tmp_path: Path, serve) -> None:
    """Threaded workers beat their heartbeat whatever their threads do; a hung request must not
    hold a worker for ever. (The key may travel in the query string only on GET; this one is in a
    header, and the log is checked for it all the same.)"""
    env = {
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_TIMEOUT": "2",
        "QRSVC_RENDER_PROCESSES": "1",  # the whole batch in the web worker: about 30 s of work
    }
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "slow", env=env).stdout.strip().splitlines()[-1]
    server = serve(env, workers=1)
    items = [
        {"data": f"slow {i}", "size": 4096, "format": "webp", "error_correction": "H"} for i in range(60)
    ]
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{server.url}/v1/qr/batch",
            json={"items": items, "response": "url"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
    assert time.monotonic() - started < 15
    assert requests.get(f"{server.url}/healthz", timeout=30).ok  # a new worker serves
    log = server.log.read_text()
    assert "WORKER TIMEOUT" in log
    assert key not in log
