"""Product deliveries racing through the real server (gunicorn, 2 workers): the newest always wins."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.integrations.shop.conftest import payload
from tests.integrations.shop.test_webhooks import WOO_SECRET, platform_signature


def test_concurrent_product_deliveries_leave_the_newest_price(
    database_url, make_key, serve, tmp_path: Path
) -> None:
    from qrsvc.keys import split_key

    key = make_key("racer")
    server = serve(
        {
            "QRSVC_DATABASE_URL": database_url,
            "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
            "QRSVC_SHOP_OWNER_KEY": split_key(key),
            "QRSVC_WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
        },
        workers=2,
    )

    def body(minute: int) -> bytes:
        product = {**payload("woocommerce_product"), "price": f"{minute}.00"}
        product["date_modified_gmt"] = f"2026-11-24T21:{minute:02d}:00"
        return json.dumps(product).encode()

    def deliver(minute: int) -> str:
        sent = body(minute)
        headers = {
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": platform_signature(WOO_SECRET, sent),
            "X-WC-Webhook-Delivery-ID": f"race-{minute}",
            "X-WC-Webhook-Topic": "product.updated",
        }
        response = requests.post(
            f"{server.url}/v1/shop/webhooks/woocommerce/products", data=sent, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    owner = {"Authorization": f"Bearer {key}"}
    with ThreadPoolExecutor(2) as pool:
        # Each round, a newer and an older version (both newer than the stored one) race.
        for newer in range(1, 40, 2):
            outcomes = sorted(pool.map(deliver, (newer, newer - 1)))
            assert outcomes in (["ignored_stale", "saved"], ["saved", "saved"]), outcomes
            product = requests.get(f"{server.url}/v1/shop/products/PQ-19", headers=owner, timeout=30).json()
            assert product["price"] == f"{newer}.00", f"round {newer}: the older version won"
