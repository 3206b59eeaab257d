"""Schemathesis against a real `qrsvc serve`: no 500s, and every answer is the one the description gives.

Bounded so CI can afford it: a fixed number of examples per operation, derandomized
(the same cases every run), one worker. The server caps image sizes so that the
budget goes on the API's rules rather than on drawing 4096-pixel images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


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
