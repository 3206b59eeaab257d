"""The OpenAPI 3.1 description of the running app, made from its routes and its parsers.

Paths and methods come from `app.url_map`; who may call an operation from
`require_key` (the scopes it records on the view); parameters and bodies from the
very dataclasses and `Spec`s that parse them (`qrsvc.fields.object_schema`). Only
the responses are written by hand, here and in each integration's `Operation`s,
registered with `register_operations` (integrations do so through the toolkit).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from qrsvc import fields
from qrsvc.auth import required_scopes
from qrsvc.options import Spec
from qrsvc.qr import CONTENT_TYPES, FORMATS

#: A JSON Schema, or a function making one when the description is made (bounds come from configuration).
Schema = Mapping[str, Any] | Callable[[], Mapping[str, Any]]

_EXTENSION = "qrsvc_openapi"
_METHODS = ("get", "put", "post", "patch", "delete")


def ref(name: str) -> dict[str, str]:
    """A reference to one of the component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Schema) -> dict[str, Schema]:
    return {"application/json": schema}


#: Every image format, by content type: the same schema (binary) for each.
IMAGE_CONTENT: dict[str, Schema] = {
    CONTENT_TYPES[fmt]: {"type": "string", "contentMediaType": CONTENT_TYPES[fmt]} for fmt in FORMATS
}
PDF: dict[str, Schema] = {"application/pdf": {"type": "string", "contentMediaType": "application/pdf"}}
HTML: dict[str, Schema] = {"text/html": {"type": "string"}}


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """What the routes and parsers cannot say about an endpoint: its summary and its answers.

    `body`/`query` name the schema dataclass the view parses (`parse_body`/`parse_query`);
    `body_spec`/`query_spec` a QR options `Spec` (or any JSON Schema for a body read
    another way). `errors` are the statuses beyond those every operation has.
    """

    summary: str
    tag: str
    description: str = ""
    body: type[Any] | None = None
    body_spec: Callable[[], Spec] | None = None
    body_schema: Schema | None = None
    body_types: tuple[str, ...] = ("application/json",)
    body_required: bool = True
    query: type[Any] | None = None
    query_spec: Callable[[], Spec] | None = None
    status: tuple[int, ...] = (200,)
    content: Mapping[str, Schema] = field(default_factory=lambda: json_content(ref("Success")))
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    #: Other answers with their own content (the HTML pages of `/r/…`), by status.
    other: Mapping[int, Mapping[str, Schema]] = field(default_factory=dict)


def register_operations(app: Flask, operations: Mapping[str, Operation]) -> None:
    """Describe the endpoints named (`blueprint.view`); an endpoint left out is missing from the spec."""
    app.extensions.setdefault(_EXTENSION, {}).update(operations)


def operations(app: Flask) -> Mapping[str, Operation]:
    """Every registered description, by endpoint (one naming an endpoint that does not exist is a bug)."""
    found: Mapping[str, Operation] = app.extensions.get(_EXTENSION, {})
    return found


# -- the error shape and the headers every /v1 answer carries -------------------------------------

_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current window.",
        "schema": {"type": "integer"},
        "required": True,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
        "required": True,
    },
    "X-RateLimit-Reset": {
        "description": "When the window resets (unix seconds).",
        "schema": {"type": "integer"},
        "required": True,
    },
}
_REQUEST_ID = {
    "X-Request-Id": {
        "description": "This request's id, as logged; quote it when reporting a 500.",
        "schema": {"type": "string"},
    }
}

_ERRORS: dict[int, str] = {
    400: "The body is not valid JSON, or a parameter has the wrong type or an unknown value "
    "(`invalid_json`, `invalid_body`, `invalid_parameter`, `unknown_parameter`, `missing_parameter`, "
    "`out_of_range`).",
    401: "No key, or an unknown one (`missing_api_key`, `invalid_api_key`); `WWW-Authenticate: Bearer`.",
    403: "The key is revoked (`key_revoked`) or lacks the scope (`insufficient_scope`).",
    404: "No such record, or not yours (`not_found`).",
    409: "The request conflicts with what is stored (`conflict` and the like).",
    410: "The record is gone (`gone`).",
    413: "The body or the batch is too large (`payload_too_large`, `batch_too_large`, `too_many_items`).",
    415: "The body is not JSON where JSON is required (`unsupported_media_type`).",
    422: "Well-formed but impossible (`data_too_long`, `low_contrast`, `transparency_unsupported`, …).",
    429: "Rate limited (`rate_limited`); retry after `Retry-After` seconds.",
    500: "Something went wrong on our side (`internal_error`); no details, quote `X-Request-Id`.",
    503: "The database or Redis did not answer (`service_unavailable`); retry after `Retry-After` seconds.",
}

_COMPONENT_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every error, from every blueprint (DESIGN.md §4).",
        "properties": {
            "success": {"const": False},
            "error": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "A stable code."},
            "message": {"type": "string", "description": "One human sentence."},
            "field": {"type": "string", "description": "The parameter at fault, when one is."},
        },
        "required": ["success", "error", "message"],
    },
    "Success": {
        "type": "object",
        "properties": {"success": {"const": True}},
    },
    "QrCode": {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "id": {"type": "string"},
            "data": {"type": "string"},
            "format": {"enum": list(FORMATS)},
            "size": {"type": "integer"},
            "version": {"type": "integer", "minimum": 1, "maximum": 40},
            "error_correction": {"enum": ["L", "M", "Q", "H"]},
            "quiet_zone": {"type": "integer"},
            "foreground": {"type": "string"},
            "background": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "image_url": {"type": "string", "format": "uri"},
            "image_base64": {"type": "string", "contentEncoding": "base64"},
            "data_uri": {"type": "string"},
            "dynamic": {"type": "object", "description": "Short URL, target, state and scan counts."},
        },
        "required": ["success", "id", "format", "size", "version", "error_correction", "image_url"],
    },
    "QrCodeList": {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "items": {"type": "array", "items": ref("QrCode")},
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["success", "items", "next_cursor"],
    },
    "Page": {
        "type": "object",
        "description": "One page of a list, newest first; `next_cursor` fetches the next (null: no more).",
        "properties": {
            "success": {"const": True},
            "items": {"type": "array", "items": {"type": "object"}},
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["success", "items", "next_cursor"],
    },
    "Batch": {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "count": {"type": "integer"},
            "failed": {"type": "integer"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "success": {"type": "boolean"},
                        "id": {"type": "string"},
                        "image_base64": {"type": "string"},
                        "image_url": {"type": "string"},
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                    },
                    "required": ["index", "success"],
                },
            },
        },
        "required": ["success", "count", "failed", "items"],
    },
    "Scans": {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "id": {"type": "string"},
            "group": {"type": "string"},
            "from": {"type": "string", "format": "date-time"},
            "to": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["success", "id", "group", "from", "to", "items"],
    },
    "Deleted": {
        "type": "object",
        "properties": {"success": {"const": True}, "id": {"type": "string"}, "deleted": {"const": True}},
        "required": ["success", "id", "deleted"],
    },
    "Usage": {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "plan": {"type": "string"},
            "rate_limit": {
                "type": "object",
                "properties": {
                    "limit": {"type": "integer"},
                    "remaining": {"type": "integer"},
                    "reset": {"type": ["integer", "null"]},
                    "window_seconds": {"type": "integer"},
                },
                "required": ["limit", "remaining", "reset", "window_seconds"],
            },
            "quota": {"type": "object"},
            "usage": {
                "type": "object",
                "properties": {
                    "requests_today": {"type": "integer"},
                    "codes_today": {"type": "integer"},
                    "codes_this_month": {"type": "integer"},
                },
                "required": ["requests_today", "codes_today", "codes_this_month"],
            },
        },
        "required": ["plan", "rate_limit", "usage"],
    },
    "OpenApi": {"type": "object", "required": ["openapi", "info", "paths"]},
}

#: The key placements `qrsvc.auth.credential` reads, in its order.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer KEY` (preferred).",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "apiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "`?api_key=KEY`, on GET requests only; never logged in clear.",
    },
}


def _error_response(status: int, *, api: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {**(_RATE_LIMIT_HEADERS if api and status != 429 else {}), **_REQUEST_ID}
    if status == 401:
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}, "required": True}
    if status == 429:
        headers.update({name: {**header, "required": False} for name, header in _RATE_LIMIT_HEADERS.items()})
        headers["Retry-After"] = {
            "description": "Seconds to wait.",
            "schema": {"type": "integer"},
            "required": True,
        }
    return {
        "description": _ERRORS.get(status, "An error."),
        "headers": headers,
        "content": {"application/json": {"schema": ref("Error")}},
    }


# -- parameters and bodies, from the parsers ------------------------------------------------------


def _made(schema: Schema) -> dict[str, Any]:
    return dict(schema() if callable(schema) else schema)


def spec_schema(spec: Spec, *, required: tuple[str, ...] = ("data",)) -> dict[str, Any]:
    """The JSON Schema of a body read with `spec` (the QR options and the endpoint's extras)."""
    properties = {name: fields.json_schema(parser) or {} for name, parser in spec.parsers().items()}
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in required if name in properties],
        "additionalProperties": False,
    }


def _query_parameters(operation: Operation) -> list[dict[str, Any]]:
    if operation.query is not None:
        schemas = fields.field_schemas(operation.query)
        required = set(fields.required_fields(operation.query))
        lists = fields.list_fields(operation.query)
    elif operation.query_spec is not None:
        spec = operation.query_spec()
        schemas = {name: fields.json_schema(parser) or {} for name, parser in spec.parsers().items()}
        required = {"data"} & set(schemas) if spec.qr_fields else set()
        lists = frozenset()
    else:
        return []
    parameters = []
    for name, schema in schemas.items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
        if name in required:
            parameter["required"] = True
        if name in lists:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _request_body(operation: Operation) -> dict[str, Any] | None:
    if operation.body is not None:
        schema: dict[str, Any] = fields.object_schema(operation.body)
    elif operation.body_spec is not None:
        schema = spec_schema(operation.body_spec())
    elif operation.body_schema is not None:
        schema = _made(operation.body_schema)
    else:
        return None
    return {
        "required": operation.body_required,
        "content": {kind: {"schema": schema} for kind in operation.body_types},
    }


# -- the description ------------------------------------------------------------------------------

_CONVERTED = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/v1/qr/<code_id>.<ext>` as `/v1/qr/{code_id}.{ext}`, with its path parameters."""
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for _converter, name in _CONVERTED.findall(rule)
    ]
    return _CONVERTED.sub(lambda found: "{" + found.group(2) + "}", rule), parameters


def _operation(
    app: Flask, endpoint: str, method: str, path: str, parameters: list[dict[str, Any]], described: Operation
) -> dict[str, Any]:
    scopes = required_scopes(app.view_functions[endpoint])
    api = path.startswith("/v1/")
    success_headers = {**(_RATE_LIMIT_HEADERS if api else {}), **_REQUEST_ID, **described.headers}
    responses: dict[str, Any] = {
        str(status): {
            "description": described.summary,
            "headers": success_headers,
            **(
                {"content": {kind: {"schema": _made(s)} for kind, s in described.content.items()}}
                if described.content
                else {}
            ),
        }
        for status in described.status
    }
    body = _request_body(described)
    errors = set(described.errors)
    if api:
        errors |= {400, 429, 500}
        if scopes is not None:
            errors |= {401, 403}
        if parameters:
            errors.add(404)
        if body is not None or method != "get":
            errors.add(413)
        if body is not None and "application/json" in described.body_types:
            errors.add(415)
    for status in sorted(errors):
        responses[str(status)] = _error_response(status, api=api)
    responses["414"] = {
        "description": "The request line is longer than the HTTP server reads (gunicorn's "
        "`limit_request_line`, 4094 bytes): `uri_too_long`, answered before the app sees the request.",
        "content": {"application/json": {"schema": ref("Error")}},
    }
    for status, content in described.other.items():
        responses[str(status)] = {
            "description": _ERRORS.get(status, described.summary),
            "content": {kind: {"schema": _made(schema)} for kind, schema in content.items()},
        }
        if status == 429:  # a page instead of JSON, with the same wait
            responses[str(status)]["headers"] = {
                "Retry-After": _error_response(429, api=False)["headers"]["Retry-After"]
            }
    operation: dict[str, Any] = {
        "operationId": endpoint,
        "summary": described.summary,
        "tags": [described.tag],
        "parameters": [*parameters, *_query_parameters(described)],
        "responses": responses,
    }
    if described.description:
        operation["description"] = described.description
    if body is not None:
        operation["requestBody"] = body
    if scopes is None:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": []}, {"apiKeyHeader": []}]
        if method == "get":
            operation["security"].append({"apiKeyQuery": []})
        operation["description"] = (
            f"{described.description}\n\n" if described.description else ""
        ) + f"Scope: {' or '.join(f'`{scope}`' for scope in scopes)}."
    return operation


#: The QR API first, people's pages and the service's own endpoints last; integrations between.
_TAGS = ("qr", "account", "redirects")
_LAST = ("pages", "meta")


def _tag_order(tag: str) -> tuple[int, int, str]:
    if tag in _TAGS:
        return (0, _TAGS.index(tag), tag)
    if tag in _LAST:
        return (2, _LAST.index(tag), tag)
    return (1, 0, tag)


def describe(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`: every route whose endpoint has an `Operation`."""
    registered = operations(app)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        described = registered.get(rule.endpoint)
        if described is None:
            continue
        path, parameters = _path(rule.rule)
        for method in sorted(m.lower() for m in rule.methods or () if m.lower() in _METHODS):
            operation = _operation(app, rule.endpoint, method, path, parameters, described)
            paths.setdefault(path, {})[method] = operation
    # One operationId per operation, even where one endpoint serves two paths (`/r/` and `/R/`).
    seen: set[str] = set()
    for path, item in paths.items():
        for method, operation in item.items():
            if operation["operationId"] in seen:
                operation["operationId"] += f".{method}." + re.sub(r"\W+", "_", path).strip("_")
            seen.add(operation["operationId"])
    used = {operation["tags"][0] for item in paths.values() for operation in item.values()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qrsvc",
            "version": "1",
            "description": "QR codes on demand and in bulk, and the tickets, shop and CRM built on them. "
            "Every error is `{success: false, error, message, field?}`; every `/v1` answer carries "
            "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.",
        },
        "tags": [{"name": tag} for tag in sorted(used, key=_tag_order)],
        "paths": paths,
        "components": {"schemas": _COMPONENT_SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


__all__ = [
    "HTML",
    "IMAGE_CONTENT",
    "PDF",
    "SECURITY_SCHEMES",
    "Operation",
    "Schema",
    "describe",
    "json_content",
    "operations",
    "ref",
    "register_operations",
    "spec_schema",
]
