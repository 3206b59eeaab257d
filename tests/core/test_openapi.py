"""The OpenAPI description at /v1/openapi.json: valid, complete, generated from the real parsers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from openapi_spec_validator import validate

from qrsvc import fields
from qrsvc.fields import json_schema, object_schema
from qrsvc.openapi import operations


def test_field_parsers_describe_themselves_as_json_schema() -> None:
    assert json_schema(fields.integer(1, 40)) == {"type": "integer", "minimum": 1, "maximum": 40}
    assert json_schema(fields.text(64)) == {"type": "string", "maxLength": 64}
    assert json_schema(fields.text(allow_blank=False)) == {"type": "string", "minLength": 1}
    assert json_schema(fields.boolean()) == {"type": "boolean"}
    assert json_schema(fields.choice(("a", "b"))) == {"type": "string", "enum": ["a", "b"]}
    assert json_schema(fields.iso_datetime())["format"] == "date-time"
    assert json_schema(fields.nullable(fields.integer(0, 3))) == {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 3,
    }
    assert json_schema(fields.list_of(fields.integer(0, 1), min_length=1, max_length=5)) == {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 1},
        "minItems": 1,
        "maxItems": 5,
    }
    # A bound read from configuration is read when the description is made.
    limit = [10]
    assert json_schema(fields.text(lambda: limit[0]))["maxLength"] == 10
    limit[0] = 20
    assert json_schema(fields.text(lambda: limit[0]))["maxLength"] == 20


@dataclass(frozen=True, slots=True, kw_only=True)
class _Inner:
    n: Annotated[int, fields.integer(0, 9)]


def _custom(path: str, value: object, from_query: bool) -> str:
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outer:
    name: Annotated[str, fields.text(5)]
    inner: _Inner
    custom: Annotated[str | None, _custom] = None


def test_a_schema_dataclass_is_a_closed_object_with_its_required_fields() -> None:
    schema = object_schema(_Outer)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "inner"]
    assert schema["properties"]["inner"]["properties"]["n"] == {"type": "integer", "minimum": 0, "maximum": 9}
    # A parser that does not describe itself falls back to its annotation's type.
    assert schema["properties"]["custom"] == {"type": ["string", "null"]}


def _spec(client: Any) -> dict[str, Any]:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_the_description_is_valid_openapi_3_1_and_needs_no_key(client) -> None:
    spec = _spec(client)
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_of_the_app_is_described_and_nothing_else(app, client) -> None:
    routes = {
        (_openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.endswith(".static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {
        (path, method)
        for path, item in _spec(client)["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    }
    assert routes - described == set(), "routes missing from the description"
    assert described - routes == set(), "described operations that do not exist"
    assert set(operations(app)) - set(app.view_functions) == set(), (
        "descriptions of endpoints that do not exist"
    )


@pytest.mark.parametrize("app_config", [{"MAX_SIZE": 2000, "MIN_SIZE": 100}])
def test_qr_parameters_come_from_the_options_parser(client) -> None:
    spec = _spec(client)
    generate = spec["paths"]["/v1/qr/generate"]
    query = {p["name"]: p["schema"] for p in generate["get"]["parameters"]}
    assert query["size"] == {"type": "integer", "minimum": 100, "maximum": 2000}
    assert query["error_correction"]["enum"] == ["L", "M", "Q", "H"]
    body = generate["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["size"]["maximum"] == 2000
    assert body["required"] == ["data"]
    assert set(body["properties"]) >= {"data", "format", "foreground", "response", "dynamic"}


def test_errors_are_documented_with_the_one_error_shape(client) -> None:
    spec = _spec(client)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["success", "error", "message"]
    generate = spec["paths"]["/v1/qr/generate"]["post"]
    for status in ("400", "401", "403", "413", "415", "422", "429"):
        assert status in generate["responses"], status
    refused = generate["responses"]["429"]
    assert "Retry-After" in refused["headers"]
    assert "X-RateLimit-Limit" in generate["responses"]["200"]["headers"]
    assert {"png", "svg", "jpeg", "webp", "pdf"} <= {
        kind.split("/")[1].split("+")[0] for kind in generate["responses"]["200"]["content"]
    } | {"jpeg", "pdf"}
    assert "image/svg+xml" in generate["responses"]["200"]["content"]
    assert "application/pdf" in generate["responses"]["200"]["content"]
    public = spec["paths"]["/v1/qr/{code_id}.{ext}"]["get"]
    assert public["security"] == []
    assert "401" not in public["responses"]


def test_every_key_placement_the_server_accepts_is_a_security_scheme(client, api_key) -> None:
    spec = _spec(client)
    schemes = spec["components"]["securitySchemes"]
    assert len(schemes) == 3
    for scheme in schemes.values():
        headers: dict[str, str] = {}
        url = "/v1/account/usage"
        if scheme["type"] == "http":
            assert scheme["scheme"] == "bearer"
            headers["Authorization"] = f"Bearer {api_key}"
        elif scheme["in"] == "header":
            headers[scheme["name"]] = api_key
        else:
            assert scheme["in"] == "query"
            url += f"?{scheme['name']}={api_key}"
        assert client.get(url, headers=headers).status_code == 200, scheme
    # `?api_key=` works for GET only, and the description says so.
    query_scheme = next(name for name, s in schemes.items() if s.get("in") == "query")
    create = spec["paths"]["/v1/qr/generate"]["post"]["security"]
    assert all(query_scheme not in requirement for requirement in create)
    listing = spec["paths"]["/v1/qr"]["get"]["security"]
    assert any(query_scheme in requirement for requirement in listing)


def test_the_redirect_and_the_preview_are_described(client) -> None:
    spec = _spec(client)
    follow = spec["paths"]["/r/{short_code}"]["get"]
    assert "302" in follow["responses"]
    assert "Location" in follow["responses"]["302"]["headers"]
    preview = spec["paths"]["/v1/qr/preview"]["get"]
    assert preview["security"] == []
    assert "image/png" in preview["responses"]["200"]["content"]


def test_docs_page_loads_only_local_assets(client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    page = response.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), "no inline script"
    for asset in assets:
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        loaded.close()
    assert 'data-spec="/v1/openapi.json"' in page


def test_the_redirect_limit_page_is_described(client) -> None:
    spec = client.get("/v1/openapi.json").get_json()
    (path,) = [p for p in spec["paths"] if p.lower() == "/r/{short_code}" and p.startswith("/r")]
    refused = spec["paths"][path]["get"]["responses"]["429"]
    assert "text/html" in refused["content"]
    assert refused["headers"]["Retry-After"]["required"] is True
