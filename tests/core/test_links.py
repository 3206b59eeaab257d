"""Links (`qrsvc.links`): absolute URLs on the public origin and `data:` URIs that decode."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from flask import Flask

from qrsvc.links import data_uri, public_url
from qrsvc.qr import Style, encode, render


def test_a_data_uri_carries_the_bytes_and_their_type(decode: Callable[..., list[str]]) -> None:
    png = render(encode("https://example.com/data-uri", "M", None, "zxing"), "png", Style(size=256))
    uri = data_uri(png, "image/png")
    head, _, payload = uri.partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(payload, validate=True) == png
    assert decode(base64.b64decode(payload)) == ["https://example.com/data-uri"]


def test_public_urls_use_the_configured_origin_or_the_request_host() -> None:
    app = Flask("links-test")
    with app.test_request_context("/", base_url="http://internal:8000"):
        assert public_url("/v1/qr/x.png") == "http://internal:8000/v1/qr/x.png"
    app.config["PUBLIC_BASE_URL"] = "https://qr.example.com/"
    with app.test_request_context("/", base_url="http://internal:8000"):
        assert public_url("/v1/qr/x.png") == "https://qr.example.com/v1/qr/x.png"


def test_image_urls_in_json_are_on_the_public_origin(client: Any, auth: dict[str, str], app: Any) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://qr.example.com"
    body = client.post("/v1/qr/generate", json={"data": "x", "response": "json"}, headers=auth).get_json()
    assert body["image_url"] == f"https://qr.example.com/v1/qr/{body['id']}.png"
    assert body["data_uri"] == f"data:image/png;base64,{body['image_base64']}"
