"""Servers for the client's tests: real gunicorn with chosen plans, and a scripted http.server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_PLANS

#: The test plans plus `burst`: 3 requests per 2-second window, so tests can wait out a 429.
PLANS = {**TEST_PLANS, "burst": {"requests_per_minute": 3, "codes_per_month": 100000, "window_seconds": 2}}


@dataclass
class Live:
    """A gunicorn server and a key on it."""

    url: str
    key: str
    log: Path

    def log_lines(self, path: str, expected: int = 0) -> list[str]:
        """Access-log lines for `path`; waits a little for `expected` lines (logged after the response)."""
        deadline = time.monotonic() + 5
        while True:
            lines = [line for line in self.log.read_text().splitlines() if f' {path}"' in line]
            if len(lines) >= expected or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def statuses(self, path: str, expected: int = 0) -> list[str]:
        return [line.split('" ')[1].split()[0] for line in self.log_lines(path, expected)]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"PLANS": PLANS}


@pytest.fixture
def live(app, make_key, serve, database_url, tmp_path) -> Callable[..., Live]:
    """Start gunicorn on the test database with a key of `plan`; extra env as keyword arguments."""

    def start(plan: str = "unlimited", workers: int = 2, **env: str) -> Live:
        key = make_key(f"live-{plan}", plan=plan)
        server = serve(
            {
                "QRSVC_DATABASE_URL": database_url,
                "QRSVC_PLANS": json.dumps(PLANS),
                "QRSVC_INSTANCE_PATH": str(tmp_path / "server-instance"),
                **env,
            },
            workers=workers,
        )
        return Live(server.url, key, server.log)

    return start


@dataclass
class Scripted:
    """An http.server that answers from a script: (status, headers, body) per request, last repeated."""

    script: list[tuple[int, dict[str, str], bytes]]
    hits: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, method, path)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*script: tuple[int, dict[str, str], bytes]) -> Scripted:
        state = Scripted(list(script))

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                state.hits.append((time.monotonic(), self.command, self.path))
                state.headers.append(dict(self.headers))
                status, headers, body = state.script[min(len(state.hits), len(state.script)) - 1]
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def error_body(status_error: str, message: str, field: str | None = None) -> bytes:
    body: dict[str, Any] = {"success": False, "error": status_error, "message": message}
    if field:
        body["field"] = field
    return json.dumps(body).encode()
