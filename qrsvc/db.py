"""Database plumbing: connection settings per backend, portable upserts, migrations."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from qrsvc.extensions import db
from qrsvc.sqlite_wal import ensure_wal

if TYPE_CHECKING:
    from alembic.config import Config
    from flask import Flask

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


#: A pooled connection unused for longer is pinged before a request gets it (see `_ping_if_idle`).
PING_IDLE_SECONDS = 1.0


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Writers wait for each other (busy timeout) instead of failing with "database is locked".
        return {"connect_args": {"timeout": 30}}
    return {}


def _mark_checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["qrsvc_checked_in"] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections idle longer than `PING_IDLE_SECONDS` only.

    A ping is a round trip, one in five of a single code's; a connection used a moment ago is
    as alive as a ping would show. One idle for longer that the server closed (a restart, an
    idle timeout) is replaced before the request sees it, as with `pool_pre_ping`. Only after
    a restart that took under a second does a request get a dead connection: it fails, and
    the pool replaces its connections.
    """
    checked_in = record.info.get("qrsvc_checked_in")
    if checked_in is not None and time.monotonic() - checked_in <= PING_IDLE_SECONDS:
        return
    try:
        alive = dialect.do_ping(dbapi_connection)  # what `pool_pre_ping` sends
    except Exception as exc:
        raise sa.exc.DisconnectionError(str(exc)) from exc  # the pool connects anew and retries
    if not alive:
        raise sa.exc.DisconnectionError("the database did not answer a ping")


def _sqlite_pragmas(synchronous: str, dbapi_connection: Any, _record: Any) -> None:
    ensure_wal(dbapi_connection)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA synchronous={synchronous}")  # NORMAL or FULL (checked by `config.load`)
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
            pragmas = functools.partial(_sqlite_pragmas, app.config["SQLITE_SYNCHRONOUS"])
            sa.event.listen(db.engine, "connect", pragmas)
        elif not db.engine.pool._pre_ping:  # noqa: SLF001 (a pre-ping asked for in the options wins)
            sa.event.listen(db.engine.pool, "checkin", _mark_checked_in)
            sa.event.listen(db.engine.pool, "checkout", functools.partial(_ping_if_idle, db.engine.dialect))
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
        if not database_unavailable(exc):
            raise
        log.warning("closing a session whose connection the database ended: %s", type(exc.orig).__name__)
        db.session.registry.clear()


#: PostgreSQL SQLSTATEs of a server going away: admin shutdown, crash shutdown, cannot connect now.
_SERVER_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})
#: SQLite's result codes for a lock another connection holds (busy, locked), extended codes included.
_SQLITE_BUSY_OR_LOCKED = frozenset({5, 6})


def database_unavailable(error: BaseException) -> bool:
    """Is `error` the database not answering (down, restarting, locked), not a defect of the query?

    Yes: a connection SQLAlchemy found dead (`connection_invalidated`), psycopg's connection
    exceptions (SQLSTATE class 08, or no SQLSTATE: libpq lost or never had the server), a server
    shutting down or starting (57P01-57P03), SQLite's "database is locked"/"busy". No: a missing
    table or column, a syntax error, a deadlock, a serialization failure, a cancelled statement.
    """
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    orig = error.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY_OR_LOCKED
    if hasattr(orig, "sqlstate"):  # psycopg
        sqlstate: str | None = getattr(orig, "sqlstate", None)
        if sqlstate is None:
            return isinstance(error, sa.exc.OperationalError)  # libpq: the connection failed
        return sqlstate.startswith("08") or sqlstate in _SERVER_GOING_AWAY
    return False


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


def unapplied_heads(app: Flask, engine: sa.Engine | None = None) -> list[str]:
    """The migration heads (core and integrations) the database has not reached; [] when up to date.

    Asks through `engine` (default: the app's). A SQLite file that does not exist is not created
    to find out.
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
        with app.app_context(), (engine or db.engine).connect() as connection:
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
