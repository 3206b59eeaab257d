"""gunicorn glue: threaded workers with I/O deadlines, and logs that cannot be forged or leak keys."""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging
from gunicorn.workers import gthread

from qrsvc.http import make_logs_safe, wsgi_text


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gunicorn's `gthread` worker, whose request bodies and responses have a deadline per read/write.

    A slow client holds one thread, not the worker: the others (and the other workers) go on
    serving. gthread waits for a connection's first bytes in its poller, but once a request
    has begun its socket blocks without limit, so a client that announces a large body and
    stalls would keep its thread forever; here each read or write of the body and response
    gives up after `--timeout` seconds (werkzeug then ends the stalled request with a 400).
    """

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.sock.settimeout(self.cfg.timeout)
        return super().handle_request(req, conn)


class AccessLogger(glogging.Logger):  # type: ignore[misc]
    """One compact line a request: client, method, path, status, bytes, ms, request id, pid.

    The path is logged without its query string, where an `api_key` may travel, and with its
    control characters escaped (`%0a` in a URL is a newline in PATH_INFO). gunicorn's own
    formatter builds a dict of every header and environ variable for each request, about a
    tenth of a small request's CPU here. gunicorn's error log, which quotes whole request
    lines and URIs when a request fails, gets the same redaction and escaping.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        make_logs_safe(self.error_log)
        make_logs_safe(self.access_log)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "-")
        self.access_log.info(
            '%s "%s %s" %s %s %dms %s <%d>',
            environ.get("REMOTE_ADDR", "-"),
            wsgi_text(environ.get("REQUEST_METHOD", "-")),
            wsgi_text(environ.get("PATH_INFO", "-")),
            status,
            getattr(resp, "sent", None) or "-",
            request_time.seconds * 1000 + request_time.microseconds // 1000,
            request_id,
            os.getpid(),
        )
