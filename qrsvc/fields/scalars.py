"""Parsers of single values: text, numbers, booleans, choices, times, and `nullable` over any of them.

Each is a `Parser`: (the field's full path, the raw value, whether it came from a query
string, where everything is text) → the value, or the 400 naming the path.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from qrsvc.errors import ApiError

T = TypeVar("T")

#: How one field is read: (its path, the raw value, whether it came from a query string) → value.
Parser = Callable[[str, object, bool], T]
#: A bound known when the schema is written, or read when a request is parsed (configuration).
Bound = int | Callable[[], int]

#: C0 and C1 controls: NUL is refused by PostgreSQL, the rest corrupt logs and printed documents.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


#: What each parser accepts, as a JSON Schema made when asked for (bounds may come from configuration).
_DESCRIPTIONS: weakref.WeakKeyDictionary[Callable[..., Any], Callable[[], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)

P = TypeVar("P", bound=Callable[..., Any])


def described(parser: P, schema: dict[str, Any] | Callable[[], dict[str, Any]]) -> P:
    """`parser`, registered with the JSON Schema of what it accepts (read by the OpenAPI description)."""
    _DESCRIPTIONS[parser] = schema if callable(schema) else (lambda: dict(schema))
    return parser


def json_schema(parser: Callable[..., Any]) -> dict[str, Any] | None:
    """The JSON Schema of what `parser` accepts, or None when it does not describe itself."""
    describe = _DESCRIPTIONS.get(parser)
    return describe() if describe is not None else None


def _bounded(schema: dict[str, Any], **bounds: Bound | float | None) -> dict[str, Any]:
    for name, bound in bounds.items():
        if bound is not None:
            schema[name] = bound() if callable(bound) else bound
    return schema


def invalid(path: str, message: str) -> ApiError:
    """The 400 of a value with the wrong type or an unknown value."""
    return ApiError(400, "invalid_parameter", message, field=path)


def bound_value(bound: Bound) -> int:
    """A `Bound`'s number now (configuration is read at parse time)."""
    return bound() if callable(bound) else bound


def text(
    max_length: Bound | None = None,
    *,
    strip: bool = False,
    allow_blank: bool = True,
    allow_controls: bool = True,
) -> Parser[str]:
    """UTF-8 text without NUL (PostgreSQL refuses it) or lone surrogates (no encoder accepts them).

    `allow_controls=False` refuses every control character (for names printed on paper);
    `strip` trims spaces before `allow_blank` and `max_length` are checked.
    """

    def parse(path: str, value: object, from_query: bool) -> str:
        if not isinstance(value, str):
            raise invalid(path, f"{path} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(path, f"{path} is not valid Unicode text (it holds a lone surrogate)") from None
        if "\x00" in value:
            raise invalid(path, f"{path} must not contain NUL characters")
        if not allow_controls and _CONTROLS.search(value):
            raise invalid(path, f"{path} must not contain control characters")
        if strip:
            value = value.strip()
        if not allow_blank and not value.strip():
            raise invalid(path, f"{path} must not be empty")
        if max_length is not None and len(value) > (longest := bound_value(max_length)):
            raise invalid(path, f"{path} is longer than {longest} characters")
        return value

    # No `pattern` for the NUL and control-character rules: Schemathesis' generators grind on them.
    return described(
        parse,
        lambda: _bounded({"type": "string"}, minLength=None if allow_blank else 1, maxLength=max_length),
    )


def integer(low: Bound, high: Bound) -> Parser[int]:
    """A whole number within [low, high]; in a query string, its decimal text."""

    def parse(path: str, value: object, from_query: bool) -> int:
        if from_query and isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise invalid(path, f"{path} must be a whole number") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(path, f"{path} must be a whole number")
        lowest, highest = bound_value(low), bound_value(high)
        if not lowest <= value <= highest:
            raise ApiError(400, "out_of_range", f"{path} must be between {lowest} and {highest}", field=path)
        return value

    return described(parse, lambda: _bounded({"type": "integer"}, minimum=low, maximum=high))


def number(low: float | None = None, high: float | None = None) -> Parser[float]:
    """A finite number (JSON integer or fraction) within [low, high] when they are given."""

    def parse(path: str, value: object, from_query: bool) -> float:
        if from_query and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise invalid(path, f"{path} must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(path, f"{path} must be a number")
        if not math.isfinite(value):
            raise invalid(path, f"{path} must be a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ApiError(400, "out_of_range", f"{path} must be between {low} and {high}", field=path)
        return float(value)

    return described(parse, lambda: _bounded({"type": "number"}, minimum=low, maximum=high))


def boolean() -> Parser[bool]:
    """`true`/`false`; in a query string also `1`/`0`."""

    def parse(path: str, value: object, from_query: bool) -> bool:
        if isinstance(value, bool):
            return value
        if from_query and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise invalid(path, f"{path} must be true or false")

    return described(parse, {"type": "boolean"})


def choice(values: Collection[str], *, upper: bool = False) -> Parser[str]:
    """One of `values`, compared after trimming and folding to lower (or `upper`) case."""

    def parse(path: str, value: object, from_query: bool) -> str:
        if isinstance(value, str):
            normalised = value.strip().upper() if upper else value.strip().lower()
            if normalised in values:
                return normalised
        raise invalid(path, f"{path} must be one of: {', '.join(values)}")

    return described(parse, lambda: {"type": "string", "enum": list(values)})


def iso_datetime(earliest: datetime = _EARLIEST, latest: datetime = _LATEST) -> Parser[datetime]:
    """ISO 8601 with a zone (`Z` or an offset), as UTC, in [earliest, latest).

    A naive time is ambiguous and refused; the default years 1970–8999 keep
    `9999-12-31T23:59:59-14:00` (valid, but overflowing in UTC) out.
    """

    def parse(path: str, value: object, from_query: bool) -> datetime:
        moment = None
        if isinstance(value, str) and not _CONTROLS.search(value):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None:
            raise invalid(path, f"{path} must be an ISO 8601 time with a zone, e.g. 2026-12-31T20:00:00Z")
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            moment = None
        if moment is None or not earliest <= moment < latest:
            raise ApiError(
                400,
                "out_of_range",
                f"{path} must lie between {earliest:%Y-%m-%d} and {latest:%Y-%m-%d} (UTC)",
                field=path,
            )
        return moment

    return described(parse, {"type": "string", "format": "date-time"})


def nullable(parser: Parser[T], *, blank: bool = False) -> Parser[T | None]:
    """`null` is None (an optional field cleared); with `blank`, so is text that is only spaces."""

    def parse(path: str, value: object, from_query: bool) -> T | None:
        if value is None:
            return None
        parsed = parser(path, value, from_query)
        return None if blank and isinstance(parsed, str) and not parsed.strip() else parsed

    def schema() -> dict[str, Any]:
        return or_null(json_schema(parser) or {})

    return described(parse, schema)


def or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` that also accepts `null`."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"]} if "null" not in kind else schema
    if not schema:
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


__all__ = [
    "Bound",
    "Parser",
    "boolean",
    "bound_value",
    "choice",
    "described",
    "integer",
    "invalid",
    "iso_datetime",
    "json_schema",
    "nullable",
    "number",
    "or_null",
    "text",
]
