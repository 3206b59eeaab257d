"""Races decided in SQL: concurrent duplicate orders and webhook replays, parallel outbox drains."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import cli
from tests.integrations.shop.conftest import order_body, parse_message
from tests.integrations.shop.test_webhooks import SHOPIFY_SECRET, encoded, platform_signature


def test_concurrent_duplicates_make_one_order_and_one_record(
    database_url, make_key, serve, tmp_path: Path
) -> None:
    from qrsvc.keys import split_key

    key = make_key("racer")
    server = serve(
        {
            "QRSVC_DATABASE_URL": database_url,
            "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
            "QRSVC_SHOP_OWNER_KEY": split_key(key),
            "QRSVC_SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        },
        workers=2,
    )
    headers = {"Authorization": f"Bearer {key}"}
    body = encoded("shopify_order")
    webhook_headers = {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": platform_signature(SHOPIFY_SECRET, body),
        "X-Shopify-Webhook-Id": "0f7d9c2e-race",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
    }

    def place(_: int) -> int:
        return requests.post(
            f"{server.url}/v1/shop/orders", json=order_body("R-1"), headers=headers, timeout=60
        ).status_code

    def deliver(_: int) -> str:
        response = requests.post(
            f"{server.url}/v1/shop/webhooks/shopify/orders", data=body, headers=webhook_headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(place, range(6)))
        outcomes = sorted(pool.map(deliver, range(6)))
    assert statuses == [201] + [409] * 5
    assert outcomes.count("created") == 1
    assert set(outcomes) <= {"created", "duplicate_delivery"}
    listed = requests.get(f"{server.url}/v1/shop/orders", headers=headers, timeout=30).json()["items"]
    assert sorted(o["order_number"] for o in listed) == ["#9999", "R-1"]


@pytest.fixture
def app_config(smtp_server):
    return {"SMTP_URL": smtp_server.url}


def test_parallel_outbox_drains_send_each_message_once(
    client, auth, smtp_server, database_url, tmp_path
) -> None:
    smtp_server.stop()
    numbers = [f"Q-{n}" for n in range(12)]
    for number in numbers:
        response = client.post("/v1/shop/orders", json=order_body(number), headers=auth)
        assert response.get_json()["email"]["status"] == "queued"
    smtp_server.start()
    env = {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_SMTP_URL": smtp_server.url,
    }
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: cli("outbox", "send", "--all", env=env), range(3)))
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    subjects = sorted(parse_message(content)["Subject"] for _, _, content in smtp_server.messages)
    assert subjects == sorted(f"Order {number} confirmed" for number in numbers)
    total = sum(int(run.stdout.split()[1].rstrip(",")) for run in runs)
    assert total == len(numbers)
