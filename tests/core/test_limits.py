"""Rate limits per key and plan (flask-limiter, moving window) and monthly quotas."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests


def post(client, auth, data):
    return client.post("/v1/qr/generate", json={"data": data}, headers=auth)


def test_every_v1_response_carries_rate_limit_headers(client, auth) -> None:
    for response in (
        post(client, auth, "x"),
        client.get("/v1/qr", headers=auth),
        client.get("/v1/qr/qr_missing", headers=auth),
        client.get("/v1/qr/generate"),  # 401, counted against the client address
        client.get("/v1/unknown"),
    ):
        assert int(response.headers["X-RateLimit-Limit"]) > 0
        assert int(response.headers["X-RateLimit-Remaining"]) >= 0
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
        assert "Retry-After" not in response.headers


def test_plan_limit_gives_429_with_correct_headers(client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key(plan='tiny')}"}
    remaining = [int(post(client, auth, f"d{i}").headers["X-RateLimit-Remaining"]) for i in range(3)]
    assert remaining == [2, 1, 0]
    refused = post(client, auth, "one too many")
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert (
        abs(int(refused.headers["X-RateLimit-Reset"]) - time.time() - int(refused.headers["Retry-After"]))
        <= 2
    )


def test_limits_are_per_key(client, make_key) -> None:
    first = {"Authorization": f"Bearer {make_key('a', plan='tiny')}"}
    second = {"Authorization": f"Bearer {make_key('b', plan='tiny')}"}
    for i in range(3):
        assert post(client, first, f"a{i}").status_code == 200
    assert post(client, first, "a4").status_code == 429
    assert post(client, second, "b1").status_code == 200


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "2/minute"}])
def test_requests_without_a_valid_key_are_limited_by_address(client) -> None:
    bad = {"Authorization": "Bearer qrs_abcdefghij_" + "a" * 32}
    assert client.get("/v1/qr", headers=bad).status_code == 401
    assert client.get("/v1/qr", headers=bad).status_code == 401
    assert client.get("/v1/qr", headers=bad).status_code == 429


@pytest.mark.parametrize(
    "app_config", [{"PLANS": {"free": {"requests_per_minute": 1000, "codes_per_month": 3}}}]
)
def test_quota_exceeded_is_429_with_retry_after_until_next_month(client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key(plan='free')}"}
    for i in range(3):
        assert post(client, auth, f"q{i}").status_code == 200
    response = post(client, auth, "q3")
    assert response.status_code == 429
    assert response.get_json()["error"] == "quota_exceeded"
    assert int(response.headers["Retry-After"]) > 0
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["codes_this_month"] == 3


CAPPED = {"capped": {"requests_per_minute": 1000, "codes_per_month": 5}}


@pytest.mark.parametrize("app_config", [{"PLANS": CAPPED, "DEFAULT_PLAN": "capped"}])
def test_concurrent_requests_cannot_overshoot_the_monthly_quota(app, database_url, make_key, serve) -> None:
    import json

    import sqlalchemy as sa

    from qrsvc.extensions import db
    from qrsvc.models import QrCode

    key = make_key("capped", plan="capped")
    server = serve(
        {
            "QRSVC_DATABASE_URL": database_url,
            "QRSVC_PLANS": json.dumps(CAPPED),
            "QRSVC_DEFAULT_PLAN": "capped",
        }
    )

    def call(i: int) -> int:
        return requests.post(
            f"{server.url}/v1/qr/generate",
            json={"data": f"quota race {i}", "format": "jpeg", "size": 1024},
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(24)))
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 19, statuses
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)) == 5


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "20/minute"}])
def test_large_public_images_cost_more_of_the_address_limit(client, auth, decode) -> None:
    code_id = post(client, auth, "weighted").headers["X-QR-Id"]
    small = client.get(f"/v1/qr/{code_id}.png")
    assert small.headers["X-RateLimit-Remaining"] == "19"
    big = client.get(f"/v1/qr/{code_id}.png", query_string={"size": 4096})  # 16 units of 1024²
    assert big.status_code == 200
    assert decode(big.data) == ["weighted"]
    assert big.headers["X-RateLimit-Remaining"] == "3"
    refused = client.get(f"/v1/qr/{code_id}.png", query_string={"size": 2048})  # 4 units: too many
    assert refused.status_code == 429
    # A keyed request is bounded by its plan, not weighted.
    keyed = client.get("/v1/qr/generate", query_string={"data": "x", "size": 4096}, headers=auth)
    assert keyed.status_code == 200


@pytest.mark.parametrize("storage", ["default", "redis"])
@pytest.mark.parametrize("keyed", [True, False], ids=["per-key", "per-address"])
def test_a_limit_counts_once_across_two_gunicorn_workers(
    app, database_url, make_key, serve, tmp_path, request, decode, storage, keyed
) -> None:
    """50 concurrent requests against a 30/minute limit: exactly 30 pass, one Remaining sequence.

    With `memory://` each worker kept its own counter (60 a minute, two interleaved sequences).
    """
    env = {
        "QRSVC_DATABASE_URL": database_url,
        "QRSVC_INSTANCE_PATH": str(tmp_path / "served"),
        "QRSVC_PLANS": '{"free": {"requests_per_minute": 30, "codes_per_month": 1000}}',
        "QRSVC_PUBLIC_RATE_LIMIT": "30/minute",
        # One connection a worker at a time: a busy worker leaves the next one to the other
        # (with 8 threads, one worker could take the whole burst of quick requests).
        "QRSVC_THREADS": "1",
    }
    if storage == "redis":
        redis_url = request.getfixturevalue("redis_url")
        env["QRSVC_RATELIMIT_STORAGE_URL"] = redis_url
        if not keyed:  # the loopback address's bucket outlives a test in a shared Redis
            import redis

            connection = redis.Redis.from_url(redis_url)
            for name in connection.scan_iter("LIMITS:*ip:127.0.0.1*"):
                connection.delete(name)
            connection.close()
    server = serve(env, workers=2)
    # Renders slow enough to overlap, so both workers answer; distinct sizes defeat the render cache.
    if keyed:
        headers = {"Authorization": f"Bearer {make_key('exact', plan='free')}", "Connection": "close"}
        path, expected = "/v1/qr/generate?data=exact&format=jpeg&size={size}", "exact"
    else:
        owner = {"Authorization": f"Bearer {make_key('owner', plan='free')}"}
        code = requests.post(
            f"{server.url}/v1/qr/generate", json={"data": "public"}, headers=owner, timeout=60
        )
        headers = {"Connection": "close"}
        path, expected = f"/v1/qr/{code.headers['X-QR-Id']}.jpeg?size={{size}}", "public"

    def call(i: int) -> requests.Response:
        return requests.get(server.url + path.format(size=1024 - i), headers=headers, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(call, range(50)))
    passed = [r for r in responses if r.status_code != 429]
    assert len(passed) == 30, [r.status_code for r in responses]
    assert {r.status_code for r in passed} == {200}
    assert decode(passed[-1].content, "jpeg") == [expected]
    remaining = sorted((int(r.headers["X-RateLimit-Remaining"]) for r in passed), reverse=True)
    assert remaining == list(range(29, -1, -1))
    assert all(r.headers["X-RateLimit-Remaining"] == "0" for r in responses if r.status_code == 429)
    pids = {line.split()[-1] for line in server.log.read_text().splitlines() if '"GET /v1/qr/' in line}
    assert len(pids) == 2, server.log.read_text()


def test_the_default_storage_is_a_moving_window_shared_by_processes(tmp_path) -> None:
    """Two storages on one file (as two workers have) count into one window, which moves."""
    from limits import RateLimitItemPerSecond
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    from qrsvc.ratelimit_storage import SQLiteStorage, storage_url

    url = storage_url(tmp_path / "instance" / "ratelimits.sqlite3")
    first, second = storage_from_string(url), storage_from_string(url)
    assert isinstance(first, SQLiteStorage)
    one, other = MovingWindowRateLimiter(first), MovingWindowRateLimiter(second)
    limit = RateLimitItemPerSecond(5, 2)  # 5 per 2 seconds
    assert one.hit(limit, "k") and other.hit(limit, "k", cost=3)
    # Each worker reports the window as its own last hit left it; a fresh reader sees both.
    assert one.get_window_stats(limit, "k").remaining == 4
    assert other.get_window_stats(limit, "k").remaining == 1
    assert MovingWindowRateLimiter(storage_from_string(url)).get_window_stats(limit, "k").remaining == 1
    assert not other.hit(limit, "k", cost=2)
    assert one.hit(limit, "k")
    assert not other.hit(limit, "k")
    assert other.hit(limit, "other key")
    stats = MovingWindowRateLimiter(storage_from_string(url)).get_window_stats(limit, "k")
    assert stats.remaining == 0 and 0 < stats.reset_time - time.time() <= 2
    time.sleep(2.1)
    assert other.hit(limit, "k", cost=5)
    first.clear(limit.key_for("k"))
    assert one.hit(limit, "k", cost=5)
    assert first.incr("counter", 10) == 1 and second.incr("counter", 10, amount=2) == 3
    assert first.get("counter") == 3 and first.check()


def test_a_worker_waits_for_another_turning_a_new_limits_file_to_wal(tmp_path) -> None:
    """Workers whose first requests arrive at once all set up the new file; none fails with "locked".

    Turning a file to WAL needs it to itself, and SQLite answers "database is locked" at once,
    without waiting its busy timeout, while another connection holds it (here: for 0.3 s).
    """
    import sqlite3
    import threading

    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    from qrsvc.ratelimit_storage import storage_url

    path = tmp_path / "ratelimits.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        limiter = MovingWindowRateLimiter(storage_from_string(storage_url(path)))
        assert limiter.hit(RateLimitItemPerMinute(100), "k")
    finally:
        release.join()
        other.close()
    assert limiter.get_window_stats(RateLimitItemPerMinute(100), "k").remaining == 99
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
