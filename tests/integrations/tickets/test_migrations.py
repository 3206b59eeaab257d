"""Migration 0002_tickets_scan_scope on a database that already holds scans, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tests.conftest import make_app, postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet (the shared test databases are at head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with postgres_schema("qrsvc_mig") as url:
        yield url


def _alembic(app: Any, command_name: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from qrsvc.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", " ".join(app.extensions["qrsvc_migrations"]))
    config.set_main_option("path_separator", "space")
    with app.app_context():
        getattr(command, command_name)(config, revision)


def _insert_scan(connection: sa.Connection, key_id: int, event_id: str | None, nonce: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO ticket_scans (event_id, key_id, result, admit, direction, device, nonce,"
            " server_time, offline, conflict)"
            " VALUES (:event, :key, 'admitted', true, 'entry', 'gate-1', :nonce, :now, false, false)"
        ),
        {"event": event_id, "key": key_id, "nonce": nonce, "now": "2026-12-01 20:00:00+00:00"},
    )


def test_scan_scope_migration_keeps_old_scans_and_scopes_new_ones(
    empty_database: str, tmp_path: Path
) -> None:
    from qrsvc.extensions import db

    app = make_app(empty_database, tmp_path / "instance")
    try:
        _alembic(app, "upgrade", "0001_tickets")
        with app.app_context(), db.engine.begin() as connection:
            _insert_scan(connection, 1, "evt_a", "1")
            _insert_scan(connection, 1, None, "2")
        _alembic(app, "upgrade", "heads")
        with app.app_context():
            with db.engine.begin() as connection:
                rows = connection.execute(sa.text("SELECT nonce, token_hash FROM ticket_scans ORDER BY id"))
                assert [tuple(r) for r in rows] == [("1", None), ("2", None)]
                _insert_scan(connection, 2, "evt_a", "1")  # another key: its own scope
                _insert_scan(connection, 1, "evt_b", "1")  # another event: its own scope
            for event_id, nonce in (("evt_a", "1"), (None, "2")):
                with pytest.raises(IntegrityError), db.engine.begin() as connection:
                    _insert_scan(connection, 1, event_id, nonce)
            with db.engine.begin() as connection:
                connection.execute(sa.text("DELETE FROM ticket_scans WHERE key_id = 2 OR event_id = 'evt_b'"))
        _alembic(app, "downgrade", "0001_tickets")
        with app.app_context(), pytest.raises(IntegrityError), db.engine.begin() as connection:
            _insert_scan(connection, 2, "evt_c", "1")  # the old global (device, nonce) rule is back
    finally:
        app.extensions["qrsvc_rendering"].close()
        with app.app_context():
            db.engine.dispose()
