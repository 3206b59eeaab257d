"""The issue's label request through the real server (gunicorn via `qrsvc serve`): a JSON 413, not a killed worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.integrations.shop.conftest import product_body


def test_oversized_label_requests_get_json_413_and_leave_the_workers_free(
    database_url, make_key, serve, tmp_path: Path
) -> None:
    """Before the label limits, each of these ran past gunicorn's 30 s timeout: HTML 500, /healthz stalled."""
    key = make_key("labels")
    server = serve(
        {"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}, workers=2
    )
    headers = {"Authorization": f"Bearer {key}"}
    created = requests.post(
        f"{server.url}/v1/shop/products", json=product_body("MUG-1"), headers=headers, timeout=60
    )
    assert created.status_code == 201, created.text
    body = {"skus": [{"sku": "MUG-1", "copies": 3000}], "layout": "thermal-4x6"}

    def oversized(_: int) -> requests.Response:
        return requests.post(f"{server.url}/v1/shop/labels", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(oversized, range(2)))
        health = requests.get(f"{server.url}/healthz", timeout=60)
    for response in responses:
        assert response.status_code == 413, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"] == "too_many_labels"
        assert "QRSVC_LABEL_MAX_LABELS" in response.json()["message"]
    assert health.status_code == 200
    thermal = requests.get(
        f"{server.url}/v1/shop/labels.pdf",
        params={"sku": "MUG-1", "copies": "2", "layout": "thermal-4x6"},
        headers=headers,
        timeout=60,
    )
    assert (thermal.status_code, thermal.headers["Content-Type"]) == (200, "application/pdf")
