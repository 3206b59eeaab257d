"""The /v1/qr API through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from qrsvc.qr import CONTENT_TYPES, FORMATS


def generate(client: Any, auth: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/qr/generate", json=body, headers=auth)


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_generate_returns_the_image_with_its_headers(client, auth, decode, fmt) -> None:
    data = f"https://www.example.com/product/12345?fmt={fmt}"
    response = generate(client, auth, data=data, format=fmt, size=512, error_correction="H")
    assert response.status_code == 200
    assert response.mimetype == CONTENT_TYPES[fmt]
    assert response.headers["X-QR-Id"].startswith("qr_")
    assert int(response.headers["X-QR-Version"]) >= 1
    assert response.headers["ETag"]
    assert response.headers["Cache-Control"]
    assert response.headers["X-Request-Id"]
    assert decode(response.data, fmt) == [data]


def test_article_request_body_returns_json_when_asked(client, auth, decode) -> None:
    body = {
        "data": "https://www.example.com/product/12345",
        "format": "png",
        "size": 512,
        "error_correction": "H",
        "foreground": "#1a1a1a",
        "background": "#ffffff",
        "quiet_zone": 4,
    }
    response = client.post("/v1/qr/generate", json=body, headers={**auth, "Accept": "application/json"})
    assert response.status_code == 200
    result = response.get_json()
    assert result["success"] is True
    assert result["id"].startswith("qr_") and len(result["id"]) >= 3 + 20  # >= 96 random bits
    assert (result["format"], result["size"], result["error_correction"], result["quiet_zone"]) == (
        "png",
        512,
        "H",
        4,
    )
    assert result["version"] >= 1
    image = base64.b64decode(result["image_base64"])
    assert decode(image) == [body["data"]]
    assert result["data_uri"] == "data:image/png;base64," + result["image_base64"]
    assert result["image_url"] == f"http://localhost/v1/qr/{result['id']}.png"
    assert decode(client.get(result["image_url"]).data) == [body["data"]]


def test_response_json_in_the_body_also_selects_json(client, auth) -> None:
    response = generate(client, auth, data="x", response="json")
    assert response.get_json()["success"] is True


def test_get_generate_takes_the_query_string_with_colours_without_hash(client, api_key, decode) -> None:
    response = client.get(
        "/v1/qr/generate",
        query_string={
            "data": "https://example.com/?a=1&b=2",
            "size": "300",
            "foreground": "1a1a1a",
            "background": "fff",
            "error_correction": "q",
            "api_key": api_key,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "image/png"
    assert decode(response.data) == ["https://example.com/?a=1&b=2"]


def test_identical_requests_share_one_record(client, auth) -> None:
    first = generate(client, auth, data="same", size=256)
    second = generate(client, auth, data="same", size=256)
    third = generate(client, auth, data="same", size=300)
    assert first.headers["X-QR-Id"] == second.headers["X-QR-Id"] != third.headers["X-QR-Id"]
    items = client.get("/v1/qr", headers=auth).get_json()["items"]
    assert len(items) == 2


def test_stored_image_is_public_cacheable_and_any_format(client, auth, decode) -> None:
    code_id = generate(client, auth, data="stored code", format="png", size=256).headers["X-QR-Id"]
    for fmt in FORMATS:
        response = client.get(f"/v1/qr/{code_id}.{fmt}", query_string={"size": 400})
        assert response.status_code == 200
        assert response.mimetype == CONTENT_TYPES[fmt]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert decode(response.data, fmt) == ["stored code"]
        again = client.get(
            f"/v1/qr/{code_id}.{fmt}",
            query_string={"size": 400},
            headers={"If-None-Match": response.headers["ETag"]},
        )
        assert again.status_code == 304
        assert again.data == b""
    other_size = client.get(f"/v1/qr/{code_id}.png", query_string={"size": 500})
    assert other_size.headers["ETag"] != client.get(f"/v1/qr/{code_id}.png").headers["ETag"]


def test_stored_image_refuses_changing_the_symbol(client, auth) -> None:
    code_id = generate(client, auth, data="fixed").headers["X-QR-Id"]
    response = client.get(f"/v1/qr/{code_id}.png", query_string={"data": "other"})
    assert response.status_code == 400
    assert response.get_json()["field"] == "data"
    assert client.get(f"/v1/qr/{code_id}.gif").status_code == 404


def test_metadata_is_for_the_owner_only(client, auth, make_key) -> None:
    code_id = generate(client, auth, data="mine").headers["X-QR-Id"]
    mine = client.get(f"/v1/qr/{code_id}", headers=auth)
    assert mine.status_code == 200
    assert mine.get_json()["data"] == "mine"
    assert mine.get_json()["created_at"].endswith("Z")
    other = {"Authorization": f"Bearer {make_key('other')}"}
    response = client.get(f"/v1/qr/{code_id}", headers=other)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert client.delete(f"/v1/qr/{code_id}", headers=other).status_code == 404


def test_history_is_newest_first_with_cursor_pages(client, auth, make_key) -> None:
    made = [generate(client, auth, data=f"code {i}").headers["X-QR-Id"] for i in range(7)]
    generate(client, {"Authorization": f"Bearer {make_key('other')}"}, data="not mine")
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/qr", headers=auth, query_string=query).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert client.get("/v1/qr", headers=auth, query_string={"cursor": "garbage!"}).status_code == 400
    assert client.get("/v1/qr", headers=auth, query_string={"limit": 1000}).status_code == 400
    assert (
        client.get("/v1/qr", headers=auth, query_string={"page": 2}).get_json()["error"]
        == "unknown_parameter"
    )


def test_delete_removes_the_code_and_its_public_image(client, auth) -> None:
    code_id = generate(client, auth, data="to delete").headers["X-QR-Id"]
    response = client.delete(f"/v1/qr/{code_id}", headers=auth)
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "id": code_id, "deleted": True}
    assert client.get(f"/v1/qr/{code_id}", headers=auth).status_code == 404
    assert client.get(f"/v1/qr/{code_id}.png").status_code == 404
    assert client.delete(f"/v1/qr/{code_id}", headers=auth).status_code == 404


def test_usage_counts_requests_and_codes(client, auth) -> None:
    for i in range(3):
        generate(client, auth, data=f"usage {i}")
    generate(client, auth, data="x" * 5000, error_correction="H")  # a failed request still counts
    client.get("/v1/qr", headers=auth)
    result = client.get("/v1/account/usage", headers=auth).get_json()
    assert result["plan"] == "pro"
    assert result["usage"] == {"requests_today": 6, "codes_today": 3, "codes_this_month": 3}
    limit = result["rate_limit"]
    assert limit["limit"] == 500 and limit["window_seconds"] == 60
    assert limit["remaining"] == 500 - 6
    assert limit["reset"] > 0


def test_public_base_url_is_used_for_image_urls(app, client, auth) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://qr.example.org/"
    result = generate(client, auth, data="x", response="json").get_json()
    assert result["image_url"] == f"https://qr.example.org/v1/qr/{result['id']}.png"


def test_incoming_request_id_is_echoed_and_otherwise_made(client) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc-12345678"}).headers["X-Request-Id"]
        == "abc-12345678"
    )
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert made != "bad id with spaces" and len(made) == 32


@pytest.mark.parametrize("app_config", [{"ENGINE": "qrcode"}])
def test_reference_engine_serves_the_same_api(client, auth, decode) -> None:
    response = generate(client, auth, data="https://example.com/reference", error_correction="H")
    assert response.status_code == 200
    assert decode(response.data) == ["https://example.com/reference"]
