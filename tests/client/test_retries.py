"""The client's retry rules against a scripted HTTP server (real sockets, injected or real sleep)."""

from __future__ import annotations

import time

import pytest

from qrsvc.client import (
    BadRequestError,
    Client,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
)
from tests.client.conftest import error_body
from tests.conftest import free_port

OK = (200, {}, b'{"plan": "pro"}')
BROKEN = (500, {}, error_body("internal_error", "Something went wrong on our side."))


def recording_client(url: str, **kwargs) -> tuple[Client, list[float]]:
    slept: list[float] = []
    return Client(url, "qrs_key", sleep=slept.append, **kwargs), slept


def test_a_500ing_server_is_retried_with_backoff_then_given_up_on(scripted) -> None:
    server = scripted(BROKEN)
    client, slept = recording_client(server.url, max_retries=3)
    with pytest.raises(ServerError) as caught:
        client.usage()
    assert len(server.hits) == 4
    assert slept == [1, 2, 4]
    error = caught.value
    assert (error.status, error.error, error.attempts) == (500, "internal_error", 4)
    assert str(error).startswith("500 internal_error: gave up after 4 attempts: Something went wrong")


def test_backoff_doubles_up_to_its_cap(scripted) -> None:
    server = scripted((502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>"))
    client, slept = recording_client(server.url, max_retries=6, max_backoff=5)
    with pytest.raises(ServerError) as caught:
        client.usage()
    assert slept == [1, 2, 4, 5, 5, 5]
    assert caught.value.error == "http_error" and caught.value.status == 502


def test_real_waits_between_attempts(scripted) -> None:
    server = scripted(BROKEN, BROKEN, BROKEN, OK)
    client = Client(server.url, "k", backoff=0.2, max_retries=3)
    assert client.usage() == {"plan": "pro"}
    gaps = [later[0] - earlier[0] for earlier, later in zip(server.hits, server.hits[1:], strict=False)]
    assert [round(gap, 1) >= wanted for gap, wanted in zip(gaps, [0.2, 0.4, 0.8], strict=True)] == [True] * 3


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(scripted, status) -> None:
    refused = (status, {"Retry-After": "3"}, error_body("rate_limited", "Slow down."))
    server = scripted(refused, OK)
    client, slept = recording_client(server.url)
    assert client.usage() == {"plan": "pro"}
    assert slept == [3.0]


def test_other_4xx_are_never_retried(scripted) -> None:
    server = scripted((400, {}, error_body("invalid_parameter", "size must be a whole number", "size")))
    client, slept = recording_client(server.url)
    with pytest.raises(BadRequestError) as caught:
        client.generate("x", size="big")
    assert len(server.hits) == 1 and slept == []
    assert (caught.value.status, caught.value.error, caught.value.field) == (400, "invalid_parameter", "size")
    missing = scripted((404, {}, error_body("not_found", "no code 'qr_x'")))
    with pytest.raises(NotFoundError):
        Client(missing.url, "k", sleep=slept.append).get("qr_x")
    assert len(missing.hits) == 1


def test_an_exhausted_monthly_quota_is_not_waited_for(scripted) -> None:
    server = scripted((429, {"Retry-After": "1000000"}, error_body("quota_exceeded", "plan allows 5 codes")))
    client, slept = recording_client(server.url)
    with pytest.raises(RateLimitError) as caught:
        client.generate("x")
    assert len(server.hits) == 1 and slept == []
    assert caught.value.retry_after == 1000000


def test_an_unreachable_server_is_a_transport_error_after_retries() -> None:
    client, slept = recording_client(f"http://127.0.0.1:{free_port()}", max_retries=2)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        client.usage()
    assert slept == [1, 2] and time.monotonic() - started < 5
    assert caught.value.status is None and caught.value.attempts == 3


def test_a_body_too_large_is_split_in_halves_and_stitched(scripted) -> None:
    import json

    def part(start: int) -> bytes:
        items = [{"index": i, "success": True, "data": f"d{start + i}"} for i in range(2)]
        return json.dumps({"success": True, "count": 2, "failed": 0, "items": items}).encode()

    too_large = (413, {}, error_body("payload_too_large", "The request body is larger than the limit."))
    server = scripted(too_large, (200, {}, part(0)), (200, {}, part(2)))
    client, slept = recording_client(server.url)
    result = client.batch([f"d{i}" for i in range(4)])
    assert [item["index"] for item in result.items] == [0, 1, 2, 3]
    assert [item["data"] for item in result.items] == ["d0", "d1", "d2", "d3"]
    assert (result.count, len(server.hits), slept) == (4, 3, [])
    assert client.batch_max_items == 2


def test_key_and_url_come_from_the_environment(monkeypatch, scripted) -> None:
    server = scripted(OK)
    monkeypatch.setenv("QRSVC_URL", server.url)
    monkeypatch.setenv("QRSVC_API_KEY", "qrs_from_env")
    client = Client()
    assert (client.base_url, client.api_key) == (server.url, "qrs_from_env")
    assert client.usage() == {"plan": "pro"}
    assert server.headers[0]["Authorization"] == "Bearer qrs_from_env"
