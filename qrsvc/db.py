"""Database plumbing: connection settings per backend, portable upserts, migrations."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from qrsvc.extensions import db

if TYPE_CHECKING:
    from alembic.config import Config
    from flask import Flask

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Writers wait for each other (busy timeout) instead of failing with "database is locked".
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    db.init_app(app)
    # Registered after Flask-SQLAlchemy's: teardown functions run last first, so this one closes.
    app.teardown_appcontext(_close_session)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
    app.extensions.setdefault("qrsvc_migrations", [str(MIGRATIONS / "versions")])


def _close_session(_exc: BaseException | None) -> None:
    """End the context's session; a connection the database has ended (a restart) is dropped, not raised.

    Closing rolls back what a request left open. On a connection PostgreSQL has terminated that
    rollback fails, and the error would escape Flask after the response was made: the client
    would get the WSGI server's own 500 instead of its answer. The pool discards the connection.
    """
    try:
        db.session.remove()
    except sa.exc.DBAPIError as exc:
        if not (
            exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        ):
            raise
        log.warning("closing a session whose connection the database ended: %s", type(exc.orig).__name__)
        db.session.registry.clear()


def dialect_name() -> str:
    name: str = db.session.get_bind().dialect.name
    return name


def insert(table: Any) -> Any:
    """INSERT that can say ON CONFLICT, for whichever backend the session is bound to."""
    dialect = dialect_name()
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are not written for {dialect}")


def per_dialect(build: Callable[[], T]) -> Callable[[], T]:
    """Build a hot-path statement once per backend (statement construction costs more than running it)."""
    built: dict[str, T] = {}

    def statement() -> T:
        dialect = dialect_name()
        if dialect not in built:
            built[dialect] = build()
        return built[dialect]

    return statement


def add_migrations(app: Flask, versions: Path) -> None:
    """Let an integration put its own Alembic versions folder on the upgrade path."""
    app.extensions.setdefault("qrsvc_migrations", []).append(str(versions))


def _alembic_config(app: Flask) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", " ".join(app.extensions["qrsvc_migrations"]))
    config.set_main_option("path_separator", "space")
    return config


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs every step at INFO (seven lines for nothing to do); `db upgrade` says one line itself."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def database_label(app: Flask) -> str:
    """The database's URL as a person may see it: the password hidden."""
    label: str = sa.engine.make_url(app.config["DATABASE_URL"]).render_as_string(hide_password=True)
    return label


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///path`), else None."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    return None


def unapplied_heads(app: Flask) -> list[str]:
    """The migration heads (core and integrations) the database has not reached; [] when up to date.

    A SQLite file that does not exist is not created to find out.
    """
    with _quiet_alembic():  # alembic logs its plugins' set-up at INFO when first imported
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        heads = app.extensions.get("qrsvc_heads")
        if heads is None:  # the scripts do not change while the process runs; `/readyz` asks often
            heads = app.extensions["qrsvc_heads"] = frozenset(
                ScriptDirectory.from_config(_alembic_config(app)).get_heads()
            )
        path = sqlite_file(app.config["DATABASE_URL"])
        if path is not None and not path.exists():
            return sorted(heads)
        with app.app_context(), db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    return sorted(heads - current)


def upgrade(app: Flask, revision: str = "heads") -> None:
    """Bring the schema (core and every integration) up to `revision`."""
    with app.app_context(), _quiet_alembic():
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(_alembic_config(app), revision)
        except CommandError as exc:
            raise MigrationError(str(exc)) from None


class MigrationError(Exception):
    """Alembic refused (an unknown revision, diverging heads); the message says why."""
