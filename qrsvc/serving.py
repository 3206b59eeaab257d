"""gunicorn glue: a worker loop slow clients cannot hold up, and logs that cannot be forged or leak keys."""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import io
import json
import os
import queue
import re
import resource
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from gunicorn import glogging, http, sock, util
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.workers import sync

from qrsvc.config import setting
from qrsvc.http import JsonFormatter, make_logs_safe, wsgi_text


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
    408: ("request_timeout", "The request did not arrive in time."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("request_header_fields_too_large", "The request headers are too many or too large."),
    500: ("internal_error", "Something went wrong on our side."),
    501: ("not_implemented", "The request's transfer coding is not supported."),
    503: ("service_unavailable", "Too many connections are still sending their requests; retry shortly."),
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


class _Watched:
    """Sockets the worker's loop polls between requests, each until a deadline (loop thread only).

    Never waits: `_ready` is a `select` with no timeout. The selector's descriptor goes in the
    loop's `wait_fds`, so an idle loop wakes when one of them has something to read.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._selector = selectors.DefaultSelector()
        self._deadlines: collections.deque[tuple[float, socket.socket]] = collections.deque()

    def fileno(self) -> int:
        return self._selector.fileno()

    def _watch(self, sock: socket.socket) -> None:
        self._selector.register(sock, selectors.EVENT_READ)
        self._deadlines.append((time.monotonic() + self._timeout, sock))

    def _ready(self) -> list[socket.socket]:
        return [key.fileobj for key, _ in self._selector.select(0)]  # type: ignore[misc]

    def _expired(self) -> list[socket.socket]:
        """Sockets past their deadline, oldest first (some may have left already: callers check)."""
        now, expired = time.monotonic(), []
        while self._deadlines and self._deadlines[0][0] <= now:
            expired.append(self._deadlines.popleft()[1])
        return expired


class _Closing(_Watched):
    """Answered connections, closed once the client has closed its side too (RFC 9112 section 9.6).

    Closing at once with request bytes still unread (a body refused before it was read)
    makes the kernel send a reset, which can destroy the response before the client reads
    it. gunicorn's sync worker waits for the client's FIN in its loop, one connection at a
    time: a round trip of idle worker per request on a real network. Here each waits at most
    `timeout` seconds and `max_drain` bytes, and at most `limit` at once (then the oldest is
    closed): clients that never close would otherwise hold descriptors until `accept` fails
    and the worker dies.
    """

    def __init__(self, timeout: float = 2.0, max_drain: int = 65536, limit: int = 1024) -> None:
        super().__init__(timeout)
        self._max_drain = max_drain
        self._limit = limit
        self._drained: dict[socket.socket, int] = {}

    def add(self, sock: socket.socket) -> None:
        """Send FIN now; the socket is closed when the client has sent its own (or gives up)."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self._watch(sock)
        except (OSError, ValueError):  # already reset or gone
            sock.close()
            return
        self._drained[sock] = 0
        while len(self._drained) > self._limit:
            self._finish(self._deadlines.popleft()[1])

    def poll(self) -> None:
        """Close the connections whose clients have closed, and those past their deadline."""
        if not self._drained:
            return
        for conn in self._ready():
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self._drained[conn] += len(data)
            if not data or self._drained[conn] > self._max_drain:
                self._finish(conn)
        for conn in self._expired():
            self._finish(conn)

    def _finish(self, sock: socket.socket) -> None:
        if self._drained.pop(sock, None) is not None:
            self._selector.unregister(sock)
            sock.close()


#: The most of a request the worker's loop keeps in memory while it arrives (headers and body).
BUFFER_BYTES = 65536
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]{1,18})[ \t]*\r")


class Arrival(enum.Enum):
    PARTIAL = "partial"  # more bytes to come: keep it waiting in the loop
    WHOLE = "whole"  # answerable from the bytes at hand (or refused with them)
    READER = "reader"  # a chunked body, or more than the loop buffers: a reader thread reads it


def request_arrival(head: bytes, max_body: int | None) -> Arrival:
    """What to do with a connection whose first bytes are `head` (conservative: never wait in the loop)."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return Arrival.PARTIAL if len(head) < BUFFER_BYTES else Arrival.READER
    headers = head[: end + 2].lower()  # each header line with its CRLF
    lengths = _CONTENT_LENGTH.findall(headers)
    if b"\ntransfer-encoding:" in headers or len(lengths) > 1:
        return Arrival.READER  # gunicorn reads or refuses these, off the loop
    length = int(lengths[0]) if lengths else 0
    if max_body is not None and length > max_body:
        return Arrival.WHOLE  # refused (413) without reading the body
    if len(head) >= end + 4 + length:
        return Arrival.WHOLE
    if b"\nexpect:" in headers:
        return Arrival.READER  # the client may wait for a 100 Continue: a reader sends it, then reads
    return Arrival.PARTIAL if end + 4 + length <= BUFFER_BYTES else Arrival.READER


class _Prefixed:
    """A client socket whose first bytes the loop has already read, for gunicorn's parser."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self._sock = sock
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def recv(self, size: int, *flags: int) -> bytes:
        if self._data:
            chunk, self._data = self._data[:size], self._data[size:]
            return chunk
        return self._sock.recv(size, *flags)


class _Waiting(_Watched):
    """Connections whose request has not fully arrived, read in the worker's loop as bytes come.

    A client that dribbles its request holds a few bytes of memory, not a thread or the
    worker. A connection gets `timeout` seconds in all to send its request; at most `limit`
    wait at once.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        super().__init__(timeout)
        self._limit = limit
        self._waiting: dict[socket.socket, tuple[Any, Any, bytearray]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, listener: Any, client: socket.socket, addr: Any, data: bytes) -> bool:
        """Keep `client` until its request has arrived; False when the room is full."""
        if len(self._waiting) >= self._limit:
            return False
        self._watch(client)
        self._waiting[client] = (listener, addr, bytearray(data))
        return True

    def poll(self, max_body: int | None) -> list[tuple[Arrival | None, Any, socket.socket, Any, bytes]]:
        """Read what has come; the connections that are done waiting, with what to do with each.

        `None`: the client left or ran out of time (its bytes say which: empty means left).
        """
        if not self._waiting:
            return []
        done: list[tuple[Arrival | None, Any, socket.socket, Any, bytes]] = []
        for client in self._ready():
            listener, addr, head = self._waiting[client]
            try:
                data = client.recv(BUFFER_BYTES - len(head) + 1)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                done.append((None, listener, self._leave(client), addr, b""))
                continue
            head += data
            arrival = request_arrival(bytes(head), max_body)
            if arrival is not Arrival.PARTIAL:
                done.append((arrival, listener, self._leave(client), addr, bytes(head)))
        for client in self._expired():
            if client in self._waiting:
                listener, addr, head = self._waiting[client]
                done.append((None, listener, self._leave(client), addr, bytes(head) or b"-"))
        return done

    def _leave(self, client: socket.socket) -> socket.socket:
        del self._waiting[client]
        self._selector.unregister(client)
        return client


#: Refused with a 503: the waiting room or the readers' queue is full.
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\n"


class ThreadWorker(JsonErrorsMixin, sync.SyncWorker):  # type: ignore[misc]
    """A sync worker that slow clients cannot hold up.

    The worker's loop runs the application one request at a time, as gunicorn's sync worker
    does: rendering is CPU work, and threads sharing one GIL only made it slower (a thread
    hand-off for every request cost a fifth of the single-code throughput). The listener
    hands over a connection once its first bytes are there; a request that has fully arrived,
    as nearly every one has, is answered at once. One still arriving waits in the loop
    (`_Waiting`), read as its bytes come and answered when whole; it has `--timeout` seconds
    in all (then 408), and up to 32 a reader thread (at least 64) may wait; more get 503.
    `--threads` reader threads read what the loop does not buffer: chunked bodies and bodies
    over 64 KiB (each read gives up after `--timeout`; a stalled body gets 400 and one over
    the limit 413, unread). Connections are closed after each response without waiting for
    the client (`_Closing`). A request that holds the loop past `--timeout` stops the
    heartbeat: the client gets a 500 and the worker is replaced.
    """

    def init_process(self) -> None:
        self._handed: queue.SimpleQueue[tuple[Any, Any, Any, Any]] = queue.SimpleQueue()
        self._slow: queue.Queue[tuple[Any, Any, Any, bytes]] = queue.Queue(maxsize=4 * self.cfg.threads)
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        files = 65536 if files == resource.RLIM_INFINITY else files
        self._closing = _Closing(limit=max(32, files // 4))  # a quarter of the descriptors a worker has
        self._waiting = _Waiting(max(16, min(32 * self.cfg.threads, files // 4)), self.cfg.timeout)
        self._reading = 0  # connections queued for or taken by a reader, not yet handed back or closed
        self._reading_lock = threading.Lock()
        for number in range(self.cfg.threads):
            threading.Thread(target=self._reader, name=f"qrsvc-read-{number}", daemon=True).start()
        for listener in self.sockets:
            with contextlib.suppress(OSError, AttributeError):  # Linux: accept once data is there
                listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        # Wake the idle loop when a waiting request has more bytes or a closing client has left.
        self.wait_fds: list[Any] = [*self.wait_fds, self._closing, self._waiting]

    def run(self) -> None:
        # The app refuses a longer body (413) unread; the worker reads no more of it either.
        self._max_body: int | None = getattr(self.wsgi, "config", {}).get("MAX_CONTENT_LENGTH")
        super().run()
        # Stopping (SIGTERM, max requests): answer the requests already arriving, as gthread does.
        deadline = time.monotonic() + max(0.0, self.cfg.graceful_timeout - 1)
        while self._reading or len(self._waiting) or not self._handed.empty():
            if time.monotonic() > deadline:
                break
            self.notify()
            self._between_requests()
            time.sleep(0.01)

    def accept(self, listener: Any) -> None:
        self._between_requests()
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # Out of descriptors: gunicorn's loop would let this kill the worker and every
            # connection it holds. Leave the connection queued and free some first.
            self.log.warning("Out of file descriptors; accepting again shortly.")
            time.sleep(0.05)
            self._between_requests()
            return
        util.close_on_exec(client)
        if self.cfg.is_ssl:
            self._to_reader(listener, client, addr, b"")
            return
        client.setblocking(False)
        try:
            data = client.recv(BUFFER_BYTES)
            gone = not data  # closed before sending a byte
        except BlockingIOError:
            data, gone = b"", False  # nothing yet (no deferred accept on this listener): it waits
        except OSError:
            data, gone = b"", True
        if gone:
            client.close()
            return
        arrival = request_arrival(data, self._max_body)
        if arrival is Arrival.WHOLE:
            self._serve_buffered(listener, client, addr, data)
        elif arrival is Arrival.READER:
            self._to_reader(listener, client, addr, data)
        elif not self._waiting.add(listener, client, addr, data):
            self._refuse(client, _BUSY)

    def wait(self, timeout: float) -> Any:
        ready = super().wait(timeout)
        self._between_requests()  # a reader wakes the loop through the worker's pipe
        return [each for each in ready if each not in (self._closing, self._waiting)] if ready else ready

    def _between_requests(self) -> None:
        while not self._handed.empty():
            self._respond(*self._handed.get())
        for arrival, listener, client, addr, data in self._waiting.poll(self._max_body):
            if arrival is Arrival.WHOLE:
                self._serve_buffered(listener, client, addr, data)
            elif arrival is Arrival.READER:
                self._to_reader(listener, client, addr, data)
            elif data:  # out of time
                self._refuse(client, b"HTTP/1.1 408 Request Timeout\r\n")
            else:  # the client left
                client.close()
        self._closing.poll()

    def _serve_buffered(self, listener: Any, client: socket.socket, addr: Any, data: bytes) -> None:
        client.setblocking(True)
        client.settimeout(min(self.cfg.timeout, 1.0))  # every byte is here; this guards a miscount
        prefixed = _Prefixed(client, data)
        req = self._read(prefixed, addr, self._closing.add)
        if req is not None:
            self._respond(listener, prefixed, addr, req)

    def _to_reader(self, listener: Any, client: socket.socket, addr: Any, data: bytes) -> None:
        with self._reading_lock:  # counted from here, so a stopping loop never sees it in between
            self._reading += 1
        try:
            self._slow.put_nowait((listener, client, addr, data))
        except queue.Full:
            with self._reading_lock:
                self._reading -= 1
            self._refuse(client, _BUSY)

    def _reader(self) -> None:
        while True:
            listener, client, addr, data = self._slow.get()
            try:
                self._read_slowly(listener, client, addr, data)
            finally:
                with self._reading_lock:
                    self._reading -= 1

    def _read_slowly(self, listener: Any, client: Any, addr: Any, data: bytes) -> None:
        client.setblocking(True)
        client.settimeout(self.cfg.timeout)
        if self.cfg.is_ssl:
            try:
                client = sock.ssl_wrap_socket(client, self.cfg)
            except Exception:  # noqa: BLE001 (a failed handshake: nothing to answer)
                client.close()
                return
        client = _Prefixed(client, data) if data else client
        req = self._read(client, addr, util.close_graceful)  # a reader thread may wait
        if req is not None:
            self._handed.put((listener, client, addr, req))
            with contextlib.suppress(OSError):
                os.write(self.PIPE[1], b".")

    def _read(self, client: Any, addr: Any, close: Callable[[Any], object]) -> Any:
        """The request's headers and whole body, or None when it was answered (an error) or dropped."""
        req = None
        try:
            req = next(http.get_parser(self.cfg, client, addr))
            self._read_body(req, client)
            return req
        except (http.errors.NoMoreData, StopIteration, ssl.SSLError):
            pass  # the client left, or sent nothing
        except OSError as exc:
            self._socket_error(exc, "Socket error reading a request.")
        except BaseException as exc:  # noqa: BLE001 (a request gunicorn cannot parse: its 4xx, as JSON)
            self.handle_error(req, client, addr, exc)
        close(client)
        return None

    def _read_body(self, req: Any, client: Any) -> None:
        """Read the body now (up to the app's MAX_CONTENT_LENGTH, plus one byte to tell it is over).

        A client that sent `Expect: 100-continue` may wait for the 100 before its body: it is sent
        here, before the body is read, and not again by gunicorn (nor for a body refused unread).
        """
        expects_100 = getattr(req, "_expected_100_continue", False)
        req._expected_100_continue = False
        reader = req.body.reader
        if not isinstance(reader, ChunkedReader | LengthReader) or getattr(reader, "length", 1) == 0:
            return  # no body (an EOFReader would wait for the client to close)
        limit = self._max_body
        if limit is not None and getattr(reader, "length", 0) > limit:
            return  # the app refuses it (413) without reading it
        if expects_100:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            data = req.body.read(None if limit is None else limit + 1)
        except Exception:  # noqa: BLE001 (stalled, cut or malformed: the app answers 400 for the short body)
            data = b""
        req.body = Body(_Read(data))

    def _respond(self, listener: Any, client: Any, addr: Any, req: Any) -> None:
        """Run the app for a request read whole, answer, and leave the connection to close."""
        client.settimeout(self.cfg.timeout)  # a client that does not read its answer
        try:
            self.handle_request(listener, req, client, addr)
        except StopIteration:
            pass  # the response failed after its headers went out: logged, connection dropped
        except OSError as exc:
            self._socket_error(exc, "Socket error processing request.")
        except (SystemExit, KeyboardInterrupt) as exc:  # killed past the timeout, or told to quit now
            self.handle_error(req, client, addr, exc)  # the client hears it (500), then the worker goes
            self._closing.add(client)
            raise
        except BaseException as exc:  # noqa: BLE001 (as gunicorn's sync worker: a 500 page, as JSON)
            self.handle_error(req, client, addr, exc)
        self._closing.add(client)

    def _socket_error(self, exc: OSError, message: str) -> None:
        """Log it, unless the client just left or stalled past the timeout (as gunicorn's sync worker)."""
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN) and not isinstance(
            exc, TimeoutError
        ):
            self.log.exception(message)

    def _refuse(self, client: socket.socket, status_line: bytes) -> None:
        """Too many waiting (503) or out of time (408): say so now, without waiting on the client."""
        with contextlib.suppress(OSError):
            client.setblocking(False)
            client.send(json_error_response(status_line))
        self._closing.add(client)


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
