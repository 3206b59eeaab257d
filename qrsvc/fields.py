"""Typed request parsing: a JSON object or a query string in, a frozen dataclass out.

A schema is a module-level frozen dataclass whose fields say how each is parsed
with `Annotated` (a field typed as a dataclass is parsed as a nested object):

    @dataclass(frozen=True, slots=True, kw_only=True)
    class ItemIn:
        sku: Annotated[str, text(max_length=64)]
        quantity: Annotated[int, integer(1, 1000)]
        unit_price: Annotated[str | None, nullable(price)] = None

A field without a default is required. Unknown fields are errors (a typo must not
fall back to a default), and every error names the field by its full path
(`items[2].sku`). No Flask here: `qrsvc.http.parse_body` / `parse_query` read the
request, and `qrsvc.options` builds the QR parameters from the same parsers.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import sys
import typing
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from qrsvc.errors import ApiError

T = TypeVar("T")
S = TypeVar("S")

#: How one field is read: (its path, the raw value, whether it came from a query string) → value.
Parser = Callable[[str, object, bool], T]
#: A bound known when the schema is written, or read when a request is parsed (configuration).
Bound = int | Callable[[], int]

#: C0 and C1 controls: NUL is refused by PostgreSQL, the rest corrupt logs and printed documents.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Unset(enum.Enum):
    """The default of a field that may be left out and means "no change" then (PATCH)."""

    UNSET = "unset"


UNSET = Unset.UNSET


def invalid(path: str, message: str) -> ApiError:
    """The 400 of a value with the wrong type or an unknown value."""
    return ApiError(400, "invalid_parameter", message, field=path)


def invalid_body() -> ApiError:
    """The 400 of a body that is JSON but not an object."""
    return ApiError(400, "invalid_body", "The JSON body must be an object.")


def _bound(bound: Bound) -> int:
    return bound() if callable(bound) else bound


# -- leaf parsers --------------------------------------------------------------------------------------


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
        if max_length is not None and len(value) > (longest := _bound(max_length)):
            raise invalid(path, f"{path} is longer than {longest} characters")
        return value

    return parse


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
        lowest, highest = _bound(low), _bound(high)
        if not lowest <= value <= highest:
            raise ApiError(400, "out_of_range", f"{path} must be between {lowest} and {highest}", field=path)
        return value

    return parse


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

    return parse


def boolean() -> Parser[bool]:
    """`true`/`false`; in a query string also `1`/`0`."""

    def parse(path: str, value: object, from_query: bool) -> bool:
        if isinstance(value, bool):
            return value
        if from_query and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise invalid(path, f"{path} must be true or false")

    return parse


def choice(values: Collection[str], *, upper: bool = False) -> Parser[str]:
    """One of `values`, compared after trimming and folding to lower (or `upper`) case."""

    def parse(path: str, value: object, from_query: bool) -> str:
        if isinstance(value, str):
            normalised = value.strip().upper() if upper else value.strip().lower()
            if normalised in values:
                return normalised
        raise invalid(path, f"{path} must be one of: {', '.join(values)}")

    return parse


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

    return parse


# -- combinators ---------------------------------------------------------------------------------------


def nullable(parser: Parser[T], *, blank: bool = False) -> Parser[T | None]:
    """`null` is None (an optional field cleared); with `blank`, so is text that is only spaces."""

    def parse(path: str, value: object, from_query: bool) -> T | None:
        if value is None:
            return None
        parsed = parser(path, value, from_query)
        return None if blank and isinstance(parsed, str) and not parsed.strip() else parsed

    return parse


def nested(schema: type[S]) -> Parser[S]:
    """A JSON object parsed as `schema`; its errors name `path.field`."""

    def parse(path: str, value: object, from_query: bool) -> S:
        return parse_object(schema, value, path, from_query=from_query)

    return parse


def list_of(
    item: Parser[T], *, min_length: int = 0, max_length: Bound | None = None
) -> Parser[tuple[T, ...]]:
    """A JSON array (in a query string: the repeated parameter) of `item`s, as a tuple.

    Too many entries is a 413 `too_many_items` (the request is too large, not wrong);
    entries' errors name `path[index]`.
    """

    def parse(path: str, value: object, from_query: bool) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise invalid(path, f"{path} must be a list")
        if len(value) < min_length:
            if min_length == 1:
                raise invalid(path, f"{path} must not be empty")
            raise invalid(path, f"{path} must hold at least {min_length} entries")
        if max_length is not None and len(value) > (most := _bound(max_length)):
            raise ApiError(413, "too_many_items", f"{path} may hold at most {most} entries", field=path)
        return tuple(item(f"{path}[{index}]", entry, from_query) for index, entry in enumerate(value))

    return parse


# -- objects -------------------------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_mapping(
    source: Mapping[str, object],
    parsers: Mapping[str, Parser[Any]],
    path: str = "",
    *,
    from_query: bool = False,
    ignored: Collection[str] = (),
) -> dict[str, object]:
    """Parse each field of `source` with its parser; a field without one is a 400 `unknown_parameter`."""
    values: dict[str, object] = {}
    for name, raw in source.items():
        if name in ignored:
            continue
        parser = parsers.get(name)
        if parser is None:
            raise ApiError(
                400,
                "unknown_parameter",
                f"unknown parameter {name!r}; accepted: {', '.join(parsers)}",
                field=_join(path, name),
            )
        values[name] = parser(_join(path, name), raw, from_query)
    return values


@dataclasses.dataclass(frozen=True, slots=True)
class _Schema:
    parsers: dict[str, Parser[Any]]
    required: tuple[str, ...]
    #: Fields read with `getlist` from a query string.
    lists: frozenset[str]


_COMPILED: dict[type[Any], _Schema] = {}


def _compile(schema: type[Any]) -> _Schema:
    """The schema's parsers, worked out from its annotations once."""
    compiled = _COMPILED.get(schema)
    if compiled is None:
        compiled = _COMPILED[schema] = _compile_fields(schema)
    return compiled


def _compile_fields(schema: type[Any]) -> _Schema:
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"{schema!r} is not a dataclass")
    try:
        # The module as globals: a `lambda` bound in an annotation must see the module, not the class.
        module = vars(sys.modules[schema.__module__])
        hints = typing.get_type_hints(schema, globalns=module, include_extras=True)
    except NameError as exc:
        raise TypeError(f"{schema.__qualname__}: define schemas at module level ({exc})") from None
    parsers: dict[str, Parser[Any]] = {}
    required: list[str] = []
    lists: set[str] = set()
    for field in dataclasses.fields(schema):
        hint = hints[field.name]
        parser = next((m for m in getattr(hint, "__metadata__", ()) if callable(m)), None)
        if parser is None:
            bare = typing.get_origin(hint) or hint
            if not (isinstance(bare, type) and dataclasses.is_dataclass(bare)):
                raise TypeError(f"{schema.__qualname__}.{field.name}: annotate the field with its parser")
            parser = nested(bare)
        parsers[field.name] = parser
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        if typing.get_origin(inner) in (tuple, list):
            lists.add(field.name)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    return _Schema(parsers, tuple(required), frozenset(lists))


def parse_object(
    schema: type[S],
    value: object,
    name: str = "",
    *,
    from_query: bool = False,
    ignored: Collection[str] = (),
) -> S:
    """`value` (a JSON object, or query parameters) as an instance of `schema`, or the 400 saying why.

    Fields are checked in the order given, then the required ones that are missing
    (or null) are named, in the order the schema declares them.
    """
    if not isinstance(value, Mapping):
        raise invalid(name, f"{name} must be an object") if name else invalid_body()
    compiled = _compile(schema)
    values = parse_mapping(value, compiled.parsers, name, from_query=from_query, ignored=ignored)
    for field in compiled.required:
        if values.get(field) is None:
            path = _join(name, field)
            raise ApiError(400, "missing_parameter", f"{path} is required", field=path)
    return schema(**values)


def list_fields(schema: type[Any]) -> frozenset[str]:
    """The fields of `schema` that a query string may repeat (`?sku=A&sku=B`)."""
    return _compile(schema).lists


def given_fields(values: object) -> dict[str, Any]:
    """The fields of a parsed schema that the request gave (not `UNSET`): the changes of a PATCH."""
    if not dataclasses.is_dataclass(values) or isinstance(values, type):
        raise TypeError(f"{values!r} is not a parsed schema")
    return {
        field.name: getattr(values, field.name)
        for field in dataclasses.fields(values)
        if getattr(values, field.name) is not UNSET
    }


__all__ = [
    "UNSET",
    "Bound",
    "Parser",
    "Unset",
    "boolean",
    "choice",
    "given_fields",
    "integer",
    "invalid",
    "invalid_body",
    "iso_datetime",
    "list_fields",
    "list_of",
    "nested",
    "nullable",
    "number",
    "parse_mapping",
    "parse_object",
    "text",
]
