"""Orders: stored with an EC-M code and a confirmation email; duplicates change nothing."""

from __future__ import annotations

import base64
import re

import pytest

from tests.integrations.shop.conftest import order_body, parse_message, product_body

DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')


def place(client, auth, number="1001", **changes):
    return client.post("/v1/shop/orders", json=order_body(number, **changes), headers=auth)


def test_order_is_stored_with_a_code_for_its_tracking_url(client, auth, decode) -> None:
    client.post("/v1/shop/products", json=product_body("TEE-M", name="T-shirt M"), headers=auth)
    response = place(client, auth)
    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert order["id"].startswith("ord_")
    assert order["order_number"] == "1001"
    assert order["item_count"] == 3
    assert order["items"][1] == {"sku": "TEE-M", "name": "T-shirt M", "quantity": 1, "unit_price": None}
    assert order["email"]["status"] == "disabled"  # no SMTP configured
    tracking = "https://track.example.com/o/1001?k=7f3a"
    assert order["qr_code"]["data"] == tracking
    assert decode(client.get(order["qr_code"]["image_url"]).data) == [tracking]
    stored = client.get(f"/v1/qr/{order['qr_code']['id']}", headers=auth).get_json()
    assert stored["error_correction"] == "M"
    assert (
        client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["qr_code"] == order["qr_code"]
    )


def test_without_tracking_url_the_code_carries_the_order_number(client, auth, decode) -> None:
    order = place(client, auth, "A-77", tracking_url=None).get_json()
    assert decode(client.get(order["qr_code"]["image_url"]).data) == ["A-77"]


def test_duplicate_order_number_is_409_and_changes_nothing(client, auth) -> None:
    first = place(client, auth).get_json()
    usage_before = client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_this_month"]
    again = place(client, auth, customer={"name": "Eve", "email": "eve@example.com"}, tracking_url=None)
    assert again.status_code == 409
    assert (again.get_json()["error"], again.get_json()["field"]) == ("duplicate_order", "order_number")
    listed = client.get("/v1/shop/orders", headers=auth).get_json()["items"]
    assert [o["id"] for o in listed] == [first["id"]]
    assert listed[0]["customer"]["name"] == "Ada Lovelace"
    codes = client.get("/v1/qr", headers=auth).get_json()["items"]
    assert [c["id"] for c in codes] == [first["qr_code"]["id"]]
    usage_after = client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_this_month"]
    assert usage_after == usage_before


def test_order_numbers_are_per_owner_and_orders_private(client, auth, make_key) -> None:
    mine = place(client, auth).get_json()
    other = {"Authorization": f"Bearer {make_key('other')}"}
    assert place(client, other).status_code == 201
    for path in ("", "/confirmation.html", "/confirmation.eml", "/label.pdf"):
        assert client.get(f"/v1/shop/orders/{mine['id']}{path}", headers=other).status_code == 404


@pytest.mark.parametrize(
    ("changes", "status", "error", "field"),
    [
        ({"items": []}, 400, "invalid_parameter", "items"),
        ({"items": [{"sku": "A"}]}, 400, "missing_parameter", "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": "2"}]}, 400, "invalid_parameter", "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": 0}]}, 400, "out_of_range", "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": 1, "gift": True}]}, 400, "unknown_parameter", "items[0].gift"),
        ({"customer": {"name": "Ada"}}, 400, "missing_parameter", "customer.email"),
        (
            {"customer": {"name": "Ada", "email": "not-an-address"}},
            400,
            "invalid_parameter",
            "customer.email",
        ),
        ({"customer": "Ada"}, 400, "invalid_parameter", "customer"),
        ({"shipping_address": {"street": "x"}}, 400, "unknown_parameter", "shipping_address.street"),
        ({"tracking_url": "javascript:alert(1)"}, 400, "invalid_parameter", "tracking_url"),
        ({"currency": 978}, 400, "invalid_parameter", "currency"),
        ({"order_number": "1\r\nBcc: x@example.com"}, 400, "invalid_parameter", "order_number"),
        ({"coupon": "X"}, 400, "unknown_parameter", "coupon"),
        ({"tracking_url": "https://t.example/" + "x" * 3000}, 422, "data_too_long", "data"),
        ({"items": [{"sku": "A" * 65, "quantity": 1}]}, 400, "invalid_parameter", "items[0].sku"),
        ({"items": [{"sku": "A", "quantity": 10**12}]}, 400, "out_of_range", "items[0].quantity"),
        (
            {"items": [{"sku": "A", "quantity": 1, "unit_price": "1e40"}]},
            400,
            "out_of_range",
            "items[0].unit_price",
        ),
        ({"shipping_address": {"city": "x" * 201}}, 400, "invalid_parameter", "shipping_address.city"),
        ({"order_number": "N" * 65}, 400, "invalid_parameter", "order_number"),
    ],
)
def test_bad_order_bodies_store_nothing(client, auth, changes, status, error, field) -> None:
    response = place(client, auth, **changes)
    assert response.status_code == status, response.get_json()
    assert (response.get_json()["error"], response.get_json().get("field")) == (error, field)
    assert client.get("/v1/shop/orders", headers=auth).get_json()["items"] == []
    assert client.get("/v1/qr", headers=auth).get_json()["items"] == []


def test_missing_order_number_is_named(client, auth) -> None:
    body = order_body()
    del body["order_number"]
    response = client.post("/v1/shop/orders", json=body, headers=auth)
    assert (response.status_code, response.get_json()["field"]) == (400, "order_number")


def test_eml_is_alternative_text_and_related_html_with_a_cid_code(client, auth, decode) -> None:
    order = place(client, auth, "1001").get_json()
    zoe = place(client, auth, "1002", customer={"name": "Zoë Ünïcode", "email": "zoe@example.com"}).get_json()
    eml = client.get(f"/v1/shop/orders/{zoe['id']}/confirmation.eml", headers=auth).data
    assert eml.isascii()
    assert parse_message(eml)["To"] == "Zoë Ünïcode <zoe@example.com>"
    assert "Hello Zoë Ünïcode" in next(parse_message(eml).iter_parts()).get_content()
    response = client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "message/rfc822"
    assert response.data.isascii()  # 7-bit: no reliance on 8BITMIME
    assert max(len(line) for line in response.data.split(b"\r\n")) <= 998  # RFC 5322 2.1.1
    message = parse_message(response.data)
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert "1001" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    tracking = "https://track.example.com/o/1001?k=7f3a"
    assert "1001" in text.get_content() and tracking in text.get_content()
    assert related.get_content_type() == "multipart/related"
    html_part, image_part = related.iter_parts()
    html = html_part.get_content()
    assert html_part.get_content_type() == "text/html"
    assert len(html.encode()) < 20 * 1024  # Gmail clips at ~102 KB
    assert "data:" not in html
    content_id = image_part["Content-ID"].strip("<>")
    assert f'src="cid:{content_id}"' in html
    assert 'alt="QR code for order 1001"' in html
    assert image_part.get_content_type() == "image/png"
    assert decode(image_part.get_content()) == [tracking]


@pytest.mark.parametrize("app_config", [{"EMAIL_IMAGES": "data-uri"}])
def test_data_uri_mode_inlines_the_image_in_the_html(client, auth, decode) -> None:
    order = place(client, auth, "1002").get_json()
    message = parse_message(client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=auth).data)
    text, html_part = message.iter_parts()
    assert html_part.get_content_type() == "text/html"
    (encoded, alt) = DATA_URI.search(html_part.get_content()).groups()
    assert alt == "QR code for order 1002"
    assert decode(base64.b64decode(encoded)) == ["https://track.example.com/o/1002?k=7f3a"]


def test_preview_page_shows_the_code_as_a_data_uri(client, auth, api_key, decode) -> None:
    order = place(client, auth, "<b>1003</b>").get_json()
    path = f"/v1/shop/orders/{order['id']}/confirmation.html"
    assert client.get(path).status_code == 401
    response = client.get(path, query_string={"api_key": api_key})  # a browser tab has no headers
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<b>1003</b>" not in html and "&lt;b&gt;1003&lt;/b&gt;" in html  # autoescaped
    encoded, alt = DATA_URI.search(html).groups()
    assert alt == "QR code for order &lt;b&gt;1003&lt;/b&gt;"
    assert len(html.encode()) < 102 * 1024
    assert decode(base64.b64decode(encoded)) == ["https://track.example.com/o/<b>1003</b>?k=7f3a"]


def test_unknown_order_is_404(client, auth) -> None:
    for path in ("", "/confirmation.html", "/confirmation.eml"):
        assert client.get(f"/v1/shop/orders/ord_nope{path}", headers=auth).status_code == 404


def test_preview_and_email_survive_the_deletion_of_the_order_code(client, auth, decode) -> None:
    order = place(client, auth, "6001").get_json()
    assert client.delete(f"/v1/qr/{order['qr_code']['id']}", headers=auth).status_code == 200
    after = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()
    assert after["qr_code"] is None
    html = client.get(f"/v1/shop/orders/{order['id']}/confirmation.html", headers=auth).get_data(as_text=True)
    encoded, _alt = DATA_URI.search(html).groups()
    assert decode(base64.b64decode(encoded)) == ["https://track.example.com/o/6001?k=7f3a"]


def test_packing_label_for_an_order_without_address_ships_to_the_customer(app, client, auth, api_key) -> None:
    from integrations.shop import orders
    from integrations.shop.labels.documents import PackingLabel
    from qrsvc.keys import find_key

    with_address = place(client, auth, "7001").get_json()
    without = place(client, auth, "7002", shipping_address=None, tracking_url=None).get_json()
    with app.test_request_context():
        owner = find_key(api_key)
        shipped = orders.packing_label_for(orders.get_order(owner, with_address["id"]))
        bare = orders.packing_label_for(orders.get_order(owner, without["id"]))
    assert shipped == PackingLabel(
        "7001",
        ("Ada Lovelace", "12 St James's Square", "SW1Y 4JH London", "GB"),
        3,
        "https://track.example.com/o/7001?k=7f3a",
    )
    assert bare == PackingLabel("7002", ("Ada Lovelace",), 3, "7002")
