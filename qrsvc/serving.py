"""gunicorn glue: threaded workers with I/O deadlines, and logs that cannot be forged or leak keys."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from typing import Any

from gunicorn import glogging
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.workers import gthread, sync

from qrsvc.config import setting
from qrsvc.http import JsonFormatter, make_logs_safe, wsgi_text


def _half_close(sock: socket.socket, timeout: float = 2.0, max_drain: int = 65536) -> None:
    """Send FIN and wait for the client's (RFC 9112 section 9.6) here, in the request's thread.

    gunicorn does this wait in the worker's main loop, which then accepts and dispatches
    nothing until the client has closed: with a connection closed after every response,
    that cost a third of the throughput. The main loop's own close then finds the client gone.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        drained = 0
        while drained < max_drain and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            data = sock.recv(4096)
            if not data:
                return
            drained += len(data)
    except OSError:  # reset, or the deadline: the main loop closes it either way
        return


class _Read:
    """A body already read, as a reader for gunicorn's `Body`."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)


#: What gunicorn answers itself (requests it cannot parse, before the app), as DESIGN.md §4 errors.
_SERVER_ERRORS = {
    400: ("bad_request", "The request could not be understood (a malformed request line or header)."),
    403: ("forbidden", "The request was refused."),
    414: ("uri_too_long", "The request line is longer than the server reads (4094 bytes)."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("request_header_fields_too_large", "The request headers are too many or too large."),
    500: ("internal_error", "Something went wrong on our side."),
    501: ("not_implemented", "The request's transfer coding is not supported."),
}


def json_error_response(page: bytes) -> bytes:
    """gunicorn's whole HTML error response, rewritten as ours: same status, a JSON body.

    gunicorn's page quotes the request line or header it choked on; ours says only what
    kind of request it was, so nothing the client sent (a key in a URL) comes back.
    """
    status_line = page.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 500
    code, message = _SERVER_ERRORS.get(status, ("http_error", "The request could not be served."))
    body = json.dumps({"success": False, "error": code, "message": message}).encode()
    head = (
        f"{status_line.decode('latin-1')}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _JsonErrors:
    """The client's socket as gunicorn's `handle_error` gets it: the one write there is its error page."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(json_error_response(data) if data.startswith(b"HTTP/") else data)


class JsonErrorsMixin:
    """Requests gunicorn refuses itself (400, 414, 431 …) get a JSON error, not gunicorn's HTML page.

    gunicorn has no setting for the body of these answers; its `handle_error` (status,
    logging, access log) runs as it is and only the page it writes is replaced.
    """

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _JsonErrors(client), addr, exc)  # type: ignore[misc]


class SyncWorker(JsonErrorsMixin, sync.SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker with JSON errors for requests it cannot parse."""


class ThreadWorker(JsonErrorsMixin, gthread.ThreadWorker):  # type: ignore[misc]
    """gunicorn's `gthread` worker that reads a request whole before the app runs it, one at a time.

    Threads wait for slow clients: reading headers and body (each read or write of a body or
    response gives up after `--timeout` seconds). The application runs one request at a time
    per worker, as in a sync worker: rendering is CPU work, and eight threads sharing one
    GIL cost a third of the throughput and made the slowest requests wait a second. A worker
    takes new connections only while no request is running or waiting in it, so a busy
    worker leaves them to an idle one, again as sync workers do.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._in_app = 0  # requests read and running or waiting for the app
        self._app_since: float | None = None  # when the running request entered the app

    def notify(self) -> None:
        """The heartbeat stops while one request has held the app past `--timeout`.

        gthread's main loop beats whatever its threads do, so a hung request would hold the
        app lock, and the worker, for ever; like a sync worker, it is now killed and replaced.
        """
        since = self._app_since
        if since is None or time.monotonic() - since <= self.cfg.timeout:
            super().notify()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._in_app == 0)

    def _refresh_accept(self) -> None:
        self.set_accept_enabled(self.alive and self.nr_conns < self.worker_connections)

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._in_app += delta
            turned = self._in_app == (1 if delta > 0 else 0)
        if turned:  # the poller belongs to the main thread
            self.method_queue.defer(self._refresh_accept)

    def _read_body(self, req: Any) -> None:
        """Read the body now (up to the app's MAX_CONTENT_LENGTH, plus one byte to tell it is over)."""
        reader = req.body.reader
        if not isinstance(reader, ChunkedReader | LengthReader) or getattr(reader, "length", 1) == 0:
            return  # no body (an EOFReader would wait for the client to close)
        limit: int | None = getattr(self.wsgi, "config", {}).get("MAX_CONTENT_LENGTH")
        if limit is not None and getattr(reader, "length", 0) > limit:
            return  # the app refuses it (413) without reading it
        try:
            data = req.body.read(None if limit is None else limit + 1)
        except Exception:  # stalled, cut or malformed: the app answers 400 for the short body
            data = b""
        req.body = Body(_Read(data))

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.sock.settimeout(self.cfg.timeout)
        self._read_body(req)
        self._count(1)
        try:
            with self._app_lock:
                self._app_since = time.monotonic()
                try:
                    keep_alive = super().handle_request(req, conn)
                finally:
                    self._app_since = None
        finally:
            self._count(-1)
        if not keep_alive:
            _half_close(conn.sock)
        return keep_alive


#: Paths whose access log lines leave out the client's address: dynamic code redirects.
_UNLOGGED_CLIENTS = frozenset({"/r/", "/R/"})


class AccessLogger(glogging.Logger):  # type: ignore[misc]
    """One compact line a request: client, method, path, status, bytes, ms, request id, pid.

    The path is logged without its query string, where an `api_key` may travel, and with its
    control characters escaped (`%0a` in a URL is a newline in PATH_INFO). gunicorn's own
    formatter builds a dict of every header and environ variable for each request, about a
    tenth of a small request's CPU here. gunicorn's error log, which quotes whole request
    lines and URIs when a request fails, gets the same redaction and escaping. A redirect of a
    dynamic code (`/r/`) is logged without its client: with its time and code, that line would
    be the record of who scanned what, which the scan statistics are built not to keep.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.json = setting("LOG_FORMAT") == "json"
        for logger in (self.error_log, self.access_log):
            if self.json:
                for handler in logger.handlers:
                    handler.setFormatter(JsonFormatter())
            else:
                make_logs_safe(logger)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "-")
        path = environ.get("PATH_INFO", "-")
        duration_ms = request_time.seconds * 1000 + request_time.microseconds // 1000
        if self.json:
            fields = {
                "request_id": None if request_id == "-" else request_id,
                "method": wsgi_text(environ.get("REQUEST_METHOD", "-")),
                "path": wsgi_text(path),
                "route": environ.get("qrsvc.route"),
                "status": int(status) if str(status).isdigit() else status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": duration_ms,
                "key_prefix": environ.get("qrsvc.key_prefix"),
                "pid": os.getpid(),
            }
            if path[:3] not in _UNLOGGED_CLIENTS:
                fields["client"] = environ.get("REMOTE_ADDR")
            self.access_log.info("request", extra={"fields": fields})
            return
        self.access_log.info(
            '%s "%s %s" %s %s %dms %s <%d>',
            "-" if path[:3] in _UNLOGGED_CLIENTS else environ.get("REMOTE_ADDR", "-"),
            wsgi_text(environ.get("REQUEST_METHOD", "-")),
            wsgi_text(path),
            status,
            getattr(resp, "sent", None) or "-",
            duration_ms,
            request_id,
            os.getpid(),
        )
