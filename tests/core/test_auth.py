"""API keys: the three places a key may travel, and every way one can be wrong."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from qrsvc.extensions import db
from qrsvc.keys import revoke_key, split_key
from qrsvc.models import ApiKey
from qrsvc.transactions import unit_of_work


def test_bearer_x_api_key_and_query_parameter_all_work(client, api_key) -> None:
    body = {"data": "auth"}
    assert (
        client.post("/v1/qr/generate", json=body, headers={"Authorization": f"Bearer {api_key}"}).status_code
        == 200
    )
    assert client.post("/v1/qr/generate", json=body, headers={"X-API-Key": api_key}).status_code == 200
    assert client.get("/v1/qr/generate", query_string={"data": "auth", "api_key": api_key}).status_code == 200


def test_query_parameter_key_is_refused_on_post(client, api_key) -> None:
    response = client.post(f"/v1/qr/generate?api_key={api_key}", json={"data": "x"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "missing_api_key"


@pytest.mark.parametrize(
    "header",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_missing_key_is_401_with_a_challenge(client, header) -> None:
    response = client.get("/v1/qr", headers=header)
    assert response.status_code == 401
    assert response.get_json()["error"] == "missing_api_key"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("key", ["not-a-key", "qrs_short_x", "qrs_abcdefghij_" + "a" * 32, "x" * 500])
def test_malformed_or_unknown_key_is_401(client, key) -> None:
    response = client.get("/v1/qr", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_api_key"


def test_right_prefix_wrong_secret_is_401(client, api_key) -> None:
    forged = api_key[:-4] + ("aaaa" if not api_key.endswith("aaaa") else "bbbb")
    assert split_key(forged) == split_key(api_key)
    assert client.get("/v1/qr", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_revoked_key_gets_403(app, client, api_key) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    assert client.get("/v1/qr", headers=auth).status_code == 200
    with app.app_context(), unit_of_work():
        revoke_key(split_key(api_key))
    response = client.get("/v1/qr", headers=auth)
    assert response.status_code == 403
    assert response.get_json()["error"] == "key_revoked"


def test_scopes_are_enforced(client, make_key) -> None:
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('qr:read',))}"}
    assert client.get("/v1/qr", headers=reader).status_code == 200
    assert client.get("/v1/account/usage", headers=reader).status_code == 200
    response = client.post("/v1/qr/generate", json={"data": "x"}, headers=reader)
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    scanner = {"Authorization": f"Bearer {make_key('gate', scopes=('tickets:scan',))}"}
    assert client.get("/v1/qr", headers=scanner).status_code == 403


def test_only_a_hash_of_the_key_is_stored(app, api_key) -> None:
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == split_key(api_key)))
        assert row is not None
        assert row.secret_hash == hashlib.sha256(api_key.encode()).hexdigest()
        stored = " ".join(str(v) for v in db.session.execute(sa.select(ApiKey.__table__)).one())
    assert api_key not in stored
    assert api_key.split("_", 2)[2] not in stored


def test_keys_carry_enough_randomness(make_key) -> None:
    keys = {make_key(f"k{i}") for i in range(20)}
    assert len(keys) == 20
    assert all(len(k.split("_", 2)[2]) >= 32 for k in keys)  # 160 bits of base32


@pytest.mark.parametrize("app_config", [{"PUBLIC_RATE_LIMIT": "40/minute"}])
@pytest.mark.parametrize("spelling", ["+4096", "4096 ", " 4096", "04096"])
def test_public_image_cost_reads_the_parsed_size(client, auth, spelling) -> None:
    code_id = client.post("/v1/qr/generate", json={"data": "cost"}, headers=auth).headers["X-QR-Id"]
    plain = client.get(f"/v1/qr/{code_id}.png", query_string={"size": "4096"})
    assert plain.status_code == 200
    assert plain.headers["X-RateLimit-Remaining"] == "24"  # 16 units of 1024²
    other = client.get(f"/v1/qr/{code_id}.png", query_string={"size": spelling})
    assert other.status_code == 200
    assert other.headers["X-RateLimit-Remaining"] == "8"


def test_a_key_without_bearer_is_told_to_add_it(client, api_key) -> None:
    for header in (api_key, f"Token {api_key}", "Basic dXNlcjpwYXNz"):
        response = client.get("/v1/qr", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.get_json()["error"] == "missing_api_key"
        assert "use 'Authorization: Bearer <key>'" in response.get_json()["message"]
    response = client.get("/v1/qr", headers={"Authorization": "Bearer "})
    assert "no key after 'Bearer'" in response.get_json()["message"]


def test_a_query_key_on_a_post_is_told_it_works_on_get_only(client, api_key) -> None:
    response = client.post(f"/v1/qr/generate?api_key={api_key}", json={"data": "x"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "missing_api_key"
    message = response.get_json()["message"]
    assert "?api_key= is accepted on GET only" in message and "Bearer" in message


def test_no_key_at_all_says_one_is_required(client) -> None:
    message = client.get("/v1/qr").get_json()["message"]
    assert message == "An API key is required: send Authorization: Bearer <key>."


def test_a_key_is_trusted_from_before_its_lookup_not_after(app, api_key) -> None:
    """The cache's clock starts before the SELECT: a slow lookup does not lengthen the trust."""
    import time

    from qrsvc import keys

    started: list[float] = []

    def note_the_lookup(_conn, _cursor, statement: str, *_args) -> None:
        if "FROM api_keys" in statement and not started:
            started.append(time.monotonic())

    keys.forget_keys()
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", note_the_lookup)
    try:
        with app.test_request_context():
            assert keys.find_key(api_key) is not None
    finally:
        sa.event.remove(engine, "before_cursor_execute", note_the_lookup)
    (cached_at, _values) = keys._found[keys.hash_secret(api_key)]
    assert cached_at <= started[0]


@pytest.mark.parametrize("seconds", ["1.5", "60", "-1"])
def test_key_cache_seconds_beyond_0_to_1_is_refused(tmp_path, seconds) -> None:
    from qrsvc import config

    with pytest.raises(config.ConfigError, match="QRSVC_KEY_CACHE_SECONDS"):
        config.load(environ={"QRSVC_KEY_CACHE_SECONDS": seconds, "QRSVC_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize("seconds", ["0", "0.5", "1"])
def test_key_cache_seconds_from_0_to_1_is_accepted(tmp_path, seconds) -> None:
    from qrsvc import config

    loaded = config.load(environ={"QRSVC_KEY_CACHE_SECONDS": seconds, "QRSVC_INSTANCE_PATH": str(tmp_path)})
    assert loaded["KEY_CACHE_SECONDS"] == float(seconds)
