"""The client's error tree: one class per kind of failure, each carrying the API's error fields."""

from __future__ import annotations

from collections.abc import Mapping


class QrsvcError(Exception):
    """Any failure of a qrsvc call.

    `status` is the HTTP status (None when no response came), `error` the API's
    stable snake_case code, `message` its sentence, `field` the parameter at
    fault if any, and `attempts` how many times the request was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str = "error",
        field: str | None = None,
        attempts: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error
        self.field = field
        self.attempts = attempts
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.error}: {self.message}{where}"


class TransportError(QrsvcError):
    """No HTTP response: the server could not be reached or did not answer in time."""


class BadRequestError(QrsvcError):
    """400: malformed JSON, a wrong type, an unknown parameter."""


class AuthenticationError(QrsvcError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(QrsvcError):
    """403: the key is revoked or lacks the scope."""


class NotFoundError(QrsvcError):
    """404: no such code (or not this key's)."""


class ConflictError(QrsvcError):
    """409: e.g. a request with the same Idempotency-Key is still running."""


class PayloadTooLargeError(QrsvcError):
    """413: the body or the batch is larger than the server accepts."""


class UnprocessableError(QrsvcError):
    """422: well-formed but impossible (data too long, low contrast, …)."""


class RateLimitError(QrsvcError):
    """429: rate limited or out of monthly quota; `retry_after` in seconds when the server said."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


class ServerError(QrsvcError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[QrsvcError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}


def error_class(status: int) -> type[QrsvcError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, QrsvcError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from time import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QrsvcError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "UnprocessableError",
    "error_class",
    "parse_retry_after",
]
