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

from qrsvc.fields.scalars import (
    Bound,
    Parser,
    boolean,
    choice,
    described,
    integer,
    invalid,
    iso_datetime,
    json_schema,
    nullable,
    number,
    or_null,
    text,
)
from qrsvc.fields.schemas import (
    UNSET,
    Unset,
    field_schemas,
    given_fields,
    invalid_body,
    list_fields,
    list_of,
    nested,
    object_schema,
    parse_mapping,
    parse_object,
    required_fields,
)

__all__ = [
    "UNSET",
    "Bound",
    "Parser",
    "Unset",
    "boolean",
    "choice",
    "described",
    "field_schemas",
    "given_fields",
    "integer",
    "invalid",
    "invalid_body",
    "iso_datetime",
    "json_schema",
    "list_fields",
    "list_of",
    "nested",
    "nullable",
    "number",
    "object_schema",
    "or_null",
    "parse_mapping",
    "parse_object",
    "required_fields",
    "text",
]
