"""The one error type raised below the views, and the handler that renders every error as JSON."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with a stable snake_case `code` that the API returns as DESIGN.md §4 JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"success": False, "error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class NotFoundError(ApiError):
    def __init__(self, message: str = "No such record.", field: str | None = None) -> None:
        super().__init__(404, "not_found", message, field)


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
    from flask import jsonify, request
    from flask_limiter.errors import RateLimitExceeded
    from werkzeug.exceptions import HTTPException

    def render(error: ApiError) -> Response:
        response = jsonify(error.to_dict())
        response.status_code = error.status
        response.headers.update(error.headers)
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return render(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
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
        log.exception("unhandled error")
        return render(
            ApiError(500, "internal_error", "Something went wrong on our side; quote the X-Request-Id.")
        )
