"""The core's own endpoints as the OpenAPI description shows them; the integrations add theirs."""

from __future__ import annotations

from typing import Any

from qrsvc import api, batch, dynamic, pages
from qrsvc.openapi import HTML, IMAGE_CONTENT, Operation, json_content, ref, spec_schema
from qrsvc.pagination import PageQuery
from qrsvc.qr import FORMATS

_IMAGE_HEADERS: dict[str, Any] = {
    "ETag": {"schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
    "X-QR-Version": {"description": "The symbol version drawn.", "schema": {"type": "integer"}},
}


def core_operations() -> dict[str, Operation]:
    """The core's endpoints, by endpoint name."""
    readiness = {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "not_ready"]},
            "reason": {"type": "string"},
            "checks": {"type": "object"},
        },
    }

    def batch_body() -> dict[str, Any]:
        bounds = api._bounds()
        body = spec_schema(batch.defaults_spec(bounds), required=())
        item = spec_schema(batch.item_spec_of(bounds))
        body["properties"]["items"] = {"type": "array", "minItems": 1, "items": item}
        body["required"] = ["items"]
        return body

    generated = {**IMAGE_CONTENT, **json_content(ref("QrCode"))}
    code_headers = {**_IMAGE_HEADERS, "X-QR-Id": {"schema": {"type": "string"}}}
    return {
        "qr.generate_post": Operation(
            summary="Generate and store a code",
            tag="qr",
            description='The image itself, or JSON with `Accept: application/json` or `"response": "json"`.',
            body_spec=api.generate_spec,
            content=generated,
            headers=code_headers,
            errors=(422,),
        ),
        "qr.generate_get": Operation(
            summary="Generate and store a code (query string)",
            tag="qr",
            query_spec=api.generate_spec,
            content=generated,
            headers=code_headers,
            errors=(422,),
        ),
        "qr.generate_batch": Operation(
            summary="Generate many codes",
            tag="qr",
            description='JSON with base64 images, with URLs only (`"response": "url"`), or a ZIP '
            '(`Accept: application/zip` or `"response": "zip"`). One bad item never fails the others.',
            body_schema=batch_body,
            content={**json_content(ref("Batch")), "application/zip": {"type": "string"}},
            errors=(409, 422),
        ),
        "qr.get_code": Operation(summary="A code's metadata", tag="qr", content=json_content(ref("QrCode"))),
        "qr.change_code": Operation(
            summary="Change a dynamic code's target, disabled or expires_at",
            tag="qr",
            body=dynamic.Change,
            content=json_content(ref("QrCode")),
            errors=(422,),
        ),
        "qr.delete_code": Operation(summary="Delete a code", tag="qr", content=json_content(ref("Deleted"))),
        "qr.code_scans": Operation(
            summary="A dynamic code's scans over time",
            tag="qr",
            query_spec=api.scans_spec,
            content=json_content(ref("Scans")),
            errors=(422,),
        ),
        "qr.get_image": Operation(
            summary="A stored code's image (public: the id is the capability)",
            tag="qr",
            description="`ext` is one of: " + ", ".join(FORMATS) + ". Display changes by query string.",
            query_spec=api.image_changes_spec,
            status=(200, 304),
            content=IMAGE_CONTENT,
            headers=code_headers,
            errors=(422,),
        ),
        "qr.list_codes": Operation(
            summary="The key's codes, newest first",
            tag="qr",
            query=PageQuery,
            content=json_content(ref("QrCodeList")),
        ),
        "qr.account_usage": Operation(
            summary="The key's plan, rate limit and usage", tag="account", content=json_content(ref("Usage"))
        ),
        "pages.preview": Operation(
            summary="Draw a code without storing it (public, limited per address)",
            tag="qr",
            description="The generator page's live preview. `X-QR-Contrast` gives the contrast ratio.",
            query_spec=pages.preview_spec,
            content=IMAGE_CONTENT,
            headers={
                "X-QR-Version": _IMAGE_HEADERS["X-QR-Version"],
                "X-QR-Contrast": {"schema": {"type": "string"}},
            },
            errors=(422,),
        ),
        "pages.generator": Operation(summary="The generator page", tag="pages", content=HTML),
        "pages.reference": Operation(summary="This API reference", tag="pages", content=HTML),
        "pages.description": Operation(
            summary="This OpenAPI description", tag="meta", content=json_content(ref("OpenApi"))
        ),
        "redirects.follow": Operation(
            summary="Follow a dynamic code",
            tag="redirects",
            description="Redirects to the code's target and counts the scan; for people, so a "
            "failure is a small HTML page (404 unknown, 410 disabled or expired, 429 with "
            "Retry-After past QRSVC_REDIRECT_RATE_LIMIT redirects from one address).",
            status=(302,),
            content={},
            headers={"Location": {"schema": {"type": "string"}, "required": True}},
            other={404: HTML, 410: HTML, 429: HTML},
        ),
        "health.healthz": Operation(
            summary="The process is up",
            tag="meta",
            content=json_content({"type": "object", "properties": {"status": {"const": "ok"}}}),
        ),
        "health.readyz": Operation(
            summary="Ready for traffic: the database answers at the migration heads (and Redis, when used)",
            tag="meta",
            content=json_content(readiness),
            other={503: json_content(readiness)},
        ),
        "metrics": Operation(
            summary="Prometheus metrics (QRSVC_METRICS_TOKEN as Bearer, or loopback only); 404 to others",
            tag="meta",
            content={"text/plain": {"type": "string"}},
            errors=(404,),
        ),
    }


__all__ = ["core_operations"]
