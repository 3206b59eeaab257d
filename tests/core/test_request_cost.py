"""What the single-code request skips, and the guarantees it keeps while skipping it (issue 13).

A worker trusts a key it looked up for `KEY_CACHE_SECONDS`, so a revocation made elsewhere
takes effect within that bound; the Redis limiter runs its scripts by SHA1 in one round trip
and still counts exactly when the server has lost them.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from qrsvc import clock
from qrsvc.extensions import db
from qrsvc.keys import split_key
from qrsvc.models import ApiKey


def _revoke_elsewhere(app, plain: str) -> None:
    """What `qrsvc keys revoke` in another process does: the row changes, this process is not told."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            sa.update(ApiKey).where(ApiKey.prefix == split_key(plain)).values(revoked_at=clock.now())
        )


@pytest.mark.parametrize("app_config", [{"KEY_CACHE_SECONDS": 0.5}])
def test_a_revocation_made_elsewhere_takes_effect_within_the_key_cache_bound(app, client, api_key) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    assert client.post("/v1/qr/generate", json={"data": "before"}, headers=auth).status_code == 200
    _revoke_elsewhere(app, api_key)
    time.sleep(0.6)  # past the bound: the key is looked up again
    refused = client.post("/v1/qr/generate", json={"data": "after"}, headers=auth)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "key_revoked"


@pytest.mark.parametrize("app_config", [{"KEY_CACHE_SECONDS": 0}])
def test_without_the_key_cache_a_revocation_made_elsewhere_takes_effect_at_once(app, client, api_key) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    assert client.get("/v1/qr", headers=auth).status_code == 200
    _revoke_elsewhere(app, api_key)
    assert client.get("/v1/qr", headers=auth).status_code == 403


def test_a_cached_key_keeps_its_scopes_and_stores_codes_as_its_own(client, make_key) -> None:
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('qr:read',))}"}
    writer = {"Authorization": f"Bearer {make_key('writer')}"}
    for _ in range(2):  # the second time from the cache
        assert client.post("/v1/qr/generate", json={"data": "x"}, headers=reader).status_code == 403
    made = [client.post("/v1/qr/generate", json={"data": f"w{i}"}, headers=writer) for i in range(2)]
    assert [r.status_code for r in made] == [200, 200]
    listed = client.get("/v1/qr", headers=writer).get_json()["items"]
    assert sorted(item["data"] for item in listed) == ["w0", "w1"]
    assert client.get("/v1/qr", headers=reader).get_json()["items"] == []
    usage = client.get("/v1/account/usage", headers=writer).get_json()["usage"]
    assert usage["codes_this_month"] == 2


def test_redis_limiter_counts_exactly_when_the_server_has_lost_its_scripts(redis_url) -> None:
    """One MULTI of EVALSHAs; after `SCRIPT FLUSH` the scripts are loaded again and nothing counts twice."""
    import redis
    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    from qrsvc.ratelimit_storage import ExactRedisStorage, limiter_storage_uri

    storage = storage_from_string(limiter_storage_uri(redis_url))
    assert isinstance(storage, ExactRedisStorage)
    limiter = MovingWindowRateLimiter(storage)
    limit = RateLimitItemPerMinute(3)
    key = f"noscript-{time.time_ns()}"
    connection = redis.Redis.from_url(redis_url)
    try:
        assert limiter.hit(limit, key)
        connection.script_flush()
        assert limiter.hit(limit, key)
        assert storage.get_moving_window(limit.key_for(key), 3, 60)[1] == 2
        assert limiter.hit(limit, key)
        assert not limiter.hit(limit, key)
        assert limiter.get_window_stats(limit, key).remaining == 0
    finally:
        storage.clear(limit.key_for(key))
        connection.close()


def test_a_pooled_connection_the_server_closed_while_idle_is_replaced_before_use(
    tmp_path, monkeypatch
) -> None:
    """Connections idle past `PING_IDLE_SECONDS` are pinged at checkout, as `pool_pre_ping` did for all."""
    from qrsvc import db as database
    from tests.conftest import make_app, postgres_schema

    monkeypatch.setattr(database, "PING_IDLE_SECONDS", 0.1)
    with postgres_schema("qrsvc_ping") as url:
        app = make_app(url, tmp_path / "instance")
        with app.app_context():
            first = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
            db.session.remove()  # back to the pool
            other = sa.create_engine(url)  # what a server restart does to the pooled connection
            with other.begin() as connection:
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            other.dispose()
            time.sleep(0.2)  # idle past the bound
            second = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
            assert second is not None and second != first
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize(
    "app_config", [{"PLANS": {"free": {"requests_per_minute": 1000, "codes_per_month": 2}}}]
)
def test_a_refused_quota_counts_the_request_and_no_code(client, make_key) -> None:
    """A refused reserve (single code or batch) counts the request and no code, on every backend."""
    auth = {"Authorization": f"Bearer {make_key(plan='free')}"}
    assert client.post("/v1/qr/generate", json={"data": "one"}, headers=auth).status_code == 200
    assert client.get("/v1/qr", headers=auth).status_code == 200  # a request, no code
    batch = client.post("/v1/qr/batch", json={"items": [{"data": "two"}, {"data": "three"}]}, headers=auth)
    assert batch.status_code == 429 and batch.get_json()["error"] == "quota_exceeded"
    assert client.post("/v1/qr/generate", json={"data": "two"}, headers=auth).status_code == 200
    refused = client.post("/v1/qr/generate", json={"data": "three"}, headers=auth)
    assert refused.status_code == 429 and refused.get_json()["error"] == "quota_exceeded"
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage == {"requests_today": 6, "codes_today": 2, "codes_this_month": 2}


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("full", 2), ("NORMAL", 1)])
def test_sqlite_synchronous_is_normal_unless_full_is_asked_for(tmp_path, setting, expected) -> None:
    """PRAGMA synchronous: 1 is NORMAL (a commit survives the process), 2 is FULL (also a power loss)."""
    from tests.conftest import make_app

    overrides = {} if setting is None else {"SQLITE_SYNCHRONOUS": setting.upper()}
    app = make_app(f"sqlite:///{tmp_path / 'sync.sqlite3'}", tmp_path / "instance", **overrides)
    with app.app_context():
        assert db.session.scalar(sa.text("PRAGMA synchronous")) == expected
        db.session.remove()
        db.engine.dispose()


def test_sqlite_synchronous_refuses_other_values() -> None:
    from qrsvc.config import ConfigError, load

    with pytest.raises(ConfigError, match="QRSVC_SQLITE_SYNCHRONOUS"):
        load(environ={"QRSVC_SQLITE_SYNCHRONOUS": "off"})
    assert load(environ={"QRSVC_SQLITE_SYNCHRONOUS": "full"})["SQLITE_SYNCHRONOUS"] == "FULL"


@pytest.mark.parametrize(
    "app_config", [{"PLANS": {"free": {"requests_per_minute": 1000, "codes_per_month": 3}}}]
)
def test_an_identical_single_code_shares_its_record_and_still_counts(client, make_key, decode) -> None:
    """One code a request (one statement on PostgreSQL): a repeat is the same record, counted again."""
    auth = {"Authorization": f"Bearer {make_key(plan='free')}"}
    body = {"data": "same", "response": "json"}
    first, again = (client.post("/v1/qr/generate", json=body, headers=auth).get_json() for _ in range(2))
    assert first["id"] == again["id"]
    assert decode(client.get(f"/v1/qr/{first['id']}.png").data) == ["same"]
    listed = client.get("/v1/qr", headers=auth).get_json()["items"]
    assert [item["id"] for item in listed] == [first["id"]]
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage == {"requests_today": 4, "codes_today": 2, "codes_this_month": 2}
