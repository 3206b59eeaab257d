"""Objects and lists: a JSON object or a query string parsed into a schema (a frozen dataclass).

A schema's fields say how each is parsed with `Annotated`; a field typed as a dataclass
is a nested object; a field without a default is required; unknown fields are errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
import types
import typing
from collections.abc import Collection, Mapping
from types import SimpleNamespace
from typing import Any, TypeVar

from qrsvc.errors import ApiError
from qrsvc.fields.scalars import Bound, Parser, bound_value, described, invalid, json_schema

T = TypeVar("T")
S = TypeVar("S")


class Unset(enum.Enum):
    """The default of a field that may be left out and means "no change" then (PATCH)."""

    UNSET = "unset"


UNSET = Unset.UNSET


def invalid_body() -> ApiError:
    """The 400 of a body that is JSON but not an object."""
    return ApiError(400, "invalid_body", "The JSON body must be an object.")


def nested(schema: type[S]) -> Parser[S]:
    """A JSON object parsed as `schema`; its errors name `path.field`."""

    def parse(path: str, value: object, from_query: bool) -> S:
        return parse_object(schema, value, path, from_query=from_query)

    return described(parse, lambda: object_schema(schema))


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
        if max_length is not None and len(value) > (most := bound_value(max_length)):
            raise ApiError(413, "too_many_items", f"{path} may hold at most {most} entries", field=path)
        return tuple(item(f"{path}[{index}]", entry, from_query) for index, entry in enumerate(value))

    def schema() -> dict[str, Any]:
        described_list: dict[str, Any] = {"type": "array", "items": json_schema(item) or {}}
        if min_length:
            described_list["minItems"] = min_length
        if max_length is not None:
            described_list["maxItems"] = bound_value(max_length)
        return described_list

    return described(parse, schema)


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


def _annotations(schema: type[Any]) -> dict[str, Any]:
    """The fields' annotations, each class's evaluated in its own module (a parent schema may live elsewhere).

    With the module as globals, a `lambda` bound in an annotation sees that module, not the class.
    """
    hints: dict[str, Any] = {}
    for base in reversed(schema.__mro__):
        own = base.__dict__.get("__annotations__")
        if not own:
            continue
        module = vars(sys.modules[base.__module__])
        try:
            hints.update(
                typing.get_type_hints(
                    SimpleNamespace(__annotations__=own), module, dict(vars(base)), include_extras=True
                )
            )
        except NameError as exc:
            raise TypeError(f"{schema.__qualname__}: define schemas at module level ({exc})") from None
    return hints


def _compile_fields(schema: type[Any]) -> _Schema:
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"{schema!r} is not a dataclass")
    hints = _annotations(schema)
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


#: JSON Schema types of the Python types a parser's annotation may name.
_JSON_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
}


def _annotation_schema(hint: Any) -> dict[str, Any]:
    """What a field's type says it accepts, for a parser that does not describe itself."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_annotation_schema(arg) for arg in typing.get_args(hint) if arg is not Unset]
        kinds = [option.get("type") for option in options]
        if len(options) == 1:
            return options[0]
        if all(isinstance(kind, str) for kind in kinds) and all(len(option) == 1 for option in options):
            return {"type": kinds}
        return {"anyOf": options}
    if origin in (tuple, list):
        args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
        return {"type": "array", "items": _annotation_schema(args[0]) if args else {}}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return object_schema(hint)
    return dict(_JSON_TYPES.get(hint, {}))


def object_schema(schema: type[Any]) -> dict[str, Any]:
    """The JSON Schema of `schema`'s objects, made from the same parsers that read them.

    A parser that does not describe itself (`qrsvc.fields.described`) is described by
    its field's annotation; unknown fields are refused, so the object is closed.
    """
    compiled = _compile(schema)
    hints = _annotations(schema)
    properties: dict[str, Any] = {}
    for name, parser in compiled.parsers.items():
        found = json_schema(parser)
        properties[name] = found if found is not None else _annotation_schema(hints[name])
    described_object: dict[str, Any] = {"type": "object", "properties": properties}
    if compiled.required:
        described_object["required"] = list(compiled.required)
    described_object["additionalProperties"] = False
    return described_object


def field_schemas(schema: type[Any]) -> dict[str, dict[str, Any]]:
    """Each field's JSON Schema (query parameters are described one by one)."""
    return dict(object_schema(schema)["properties"])


def required_fields(schema: type[Any]) -> tuple[str, ...]:
    return _compile(schema).required


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
    "Unset",
    "field_schemas",
    "given_fields",
    "invalid_body",
    "list_fields",
    "list_of",
    "nested",
    "object_schema",
    "parse_mapping",
    "parse_object",
    "required_fields",
]
