"""Request/response plumbing shared by every blueprint: bodies, query strings, errors, URLs, request ids."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
import sqlalchemy as sa
from flask import Flask, Response, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from limits.errors import StorageError
from werkzeug.exceptions import BadRequest, HTTPException

from qrsvc.db import database_unavailable
from qrsvc.errors import ApiError
from qrsvc.fields import list_fields, parse_object

S = TypeVar("S")
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# `api%5Fkey` authenticates too: werkzeug decodes parameter names.
_SECRET_IN_QUERY = re.compile(r"(api(?:_|%5f)key=)[^&\s\"']+", re.IGNORECASE)
#: The password of a URL's userinfo (`smtp://user:secret@host`), should a URL reach a log.
#: Up to the authority's last `@`: a password may hold an `@` of its own (`u:p@ss@host`).
_PASSWORD_IN_URL = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s]*@", re.IGNORECASE)
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: all can end or redraw a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the 415/400 of DESIGN.md §4."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "The body must be JSON (Content-Type: application/json)."
        )
    try:
        body = request.get_json()
    except BadRequest:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    except RecursionError:
        # The decoder recurses per level: `[[[[…` a thousand deep would otherwise be a 500.
        raise ApiError(400, "invalid_json", "The body is JSON nested too deeply to read.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The JSON body must be an object.")
    return body


def parse_body(schema: type[S]) -> S:
    """The JSON body as `schema` (see `qrsvc.fields`), or the 415/400 saying what is wrong."""
    return parse_object(schema, read_json_object(), ignored=_CREDENTIALS)


def parse_query(schema: type[S]) -> S:
    """The query string as `schema`; a list field takes every value of a repeated parameter."""
    lists, args = list_fields(schema), request.args
    source = {name: args.getlist(name) if name in lists else args[name] for name in args}
    return parse_object(schema, source, from_query=True, ignored=_CREDENTIALS)


#: Where a key may travel besides the headers (`?api_key=`): never an unknown parameter.
_CREDENTIALS = frozenset({"api_key"})


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["image/*", "application/json"], default="image/*")
    return best == "application/json" and request.accept_mimetypes["application/json"] > 0


def wants_zip() -> bool:
    """`Accept: application/zip` preferred over JSON (the batch endpoint's ZIP form)."""
    best = request.accept_mimetypes.best_match(["application/json", "application/zip"])
    return best == "application/zip"


def redact(text: str) -> str:
    """Remove API keys given in query strings, and passwords in URLs, from text bound for a log."""
    return _PASSWORD_IN_URL.sub(r"\1[redacted]@", _SECRET_IN_QUERY.sub(r"\1[redacted]", text))


def escape_controls(text: str) -> str:
    """`\\n`, `\\x1b` … for control characters: a client's text can never start a log line of its own."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def wsgi_text(value: str) -> str:
    """A WSGI environ string (bytes as latin-1) as escaped text: UTF-8 decoded, other bytes `\\xNN`."""
    return escape_controls(value.encode("latin-1", "replace").decode("utf-8", "backslashreplace"))


class SafeFormatter(logging.Formatter):
    """Wraps a formatter so that a record is one line, and a traceback's lines cannot pass for records.

    The message is redacted and escaped before it is formatted (once; the record is shared by
    every handler); what follows the first line (a traceback, whose last line quotes the
    exception's own text) is redacted, escaped and indented with `  | `.
    """

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "qrsvc_safe", False):
            record.msg, record.args = escape_controls(redact(record.getMessage())), None
            record.qrsvc_safe = True
        first, *rest = self.inner.format(record).split("\n")
        return "\n".join([first, *(f"  | {escape_controls(redact(line))}" for line in rest)])


class JsonFormatter(logging.Formatter):
    """One JSON object a line (`QRSVC_LOG_FORMAT=json`): time, level, logger, request id, message.

    A record's `fields` (the access log's route, status, duration, key prefix …) are merged
    in. The message and any traceback are redacted first; JSON escapes control characters.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None),
            "message": redact(record.getMessage()),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def make_logs_safe(logger: logging.Logger) -> None:
    """Give every handler of `logger` a `SafeFormatter` around its own (gunicorn's loggers use this)."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, SafeFormatter):
            handler.setFormatter(SafeFormatter(handler.formatter))


class _RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def init_app(app: Flask) -> None:
    """Request ids on every response and in every log line; keys and control characters never in a log."""

    @app.before_request
    def _assign_request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _add_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        # For gunicorn's access log, which sees the environ but not the app: the rule and key prefix.
        request.environ["qrsvc.route"] = request.url_rule.rule if request.url_rule is not None else None
        request.environ["qrsvc.key_prefix"] = g.get("qrsvc_key_prefix")
        return response

    root = logging.getLogger()
    if not any(getattr(h, "qrsvc", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.qrsvc = True  # type: ignore[attr-defined]
        handler.addFilter(_RequestContextFilter())
        handler.setFormatter(
            JsonFormatter()
            if app.config["LOG_FORMAT"] == "json"
            else SafeFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
            )
        )
        root.addHandler(handler)
        root.setLevel(app.config["LOG_LEVEL"])


#: werkzeug's HTTP errors, as our codes and sentences.
_HTTP_ERRORS = {
    400: ("bad_request", "The request could not be understood."),
    404: ("not_found", "There is nothing at this URL."),
    405: ("method_not_allowed", "This URL does not accept the {method} method."),
    413: ("payload_too_large", "The request body is larger than the limit of {limit} bytes."),
    415: ("unsupported_media_type", "The body must be JSON (Content-Type: application/json)."),
    429: ("rate_limited", "Rate limit of {limit} exceeded; retry after the time in Retry-After."),
}


def register_error_handlers(app: Flask) -> None:
    """Route ours, werkzeug's and every other exception through one JSON renderer."""

    def render(error: ApiError) -> Response:
        response = jsonify(error.to_dict())
        response.status_code = error.status
        response.headers.update(error.headers)
        # Also here, not only in the hook: when a hook fails, Flask skips the hooks of its error response.
        response.headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return render(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        original = getattr(error, "original_exception", None)
        if status == 500 and original is not None and _unavailable(original):
            # Raised after the view, by a hook finishing the response: Flask wraps it.
            return _unexpected(original)
        code, message = _HTTP_ERRORS.get(status, ("http_error", error.description or "HTTP error."))
        limit = ""
        if isinstance(error, RateLimitExceeded):
            limit = str(error.limit.limit)
        message = message.format(method=request.method, limit=limit or app.config.get("MAX_CONTENT_LENGTH"))
        response = render(ApiError(status, code, message))
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if _unavailable(error):
            # The database or the limits' Redis does not answer (down, restarting, failing over):
            # nothing of the request was committed, and the same request may succeed in a moment.
            log.warning("service unavailable: %s", _one_line(error))
            return render(
                ApiError(
                    503,
                    "service_unavailable",
                    "A service this request needs is not answering; retry after the time in Retry-After.",
                    headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
                )
            )
        log.exception("unhandled error")
        return render(
            ApiError(500, "internal_error", "Something went wrong on our side; quote the X-Request-Id.")
        )


#: Seconds a client is told to wait when the database or Redis does not answer.
UNAVAILABLE_RETRY_AFTER = 2


def _unavailable(error: BaseException) -> bool:
    """Is `error` a backend that does not answer, as opposed to a defect in the request's handling?

    A database error only when `database_unavailable` says so: a missing table, a syntax
    error or a deadlock is a defect (500, logged with its traceback), not a reason to retry.
    """
    if isinstance(error, sa.exc.DBAPIError):
        return database_unavailable(error)
    # The pool has no connection to give (all are busy), or the limits' storage does not answer.
    return isinstance(error, sa.exc.TimeoutError | redis.ConnectionError | redis.TimeoutError | StorageError)


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    text = " ".join(str(cause).split())
    return f"{type(cause).__name__}: {text[:300]}"


__all__ = [
    "UNAVAILABLE_RETRY_AFTER",
    "JsonFormatter",
    "SafeFormatter",
    "escape_controls",
    "make_logs_safe",
    "parse_body",
    "parse_query",
    "read_json_object",
    "register_error_handlers",
    "redact",
    "wants_json",
    "wants_zip",
    "wsgi_text",
]
