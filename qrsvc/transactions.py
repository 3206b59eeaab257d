"""Who commits: the unit of work that started it — one request, one CLI command, one worker job.

Services write in the session and never commit or roll back the whole of it. A
view decorated with `transactional` commits once after it returns a response below
400 and rolls back when it raises or answers with an error; a CLI command or a job
wraps its work in `unit_of_work()`. A service that must undo only its own part (a
duplicate that the unique constraint refuses, say) runs it in `savepoint()`. Whatever
must happen only once the writes are kept (a metric counted, say) goes to `after_commit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec

from flask import Response, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from qrsvc.extensions import db

P = ParamSpec("P")


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block wrote when it ends; roll all of it back when it raises."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def transactional(view: Callable[P, Any]) -> Callable[P, Response]:
    """View decorator: the request's writes commit once after the view returns a non-error response.

    An exception, or a response of 400 or more, rolls them back. Put it below
    `require_key`, which counts the request whatever the view did.
    """

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            db.session.rollback()
            raise
        if response.status_code < 400:
            try:
                for action in _BEFORE_VIEW_COMMIT:
                    action()
            except BaseException:
                db.session.rollback()
                raise
            db.session.commit()
        else:
            db.session.rollback()
        return response

    return wrapped


#: Writes that ride on a view's commit (the request's usage count, which `auth` registers).
_BEFORE_VIEW_COMMIT: list[Callable[[], None]] = []


def before_view_commit(action: Callable[[], None]) -> None:
    """Run `action` in a `transactional` view's transaction just before it commits (once per action).

    What it writes commits with the view's writes, or neither does: a request whose writes
    are kept is never answered as failed because a second commit did not go through.
    """
    if action not in _BEFORE_VIEW_COMMIT:
        _BEFORE_VIEW_COMMIT.append(action)


@contextmanager
def savepoint() -> Iterator[None]:
    """Undo only this block's writes when it raises (the exception goes on); the rest stays pending."""
    _begin_sqlite_transaction()
    with db.session.begin_nested():
        yield


def _begin_sqlite_transaction() -> None:
    """Open SQLite's transaction before a SAVEPOINT, which pysqlite sends without one.

    pysqlite begins a transaction only before INSERT/UPDATE/DELETE; a SAVEPOINT sent first
    *is* the transaction, and its RELEASE commits, beyond the request's rollback. IMMEDIATE
    takes the write lock now (waiting out the busy timeout), as the block is about to write.
    """
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


#: `Session.info` key: actions waiting for a transaction (a savepoint or the outermost one) to commit.
_PENDING = "qrsvc_after_commit"


def after_commit(action: Callable[[], None]) -> None:
    """Run `action` once the session's outermost transaction commits; drop it if it rolls back.

    An action registered inside a `savepoint()` is dropped when that savepoint alone rolls
    back, and waits for the outer commit when it is released.
    """
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
    pending: dict[SessionTransaction, list[Callable[[], None]]] = session.info.setdefault(_PENDING, {})
    pending.setdefault(transaction, []).append(action)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending: dict[SessionTransaction, list[Callable[[], None]]] | None = session.info.get(_PENDING)
    if not pending:
        return
    # While its hooks run, the committing transaction is still the session's current one.
    transaction = session.get_nested_transaction() or session.get_transaction()
    actions = pending.pop(transaction, []) if transaction is not None else []
    if transaction is not None and transaction.parent is not None:  # a released savepoint
        pending.setdefault(transaction.parent, []).extend(actions)
        return
    for action in actions:
        action()


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ends still holding actions rolled back (a commit has taken them)."""
    pending: dict[SessionTransaction, list[Callable[[], None]]] | None = session.info.get(_PENDING)
    if pending:
        pending.pop(transaction, None)


__all__ = ["after_commit", "before_view_commit", "savepoint", "transactional", "unit_of_work"]
