"""Shopify and WooCommerce webhooks, signed as those platforms sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.integrations.shop.conftest import payload

SHOPIFY_SECRET = "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"
WOO_SECRET = "wc-webhook-secret-9f8e7d"
STORE = "https://shirts.example.com"


def platform_signature(secret: str, body: bytes) -> str:
    """Written out here as the platforms document it, independently of the service's `sign`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def owner(app, make_key) -> dict[str, str]:
    from qrsvc.keys import split_key

    plain = make_key("shop-owner")
    app.config["SHOP_OWNER_KEY"] = split_key(plain)
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
def app_config():
    return {
        "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
        "SHOPIFY_STORE_URL": STORE,
    }


def shopify(
    client,
    topic,
    body: bytes,
    delivery="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    secret=SHOPIFY_SECRET,
    **headers,
):
    sent = {
        "X-Shopify-Topic": f"{topic}/create",
        "X-Shopify-Hmac-Sha256": platform_signature(secret, body),
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
        "X-Shopify-Webhook-Id": delivery,
        "X-Shopify-API-Version": "2025-10",
        **headers,
    }
    sent = {k: v for k, v in sent.items() if v is not None}
    return client.post(
        f"/v1/shop/webhooks/shopify/{topic}", data=body, headers=sent, content_type="application/json"
    )


def woocommerce(client, topic, body: bytes, delivery="3f5e0b57d8a1c5f4", secret=WOO_SECRET, **headers):
    sent = {
        "X-WC-Webhook-Source": "https://example.com/",
        "X-WC-Webhook-Topic": f"{topic[:-1]}.created",
        "X-WC-Webhook-Resource": topic[:-1],
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": platform_signature(secret, body),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery,
        **headers,
    }
    sent = {k: v for k, v in sent.items() if v is not None}
    return client.post(
        f"/v1/shop/webhooks/woocommerce/{topic}", data=body, headers=sent, content_type="application/json"
    )


#: Where each platform says when a record last changed, and a time after the fixtures' own.
TIMESTAMP = {"shopify": "updated_at", "woocommerce": "date_modified_gmt"}
LATER = {"shopify": "2026-11-25T09:30:00-05:00", "woocommerce": "2026-11-25T14:30:00"}


def encoded(fixture: str, /, **changes) -> bytes:
    return json.dumps({**payload(fixture), **changes}).encode()


def orders_of(client, owner) -> list[dict]:
    return client.get("/v1/shop/orders", headers=owner).get_json()["items"]


def test_shopify_order_is_stored_with_code_and_email(client, owner, decode) -> None:
    response = shopify(client, "orders", encoded("shopify_order"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "created"
    (order,) = orders_of(client, owner)
    assert response.get_json()["records"] == [order["id"]]
    assert order["order_number"] == "#9999"
    assert order["source"] == "shopify"
    assert order["customer"] == {"name": "John Smith", "email": "jon@example.com"}
    assert [(i["sku"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        ("IPOD2008PINK", 1, "199.00"),
        ("IPOD2008BLACK", 2, "99.50"),
    ]
    assert order["shipping_address"]["city"] == "Shippington"
    assert order["currency"] == "USD"
    tracking = payload("shopify_order")["order_status_url"]
    assert decode(client.get(order["qr_code"]["image_url"]).data) == [tracking]
    assert order["email"]["status"] == "disabled"
    eml = client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=owner)
    assert eml.status_code == 200 and b"#9999" in eml.data


def test_woocommerce_order_is_stored_with_code_and_email(client, owner, decode) -> None:
    response = woocommerce(client, "orders", encoded("woocommerce_order"))
    assert response.status_code == 200, response.get_json()
    (order,) = orders_of(client, owner)
    assert order["order_number"] == "727"
    assert order["customer"] == {"name": "John Doe", "email": "john.doe@example.com"}
    assert [(i["sku"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        ("93", 2, "3.00"),  # no SKU in the shop: the product id
        ("Bar3", 1, "12.00"),
    ]
    assert order["shipping_address"] == {
        "name": "John Doe",
        "address1": "969 Market",
        "city": "San Francisco",
        "region": "CA",
        "postal_code": "94103",
        "country": "US",
    }
    assert decode(client.get(order["qr_code"]["image_url"]).data) == ["727"]
    assert order["email"]["status"] == "disabled"


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_replayed_delivery_makes_no_second_record(client, owner, platform) -> None:
    send = shopify if platform == "shopify" else woocommerce
    body = encoded(f"{platform}_order")
    assert send(client, "orders", body).get_json()["status"] == "created"
    replay = send(client, "orders", body)
    assert replay.status_code == 200
    assert replay.get_json()["status"] == "duplicate_delivery"
    assert len(orders_of(client, owner)) == 1
    assert len(client.get("/v1/qr", headers=owner).get_json()["items"]) == 1
    # A new delivery of the same order (orders/updated: a changed body) is acknowledged, not duplicated.
    changed = encoded(f"{platform}_order", **{TIMESTAMP[platform]: LATER[platform]})
    other = send(client, "orders", changed, delivery="another-delivery-id")
    assert (other.status_code, other.get_json()["status"]) == (200, "exists")
    assert len(orders_of(client, owner)) == 1


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_delivery_of_an_order_that_exists_is_recorded_and_its_replay_is_a_duplicate(
    app, client, owner, platform
) -> None:
    send = SEND[platform]
    assert send(client, "orders", encoded(f"{platform}_order"), delivery="first").status_code == 200
    changed = encoded(f"{platform}_order", **{TIMESTAMP[platform]: LATER[platform]})
    again = send(client, "orders", changed, delivery="second")
    assert (again.status_code, again.get_json()["status"]) == (200, "exists"), again.get_json()
    assert receipt_outcomes(app) == [("first", "created"), ("second", "exists")]
    replay = send(client, "orders", changed, delivery="second")
    assert (replay.status_code, replay.get_json()["status"]) == (200, "duplicate_delivery")
    assert len(orders_of(client, owner)) == 1
    assert len(client.get("/v1/qr", headers=owner).get_json()["items"]) == 1


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
@pytest.mark.parametrize("attack", ["tampered", "wrong_secret", "missing", "garbage"])
def test_bad_signatures_are_401_and_store_nothing(client, owner, platform, attack) -> None:
    send = shopify if platform == "shopify" else woocommerce
    header = "X-Shopify-Hmac-Sha256" if platform == "shopify" else "X-WC-Webhook-Signature"
    body = encoded(f"{platform}_order")
    if attack == "tampered":
        signed = platform_signature(SHOPIFY_SECRET if platform == "shopify" else WOO_SECRET, body)
        response = send(client, "orders", body.replace(b"example.com", b"evil.example"), **{header: signed})
    elif attack == "wrong_secret":
        response = send(client, "orders", body, secret="not-the-secret")
    elif attack == "missing":
        response = send(client, "orders", body, **{header: None})
    else:
        response = send(client, "orders", body, **{header: "bm90IGEgc2lnbmF0dXJl"})
    assert response.status_code == 401
    assert response.get_json()["error"] in ("invalid_signature", "missing_signature")
    assert orders_of(client, owner) == []
    assert client.get("/v1/qr", headers=owner).get_json()["items"] == []
    # The delivery was not recorded either: the genuine one still goes through.
    assert send(client, "orders", body).get_json()["status"] == "created"


@pytest.mark.parametrize("app_config", [{}])
def test_without_a_configured_secret_every_delivery_is_refused(client, owner) -> None:
    response = shopify(client, "orders", encoded("shopify_order"), secret="")
    assert (response.status_code, response.get_json()["error"]) == (401, "webhook_not_configured")


def test_without_an_owner_key_deliveries_are_503(client, app) -> None:
    app.config["SHOP_OWNER_KEY"] = None
    response = shopify(client, "orders", encoded("shopify_order"))
    assert (response.status_code, response.get_json()["error"]) == (503, "shop_owner_not_configured")


@pytest.mark.parametrize(
    ("platform", "changes", "field"),
    [
        ("shopify", {"email": None, "contact_email": None, "customer": None}, "email"),
        ("shopify", {"name": None, "order_number": None, "id": None}, "name"),
        ("shopify", {"line_items": []}, "line_items"),
        ("shopify", {"line_items": [{"sku": "A", "quantity": "one"}]}, "line_items[0].quantity"),
        ("shopify", {"line_items": [{"title": "No ids", "quantity": 1}]}, "line_items[0].sku"),
        ("woocommerce", {"billing": {"first_name": "John"}}, "billing.email"),
        ("woocommerce", {"number": None, "id": None}, "number"),
        ("woocommerce", {"line_items": None}, "line_items"),
    ],
)
def test_unusable_payloads_are_422_naming_the_field(client, owner, platform, changes, field) -> None:
    send = shopify if platform == "shopify" else woocommerce
    body = encoded(f"{platform}_order", **changes)
    response = send(client, "orders", body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == field
    assert orders_of(client, owner) == []
    # Not recorded as processed: the fixed payload is accepted under the same delivery id.
    assert send(client, "orders", encoded(f"{platform}_order")).get_json()["status"] == "created"


def test_malformed_requests(client, owner) -> None:
    assert shopify(client, "orders", b"{not json").status_code == 400
    assert shopify(client, "orders", b"[1, 2]").status_code == 400
    missing_id = shopify(client, "orders", encoded("shopify_order"), **{"X-Shopify-Webhook-Id": None})
    assert (missing_id.status_code, missing_id.get_json()["field"]) == (400, "X-Shopify-Webhook-Id")
    assert shopify(client, "customers", encoded("shopify_order")).status_code == 404
    assert client.post("/v1/shop/webhooks/magento/orders", data=b"{}").status_code == 404
    assert orders_of(client, owner) == []


def test_woocommerce_ping_is_acknowledged_and_stores_nothing(client, owner) -> None:
    response = client.post(
        "/v1/shop/webhooks/woocommerce/orders",
        data=b"webhook_id=12",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert orders_of(client, owner) == []


def test_shopify_product_variants_become_products_with_codes(client, owner, decode) -> None:
    response = shopify(client, "products", encoded("shopify_product"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["records"] == ["example-shirt-s", "example-shirt-m"]
    small = client.get("/v1/shop/products/example-shirt-s", headers=owner).get_json()
    assert small["name"] == "Example T-Shirt – Small"
    assert small["price"] == "19.99"
    url = f"{STORE}/products/example-t-shirt?variant=642667041472713922"
    assert small["url"] == url
    assert decode(client.get(small["qr_code"]["image_url"]).data) == [url]


def test_woocommerce_product_is_created_then_updated(client, owner, decode) -> None:
    created = woocommerce(client, "products", encoded("woocommerce_product"))
    assert created.status_code == 200, created.get_json()
    first = client.get("/v1/shop/products/PQ-19", headers=owner).get_json()
    assert (first["name"], first["price"], first["url"]) == (
        "Premium Quality",
        "21.99",
        "https://example.com/product/premium-quality-19/",
    )
    moved = encoded(
        "woocommerce_product",
        permalink="https://example.com/product/pq/",
        price="19.00",
        date_modified_gmt=LATER["woocommerce"],
    )
    assert woocommerce(client, "products", moved, delivery="second-delivery").status_code == 200
    second = client.get("/v1/shop/products/PQ-19", headers=owner).get_json()
    assert second["price"] == "19.00"
    assert second["qr_code"]["id"] != first["qr_code"]["id"]
    assert decode(client.get(second["qr_code"]["image_url"]).data) == ["https://example.com/product/pq/"]
    assert len(client.get("/v1/shop/products", headers=owner).get_json()["items"]) == 1
    missing = woocommerce(client, "products", encoded("woocommerce_product", sku=""), delivery="third")
    assert (missing.status_code, missing.get_json()["field"]) == (422, "sku")


def receipts(app) -> int:
    from integrations.shop.models import WebhookDelivery
    from qrsvc.extensions import db

    with app.app_context():
        return len(db.session.scalars(db.select(WebhookDelivery)).all())


def test_a_product_with_a_bad_variant_stores_nothing_and_its_fixed_retry_is_not_a_replay(
    app, client, owner
) -> None:
    product = payload("shopify_product")
    good = json.dumps(product).encode()
    product["variants"][1]["price"] = "nineteen"
    bad = shopify(client, "products", json.dumps(product).encode(), delivery="product-delivery-1")
    assert (bad.status_code, bad.get_json()["field"]) == (422, "variants[].price")
    assert client.get("/v1/shop/products", headers=owner).get_json()["items"] == []
    assert client.get("/v1/qr", headers=owner).get_json()["items"] == []
    assert receipts(app) == 0

    retry = shopify(client, "products", good, delivery="product-delivery-1")
    assert (retry.status_code, retry.get_json()["status"]) == (200, "saved"), retry.get_json()
    listed = client.get("/v1/shop/products", headers=owner).get_json()["items"]
    assert [p["sku"] for p in listed] == ["example-shirt-m", "example-shirt-s"]
    assert receipts(app) == 1


def test_a_sku_made_concurrently_during_a_delivery_is_updated_and_the_receipt_kept(
    app, client, owner, monkeypatch
) -> None:
    from integrations.shop import catalog

    assert woocommerce(client, "products", encoded("woocommerce_product")).status_code == 200
    find = catalog.find_product
    looked = []

    def find_after_a_race(key, sku):  # the first look misses the row, as if it was committed just after
        looked.append(sku)
        return None if len(looked) == 1 else find(key, sku)

    monkeypatch.setattr(catalog, "find_product", find_after_a_race)
    moved = encoded("woocommerce_product", price="18.00", date_modified_gmt=LATER["woocommerce"])
    response = woocommerce(client, "products", moved, delivery="racing-delivery")
    assert (response.status_code, response.get_json()["records"]) == (200, ["PQ-19"]), response.get_json()
    monkeypatch.undo()
    assert client.get("/v1/shop/products/PQ-19", headers=owner).get_json()["price"] == "18.00"
    replay = woocommerce(client, "products", moved, delivery="racing-delivery")
    assert replay.get_json()["status"] == "duplicate_delivery"
    assert receipts(app) == 2


def test_product_urls_ignore_the_unsigned_shop_domain_header(client, owner) -> None:
    body = encoded("shopify_product")
    response = shopify(client, "products", body, **{"X-Shopify-Shop-Domain": "evil.example"})
    assert response.status_code == 200, response.get_json()
    for product in client.get("/v1/shop/products", headers=owner).get_json()["items"]:
        assert product["url"].startswith(f"{STORE}/products/example-t-shirt?variant=")
        assert product["qr_code"]["data"] == product["url"]


def test_without_a_store_url_product_deliveries_are_503_and_store_nothing(app, client, owner) -> None:
    app.config["SHOPIFY_STORE_URL"] = None
    response = shopify(client, "products", encoded("shopify_product"), delivery="no-store")
    assert (response.status_code, response.get_json()["error"]) == (503, "store_url_not_configured")
    assert "QRSVC_SHOPIFY_STORE_URL" in response.get_json()["message"]
    assert client.get("/v1/shop/products", headers=owner).get_json()["items"] == []
    assert receipts(app) == 0
    app.config["SHOPIFY_STORE_URL"] = STORE
    retry = shopify(client, "products", encoded("shopify_product"), delivery="no-store")
    assert retry.get_json()["status"] == "saved"


def test_a_product_delivery_over_quota_stores_nothing(app, client, make_key) -> None:
    from qrsvc import usage
    from qrsvc.extensions import db
    from qrsvc.keys import find_key, split_key

    plain = make_key("tiny-shop", plan="tiny")  # 5 codes a month
    app.config["SHOP_OWNER_KEY"] = split_key(plain)
    with app.test_request_context():
        assert usage.reserve_codes(find_key(plain).id, 4, quota=5)
        db.session.commit()
    response = shopify(client, "products", encoded("shopify_product"), delivery="over-quota")
    assert (response.status_code, response.get_json()["error"]) == (429, "quota_exceeded")
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.get("/v1/shop/products", headers=headers).get_json()["items"] == []
    assert receipts(app) == 0


# -- replay protection: a captured, signed delivery cannot roll a product back ------------------------


def product_delivery(platform: str, price: str, modified: str) -> bytes:
    """A product body as the platform signs it, with this price and last-modified time."""
    product = payload(f"{platform}_product")
    if platform == "shopify":
        for variant in product["variants"]:
            variant["price"] = price
    else:
        product["price"] = price
    product[TIMESTAMP[platform]] = modified
    return json.dumps(product).encode()


def price_of(client, owner, platform: str) -> str:
    sku = "example-shirt-s" if platform == "shopify" else "PQ-19"
    return client.get(f"/v1/shop/products/{sku}", headers=owner).get_json()["price"]


def receipt_outcomes(app) -> list[tuple[str, str]]:
    from integrations.shop.models import WebhookDelivery
    from qrsvc.extensions import db

    with app.app_context():
        rows = db.session.execute(
            db.select(WebhookDelivery.delivery_id, WebhookDelivery.outcome).order_by(WebhookDelivery.id)
        )
        return [(delivery, outcome) for delivery, outcome in rows]


SEND = {"shopify": shopify, "woocommerce": woocommerce}
OLD = {"shopify": "2026-11-24T19:00:00-05:00", "woocommerce": "2026-11-24T20:37:14"}


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_an_old_signed_body_replayed_under_a_new_delivery_id_does_not_roll_back_the_price(
    app, client, owner, platform
) -> None:
    send = SEND[platform]
    old = product_delivery(platform, "19.99", OLD[platform])
    assert send(client, "products", old, delivery="d-1").get_json()["status"] == "saved"
    newer = send(client, "products", product_delivery(platform, "24.50", LATER[platform]), delivery="d-2")
    assert (newer.status_code, newer.get_json()["status"]) == (200, "saved"), newer.get_json()
    assert price_of(client, owner, platform) == "24.50"  # a newer delivery is applied

    replay = send(client, "products", old, delivery="d-3-captured-and-replayed")
    assert replay.status_code == 200, replay.get_json()  # 2xx: the platform must not retry it
    assert (replay.get_json()["status"], replay.get_json()["records"]) == ("duplicate_delivery", [])
    assert price_of(client, owner, platform) == "24.50"
    # An old body this server never stored a receipt for (captured elsewhere, or a retry that
    # arrives after the newer change) is older than the stored time: ignored, with a receipt.
    late = product_delivery(platform, "21.00", OLD[platform])
    stale = send(client, "products", late, delivery="d-4")
    assert stale.status_code == 200, stale.get_json()
    assert (stale.get_json()["status"], stale.get_json()["records"]) == ("ignored_stale", [])
    assert price_of(client, owner, platform) == "24.50"
    assert receipt_outcomes(app) == [("d-1", "saved"), ("d-2", "saved"), ("d-4", "ignored_stale")]
    # Ignored is final too: the same stale body again is a duplicate, not a second receipt.
    assert send(client, "products", late, delivery="d-5").get_json()["status"] == "duplicate_delivery"


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
@pytest.mark.parametrize("topic", ["products", "orders"])
def test_the_same_body_under_a_new_delivery_id_is_a_duplicate(app, client, owner, platform, topic) -> None:
    send = SEND[platform]
    body = (
        encoded(f"{platform}_order")
        if topic == "orders"
        else product_delivery(platform, "9.00", OLD[platform])
    )
    first = send(client, topic, body, delivery="first-id")
    assert first.status_code == 200 and first.get_json()["status"] in ("created", "saved"), first.get_json()
    again = send(client, topic, body, delivery="second-id")
    assert (again.status_code, again.get_json()["status"]) == (200, "duplicate_delivery")
    assert [delivery for delivery, _outcome in receipt_outcomes(app)] == ["first-id"]
    assert len(client.get("/v1/qr", headers=owner).get_json()["items"]) == (
        2 if (platform, topic) == ("shopify", "products") else 1  # one code per Shopify variant
    )


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_different_body_with_the_same_modified_time_is_ignored(app, client, owner, platform) -> None:
    """Equal times cannot be ordered: the first delivery for that time stands (a replay cannot win)."""
    send = SEND[platform]
    assert send(
        client, "products", product_delivery(platform, "19.99", LATER[platform]), delivery="a"
    ).status_code
    same_time = send(client, "products", product_delivery(platform, "1.00", LATER[platform]), delivery="b")
    assert (same_time.status_code, same_time.get_json()["status"]) == (200, "ignored_stale")
    assert price_of(client, owner, platform) == "19.99"
    assert receipt_outcomes(app) == [("a", "saved"), ("b", "ignored_stale")]


def test_a_delivery_applies_over_a_product_made_through_the_api(app, client, owner) -> None:
    """A product with no platform time yet (made by POST /v1/shop/products) takes the delivery."""
    body = {"sku": "PQ-19", "name": "Typed by hand", "url": "https://example.com/hand", "price": "5.00"}
    assert client.post("/v1/shop/products", json=body, headers=owner).status_code == 201
    response = woocommerce(client, "products", product_delivery("woocommerce", "21.99", OLD["woocommerce"]))
    assert response.get_json()["status"] == "saved", response.get_json()
    assert price_of(client, owner, "woocommerce") == "21.99"


@pytest.mark.parametrize(
    ("platform", "changes", "field"),
    [
        ("shopify", {"updated_at": None}, "updated_at"),
        ("shopify", {"updated_at": "yesterday"}, "updated_at"),
        ("woocommerce", {"date_modified_gmt": None, "date_modified": None}, "date_modified_gmt"),
    ],
)
def test_a_product_delivery_without_a_usable_modified_time_is_422(
    app, client, owner, platform, changes, field
) -> None:
    response = SEND[platform](client, "products", encoded(f"{platform}_product", **changes))
    assert (response.status_code, response.get_json()["field"]) == (422, field), response.get_json()
    assert client.get("/v1/shop/products", headers=owner).get_json()["items"] == []
    assert receipt_outcomes(app) == []
