"""The label endpoints: SKUs → products → `integrations.shop.labels` → PDF (every code decoded).

Rendering itself is tested in test_labels.py (the labels module's own tests); these
tests hold for any renderer that honours the module's interface.
"""

from __future__ import annotations

from collections import Counter

import pypdfium2
import pytest

from tests.conftest import decode_image
from tests.integrations.shop.conftest import order_body, product_body


def decoded_pages(content: bytes) -> Counter[str]:
    """Every QR text on every page of a PDF rasterised at 300 dpi, with how often it appears."""
    assert content.startswith(b"%PDF")
    found: Counter[str] = Counter()
    document = pypdfium2.PdfDocument(content)
    try:
        for index in range(len(document)):
            page = document[index]
            found.update(decode_image(page.render(scale=300 / 72).to_pil().convert("L")))
            page.close()
    finally:
        document.close()
    return found


@pytest.fixture
def products(client, auth) -> dict[str, str]:
    urls = {}
    for sku in ("MUG-1", "TEE-M"):
        body = product_body(sku)
        assert client.post("/v1/shop/products", json=body, headers=auth).status_code == 201
        urls[sku] = body["url"]
    return urls


def test_post_labels_with_copies(client, auth, products) -> None:
    body = {"skus": ["MUG-1", {"sku": "TEE-M", "copies": 2}], "layout": "avery-5163", "start_at": 2}
    response = client.post("/v1/shop/labels", json=body, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/pdf"
    assert decoded_pages(response.data) == Counter({products["MUG-1"]: 1, products["TEE-M"]: 2})


def test_get_labels_pdf_with_repeated_skus(client, api_key, products) -> None:
    response = client.get(
        "/v1/shop/labels.pdf",
        query_string=[
            ("sku", "MUG-1"),
            ("sku", "TEE-M"),
            ("layout", "avery-l7160"),
            ("offset_x_mm", "0.5"),
            ("api_key", api_key),
        ],
    )
    assert response.status_code == 200, response.get_json()
    assert decoded_pages(response.data) == Counter(products.values())


def test_unknown_sku_is_404_naming_it(client, auth, products) -> None:
    response = client.post("/v1/shop/labels", json={"skus": ["MUG-1", "NOPE-9"]}, headers=auth)
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_sku"
    assert "NOPE-9" in response.get_json()["message"]
    assert client.get("/v1/shop/labels.pdf?sku=NOPE-9", headers=auth).status_code == 404


def test_too_many_labels_is_413(client, auth, products) -> None:
    from integrations.shop.labels.limits import MAX_LABELS

    body = {"skus": [{"sku": "MUG-1", "copies": MAX_LABELS}, "TEE-M"]}
    response = client.post("/v1/shop/labels", json=body, headers=auth)
    assert (response.status_code, response.get_json()["error"]) == (413, "too_many_labels")


@pytest.fixture
def no_rendering(monkeypatch) -> list[str]:
    """Records (and stops) any drawing of a code or writing of a PDF; the test asserts on the list."""
    from integrations.shop.labels import documents

    started: list[str] = []

    def refuse(*args, **kwargs):
        started.append("rendering")
        raise RuntimeError("rendering started")

    monkeypatch.setattr(documents, "draw_code", refuse)
    monkeypatch.setattr(documents, "html_to_pdf", refuse)
    return started


def test_the_issues_3000_thermal_copies_are_413_before_anything_is_looked_up(
    client, auth, products, no_rendering
) -> None:
    """The cost is known from the request alone: even an unknown SKU is not looked up (413, not 404)."""
    body = {"skus": [{"sku": "NOPE-9", "copies": 3000}], "layout": "thermal-4x6"}
    response = client.post("/v1/shop/labels", json=body, headers=auth)
    assert no_rendering == []
    assert response.status_code == 413, response.get_json()
    assert response.is_json and response.get_json()["success"] is False
    assert response.get_json()["error"] == "too_many_labels"
    assert "QRSVC_LABEL_MAX_LABELS" in response.get_json()["message"]
    query = {"sku": "NOPE-9", "copies": "3000", "layout": "thermal-4x6"}
    got = client.get("/v1/shop/labels.pdf", query_string=query, headers=auth)
    assert (got.status_code, got.get_json()["error"]) == (413, "too_many_labels")


@pytest.mark.parametrize(
    "app_config", [{"LABEL_MAX_LABELS": 50, "LABEL_MAX_PAGES": 2, "LABEL_MAX_MEGAPIXELS": 30.0}]
)
@pytest.mark.parametrize(
    ("request_kwargs", "code", "setting"),
    [
        ({"json": {"skus": [{"sku": "MUG-1", "copies": 51}]}}, "too_many_labels", "QRSVC_LABEL_MAX_LABELS"),
        (
            {"json": {"skus": [{"sku": "MUG-1", "copies": 3}], "layout": "thermal-4x6"}},
            "too_many_pages",
            "QRSVC_LABEL_MAX_PAGES",
        ),
        (
            {"json": {"skus": [{"sku": "MUG-1", "copies": 31}, "TEE-M"], "start_at": 30}},
            "too_many_pages",
            "QRSVC_LABEL_MAX_PAGES",
        ),
        (
            {"json": {"skus": ["MUG-1", "TEE-M"], "layout": "thermal-4x6", "dpi": 1200}},
            "too_many_pixels",
            "QRSVC_LABEL_MAX_MEGAPIXELS",
        ),
        (
            {
                "query_string": [
                    ("sku", "MUG-1"),
                    ("sku", "TEE-M"),
                    ("layout", "thermal-4x6"),
                    ("dpi", "1200"),
                ]
            },
            "too_many_pixels",
            "QRSVC_LABEL_MAX_MEGAPIXELS",
        ),
        (
            {"query_string": [("sku", "MUG-1"), ("copies", "2"), ("layout", "thermal-4x6")]},
            None,
            None,
        ),
    ],
)
def test_label_limits_are_the_configured_settings(
    client, auth, products, no_rendering, request_kwargs, code, setting
) -> None:
    if "json" in request_kwargs:
        response = client.post("/v1/shop/labels", headers=auth, **request_kwargs)
    else:
        response = client.get("/v1/shop/labels.pdf", headers=auth, **request_kwargs)
    if code is None:  # inside every limit: it gets as far as rendering
        assert no_rendering == ["rendering"]
        return
    assert no_rendering == []
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["error"] == code
    assert setting in response.get_json()["message"]


@pytest.mark.parametrize("app_config", [{"LABEL_MAX_MEGAPIXELS": 10.0}])
def test_packing_label_over_the_pixel_limit_is_413(client, auth) -> None:
    order = client.post("/v1/shop/orders", json=order_body("5004"), headers=auth).get_json()
    response = client.get(f"/v1/shop/orders/{order['id']}/label.pdf?dpi=1200", headers=auth)
    assert (response.status_code, response.get_json()["error"]) == (413, "too_many_pixels")
    assert "QRSVC_LABEL_MAX_MEGAPIXELS" in response.get_json()["message"]
    fine = client.get(f"/v1/shop/orders/{order['id']}/label.pdf?dpi=600", headers=auth)
    assert fine.status_code == 200, fine.get_json()
    assert decoded_pages(fine.data) == Counter({"https://track.example.com/o/5004?k=7f3a": 1})


def test_label_limit_settings_are_read_from_the_environment(database_url, tmp_path) -> None:
    from tests.conftest import make_app

    environ = {
        "QRSVC_LABEL_MAX_LABELS": "7",
        "QRSVC_LABEL_MAX_PAGES": "3",
        "QRSVC_LABEL_MAX_MEGAPIXELS": "2.5",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        app = make_app(database_url, tmp_path / "instance")
    app.extensions["qrsvc_rendering"].close()
    assert (app.config["LABEL_MAX_LABELS"], app.config["LABEL_MAX_PAGES"]) == (7, 3)
    assert app.config["LABEL_MAX_MEGAPIXELS"] == 2.5


def test_label_limit_settings_default_to_the_renderers_defaults() -> None:
    from integrations.shop import SETTINGS
    from integrations.shop.labels.limits import DEFAULT_LIMITS

    defaults = {setting.key: setting.default for setting in SETTINGS}
    assert (defaults["LABEL_MAX_LABELS"], defaults["LABEL_MAX_PAGES"], defaults["LABEL_MAX_MEGAPIXELS"]) == (
        DEFAULT_LIMITS.labels,
        DEFAULT_LIMITS.pages,
        DEFAULT_LIMITS.megapixels,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"skus": ["MUG-1"], "layout": "avery-9999"}, "layout"),
        ({"skus": []}, "skus"),
        ({"skus": "MUG-1"}, "skus"),
        ({"skus": [{"sku": "MUG-1", "copies": 0}]}, "skus[0].copies"),
        ({"skus": [{"copies": 2}]}, "skus[0].sku"),
        ({"skus": ["MUG-1"], "offset_x_mm": "left"}, "offset_x_mm"),
        ({"skus": ["MUG-1"], "offset_y_mm": 80}, "offset_y_mm"),
        ({"skus": ["MUG-1"], "offset_y_mm": True}, "offset_y_mm"),
        ({"skus": ["MUG-1"], "start_at": 0}, "start_at"),
        ({"skus": ["MUG-1"], "dpi": 12}, "dpi"),
        ({"skus": ["MUG-1"], "paper": "A4"}, "paper"),
    ],
)
def test_bad_label_requests_are_400(client, auth, products, body, field) -> None:
    response = client.post("/v1/shop/labels", json=body, headers=auth)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field


def test_get_refuses_a_nan_offset(client, auth, products) -> None:
    response = client.get("/v1/shop/labels.pdf?sku=MUG-1&offset_x_mm=nan", headers=auth)
    assert (response.status_code, response.get_json()["field"]) == (400, "offset_x_mm")


def test_get_without_sku_is_400(client, auth) -> None:
    response = client.get("/v1/shop/labels.pdf?layout=avery-5160", headers=auth)
    assert (response.status_code, response.get_json()["field"]) == (400, "sku")


def test_packing_label_carries_the_order_code(client, auth) -> None:
    order = client.post("/v1/shop/orders", json=order_body("5001"), headers=auth).get_json()
    response = client.get(f"/v1/shop/orders/{order['id']}/label.pdf", headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/pdf"
    assert decoded_pages(response.data) == Counter({"https://track.example.com/o/5001?k=7f3a": 1})
    assert client.get("/v1/shop/orders/ord_nope/label.pdf", headers=auth).status_code == 404
    assert client.get(f"/v1/shop/orders/{order['id']}/label.pdf?dpi=x", headers=auth).status_code == 400


@pytest.mark.parametrize(
    ("number", "filename"),
    [
        ("5002", "packing-5002.pdf"),
        ("#9999", "packing-9999.pdf"),
        ('12"; filename="evil.exe', "packing-12filenameevil.exe.pdf"),
        ("Bestellung №7\\..", "packing-Bestellung7.pdf"),
        ('"""', None),  # nothing usable left: the order id
    ],
)
def test_packing_label_filename_keeps_only_safe_characters(client, auth, number, filename) -> None:
    order = client.post("/v1/shop/orders", json=order_body(number), headers=auth).get_json()
    response = client.get(f"/v1/shop/orders/{order['id']}/label.pdf", headers=auth)
    assert response.status_code == 200, response.get_json()
    expected = filename or f"packing-{order['id']}.pdf"
    assert response.headers["Content-Disposition"] == f'inline; filename="{expected}"'


@pytest.mark.parametrize("app_config", [{"ENGINE": "qrcode"}])
def test_labels_are_drawn_with_the_configured_engine(client, auth, products, monkeypatch) -> None:
    from qrsvc.qr import symbols

    used = []
    reference = symbols.ENGINES["qrcode"]

    def spy(data, error_correction, min_version):
        used.append(data)
        return reference(data, error_correction, min_version)

    monkeypatch.setitem(symbols.ENGINES, "qrcode", spy)
    monkeypatch.setitem(symbols.ENGINES, "zxing", None)  # not to be called
    shelf = client.get("/v1/shop/labels.pdf?sku=MUG-1", headers=auth)
    assert shelf.status_code == 200, shelf.get_json()
    assert decoded_pages(shelf.data) == Counter({products["MUG-1"]: 1})
    order = client.post("/v1/shop/orders", json=order_body("5003"), headers=auth).get_json()
    packing = client.get(f"/v1/shop/orders/{order['id']}/label.pdf", headers=auth)
    assert packing.status_code == 200, packing.get_json()
    assert used[0] == products["MUG-1"] and "https://track.example.com/o/5003?k=7f3a" in used
