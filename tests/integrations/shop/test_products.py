"""Products: a stored EC-H code made with every product, through the API and the service layer."""

from __future__ import annotations

import pytest

from tests.integrations.shop.conftest import product_body


def create(client, auth, **changes):
    return client.post("/v1/shop/products", json=product_body(**changes), headers=auth)


def codes_of(client, auth) -> list[dict]:
    return client.get("/v1/qr?limit=100", headers=auth).get_json()["items"]


def test_created_product_carries_a_stored_h_level_code_that_scans(client, auth, decode) -> None:
    response = create(client, auth, sku="MUG-1", price=9.5)
    assert response.status_code == 201, response.get_json()
    product = response.get_json()
    assert product["success"] is True
    assert (product["sku"], product["price"], product["currency"]) == ("MUG-1", "9.50", "EUR")
    code = product["qr_code"]
    assert code["id"].startswith("qr_")
    assert code["image_url"] == f"http://localhost/v1/qr/{code['id']}.png"
    assert decode(client.get(code["image_url"]).data) == ["https://shop.example.com/p/mug-1"]
    stored = client.get(f"/v1/qr/{code['id']}", headers=auth).get_json()
    assert stored["error_correction"] == "H"
    assert (code["image_url"], code["data"]) == (stored["image_url"], stored["data"])  # the core's own
    assert [c["id"] for c in codes_of(client, auth)] == [code["id"]]
    assert client.get("/v1/shop/products/MUG-1", headers=auth).get_json()["qr_code"] == code


def test_service_layer_makes_the_code_for_python_callers(app, client, auth, api_key, decode) -> None:
    from integrations.shop import catalog
    from qrsvc.keys import find_key
    from qrsvc.toolkit import unit_of_work

    with app.test_request_context(), unit_of_work():  # the caller owns the transaction
        owner = find_key(api_key)
        product = catalog.create_product(
            owner, catalog.ProductFields("TEE-M", "T-shirt M", "https://shop.example.com/p/tee-m", "19.00")
        )
        code_id = product.qr_code
    assert code_id is not None
    assert decode(client.get(f"/v1/qr/{code_id}.png").data) == ["https://shop.example.com/p/tee-m"]
    assert client.get("/v1/shop/products/TEE-M", headers=auth).get_json()["qr_code"]["id"] == code_id


def test_new_url_makes_a_new_code_and_other_changes_keep_it(client, auth, decode) -> None:
    first = create(client, auth).get_json()["qr_code"]["id"]
    renamed = client.patch("/v1/shop/products/MUG-1", json={"name": "Big mug", "price": None}, headers=auth)
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["qr_code"]["id"] == first
    assert renamed.get_json()["price"] is None
    moved = client.patch(
        "/v1/shop/products/MUG-1", json={"url": "https://shop.example.com/mug"}, headers=auth
    )
    assert moved.status_code == 200
    second = moved.get_json()["qr_code"]["id"]
    assert second != first
    assert decode(client.get(f"/v1/qr/{second}.png").data) == ["https://shop.example.com/mug"]
    assert client.get("/v1/shop/products/MUG-1", headers=auth).get_json()["name"] == "Big mug"


def test_duplicate_sku_is_409_and_stores_no_code(client, auth) -> None:
    create(client, auth)
    again = create(client, auth, url="https://shop.example.com/other")
    assert again.status_code == 409
    assert again.get_json()["error"] == "duplicate_sku"
    assert again.get_json()["field"] == "sku"
    assert len(codes_of(client, auth)) == 1
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["codes_today"] == 1


def test_listing_pages_through_products_by_sku(client, auth) -> None:
    for sku in ("C", "A", "B"):
        assert create(client, auth, sku=sku).status_code == 201
    first = client.get("/v1/shop/products?limit=2", headers=auth).get_json()
    assert [p["sku"] for p in first["items"]] == ["A", "B"]
    rest = client.get(f"/v1/shop/products?limit=2&cursor={first['next_cursor']}", headers=auth).get_json()
    assert [p["sku"] for p in rest["items"]] == ["C"]
    assert rest["next_cursor"] is None


def test_another_keys_product_is_404(client, auth, make_key) -> None:
    create(client, auth)
    other = {"Authorization": f"Bearer {make_key('other')}"}
    response = client.get("/v1/shop/products/MUG-1", headers=other)
    assert response.status_code == 404
    assert client.patch("/v1/shop/products/MUG-1", json={"name": "x"}, headers=other).status_code == 404
    assert create(client, other).status_code == 201  # SKUs are per owner


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"sku": "A", "name": "A"}, 400, "missing_parameter", "url"),
        ({**product_body(), "colour": "red"}, 400, "unknown_parameter", "colour"),
        ({**product_body(), "price": "cheap"}, 400, "invalid_parameter", "price"),
        ({**product_body(), "price": -1}, 400, "invalid_parameter", "price"),
        ({**product_body(), "price": True}, 400, "invalid_parameter", "price"),
        ({**product_body(), "currency": "euro"}, 400, "invalid_parameter", "currency"),
        ({**product_body(), "url": "ftp://x"}, 400, "invalid_parameter", "url"),
        ({**product_body(), "sku": 12}, 400, "invalid_parameter", "sku"),
        ({**product_body(), "sku": "  "}, 400, "invalid_parameter", "sku"),
        ({**product_body(), "url": "https://x.example/" + "a" * 3000}, 422, "data_too_long", "data"),
    ],
)
def test_bad_product_bodies(client, auth, body, status, error, field) -> None:
    response = client.post("/v1/shop/products", json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert (response.get_json()["error"], response.get_json().get("field")) == (error, field)
    assert codes_of(client, auth) == []


def test_body_must_be_a_json_object(client, auth) -> None:
    assert client.post("/v1/shop/products", data="sku=1", headers=auth).status_code == 415
    bad = client.post("/v1/shop/products", data="{", headers={**auth, "Content-Type": "application/json"})
    assert (bad.status_code, bad.get_json()["error"]) == (400, "invalid_json")
    assert client.post("/v1/shop/products", json=[1], headers=auth).status_code == 400


def test_keys_and_scopes(client, make_key) -> None:
    assert client.post("/v1/shop/products", json=product_body()).status_code == 401
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('shop:read',))}"}
    assert client.post("/v1/shop/products", json=product_body(), headers=reader).status_code == 403
    assert client.get("/v1/shop/products", headers=reader).status_code == 200
    assert client.get("/v1/shop/products/NOPE", headers=reader).status_code == 404


def test_a_deleted_product_code_is_remade_on_the_next_update(client, auth, decode) -> None:
    code_id = create(client, auth).get_json()["qr_code"]["id"]
    assert client.delete(f"/v1/qr/{code_id}", headers=auth).status_code == 200
    assert client.get("/v1/shop/products/MUG-1", headers=auth).get_json()["qr_code"] is None
    updated = client.patch("/v1/shop/products/MUG-1", json={"name": "Mug"}, headers=auth).get_json()
    assert updated["qr_code"]["id"] != code_id
    assert decode(client.get(updated["qr_code"]["image_url"]).data) == ["https://shop.example.com/p/mug-1"]


def test_labels_for_products_expand_copies_with_printed_prices(app, client, auth, api_key) -> None:
    from integrations.shop import catalog
    from integrations.shop.labels.documents import ShelfLabel
    from integrations.shop.labels.limits import MAX_LABELS
    from qrsvc.errors import ApiError
    from qrsvc.keys import find_key

    create(client, auth, sku="MUG-1", price="9.5")
    create(client, auth, sku="TEE-M", price=None, currency=None)
    with app.test_request_context():
        owner = find_key(api_key)
        made = catalog.labels_for_products(owner, [("TEE-M", 1), ("MUG-1", 2)])
        with pytest.raises(ApiError) as too_many:  # refused before looking anything up
            catalog.labels_for_products(owner, [("NOPE", MAX_LABELS), ("MUG-1", 1)])
        with pytest.raises(ApiError) as unknown:
            catalog.labels_for_products(owner, [("MUG-1", 1), ("NOPE", 1)])
    mug = ShelfLabel("Mug MUG-1", "MUG-1", "€9.50", "https://shop.example.com/p/mug-1")
    assert made == [ShelfLabel("Mug TEE-M", "TEE-M", None, "https://shop.example.com/p/tee-m"), mug, mug]
    assert (too_many.value.status, too_many.value.code) == (413, "too_many_labels")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_sku")
