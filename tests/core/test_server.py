"""A new user's first minutes: a real gunicorn, a key from the CLI, the article's own examples."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import cli, decode


@pytest.fixture
def served(tmp_path: Path, serve):
    """A server on its own instance folder, as `make run` sets one up, and a key made by the CLI."""
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "article", "--plan", "pro", env=env).stdout.strip().splitlines()[-1]
    return serve(env), key


def test_article_curl_example(served, tmp_path: Path) -> None:
    server, key = served
    output = tmp_path / "qr_output.png"
    subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{server.url}/v1/qr/generate",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"data":"https://example.com","format":"png","size":512}',
            "-o",
            str(output),
        ],
        check=True,
        timeout=30,
    )
    assert decode(output.read_bytes()) == ["https://example.com"]
    status = subprocess.run(
        [
            "curl",
            "-o",
            "/dev/null",
            "-s",
            "-w",
            "%{http_code}\n",
            "-X",
            "POST",
            f"{server.url}/v1/qr/generate",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"data":"test"}',
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.stdout.strip() == "200"


def test_article_python_requests_example(served, tmp_path: Path) -> None:
    server, key = served
    base_url = f"{server.url}/v1/qr/generate"

    def generate_qr(data: str, output_path: Path, size: int = 512) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        payload = {"data": data, "format": "png", "size": size, "error_correction": "H"}
        response = requests.post(base_url, json=payload, headers=headers, timeout=30)
        response.raise_for_status()
        output_path.write_bytes(response.content)

    generate_qr("https://www.example.com/product/42", tmp_path / "product_42.png")
    assert decode((tmp_path / "product_42.png").read_bytes()) == ["https://www.example.com/product/42"]


NODE_EXAMPLE = """
import { writeFileSync } from 'fs';
const API_KEY = process.env.QR_API_KEY;
const BASE_URL = process.env.BASE_URL;
async function generateQR(data, outputPath, size = 512) {
  const response = await fetch(BASE_URL, {
    method: 'POST',
    headers: {
      'Authorization': `Bearer ${API_KEY}`,
      'Content-Type': 'application/json',
      'Accept': 'application/json',
    },
    body: JSON.stringify({ data, format: 'png', size, error_correction: 'H' }),
  });
  if (!response.ok) {
    const err = await response.json();
    throw new Error(`API error ${response.status}: ${err.message}`);
  }
  const { image_base64 } = await response.json();
  writeFileSync(outputPath, Buffer.from(image_base64, 'base64'));
  console.log(`Saved QR code to ${outputPath}`);
}
generateQR('https://www.example.com/product/42', process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
"""


def test_article_node_fetch_example(served, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    server, key = served
    script = tmp_path / "generate.mjs"
    script.write_text(NODE_EXAMPLE)
    output = tmp_path / "node.png"
    subprocess.run(
        [node, str(script), str(output)],
        env={**os.environ, "QR_API_KEY": key, "BASE_URL": f"{server.url}/v1/qr/generate"},
        check=True,
        timeout=60,
    )
    assert decode(output.read_bytes()) == ["https://www.example.com/product/42"]


def test_every_response_is_json_and_the_key_never_reaches_the_log(served) -> None:
    server, key = served
    requests.get(f"{server.url}/v1/qr/generate", params={"data": "logged?", "api_key": key}, timeout=30)
    requests.get(f"{server.url}/v1/qr", headers={"X-API-Key": key}, timeout=30)
    bad = requests.get(f"{server.url}/v1/qr", params={"api_key": key + "x"}, timeout=30)
    assert bad.status_code == 401
    for response in (
        bad,
        requests.get(f"{server.url}/nothing", timeout=30),
        requests.delete(f"{server.url}/healthz", timeout=30),
        requests.post(
            f"{server.url}/v1/qr/generate",
            data=b"\xff\xfe",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=30,
        ),
    ):
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["success"] is False
        assert response.headers["X-Request-Id"]
    log = server.log.read_text()
    assert "/v1/qr/generate" in log  # the access log is on
    assert key not in log
    assert key.split("_", 2)[2] not in log


def test_development_server_log_redacts_query_string_keys(tmp_path: Path) -> None:
    import sys
    import time

    from tests.conftest import ROOT, free_port

    env = {**os.environ, "QRSVC_INSTANCE_PATH": str(tmp_path / "instance")}
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "dev", env=env).stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "qrsvc.cli", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    response = requests.get(
                        f"http://127.0.0.1:{port}/v1/qr/generate",
                        params={"data": "dev", "api_key": key},
                        timeout=5,
                    )
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
            assert response.status_code == 200
            time.sleep(0.3)
        finally:
            process.terminate()
            process.wait(10)
    text = log.read_text()
    assert "api_key=[redacted]" in text
    assert key not in text
