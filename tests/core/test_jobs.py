"""The job registry and the worker loop: one transaction per job, failures logged and backed off."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa


def _owner_id(app, api_key) -> int:
    from qrsvc.keys import find_key

    with app.test_request_context():
        return find_key(api_key).id


def _add_record(owner_id: int, key: str, age: timedelta = timedelta(0)) -> None:
    from qrsvc import clock
    from qrsvc.extensions import db
    from qrsvc.models import IdempotencyRecord

    db.session.add(
        IdempotencyRecord(owner_id=owner_id, key=key, fingerprint="f", created_at=clock.now() - age)
    )


def _keys(app) -> list[str]:
    from qrsvc.extensions import db
    from qrsvc.models import IdempotencyRecord

    with app.app_context():
        return sorted(db.session.scalars(sa.select(IdempotencyRecord.key)))


def test_the_core_and_the_shop_register_their_jobs(app) -> None:
    from qrsvc import jobs

    assert {job.name for job in jobs.registered(app)} >= {"idempotency.purge", "shop.outbox"}
    with pytest.raises(ValueError, match="already registered"):
        jobs.register(app, "shop.outbox", lambda: None, 1)


def test_each_job_commits_its_own_work_and_a_failing_one_is_rolled_back_and_logged(
    app, api_key, caplog
) -> None:
    from qrsvc import jobs

    owner = _owner_id(app, api_key)

    def good() -> str:
        _add_record(owner, "kept")
        return "added one"

    def broken() -> None:
        _add_record(owner, "rolled-back")
        raise RuntimeError("the job broke")

    worker = jobs.Worker(app, [jobs.Job("broken", broken, 60), jobs.Job("good", good, 60)])
    with caplog.at_level(logging.INFO, logger="qrsvc.jobs"):
        assert worker.run_once() == ["broken"]
    assert _keys(app) == ["kept"]
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "broken" in failure.getMessage() and failure.exc_info is not None
    assert "the job broke" in caplog.text
    assert "good: added one" in caplog.text


def test_a_failing_job_backs_off_and_the_others_keep_their_interval(app) -> None:
    from qrsvc import jobs

    now = [1000.0]
    runs: list[str] = []

    def broken() -> None:
        runs.append("broken")
        raise RuntimeError("down")

    def good() -> None:
        runs.append("good")

    worker = jobs.Worker(
        app, [jobs.Job("broken", broken, 10), jobs.Job("good", good, 10)], monotonic=lambda: now[0]
    )
    assert worker.run_due() == 10  # every job runs at start; the next one is due in 10 s
    assert runs == ["broken", "good"]
    for at, expected in [(1010, ["good"]), (1020, ["broken", "good"]), (1030, ["good"]), (1040, ["good"])]:
        now[0] = at
        runs.clear()
        worker.run_due()
        assert runs == expected, at
    # Failures in a row: 20 s, then 40 s, … (at most 15 minutes); a success resets it.
    now[0] = 1060
    runs.clear()
    worker.run_due()
    assert runs == ["broken", "good"]


def test_worker_once_purges_expired_idempotency_records(app, api_key, runner) -> None:
    from qrsvc.extensions import db

    owner = _owner_id(app, api_key)
    with app.app_context():
        _add_record(owner, "expired", age=timedelta(hours=25))
        _add_record(owner, "fresh", age=timedelta(hours=23))
        db.session.commit()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert _keys(app) == ["fresh"]


def test_worker_once_exits_non_zero_when_a_job_fails(app, runner) -> None:
    from qrsvc import jobs

    def broken() -> None:
        raise RuntimeError("down")

    jobs.register(app, "test.broken", broken, 60)
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 1
    assert "test.broken" in result.output
