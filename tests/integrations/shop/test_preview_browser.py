"""The confirmation preview rendered by a real browser (headless Chromium) from a real gunicorn."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from tests.integrations.shop.conftest import order_body

CHROMIUM = "/usr/bin/chromium"  # installed by scripts/system-deps.sh


def screenshot(url: str, workdir: Path) -> bytes:
    shot = workdir / "preview.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={workdir / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=800,1200",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
    )
    return shot.read_bytes()


def test_preview_code_scans_from_a_chromium_screenshot(
    database_url, api_key, serve, tmp_path, decode
) -> None:
    server = serve({"QRSVC_DATABASE_URL": database_url, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")})
    created = requests.post(
        f"{server.url}/v1/shop/orders",
        json=order_body("B-4242"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    preview = created.json()["links"]["confirmation_html"]
    assert preview.startswith(server.url)
    image = screenshot(f"{preview}?api_key={api_key}", tmp_path)
    assert decode(image) == ["https://track.example.com/o/B-4242?k=7f3a"]
    # The key is sent as ?api_key but never written to the access log in clear.
    assert api_key not in server.log.read_text()
