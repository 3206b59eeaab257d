"""One transaction rule: the request (or command, or job) commits; services only write.

`transactional` commits a view's writes once when it answers below 400 and rolls
them back otherwise; `savepoint` undoes only its block; the request is counted
against the key's usage even when its work was rolled back.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import jsonify

from qrsvc.auth import current_key, require_key
from qrsvc.clock import now
from qrsvc.codes import make_code
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.keys import create_key
from qrsvc.models import ApiKey, QrCode, UsageDay
from qrsvc.options import QrOptions
from qrsvc.transactions import after_commit, savepoint, transactional, unit_of_work

PLANS = ["free", "pro", "tiny", "unlimited"]


def names(app: Any) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(sa.select(ApiKey.name)))


def add_two_keys_with_one_prefix() -> None:
    for name in ("first", "second"):
        db.session.add(
            ApiKey(prefix="same", secret_hash="x", name=name, plan="pro", scopes=[], created_at=now())
        )
        db.session.flush()


def failing_command() -> None:
    with unit_of_work():
        create_key("failed command", "pro", ["*"], PLANS)
        create_key("bad", "no such plan", ["*"], PLANS)


@pytest.fixture
def views(app: Any) -> Any:
    """Views made for these tests, on the real app (before its first request)."""

    @app.post("/test/keys/<name>/<int:status>")
    @transactional
    def add_key(name: str, status: int) -> Any:
        create_key(name, "pro", ["*"], PLANS)
        if status == 500:
            raise RuntimeError("the view failed after writing")
        if status >= 400:
            raise ApiError(status, "refused", "the view refused after writing")
        return jsonify({"name": name}), status

    @app.post("/test/error-response/<name>")
    @transactional
    def error_response(name: str) -> Any:
        create_key(name, "pro", ["*"], PLANS)
        return jsonify({"success": False}), 409

    @app.post("/test/savepoint")
    @transactional
    def with_savepoint() -> Any:
        create_key("kept", "pro", ["*"], PLANS)
        try:
            with savepoint():
                create_key("undone", "pro", ["*"], PLANS)
                add_two_keys_with_one_prefix()
        except sa.exc.IntegrityError:
            pass
        return jsonify({"success": True})

    @app.post("/test/savepoint-first-then-fail")
    @transactional
    def savepoint_first_then_fail() -> Any:
        with savepoint():  # the first write of the request, inside a savepoint
            create_key("inside savepoint", "pro", ["*"], PLANS)
        raise ApiError(409, "conflict", "the view failed after its savepoint ended")

    @app.post("/v1/test/store-then-fail")
    @require_key("qr:write")
    @transactional
    def store_then_fail() -> Any:
        make_code(current_key(), QrOptions(data="stored, then rolled back"))
        raise ApiError(409, "conflict", "the view failed after storing a code")

    @app.post("/v1/test/write/<name>")
    @require_key("qr:write")
    @transactional
    def write_without_counting(name: str) -> Any:
        create_key(name, "pro", ["*"], PLANS)  # a write, and no `usage.count` to carry the request
        return jsonify({"name": name}), 201

    return app


def requests_today(app: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.sum(UsageDay.requests))) or 0)


def commits_during(app: Any, request: Any) -> tuple[Any, int]:
    """The response to `request()`, and how many transactions the database saw committed for it."""
    commits: list[object] = []

    def committed(_connection: Any) -> None:
        commits.append(None)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "commit", committed)
    try:
        response = request()
    finally:
        sa.event.remove(engine, "commit", committed)
    return response, len(commits)


def test_a_view_that_writes_commits_its_request_count_in_the_same_commit(
    views: Any, auth: dict[str, str]
) -> None:
    response, commits = commits_during(
        views, lambda: views.test_client().post("/v1/test/write/one", headers=auth)
    )
    assert (response.status_code, commits) == (201, 1)
    assert "one" in names(views)
    assert requests_today(views) == 1


def test_a_count_that_cannot_be_written_keeps_none_of_the_writes(views: Any, auth: dict[str, str]) -> None:
    """The database goes away as the request's count is written: the client is told to retry
    (503, nothing stored), so nothing may have been stored. A second commit after the view's
    had kept the view's writes: a retry stored them twice, and the request was never counted."""

    def go_away_at_the_count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_DAYS"):
            raise sa.exc.OperationalError(
                statement, parameters, Exception("the server went away"), connection_invalidated=True
            )

    with views.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", go_away_at_the_count)
    try:
        response = views.test_client().post("/v1/test/write/lost", headers=auth)
    finally:
        sa.event.remove(engine, "before_cursor_execute", go_away_at_the_count)
    assert (response.status_code, response.get_json()["error"]) == (503, "service_unavailable")
    assert "lost" not in names(views)
    assert requests_today(views) == 0


def test_a_view_commits_once_when_it_answers_below_400(views: Any) -> None:
    client = views.test_client()
    assert client.post("/test/keys/created/201").status_code == 201
    assert "created" in names(views)


@pytest.mark.parametrize("status", [400, 409, 422])
def test_an_error_undoes_everything_the_view_wrote(views: Any, status: int) -> None:
    response = views.test_client().post(f"/test/keys/refused/{status}")
    assert (response.status_code, response.get_json()["error"]) == (status, "refused")
    assert "refused" not in names(views)


def test_an_unexpected_exception_undoes_the_view(views: Any) -> None:
    assert views.test_client().post("/test/keys/crashed/500").get_json()["error"] == "internal_error"
    assert "crashed" not in names(views)


def test_an_error_response_returned_rather_than_raised_is_rolled_back(views: Any) -> None:
    assert views.test_client().post("/test/error-response/returned").status_code == 409
    assert "returned" not in names(views)


def test_a_savepoint_undoes_only_its_own_block(views: Any) -> None:
    assert views.test_client().post("/test/savepoint").status_code == 200
    assert "kept" in names(views)
    assert not {"undone", "first", "second"} & names(views)


def test_a_savepoint_that_opens_the_transaction_is_undone_with_the_request(views: Any) -> None:
    """pysqlite begins no transaction for SAVEPOINT, so its RELEASE would commit on SQLite."""
    assert views.test_client().post("/test/savepoint-first-then-fail").status_code == 409
    assert "inside savepoint" not in names(views)


def test_a_request_whose_work_was_rolled_back_is_still_counted(views: Any, auth: dict[str, str]) -> None:
    client = views.test_client()
    assert client.post("/v1/test/store-then-fail", headers=auth).status_code == 409
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage == {"requests_today": 2, "codes_today": 0, "codes_this_month": 0}
    with views.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)) == 0


def test_a_unit_of_work_commits_at_its_end_and_rolls_back_when_it_raises(app: Any) -> None:
    with app.app_context():
        with unit_of_work():
            create_key("command", "pro", ["*"], PLANS)
        with pytest.raises(ApiError):
            failing_command()
    assert "command" in names(app)
    assert "failed command" not in names(app)


def test_services_leave_the_commit_to_the_caller(app: Any) -> None:
    with app.app_context():
        key, _plain = create_key("never committed", "pro", ["*"], PLANS)
        make_code(key, QrOptions(data="never committed either"))
        db.session.rollback()
    assert "never committed" not in names(app)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(QrCode)) == 0


# after_commit: what must happen only once the writes are kept


def test_after_commit_runs_once_when_the_outer_transaction_commits(app: Any) -> None:
    ran: list[str] = []
    with app.app_context():
        with unit_of_work():
            create_key("counted", "pro", ["*"], PLANS)
            after_commit(lambda: ran.append("outer"))
            with savepoint():
                after_commit(lambda: ran.append("released savepoint"))
            assert ran == []  # a released savepoint is not yet a commit
        assert ran == ["outer", "released savepoint"]
        with unit_of_work():
            create_key("next", "pro", ["*"], PLANS)
    assert ran == ["outer", "released savepoint"]  # never run again by a later commit


def test_after_commit_is_dropped_when_the_transaction_rolls_back(app: Any) -> None:
    ran: list[str] = []

    def refused() -> None:
        with unit_of_work():
            create_key("rolled back", "pro", ["*"], PLANS)
            after_commit(lambda: ran.append("rolled back"))
            raise ApiError(409, "conflict", "undone")

    with app.app_context():
        with pytest.raises(ApiError):
            refused()
        with unit_of_work():
            create_key("committed later", "pro", ["*"], PLANS)
    assert ran == []
    assert "rolled back" not in names(app)


def test_after_commit_inside_a_savepoint_that_rolls_back_is_dropped(app: Any) -> None:
    ran: list[str] = []
    with app.app_context(), unit_of_work():
        create_key("kept", "pro", ["*"], PLANS)
        try:
            with savepoint():
                after_commit(lambda: ran.append("undone"))
                add_two_keys_with_one_prefix()
        except sa.exc.IntegrityError:
            pass
        after_commit(lambda: ran.append("kept"))
    assert ran == ["kept"]
    assert "kept" in names(app)


def test_after_commit_before_any_write_waits_for_the_commit(app: Any) -> None:
    ran: list[str] = []
    with app.app_context():
        after_commit(lambda: ran.append("early"))
        assert ran == []
        with unit_of_work():
            create_key("written after", "pro", ["*"], PLANS)
    assert ran == ["early"]
