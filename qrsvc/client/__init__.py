"""A Python client for qrsvc: `Client(base_url, api_key)`. Needs `requests`, never Flask."""

from __future__ import annotations

from qrsvc.client.client import DEFAULT_BASE_URL, DEFAULT_BATCH_MAX_ITEMS, BatchResult, Client
from qrsvc.client.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QrsvcError,
    RateLimitError,
    ServerError,
    TransportError,
    UnprocessableError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_MAX_ITEMS",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "Client",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QrsvcError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "UnprocessableError",
]
