"""Every row of DESIGN.md §4 is produced by a real request and has the JSON shape."""

from __future__ import annotations

import base64
from typing import Any

import pytest


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in body["message"]
    assert body.get("field") == field
    assert set(body) <= {"success", "error", "message", "field"}
    assert response.headers["X-Request-Id"]
    return body


def post(client: Any, auth: dict[str, str], body: Any) -> Any:
    return client.post("/v1/qr/generate", json=body, headers=auth)


def test_400_body_is_not_valid_json(client, auth) -> None:
    response = client.post(
        "/v1/qr/generate", data='{"data": "x",', headers={**auth, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


def test_400_body_is_json_but_not_an_object(client, auth) -> None:
    assert_error(post(client, auth, ["data"]), 400, "invalid_body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": 42}, "data"),
        ({"data": "x", "size": "512"}, "size"),
        ({"data": "x", "size": 512.5}, "size"),
        ({"data": "x", "size": True}, "size"),
        ({"data": "x", "quiet_zone": None}, "quiet_zone"),
        ({"data": "x", "foreground": 0}, "foreground"),
        ({"data": "x", "allow_low_contrast": "yes"}, "allow_low_contrast"),
    ],
)
def test_400_wrong_type_names_the_field(client, auth, body, field) -> None:
    assert_error(post(client, auth, body), 400, "invalid_parameter", field)


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({"data": "x", "format": "gif"}, "format", "png, svg, jpeg, webp, pdf"),
        ({"data": "x", "error_correction": "X"}, "error_correction", "L, M, Q, H"),
        ({"data": "x", "response": "xml"}, "response", "image, json"),
    ],
)
def test_400_unknown_value_lists_the_allowed_ones(client, auth, body, field, allowed) -> None:
    assert allowed in assert_error(post(client, auth, body), 400, "invalid_parameter", field)["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": "x", "foreground": "red"}, "foreground"),
        ({"data": "x", "background": "#12345"}, "background"),
        ({"data": "x", "foreground": "transparent"}, "foreground"),
    ],
)
def test_400_bad_colour(client, auth, body, field) -> None:
    assert_error(post(client, auth, body), 400, "invalid_parameter", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": "x", "size": 63}, "size"),
        ({"data": "x", "size": 4097}, "size"),
        ({"data": "x", "quiet_zone": 21}, "quiet_zone"),
        ({"data": "x", "version": 41}, "version"),
        ({"data": "x", "version": 0}, "version"),
    ],
)
def test_400_out_of_bounds(client, auth, body, field) -> None:
    assert_error(post(client, auth, body), 400, "out_of_range", field)


def test_400_unknown_field_is_refused_not_ignored(client, auth) -> None:
    body = assert_error(
        post(client, auth, {"data": "x", "error_corection": "H"}), 400, "unknown_parameter", "error_corection"
    )
    assert "error_correction" in body["message"]


def test_400_missing_and_empty_data(client, auth) -> None:
    assert_error(post(client, auth, {"size": 300}), 400, "missing_parameter", "data")
    assert_error(post(client, auth, {"data": ""}), 400, "invalid_parameter", "data")


def test_401_and_403_have_the_json_shape(client, make_key) -> None:
    response = client.post("/v1/qr/generate", json={"data": "x"})
    assert_error(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    limited = make_key("read only", scopes=("qr:read",))
    response = client.post(
        "/v1/qr/generate", json={"data": "x"}, headers={"Authorization": f"Bearer {limited}"}
    )
    assert_error(response, 403, "insufficient_scope")


def test_404_no_such_record_and_unknown_route(client, auth) -> None:
    assert_error(client.get("/v1/qr/qr_doesnotexist", headers=auth), 404, "not_found")
    assert_error(client.get("/v1/qr/qr_doesnotexist.png"), 404, "not_found")
    assert_error(client.get("/v1/nothing/here", headers=auth), 404, "not_found")
    assert_error(client.get("/nothing"), 404, "not_found")


def test_405_wrong_method(client, auth) -> None:
    response = client.put("/v1/qr/generate", json={"data": "x"}, headers=auth)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("app_config", [{"MAX_BODY_BYTES": 2048}])
def test_413_body_over_the_limit(client, auth) -> None:
    body = assert_error(post(client, auth, {"data": "x" * 5000}), 413, "payload_too_large")
    assert "2048" in body["message"]


def test_415_body_is_not_json(client, auth) -> None:
    response = client.post(
        "/v1/qr/generate",
        data="data=x",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("level", ["L", "M", "Q", "H"])
def test_422_data_too_long_says_how_many_bytes_fit(client, auth, level) -> None:
    capacity = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}[level]
    data = "😀" * (capacity // 4 + 1)  # 4 bytes each in UTF-8, no single-byte charset has it
    body = assert_error(
        post(client, auth, {"data": data, "error_correction": level}), 422, "data_too_long", "data"
    )
    assert f"at most {capacity} bytes" in body["message"]
    assert f"level {level}" in body["message"]


def test_422_data_longer_than_any_qr_code(client, auth) -> None:
    assert_error(post(client, auth, {"data": "1" * 8000}), 422, "data_too_long", "data")


@pytest.mark.parametrize(
    "colours",
    [
        {"foreground": "#ffffff", "background": "#000000"},  # inverted
        {"foreground": "#777777", "background": "#888888"},  # 1.2:1
        {"foreground": "#ffff00", "background": "#ffffff"},  # yellow on white
        {"foreground": "#00000022"},  # nearly transparent ink
    ],
)
def test_422_low_contrast_unless_forced(client, auth, colours, decode) -> None:
    assert_error(post(client, auth, {"data": "x", **colours}), 422, "low_contrast", "foreground")
    forced = post(client, auth, {"data": "x", **colours, "allow_low_contrast": True})
    assert forced.status_code == 200


def test_dark_on_light_with_enough_contrast_is_accepted(client, auth, decode) -> None:
    response = post(client, auth, {"data": "contrast ok", "foreground": "#555555", "background": "#ffffff"})
    assert response.status_code == 200
    assert decode(response.data) == ["contrast ok"]


def test_422_size_too_small_for_the_symbol(client, auth) -> None:
    body = assert_error(post(client, auth, {"data": "x" * 1000, "size": 64}), 422, "size_too_small", "size")
    assert "at least" in body["message"]


@pytest.mark.parametrize("fmt", ["jpeg", "pdf"])
def test_422_transparency_in_a_format_without_alpha(client, auth, fmt) -> None:
    assert_error(
        post(client, auth, {"data": "x", "format": fmt, "background": "transparent"}),
        422,
        "transparency_unsupported",
        "background",
    )


@pytest.mark.parametrize(
    "app_config", [{"PLANS": {"free": {"requests_per_minute": 2, "codes_per_month": 99}}}]
)
def test_429_rate_limited(client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key(plan='free')}"}
    assert post(client, auth, {"data": "1"}).status_code == 200
    assert post(client, auth, {"data": "2"}).status_code == 200
    response = post(client, auth, {"data": "3"})
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_500_is_json_without_details(app, client, caplog) -> None:
    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = client.get("/v1/boom")
    body = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert response.headers["X-Request-Id"] in body["message"] or "X-Request-Id" in body["message"]
    assert any("secret internals" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def raw_post(client: Any, auth: dict[str, str], path: str, body: str) -> Any:
    return client.post(path, data=body, headers={**auth, "Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/qr/generate", "/v1/qr/batch"])
@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_400_deeply_nested_json_is_invalid_json_not_a_crash(client, auth, path, depth) -> None:
    assert_error(raw_post(client, auth, path, "[" * depth + "]" * depth), 400, "invalid_json")
    nested = '{"data":' * depth + '"x"' + "}" * depth
    assert_error(raw_post(client, auth, path, nested), 400, "invalid_json")


@pytest.mark.parametrize(
    ("escaped", "field"),
    [
        ('{"data": "a\\ud800b"}', "data"),  # a lone high surrogate
        ('{"data": "\\udfff"}', "data"),  # a lone low surrogate
        ('{"data": "x", "foreground": "#000\\ud800"}', "foreground"),
        ('{"data": "x", "format": "\\ud800"}', "format"),
    ],
)
def test_400_lone_surrogates_name_their_field(client, auth, escaped, field) -> None:
    body = assert_error(raw_post(client, auth, "/v1/qr/generate", escaped), 400, "invalid_parameter", field)
    assert "\ud800" not in body["message"]


def test_400_lone_surrogate_in_a_field_name(client, auth) -> None:
    response = raw_post(client, auth, "/v1/qr/generate", '{"data": "x", "\\ud800": 1}')
    assert_error(response, 400, "unknown_parameter", "\ud800")


def test_a_lone_surrogate_fails_only_its_own_batch_item(client, auth, decode) -> None:
    body = '{"items": [{"data": "fine"}, {"data": "bad \\ud800"}, {"data": "ok", "filename": "\\udc00"}]}'
    response = raw_post(client, auth, "/v1/qr/batch", body)
    assert response.status_code == 200, response.data
    result = response.get_json()
    assert (result["count"], result["failed"]) == (3, 2)
    first, second, third = result["items"]
    assert first["success"] is True and decode(base64.b64decode(first["image_base64"])) == ["fine"]
    assert (second["error"], second["field"]) == ("invalid_parameter", "data")
    assert (third["error"], third["field"]) == ("invalid_parameter", "filename")


def test_a_surrogate_pair_is_an_ordinary_character(client, auth, decode) -> None:
    response = raw_post(client, auth, "/v1/qr/generate", '{"data": "smile \\ud83d\\ude00"}')
    assert response.status_code == 200
    assert decode(response.data) == ["smile 😀"]


def test_400_nul_characters_are_refused_on_every_database(client, auth) -> None:
    # PostgreSQL cannot store NUL in text; refuse it for every backend alike.
    assert_error(post(client, auth, {"data": "a\u0000b"}), 400, "invalid_parameter", "data")


def test_503_when_the_database_is_unreachable(tmp_path, caplog) -> None:
    """A database that does not answer (down, restarting) is a 503 to retry, not a 500."""
    from qrsvc.extensions import db
    from tests.conftest import free_port, make_app

    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    app = make_app(closed, tmp_path / "instance")
    well_formed = f"qrs_{'a' * 10}_{'b' * 40}"  # looked up in the database, which does not answer
    response = app.test_client().get("/v1/account/usage", headers={"Authorization": f"Bearer {well_formed}"})
    assert_error(response, 503, "service_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    assert not any(r.exc_info for r in caplog.records)  # one line in the log, no traceback
    with app.app_context():
        db.engine.dispose()


def test_503_when_the_rate_limit_storage_is_unreachable(database_url, tmp_path, make_key) -> None:
    """Limits in a Redis that does not answer: the request cannot be counted, so it is refused for now."""
    from qrsvc.extensions import db
    from tests.conftest import free_port, make_app

    key = make_key()
    app = make_app(
        database_url, tmp_path / "other", RATELIMIT_STORAGE_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    response = app.test_client().post(
        "/v1/qr/generate", json={"data": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert_error(response, 503, "service_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    with app.app_context():
        db.engine.dispose()


def test_the_hooks_finishing_a_failed_response_never_query_the_database(app, client, auth) -> None:
    """A failed request rolls back, which expires the key loaded for it; the hooks that finish the
    response (request id, access-log fields, limit headers) must not load it again: with the database
    restarting, that load raised after the error handler had run and turned a JSON 503 into a 500."""
    import sqlalchemy as sa

    from qrsvc.errors import ApiError
    from qrsvc.extensions import db

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    @app.post("/v1/fails-after-a-rollback")
    def fails() -> None:
        db.session.rollback()  # as `transactional` does when a view raises
        sa.event.listen(db.engine, "before_cursor_execute", count)
        raise ApiError(409, "conflict", "It conflicts.")

    try:
        response = client.post("/v1/fails-after-a-rollback", headers=auth)
    finally:
        with app.app_context():
            sa.event.remove(db.engine, "before_cursor_execute", count)
    assert_error(response, 409, "conflict")
    assert statements == []


def test_503_when_the_database_goes_away_while_the_response_is_finished(database_url, tmp_path) -> None:
    """A hook after the view that meets an unreachable database: still the JSON 503, not a 500."""
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from tests.conftest import free_port, make_app

    app = make_app(database_url, tmp_path / "instance")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: TESTING would re-raise it here
    gone = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone?connect_timeout=2")

    @app.after_request
    def reach_the_database(response: Any) -> Any:
        with gone.connect():
            return response

    response = app.test_client().get("/v1/qr", headers={"Authorization": "Bearer nothing"})
    assert_error(response, 503, "service_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    with app.app_context():
        db.engine.dispose()


def test_a_connection_the_database_ended_never_loses_the_answer(tmp_path, caplog) -> None:
    """PostgreSQL restarting ends its connections: the rollback that closes such a request's
    session at teardown fails. It raised out of Flask, and gunicorn sent its own plain-text 500
    for a request that had its answer; now the connection is dropped, the answer goes out."""
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from tests.conftest import make_app, postgres_schema

    with postgres_schema("qrsvc_ended") as url:
        app = make_app(url, tmp_path / "instance")
        other = sa.create_engine(url)

        @app.get("/ended-by-the-server")
        def ended() -> dict[str, Any]:
            pid = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with other.begin() as connection:  # what a restart does to every connection
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return {"answer": 42}

        @app.get("/next")
        def after() -> dict[str, Any]:
            return {"one": db.session.execute(sa.text("SELECT 1")).scalar_one()}

        client = app.test_client()
        response = client.get("/ended-by-the-server")
        assert (response.status_code, response.get_json()) == (200, {"answer": 42})
        assert client.get("/next").get_json() == {"one": 1}
        assert any("AdminShutdown" in r.getMessage() for r in caplog.records)
        other.dispose()
        with app.app_context():
            db.engine.dispose()


def test_a_query_on_a_missing_table_is_a_500_with_its_traceback(app, client, caplog) -> None:
    """A defect, not a backend that does not answer: SQLite calls it an OperationalError all the same."""
    import sqlalchemy as sa

    from qrsvc.extensions import db

    @app.get("/v1/missing-table")
    def missing_table() -> None:
        db.session.execute(sa.text("SELECT nothing FROM no_such_table"))

    response = client.get("/v1/missing-table")
    assert_error(response, 500, "internal_error")
    assert "Retry-After" not in response.headers
    assert any(r.exc_info and "no_such_table" in str(r.exc_info[1]) for r in caplog.records)


def test_a_cancelled_statement_is_a_500_not_a_503(tmp_path, caplog) -> None:
    """psycopg's QueryCanceled (like DeadlockDetected, SerializationFailure) is an OperationalError,
    but the database answered: retrying the same request is no cure."""
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from tests.conftest import make_app, postgres_schema

    with postgres_schema("qrsvc_cancelled") as url:
        app = make_app(url, tmp_path / "instance")

        @app.get("/cancelled")
        def cancelled() -> None:
            db.session.execute(sa.text("SET LOCAL statement_timeout = 1"))
            db.session.execute(sa.text("SELECT pg_sleep(5)"))

        response = app.test_client().get("/cancelled")
        assert_error(response, 500, "internal_error")
        assert any(
            r.exc_info and "QueryCanceled" in type(r.exc_info[1].orig).__name__ for r in caplog.records
        )
        with app.app_context():
            db.engine.dispose()


def test_a_connection_that_was_closed_under_the_request_is_a_503(app, client, caplog) -> None:
    import sqlalchemy as sa

    from qrsvc.extensions import db

    @app.get("/v1/closed-connection")
    def closed_connection() -> None:
        db.session.connection().connection.dbapi_connection.close()
        db.session.execute(sa.text("SELECT 1"))

    response = client.get("/v1/closed-connection")
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "2"
    assert not any(r.exc_info for r in caplog.records)


def test_a_locked_sqlite_database_is_a_503(tmp_path) -> None:
    """Another process holds the write lock past the busy timeout: retry in a moment."""
    import sqlite3

    import sqlalchemy as sa

    from qrsvc.db import upgrade
    from qrsvc.extensions import db
    from tests.conftest import make_app

    path = tmp_path / "locked.sqlite3"
    app = make_app(
        f"sqlite:///{path}", tmp_path / "instance", SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0}}
    )
    upgrade(app)

    @app.post("/locked")
    def locked() -> None:
        db.session.execute(sa.text("DELETE FROM api_keys"))

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        response = app.test_client().post("/locked")
    finally:
        holder.rollback()
        holder.close()
    assert_error(response, 503, "service_unavailable")
    with app.app_context():
        db.engine.dispose()


def test_a_503_after_the_limiter_ran_keeps_its_own_retry_after(app, client, auth) -> None:
    """The limiter sets Retry-After (its window, 60 s) on every response; a 503's is the service's."""
    import sqlalchemy as sa

    from qrsvc.auth import require_key

    @app.get("/v1/pool-exhausted")
    @require_key("qr:read")
    def pool_exhausted() -> None:
        raise sa.exc.TimeoutError("QueuePool limit reached")

    response = client.get("/v1/pool-exhausted", headers=auth)
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "2"
