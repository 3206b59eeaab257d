"""The generator page and the keyless, non-storing preview route it draws with."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa


def stored_codes(app: Any) -> int:
    from qrsvc.extensions import db
    from qrsvc.models import QrCode

    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)))


def test_generator_page_is_html_with_a_strict_content_security_policy(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts, "the page loads its script"
    assert all(" src=" in tag for tag in scripts), "no inline script"
    assert 'id="preview"' in page
    for fmt in ("png", "svg", "jpeg", "webp", "pdf"):
        assert f'data-format="{fmt}"' in page


@pytest.mark.parametrize(
    ("asset", "mimetype"), [("generator.js", "text/javascript"), ("generator.css", "text/css")]
)
def test_page_assets_are_served_by_flask(client, asset, mimetype) -> None:
    response = client.get(f"/static/qrsvc/{asset}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert len(response.get_data()) > 1000
    response.close()


def test_preview_draws_a_code_without_a_key_and_stores_nothing(app, client, decode) -> None:
    response = client.get("/v1/qr/preview?data=hello%20gate&size=256&foreground=%23102030")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert decode(response.data) == ["hello gate"]
    assert response.headers["Cache-Control"] == "no-store"
    assert float(response.headers["X-QR-Contrast"]) > 15
    assert "X-QR-Id" not in response.headers
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in response.headers
    assert stored_codes(app) == 0


@pytest.mark.parametrize("fmt", ["png", "svg", "jpeg", "webp", "pdf"])
def test_preview_downloads_every_format(client, decode, fmt) -> None:
    response = client.get(f"/v1/qr/preview?data=fmt-{fmt}&format={fmt}&size=300&download=true")
    assert response.status_code == 200
    extension = {"jpeg": "jpg"}.get(fmt, fmt)
    assert response.headers["Content-Disposition"] == f'attachment; filename="qr-code.{extension}"'
    assert decode(response.data, fmt) == [f"fmt-{fmt}"]


def test_preview_with_a_key_is_not_stored_either(app, client, auth) -> None:
    response = client.get("/v1/qr/preview?data=keyed", headers=auth)
    assert response.status_code == 200
    assert stored_codes(app) == 0


def test_preview_refuses_a_bad_colour_as_a_section_4_error(client) -> None:
    response = client.get("/v1/qr/preview?data=x&foreground=%23zzz")
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert body["error"] == "invalid_parameter"
    assert body["field"] == "foreground"
    assert "colour" in body["message"]


def test_preview_refuses_low_contrast_with_the_api_message(client) -> None:
    response = client.get("/v1/qr/preview?data=x&foreground=%23dddddd")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "low_contrast"
    assert "allow_low_contrast" in body["message"]
    forced = client.get("/v1/qr/preview?data=x&foreground=%23dddddd&allow_low_contrast=true")
    assert forced.status_code == 200
    assert float(forced.headers["X-QR-Contrast"]) < 3


@pytest.mark.parametrize("size", ["4097", "100000000", "-1"])
def test_preview_refuses_a_huge_or_negative_size(client, size) -> None:
    response = client.get(f"/v1/qr/preview?data=x&size={size}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "out_of_range"
    assert body["field"] == "size"


def test_preview_refuses_unknown_parameters(client) -> None:
    response = client.get("/v1/qr/preview?data=x&colour=red")
    assert response.status_code == 400
    assert response.get_json()["error"] == "unknown_parameter"


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "20/minute"}])
def test_preview_pays_the_public_size_weighted_cost_then_gets_429(client) -> None:
    small = client.get("/v1/qr/preview?data=x&size=256")
    assert small.headers["X-RateLimit-Limit"] == "20"
    assert small.headers["X-RateLimit-Remaining"] == "19"
    large = client.get("/v1/qr/preview?data=x&size=4096")  # 16 units of 1024 × 1024 px
    assert large.status_code == 200
    assert large.headers["X-RateLimit-Remaining"] == "3"
    for _ in range(3):
        assert client.get("/v1/qr/preview?data=x&size=256").status_code == 200
    refused = client.get("/v1/qr/preview?data=x&size=256")
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # The page itself is not an API request and is never limited.
    assert client.get("/").status_code == 200
