"""Schemathesis against a real `qrsvc serve`: no 500s, and every answer is the one the description gives.

Bounded so CI can afford it: a fixed number of examples per operation, derandomized
(the same cases every run), one worker. The server caps image sizes so that the
budget goes on the API's rules rather than on drawing 4096-pixel images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import cli

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def _seed(url: str, key: str) -> dict[str, str]:
    """Records for the path parameters, so that more than the 404s of made-up ids are tried."""
    auth = {"Authorization": f"Bearer {key}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{url}{path}", json=body, headers=auth, timeout=30)
        assert response.status_code in (200, 201), response.text
        made: dict[str, Any] = response.json()
        return made

    code = post("/v1/qr/generate", {"data": "https://example.com/", "dynamic": True, "response": "json"})
    start = datetime.now(UTC) + timedelta(days=1)
    event = post(
        "/v1/events",
        {"name": "Fuzz", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=3)).isoformat()},
    )
    ticket = post(f"/v1/events/{event['id']}/tickets", {"holder_name": "Ada"})
    contact = post("/v1/crm/contacts", {"given_name": "Ada", "family_name": "Lovelace"})
    campaign = post("/v1/crm/campaigns", {"name": "Fuzz", "landing_url": "https://example.com/"})
    return {
        "code_id": code["id"],
        "short_code": code["dynamic"]["short_url"].rsplit("/", 1)[-1],
        "event_id": event["id"],
        "ticket_id": ticket["id"],
        "contact_id": contact["id"],
        "campaign_id": campaign["id"],
    }


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_description(tmp_path: Path, serve) -> None:
    env = {
        "QRSVC_INSTANCE_PATH": str(tmp_path / "instance"),
        "QRSVC_MAX_SIZE": "256",
        "QRSVC_PUBLIC_RATE_LIMIT": "100000/minute",
        "QRSVC_PLANS": json.dumps(
            {"fuzz": {"requests_per_minute": 1_000_000, "codes_per_month": 10_000_000}}
        ),
        "QRSVC_DEFAULT_PLAN": "fuzz",
    }
    assert cli("db", "upgrade", env=env).returncode == 0
    key = cli("keys", "create", "--name", "schemathesis", env=env).stdout.strip().splitlines()[-1]
    server = serve(env, workers=2)
    seeded = _seed(server.url, key)
    # Schemathesis reads its configuration from the working directory.
    (tmp_path / "schemathesis.toml").write_text(
        "[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n' for name, value in seeded.items())
    )
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{server.url}/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "unhandled error" not in server.log.read_text()
