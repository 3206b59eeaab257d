"""Requests gunicorn cannot parse (the app never sees them) still get DESIGN.md §4 JSON errors."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import cli


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer (read to the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED = {
    "garbage request line": (b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
    "bad HTTP version": (b"GET / HTTP/9.x\r\nHost: x\r\n\r\n", 400, "bad_request"),
    "URI too long": (
        b"GET /v1/qr?data=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "uri_too_long",
    ),
    "too many headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n",
        431,
        "request_header_fields_too_large",
    ),
    "one header too large": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "request_header_fields_too_large",
    ),
    "bad header name": (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, "bad_request"),
}


@pytest.fixture(scope="module", params=["thread", "sync"])
def server_port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One server per worker class (both classes handle parse errors themselves)."""
    from tests.conftest import Server

    folder = tmp_path_factory.mktemp(f"malformed-{request.param}")
    env = {"QRSVC_INSTANCE_PATH": str(folder / "instance"), "QRSVC_WORKER_CLASS": request.param}
    assert cli("db", "upgrade", env=env).returncode == 0
    server = Server(env, 1, folder / "server.log")
    yield server.port, folder / "server.log"
    server.stop()
    print(server.log.read_text(errors="replace")[-4000:])


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_unparseable_requests_get_json_errors(server_port, case: str) -> None:
    port, _log = server_port
    request, status, code = MALFORMED[case]
    got, headers, body = raw(port, request)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    answer = json.loads(body)
    assert answer["success"] is False
    assert answer["error"] == code
    assert answer["message"]
    assert b"<html" not in body


def test_the_error_does_not_echo_the_request(server_port) -> None:
    """gunicorn's page quoted the request line; a key in it would go back into a proxy's cache or log."""
    port, _log = server_port
    got, _headers, body = raw(port, b"GET /v1/qr?api_key=qrs_secret_0123\r\n\r\n")
    assert got == 400
    assert b"qrs_secret" not in body


def test_well_formed_requests_are_untouched(server_port) -> None:
    port, _log = server_port
    got, headers, body = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (got, json.loads(body)) == (200, {"status": "ok"})
