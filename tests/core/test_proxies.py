"""QRSVC_TRUSTED_PROXIES: the client's address from X-Forwarded-For, for limits and logs, only when trusted.

Behind nginx every request comes from the proxy's address; with one trusted hop the
address nginx saw (the last X-Forwarded-For value) is the client's. Unset, the header
is ignored: a client cannot pick its own rate-limit key by sending one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import cli

PROXY = {"REMOTE_ADDR": "127.0.0.1"}


def keyless(client: Any, forwarded_for: str | None = None) -> int:
    """A request without a key (401), counted against the per-address limit; its status."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return int(client.get("/v1/qr", headers=headers, environ_base=PROXY).status_code)


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "2/minute"}])
def test_by_default_the_header_is_ignored_and_cannot_dodge_the_limit(client) -> None:
    assert keyless(client, "203.0.113.1") == 401
    assert keyless(client, "203.0.113.2") == 401
    # A new spoofed address each time is still the same caller: the proxy's (or its own) address.
    assert keyless(client, "203.0.113.3") == 429
    assert keyless(client) == 429


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "2/minute", "TRUSTED_PROXIES": 1}])
def test_with_one_trusted_hop_each_client_has_its_own_limit(client) -> None:
    for _ in range(2):
        assert keyless(client, "203.0.113.1") == 401
    assert keyless(client, "203.0.113.1") == 429
    assert keyless(client, "203.0.113.2") == 401  # another client behind the same proxy


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "2/minute", "TRUSTED_PROXIES": 1}])
def test_with_one_trusted_hop_only_the_address_the_proxy_saw_counts(client) -> None:
    """nginx appends the address it saw; what the client put before it is not believed."""
    assert keyless(client, "10.0.0.1, 198.51.100.7") == 401
    assert keyless(client, "10.0.0.2, 198.51.100.7") == 401
    assert keyless(client, "127.0.0.1, 198.51.100.7") == 429
    assert keyless(client, "198.51.100.8") == 401


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXIES": 1}])
def test_with_a_trusted_proxy_metrics_see_the_client_not_loopback(client) -> None:
    assert client.get("/metrics", environ_base=PROXY).status_code == 200  # no header: the proxy itself
    outside = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=PROXY)
    assert outside.status_code == 404


def test_a_negative_number_of_proxies_is_refused_by_name(tmp_path: Path) -> None:
    from qrsvc import config

    with pytest.raises(config.ConfigError, match="QRSVC_TRUSTED_PROXIES"):
        config.load({"INSTANCE_PATH": str(tmp_path)}, environ={"QRSVC_TRUSTED_PROXIES": "-1"})


@pytest.mark.parametrize("trusted", [0, 1])
def test_the_access_log_shows_the_client_only_through_a_trusted_proxy(
    tmp_path: Path, serve, trusted: int
) -> None:
    env = {"QRSVC_INSTANCE_PATH": str(tmp_path / "instance"), "QRSVC_TRUSTED_PROXIES": str(trusted)}
    assert cli("db", "upgrade", env=env).returncode == 0
    server = serve(env, workers=1)
    answer = requests.get(
        f"{server.url}/healthz", headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.50"}, timeout=30
    )
    assert answer.status_code == 200
    server.stop()
    (line,) = [line for line in server.log.read_text().splitlines() if answer.headers["X-Request-Id"] in line]
    client = line.split()[0]
    assert client == ("203.0.113.50" if trusted else "127.0.0.1")
