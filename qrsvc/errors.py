"""The one error type family raised below the views (`qrsvc.http` renders every error as JSON).

No Flask here: the pure layers (`qrsvc.options`, `qrsvc.fields`) raise these too.
"""

from __future__ import annotations


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
    """404 `not_found`: no such record, or not the caller's (never revealed as different)."""

    def __init__(self, message: str = "No such record.", field: str | None = None) -> None:
        super().__init__(404, "not_found", message, field)


__all__ = ["ApiError", "NotFoundError"]
